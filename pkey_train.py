"""PermaKey: learn object keypoints from Atari frames by local spatial predictability.

    python pkey_train.py with env="mspacman" num_keypoints=7
    python pkey_train.py with quick                     # minutes on a 2-core CPU (README)
    python pkey_train.py with resume_dir=permakey_exp/none/mspacman/7/1
    python pkey_train.py evaluate with run_dir=permakey_exp/none/mspacman/7/1

Runs live in permakey_exp/<noise_type>/<env>/<num_keypoints>/<run id>/ (run_folders.py).
The three parts of the model (VAE, LSP MLPs, PointNet) each learn from their own loss
only (the paper's method section); one Adam over all of them is equivalent because the model stops
gradients between the parts.
"""
import functools
import os

import tf_quiet  # noqa: F401 (first: TensorFlow starts without its start-up chatter)
import tensorflow as tf
from sacred import Experiment

import fit
import hardware
import keypoint_config
import keypoint_models
import figures
import kpt_metrics
from common import ConfigError, check_options, one_line_errors, save_npz
from datasets import DEFAULT_DATA_DIR, get_datasets, spread_batches
from run_folders import run_commandline, run_dir_of

ex = keypoint_config.keypoint_experiment(Experiment("permakey", save_git_info=False))
EXP_ROOT = "permakey_exp"


@ex.config
def config():
    lsp_layers = (0, 1)  # encoder layers whose local spatial predictability is measured
    patch_sizes = (2, 2)  # LSP cell size per layer
    gauss_std = 0.12
    pnet_readout = "axis"  # axis (the paper: per-axis softmax) | scaled_axis | sequential |
    # sequential_strict (deviations: docs/DESIGN.md)
    pnet_loss = "paper"  # paper (summed heatmaps) | amplitude (a deviation, README)
    latent_dim_size = 32
    decoder_type = "conv"  # conv | deconv
    batch_size = 32
    steps_per_epoch = None  # None: one pass over the training frames
    valid_batches = None  # None: the whole validation split
    decay_steps = 10_000
    decay_rate = 0.85
    exp_root = EXP_ROOT
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
    data_dir = os.path.join(DEFAULT_DATA_DIR, "quick")
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
    keep_improved = 1  # ckpt_epochs/: the best epoch's weights only (a small demo folder)


# Numeric options, checked where a command reads its config (common.check_options).
OPTIONS = dict(keypoint_config.KEYPOINT_OPTIONS, latent_dim_size="count")


def datasets(c):
    """The train, valid and test splits of config `c` (generated on first use)."""
    return get_datasets(c["env"], "frames", c["data_dir"], c["batch_size"], c["noise_type"],
                        c["num_frames"], c["num_eval_frames"], seed=c["seed"],
                        data_seed=c["data_seed"])


@ex.main
@one_line_errors
def train(_run, _config, resume_dir, seed, learning_rate, decay_steps, decay_rate, precision,
          pnet_loss):
    """Train PermaKey, keep the best checkpoint by validation LSP + PointNet loss, test it."""
    check_options(_config, OPTIONS)
    spec = keypoint_models.model_spec("permakey", _config)
    if resume_dir:
        keypoint_models.check_spec(resume_dir, spec)  # before any data is generated
    precision = hardware.resolve_precision(precision)
    tf.random.set_seed(seed)
    model = keypoint_models.build_keypoint_model(spec)
    optimizer = fit.inverse_time_adam(learning_rate, decay_steps, decay_rate)
    steps = fit.permakey_steps(model, optimizer, precision, pnet_loss)
    data = datasets(_config)
    probe = kpt_metrics.split_probe(**kpt_metrics.probe_options(_config))
    return fit.train_and_test(_run, _config, spec, model, optimizer, data, steps, ("lsp", "pnet"),
                              functools.partial(write_examples, config=_config), probe)


def keypoint_outputs(model, images):
    """Inference outputs kept for figures and metrics, as numpy arrays."""
    out = model(images, is_training=False)
    return {"frames": images.numpy(), "recon": out["recon"].numpy(),
            "centres": out["centres"].numpy(), "heatmaps": out["heatmaps"].numpy(),
            "error_maps": out["error_maps"].numpy()}


def write_examples(model, test_data, out_dir, config):
    """Save a few test batches, frames spread across the split, as npz (frames,
    reconstructions, keypoints, heatmaps, error maps) and as PNG figures (keypoints on
    frames above each layer's error map)."""
    os.makedirs(out_dir, exist_ok=True)
    for index, images in enumerate(spread_batches(test_data, config["num_eval_batches"])):
        arrays = keypoint_outputs(model, images)
        save_npz(os.path.join(out_dir, f"batch_{index}.npz"), arrays)
        figures.keypoint_grid(arrays["frames"][:8], [("PermaKey", arrays["centres"][:8])],
                            figures.error_map_rows(arrays["error_maps"][:8], config["lsp_layers"]),
                            path=os.path.join(out_dir, f"keypoints_{index}.png"))
    print(f"figures and arrays: {out_dir}")
    kpt_metrics.report_keypoint_quality({"PermaKey": model}, out_dir,
                                        **kpt_metrics.quality_options(config))


@ex.command
@one_line_errors
def evaluate(_run, _config, run_dir, ckpt):
    """Test losses of a run's checkpoint, plus npz arrays and PNG figures of test batches,
    computed in the same precision as training's own test. The model, its data and its
    loss come from the run folder; what this command line changes is refused in one line
    where it contradicts the run (another env, K or architecture)."""
    check_options(_config, OPTIONS)
    config = keypoint_config.config_of_run(_run, _config, run_dir, "permakey")
    model, _ = keypoint_models.load_keypoint_model(run_dir, ckpt, {"kind": "permakey"})
    _, eval_step = fit.permakey_steps(model, None, hardware.resolve_precision(config["precision"]),
                              config["pnet_loss"])
    return fit.evaluate_checkpoint(_run, run_dir, model, eval_step, datasets(config)["test"],
                                   functools.partial(write_examples, config=config))


@ex.command
@one_line_errors
def compare_kpts(_run, _config, pkey_fname, pkey_epoch, tp_fname, tp_epoch, ablation):
    """PermaKey and Transporter keypoints on the same seeded test batches (Figure 2).

    Per batch an npz (frames, both models' keypoints and heatmaps, PermaKey's error
    maps and reconstructions) and a PNG grid: rows frame, Transporter keypoints,
    PermaKey keypoints, error map of each LSP layer; one column per example. The data
    and PermaKey's architecture come from the PermaKey run folder.
    """
    check_options(_config, OPTIONS)
    if not pkey_fname or not (tp_fname or ablation):
        raise ConfigError("compare_kpts needs pkey_fname and tp_fname (run folders); "
                          "tp_fname may be omitted with ablation=True")
    config = keypoint_config.config_of_run(_run, _config, pkey_fname, "permakey")
    game = {key: config[key] for key in ("env", "num_keypoints", "noise_type")}
    pkey, _ = keypoint_models.load_keypoint_model(pkey_fname, pkey_epoch,
                                                  dict(game, kind="permakey"))
    tp = None if ablation else keypoint_models.load_keypoint_model(
        tp_fname, tp_epoch, dict(game, kind="transporter"))[0]
    out_dir = run_dir_of(_run) or "."
    test_batches = spread_batches(datasets(config)["test"], config["num_eval_batches"])
    for index, images in enumerate(test_batches):
        arrays = {f"pkey_{k}" if k != "frames" else k: v
                  for k, v in keypoint_outputs(pkey, images).items()}
        rows = [("PermaKey", arrays["pkey_centres"][:8])]
        if tp is not None:
            centres, heatmaps = tp.keypoints(images, is_training=False)
            arrays.update(tp_centres=centres.numpy(), tp_heatmaps=heatmaps.numpy())
            rows.insert(0, ("Transporter", arrays["tp_centres"][:8]))
        save_npz(os.path.join(out_dir, f"batch_{index}.npz"), arrays)
        figures.keypoint_grid(arrays["frames"][:8], rows,
                            figures.error_map_rows(arrays["pkey_error_maps"][:8],
                                                 config["lsp_layers"]),
                            path=os.path.join(out_dir, f"compare_{index}.png"))
    print(f"keypoint comparison: {out_dir}")
    kpt_metrics.report_keypoint_quality(
        {"PermaKey": pkey} if tp is None else {"Transporter": tp, "PermaKey": pkey}, out_dir,
        **kpt_metrics.quality_options(config))


if __name__ == "__main__":
    run_commandline(ex)
