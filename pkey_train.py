"""PermaKey: learn object keypoints from Atari frames by local spatial predictability.

    python pkey_train.py with env="mspacman" num_keypoints=7
    python pkey_train.py with quick                     # minutes on a 2-core CPU (README)
    python pkey_train.py with resume_dir=permakey_exp/none/mspacman/7/1
    python pkey_train.py evaluate with run_dir=permakey_exp/none/mspacman/7/1

Runs live in permakey_exp/<noise_type>/<env>/<num_keypoints>/<run id>/ (see runs.py).
The three parts of the model (VAE, LSP MLPs, PointNet) each learn from their own loss
only (the paper's method section); one Adam over all of them is equivalent because the model stops
gradients between the parts.
"""
import functools
import os

import runs  # first: TensorFlow then starts without its start-up chatter (runs.import_tensorflow)
import tensorflow as tf
from sacred import Experiment

import plots
import preprocess
import kpt_metrics
import ul_loss
from runs import ConfigError, check_options, one_line_errors

ex = runs.quiet_experiment(Experiment("permakey", save_git_info=False))
EXP_ROOT = "permakey_exp"


@ex.config
def config():
    env = "mspacman"  # short game name: mspacman, frostbite, seaquest, battlezone, ...
    num_keypoints = 7
    noise_type = "none"  # none | horizontal | vertical | both
    data_dir = preprocess.DEFAULT_DATA_DIR  # generated on first use
    num_frames = 100_000  # training frames to generate (valid/test: num_eval_frames)
    num_eval_frames = None  # None: num_frames // 10
    lsp_layers = (0, 1)  # encoder layers whose local spatial predictability is measured
    patch_sizes = (2, 2)  # LSP cell size per layer
    gauss_std = 0.12
    pnet_readout = "axis"  # axis (the paper: per-axis softmax) | scaled_axis | sequential |
    # sequential_strict (deviations: docs/DESIGN.md)
    pnet_loss = "paper"  # paper (summed heatmaps) | amplitude (a deviation, README)
    latent_dim_size = 32
    decoder_type = "conv"  # conv | deconv
    precision = "auto"  # auto | float32 | bf16 (compute in bfloat16; variables, losses float32).
    # auto: bf16 where the hardware computes it natively (AVX512_BF16, AMX, GPU >= sm_80)
    batch_size = 32
    epochs = 100
    steps_per_epoch = None  # None: one pass over the training frames
    valid_batches = None  # None: the whole validation split
    learning_rate = 2e-4
    decay_steps = 10_000
    decay_rate = 0.85
    max_patience = 10
    seed = 0  # initialisation, shuffling, distractors
    data_seed = 0  # the random-policy games of the generated dataset
    resume_dir = None  # a run folder to continue from its last checkpoint
    save_every_mins = 10  # also save the resumable checkpoint this often within an epoch
    keep_epochs = 0  # ckpt_epochs/: weights of improving epochs plus the last this many (-1: all)
    max_minutes = None  # wall-time budget of the training, counted across resumes (runs.fit)
    exp_root = EXP_ROOT
    run_dir = None  # evaluate: the run folder to load
    ckpt = "best"  # evaluate: best | last | an epoch number
    metrics_radius = 4.0  # keypoint metrics: px (84 x 84) from an object box that counts as on it
    metrics_frames = 1000  # keypoint metrics: test frames measured against RAM ground truth
    valid_metrics_frames = 256  # keypoint metrics during training: validation frames (0: none)
    metrics_every = None  # keypoint metrics during training: also every this many steps
    num_eval_batches = 2  # evaluate, compare_kpts: test batches saved as npz and PNG
    pkey_fname = None  # compare_kpts: the PermaKey run folder
    pkey_epoch = "best"  # compare_kpts: best | last | an epoch number
    tp_fname = None  # compare_kpts: the Transporter run folder (transporter_train.py)
    tp_epoch = "best"
    ablation = False  # compare_kpts: PermaKey alone
    # compare_kpts: outputs in <save_base_dir>/<noise>/<env>/<K>/<id>
    save_base_dir = "compare_kpts"


@ex.named_config
def quick():
    # A short MsPacman run for a laptop CPU (`make demo`): small data (in its own folder,
    # beside the paper-sized data), batch 8, a higher learning rate, and the PointNet
    # readout and objective that put keypoints on the objects (deviations from the paper,
    # README). It trains for 600 steps or 11 minutes, whichever comes first, so that the
    # demo fits 15 minutes on any 2-core CPU; the README says what it reaches.
    data_dir = os.path.join(preprocess.DEFAULT_DATA_DIR, "quick")
    pnet_readout = "sequential"
    pnet_loss = "amplitude"
    num_frames = 5_000
    num_eval_frames = 320
    batch_size = 8
    epochs = 15
    steps_per_epoch = 40
    max_minutes = 11
    valid_batches = 10
    learning_rate = 1e-3
    max_patience = 6
    valid_metrics_frames = 128  # keypoint metrics at each epoch end: ~10% of an epoch here


# Numeric options, checked where a command reads its config (common.check_options).
OPTIONS = dict(runs.KEYPOINT_OPTIONS, latent_dim_size="count")

runs.add_game_configs(ex)  # `with seaquest`: env and the paper's num_keypoints
ex.observers.append(runs.RunFolderObserver(runs.keypoint_run_folder))
measure_quality = ex.capture(kpt_metrics.report_keypoint_quality)
keypoint_probe = ex.capture(kpt_metrics.split_probe)


@ex.capture
def model_spec(env, num_keypoints, noise_type, lsp_layers, patch_sizes, latent_dim_size,
               decoder_type, gauss_std, pnet_readout):
    """What a PermaKey checkpoint depends on; evaluate and the RL agent check it."""
    return {"kind": "permakey", "env": preprocess.canonical_env(env),
            "num_keypoints": num_keypoints, "noise_type": preprocess.check_noise_type(noise_type),
            "lsp_layers": list(lsp_layers), "patch_sizes": list(patch_sizes),
            "latent_dim_size": latent_dim_size, "decoder_type": decoder_type,
            "gauss_std": gauss_std, "pnet_readout": pnet_readout}


@ex.capture
def datasets(env, data_dir, num_frames, num_eval_frames, batch_size, noise_type, seed, data_seed):
    return preprocess.get_datasets(env, "frames", data_dir, batch_size, noise_type, num_frames,
                                   num_eval_frames, seed=seed, data_seed=data_seed)


def loss_steps(model, optimizer, precision="float32", pnet_loss="paper"):
    """Compiled train and eval steps: images [B, 84, 84, 3] -> dict of scalar losses,
    computed in `precision` (float32 | bf16), the PointNet's by `pnet_loss`
    (ul_loss.PNET_LOSSES)."""
    if pnet_loss not in ul_loss.PNET_LOSSES:
        raise ConfigError(f"pnet_loss={pnet_loss!r}: expected one of "
                          f"{', '.join(ul_loss.PNET_LOSSES)}")
    return runs.compiled_steps(model, optimizer, lambda images, training: ul_loss.permakey_losses(
        model, images, training, pnet_loss), precision)


@ex.main
@one_line_errors
def train(_run, _config, epochs, max_patience, steps_per_epoch, valid_batches, resume_dir, seed,
          learning_rate, decay_steps, decay_rate, precision, metrics_every, save_every_mins,
          keep_epochs, max_minutes, pnet_loss):
    """Train PermaKey, keep the best checkpoint by validation LSP + PointNet loss, test it."""
    check_options(_config, OPTIONS)
    spec = model_spec()
    precision = runs.resolve_precision(precision)
    tf.random.set_seed(seed)
    model = runs.build_keypoint_model(spec)
    optimizer = runs.inverse_time_adam(learning_rate, decay_steps, decay_rate)
    steps = loss_steps(model, optimizer, precision, pnet_loss)
    data = datasets()
    return runs.train_and_test(_run, spec, model, optimizer, data, steps,
                               ("lsp", "pnet"), write_examples, resume_dir, probe=keypoint_probe(),
                               metrics_every=metrics_every, epochs=epochs,
                               max_patience=max_patience, steps_per_epoch=steps_per_epoch,
                               valid_batches=valid_batches, save_every_mins=save_every_mins,
                               keep_epochs=keep_epochs, max_minutes=max_minutes)


def keypoint_outputs(model, images):
    """Inference outputs kept for figures and metrics, as numpy arrays."""
    out = model(images, is_training=False)
    return {"frames": images.numpy(), "recon": out["recon"].numpy(),
            "centres": out["centres"].numpy(), "heatmaps": out["heatmaps"].numpy(),
            "error_maps": out["error_maps"].numpy()}


@ex.capture
def write_examples(model, test_data, out_dir, num_eval_batches, lsp_layers):
    """Save a few test batches, frames spread across the split, as npz (frames,
    reconstructions, keypoints, heatmaps, error maps) and as PNG figures (keypoints on
    frames above each layer's error map)."""
    os.makedirs(out_dir, exist_ok=True)
    for index, images in enumerate(preprocess.spread_batches(test_data, num_eval_batches)):
        arrays = keypoint_outputs(model, images)
        runs.save_npz(os.path.join(out_dir, f"batch_{index}.npz"), arrays)
        plots.keypoint_grid(arrays["frames"][:8], [("PermaKey", arrays["centres"][:8])],
                            plots.error_map_rows(arrays["error_maps"][:8], lsp_layers),
                            path=os.path.join(out_dir, f"keypoints_{index}.png"))
    print(f"figures and arrays: {out_dir}")
    measure_quality({"PermaKey": model}, out_dir)


@ex.command
@one_line_errors
def evaluate(_run, _config, run_dir, ckpt, pnet_loss, precision):
    """Test losses of a run's checkpoint, plus npz arrays and PNG figures of test batches,
    computed in the same precision as training's own test."""
    check_options(_config, OPTIONS)
    steps = functools.partial(loss_steps, precision=runs.resolve_precision(precision),
                              pnet_loss=pnet_loss)
    return runs.evaluate_run(_run, run_dir, ckpt, model_spec(), steps,
                             lambda: datasets()["test"], write_examples)


@ex.command
@one_line_errors
def compare_kpts(_run, _config, env, num_keypoints, noise_type, pkey_fname, pkey_epoch, tp_fname,
                 tp_epoch, ablation, num_eval_batches, lsp_layers):
    """PermaKey and Transporter keypoints on the same seeded test batches (Figure 2).

    Per batch an npz (frames, both models' keypoints and heatmaps, PermaKey's error
    maps and reconstructions) and a PNG grid: rows frame, Transporter keypoints,
    PermaKey keypoints, error map of each LSP layer; one column per example.
    """
    check_options(_config, OPTIONS)
    if not pkey_fname or not (tp_fname or ablation):
        raise ConfigError("compare_kpts needs pkey_fname and tp_fname (run folders); "
                          "tp_fname may be omitted with ablation=True")
    pkey, _ = runs.load_keypoint_model(pkey_fname, pkey_epoch, model_spec())
    tp = None if ablation else runs.load_keypoint_model(tp_fname, tp_epoch, {
        "kind": "transporter", "env": preprocess.canonical_env(env),
        "num_keypoints": num_keypoints, "noise_type": noise_type})[0]
    out_dir = runs.run_dir_of(_run) or "."
    test_batches = preprocess.spread_batches(datasets()["test"], num_eval_batches)
    for index, images in enumerate(test_batches):
        arrays = {f"pkey_{k}" if k != "frames" else k: v
                  for k, v in keypoint_outputs(pkey, images).items()}
        rows = [("PermaKey", arrays["pkey_centres"][:8])]
        if tp is not None:
            centres, heatmaps, _ = tp.keypoints(images, is_training=False)
            arrays.update(tp_centres=centres.numpy(), tp_heatmaps=heatmaps.numpy())
            rows.insert(0, ("Transporter", arrays["tp_centres"][:8]))
        runs.save_npz(os.path.join(out_dir, f"batch_{index}.npz"), arrays)
        plots.keypoint_grid(arrays["frames"][:8], rows,
                            plots.error_map_rows(arrays["pkey_error_maps"][:8], lsp_layers),
                            path=os.path.join(out_dir, f"compare_{index}.png"))
    print(f"keypoint comparison: {out_dir}")
    measure_quality({"PermaKey": pkey} if tp is None else {"Transporter": tp, "PermaKey": pkey},
                    out_dir)


if __name__ == "__main__":
    runs.run_commandline(ex)
