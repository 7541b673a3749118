"""Transporter (Kulkarni et al. 2019), the paper's keypoint baseline, on Atari frame pairs.

    python transporter_train.py with env="mspacman" num_keypoints=7
    python transporter_train.py with env="mspacman" num_keypoints=7 noise_type="both"
    python transporter_train.py with resume_dir=transporter_exp/none/mspacman/7/1
    python transporter_train.py evaluate with run_dir=transporter_exp/none/mspacman/7/1

Each example is two frames of one episode (docs/DESIGN.md, "Data"): the model reconstructs the
second from the first by moving features at both frames' keypoints. Runs live in
transporter_exp/<noise_type>/<env>/<num_keypoints>/<run id>/, laid out as PermaKey's.
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
from common import check_options, one_line_errors, save_npz
from datasets import DEFAULT_DATA_DIR, get_datasets
from run_folders import run_commandline

ex = keypoint_config.keypoint_experiment(Experiment("transporter", save_git_info=False))


@ex.config
def config():
    num_pairs = 100_000  # training pairs per epoch (valid/test use a tenth)
    gauss_std = 0.1
    decoder_head = "bn_sigmoid"  # bn_sigmoid (the authors') | conv (DeepMind's reference)
    keypoint_readout = "axis"  # axis (the paper's per-axis softmax) | scaled_axis | sequential |
    # sequential_strict (vision_modules.KEYPOINT_READOUTS)
    readout_scale = 10.0  # scaled_axis, sequential readouts: initial scale of the maps (learned)
    centre_maps = False  # subtract each keypoint map's mean over frames at every place
    batch_size = 64
    steps_per_epoch = None  # None: num_pairs // batch_size
    valid_batches = None  # None: all validation pairs
    decay_steps = 30_000
    decay_rate = 0.9
    exp_root = "transporter_exp"


@ex.named_config
def quick():
    # Transporter beside PermaKey's `quick` run, for a comparison at equal wall time: the
    # same 5000 MsPacman frames, batch 32, a higher learning rate, the same time box (at
    # most 11 minutes of training), and three changes that let the keypoints leave the
    # static screen within it (deviations, docs/transporter_learning.md): DeepMind's plain
    # last decoder layer, keypoint maps centred over frames, a learned readout scale.
    decoder_head = "conv"
    centre_maps = True
    keypoint_readout = "scaled_axis"
    readout_scale = 10.0
    data_dir = os.path.join(DEFAULT_DATA_DIR, "quick")
    num_frames = 5_000
    num_eval_frames = 320
    num_pairs = 3_200
    batch_size = 32
    epochs = 100
    steps_per_epoch = 100
    max_minutes = 11
    learning_rate = 1e-3
    max_patience = 100
    valid_metrics_frames = 128
    keep_improved = 1  # ckpt_epochs/: the best epoch's weights only


# Numeric options, checked where a command reads its config (common.check_options).
OPTIONS = dict(keypoint_config.KEYPOINT_OPTIONS, num_pairs="count", readout_scale="positive")


def datasets(c):
    """The train, valid and test splits of frame pairs of config `c` (generated on first
    use)."""
    return get_datasets(c["env"], "pairs", c["data_dir"], c["batch_size"], c["noise_type"],
                        c["num_frames"], c["num_eval_frames"], c["num_pairs"], seed=c["seed"],
                        data_seed=c["data_seed"])


@ex.main
@one_line_errors
def train(_run, _config, resume_dir, seed, learning_rate, decay_steps, decay_rate, precision):
    """Train Transporter, keep the best checkpoint by validation reconstruction loss, test it."""
    check_options(_config, OPTIONS)
    spec = keypoint_models.model_spec("transporter", _config)
    if resume_dir:
        keypoint_models.check_spec(resume_dir, spec)  # before any data is generated
    precision = hardware.resolve_precision(precision)
    tf.random.set_seed(seed)
    model = keypoint_models.build_keypoint_model(spec)
    optimizer = fit.inverse_time_adam(learning_rate, decay_steps, decay_rate)
    data = datasets(_config)
    probe = kpt_metrics.split_probe(**kpt_metrics.probe_options(_config))
    return fit.train_and_test(_run, _config, spec, model, optimizer, data,
                              fit.transporter_steps(model, optimizer, precision), ("recon",),
                              functools.partial(write_examples, config=_config), probe)


def write_examples(model, test_data, out_dir, config):
    """Save a few test pairs as npz (frames, reconstructions, keypoints, heatmaps) and PNG
    figures (the second frame, its keypoints, and its reconstruction from the first)."""
    os.makedirs(out_dir, exist_ok=True)
    for index, (frame_a, frame_b) in enumerate(test_data.take(config["num_eval_batches"])):
        out = model(frame_a, frame_b, is_training=False)
        arrays = {"frames_a": frame_a.numpy(), "frames_b": frame_b.numpy(),
                  **{key: out[key].numpy() for key in
                     ("recon", "centres_a", "centres_b", "heatmaps_a", "heatmaps_b")}}
        save_npz(os.path.join(out_dir, f"batch_{index}.npz"), arrays)
        figures.keypoint_grid(arrays["frames_b"][:8], [("Transporter", arrays["centres_b"][:8])],
                            [("reconstruction", arrays["recon"][:8])],
                            path=os.path.join(out_dir, f"keypoints_{index}.png"))
    print(f"figures and arrays: {out_dir}")
    kpt_metrics.report_keypoint_quality({"Transporter": model}, out_dir,
                                        **kpt_metrics.quality_options(config))


@ex.command
@one_line_errors
def evaluate(_run, _config, run_dir, ckpt):
    """Test loss of a run's checkpoint, plus npz arrays and PNG figures of test pairs,
    computed in the same precision as training's own test. The model and its data come
    from the run folder; what this command line changes is refused in one line where it
    contradicts the run (another env, K or architecture)."""
    check_options(_config, OPTIONS)
    config = keypoint_config.config_of_run(_run, _config, run_dir, "transporter")
    model, _ = keypoint_models.load_keypoint_model(run_dir, ckpt, {"kind": "transporter"})
    precision = hardware.resolve_precision(config["precision"])
    _, eval_step = fit.transporter_steps(model, None, precision)
    return fit.evaluate_checkpoint(_run, run_dir, model, eval_step, datasets(config)["test"],
                                   functools.partial(write_examples, config=config))


if __name__ == "__main__":
    run_commandline(ex)
