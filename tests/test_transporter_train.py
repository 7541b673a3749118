"""Transporter training (sprites, Sacred run, evaluate) and pkey_train's compare_kpts."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import fit
import pkey_train
import transporter_train
import vision_modules


def moving_sprite_pairs(num, size, rng, sprite=5):
    """Pairs of frames with one bright sprite that moved, on a fixed checkerboard.

    Returns frame_a, frame_b [num, size, size, 3] and the sprite centres in frame b,
    (y, x) in [-1, 1], [num, 2].
    """
    yy, xx = np.mgrid[:size, :size]
    texture = (0.15 + 0.05 * ((yy // 2 + xx // 2) % 2)).astype(np.float32)
    frames = np.repeat(texture[None, None, :, :, None], 2, 0).repeat(num, 1).repeat(3, -1)
    corners = rng.integers(1, size - sprite - 1, size=(2, num, 2))  # [2, num, (y, x)]
    for which in range(2):
        for i, (y, x) in enumerate(corners[which]):
            frames[which, i, y:y + sprite, x:x + sprite] = (1.0, 0.9, 0.1)
    centres_b = (corners[1] + (sprite - 1) / 2) / (size - 1) * 2 - 1
    return frames[0], frames[1], centres_b.astype(np.float32)


def test_training_on_a_moving_sprite_lowers_loss_and_a_keypoint_follows_it():
    tf.random.set_seed(0)
    rng = np.random.default_rng(0)
    size, batch, steps = 32, 16, 150
    model = vision_modules.Transporter(2, image_size=size)
    train_step, eval_step = fit.transporter_steps(model, tf.keras.optimizers.Adam(1e-3))
    history = [float(train_step(moving_sprite_pairs(batch, size, rng)[:2])["recon"])
               for _ in range(steps)]
    # Measured (seed 0): 0.112 over the first 10 steps, 0.066 over the last 10.
    assert np.mean(history[-10:]) < 0.8 * np.mean(history[:10])
    # A sprite walking across held-out frames: the nearest keypoint stays on it.
    frame_a, frame_b, centres_b = moving_sprite_pairs(64, size, np.random.default_rng(5))
    keypoints = model.keypoints(frame_b)[0].numpy()  # [64, 2, 2]
    nearest = np.linalg.norm(keypoints - centres_b[:, None], axis=-1).min(-1) * (size - 1) / 2
    # Measured (seed 0, 150 steps): median 0.8 px. The nearer of two uniformly random
    # points: median 10.3 px.
    assert np.median(nearest) < 3.0


# ---------------------------------------------------------------- the Sacred experiment


def test_run_folder_and_evaluate(tiny_transporter_run):
    config, run_dir = tiny_transporter_run
    assert run_dir.endswith(os.path.join("none", "mspacman", "3", "1"))
    assert json.load(open(os.path.join(run_dir, "model.json")))["kind"] == "transporter"
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert metrics["valid.precision"]["steps"] == metrics["valid.spread"]["steps"] == [2, 3]
    transporter_train.ex.run("evaluate", config_updates=dict(config, run_dir=run_dir,
                                                             num_eval_batches=1))
    arrays = np.load(os.path.join(run_dir, "evaluate", "batch_0.npz"))
    assert arrays["frames_a"].shape == arrays["recon"].shape == (4, 84, 84, 3)
    assert arrays["centres_b"].shape == (4, 3, 2) and arrays["heatmaps_b"].shape == (4, 42, 42, 3)
    assert os.path.getsize(os.path.join(run_dir, "evaluate", "keypoints_0.png")) > 1000


def compare_config(tmp_path, pkey_run, tp_run, **updates):
    config = dict(pkey_run[0], pkey_fname=pkey_run[1], tp_fname=tp_run[1],
                  save_base_dir=str(tmp_path / "compare_kpts"), num_eval_batches=2, seed=123)
    return dict(config, **updates)


def compare(tmp_path, pkey_run, tp_run, **updates):
    run = pkey_train.ex.run("compare_kpts",
                            config_updates=compare_config(tmp_path, pkey_run, tp_run, **updates))
    return run.observers[0].dir


def test_compare_kpts_writes_arrays_and_figure2_grids(tiny_pkey_run, tiny_transporter_run,
                                                      tmp_path):
    out = compare(tmp_path, tiny_pkey_run, tiny_transporter_run, pkey_epoch=1, tp_epoch="best")
    assert out.startswith(str(tmp_path / "compare_kpts" / "none" / "mspacman" / "3"))
    for index in range(2):
        arrays = np.load(os.path.join(out, f"batch_{index}.npz"))
        assert arrays["frames"].shape == (4, 84, 84, 3)
        assert arrays["tp_centres"].shape == arrays["pkey_centres"].shape == (4, 3, 2)
        assert arrays["tp_heatmaps"].shape == (4, 42, 42, 3)
        assert arrays["pkey_heatmaps"].shape == (4, 21, 21, 3)
        assert arrays["pkey_error_maps"].shape == (4, 84, 84, len(tiny_pkey_run[0]["lsp_layers"]))
        assert arrays["pkey_recon"].shape == (4, 84, 84, 3)
        assert os.path.getsize(os.path.join(out, f"compare_{index}.png")) > 1000
    quality = json.load(open(os.path.join(out, "keypoint_metrics.json")))
    assert set(quality["rows"]) == {"Transporter", "PermaKey", "random"}
    again = np.load(os.path.join(compare(tmp_path, tiny_pkey_run, tiny_transporter_run),
                                 "batch_0.npz"))
    np.testing.assert_array_equal(again["frames"],
                                  np.load(os.path.join(out, "batch_0.npz"))["frames"])


def test_compare_kpts_ablation_runs_permakey_alone(tiny_pkey_run, tiny_transporter_run, tmp_path):
    out = compare(tmp_path, tiny_pkey_run, tiny_transporter_run, ablation=True, num_eval_batches=1)
    arrays = np.load(os.path.join(out, "batch_0.npz"))
    assert "tp_centres" not in arrays and arrays["pkey_centres"].shape == (4, 3, 2)


@pytest.mark.parametrize("update, message", [
    ({"tp_fname": "/nonexistent/run"}, "run folder /nonexistent/run does not exist"),
    ({"tp_epoch": 9}, "has no 9 checkpoint"),
    ({"num_keypoints": 4}, "requested num_keypoints=4"),
    ({"noise_type": "both"}, "requested noise_type='both'"),
    ({"env": "seaquest"}, "requested env='seaquest'"),
])
def test_compare_kpts_bad_runs_are_one_line(tiny_pkey_run, tiny_transporter_run, tmp_path,
                                            one_line_error, update, message):
    config = compare_config(tmp_path, tiny_pkey_run, tiny_transporter_run, **update)
    line = one_line_error(pkey_train.ex, "compare_kpts", config)
    assert line.startswith("error: ") and message in line


def test_compare_kpts_refuses_swapped_model_types(tiny_pkey_run, tiny_transporter_run, tmp_path,
                                                 one_line_error):
    config = compare_config(tmp_path, tiny_pkey_run, tiny_pkey_run)
    line = one_line_error(pkey_train.ex, "compare_kpts", config)
    assert line == (f"error: run {tiny_pkey_run[1]} was trained with kind='permakey', "
                    f"requested kind='transporter'")


def test_transporter_evaluate_refuses_a_permakey_run(tiny_pkey_run, tiny_transporter_run,
                                                   one_line_error):
    config = dict(tiny_transporter_run[0], run_dir=tiny_pkey_run[1])
    line = one_line_error(transporter_train.ex, "evaluate", config)
    assert "kind='permakey', requested kind='transporter'" in line
