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

import runs  # first: TensorFlow then starts without its start-up chatter (runs.import_tensorflow)
import tensorflow as tf
from sacred import Experiment

import plots
import preprocess
import kpt_metrics
import ul_loss
from runs import check_options, one_line_errors

ex = runs.quiet_experiment(Experiment("transporter", save_git_info=False))


@ex.config
def config():
    env = "mspacman"  # short game name: mspacman, frostbite, seaquest, battlezone, ...
    num_keypoints = 7
    noise_type = "none"  # none | horizontal | vertical | both
    data_dir = preprocess.DEFAULT_DATA_DIR  # generated on first use
    num_frames = 100_000  # training frames to generate (valid/test: num_eval_frames)
    num_eval_frames = None  # None: num_frames // 10
    num_pairs = 100_000  # training pairs per epoch (valid/test use a tenth)
    gauss_std = 0.1
    decoder_head = "bn_sigmoid"  # bn_sigmoid (the authors') | conv (DeepMind's reference)
    keypoint_readout = "axis"  # axis (the paper's per-axis softmax) | scaled_axis | sequential |
    # sequential_strict (vision_modules.KEYPOINT_READOUTS)
    readout_scale = 10.0  # scaled_axis, sequential readouts: initial scale of the maps (learned)
    centre_maps = False  # subtract each keypoint map's mean over frames at every place
    precision = "auto"  # auto | float32 | bf16 (compute in bfloat16; variables, losses float32).
    # auto: bf16 where the hardware computes it natively (AVX512_BF16, AMX, GPU >= sm_80)
    batch_size = 64
    epochs = 100
    steps_per_epoch = None  # None: num_pairs // batch_size
    valid_batches = None  # None: all validation pairs
    learning_rate = 2e-4
    decay_steps = 30_000
    decay_rate = 0.9
    max_patience = 10
    seed = 0  # initialisation, shuffling, distractors
    data_seed = 0  # the random-policy games of the generated dataset
    resume_dir = None  # a run folder to continue from its last checkpoint
    save_every_mins = 10  # also save the resumable checkpoint this often within an epoch
    keep_epochs = 0  # ckpt_epochs/: weights of improving epochs plus the last this many (-1: all)
    max_minutes = None  # wall-time budget of the training, counted across resumes (runs.fit)
    exp_root = "transporter_exp"
    run_dir = None  # evaluate: the run folder to load
    ckpt = "best"  # evaluate: best | last | an epoch number
    metrics_radius = 4.0  # keypoint metrics: px (84 x 84) from an object box that counts as on it
    metrics_frames = 1000  # keypoint metrics: test frames measured against RAM ground truth
    valid_metrics_frames = 256  # keypoint metrics during training: validation frames (0: none)
    metrics_every = None  # keypoint metrics during training: also every this many steps
    num_eval_batches = 2  # evaluate: test batches saved as npz and PNG


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
    data_dir = os.path.join(preprocess.DEFAULT_DATA_DIR, "quick")
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


# Numeric options, checked where a command reads its config (common.check_options).
OPTIONS = dict(runs.KEYPOINT_OPTIONS, num_pairs="count", readout_scale="positive")

runs.add_game_configs(ex)  # `with seaquest`: env and the paper's num_keypoints
ex.observers.append(runs.RunFolderObserver(runs.keypoint_run_folder))
measure_quality = ex.capture(kpt_metrics.report_keypoint_quality)
keypoint_probe = ex.capture(kpt_metrics.split_probe)


@ex.capture
def model_spec(env, num_keypoints, noise_type, gauss_std, decoder_head, keypoint_readout,
               readout_scale, centre_maps):
    """What a Transporter checkpoint depends on; evaluate, compare_kpts and RL check it."""
    return {"kind": "transporter", "env": preprocess.canonical_env(env),
            "num_keypoints": num_keypoints, "noise_type": preprocess.check_noise_type(noise_type),
            "gauss_std": gauss_std, "decoder_head": decoder_head,
            "keypoint_readout": keypoint_readout, "readout_scale": readout_scale,
            "centre_maps": centre_maps}


@ex.capture
def datasets(env, data_dir, num_frames, num_eval_frames, num_pairs, batch_size, noise_type, seed,
             data_seed):
    return preprocess.get_datasets(env, "pairs", data_dir, batch_size, noise_type, num_frames,
                                   num_eval_frames, num_pairs, seed=seed, data_seed=data_seed)


def loss_steps(model, optimizer, precision="float32"):
    """Compiled train and eval steps: (frame_a, frame_b) [B, 84, 84, 3] each -> scalar losses,
    computed in `precision` (float32 | bf16)."""
    return runs.compiled_steps(model, optimizer, lambda pair, training: ul_loss.transporter_losses(
        model, *pair, training), precision)


@ex.main
@one_line_errors
def train(_run, _config, epochs, max_patience, steps_per_epoch, valid_batches, resume_dir, seed,
          learning_rate, decay_steps, decay_rate, precision, metrics_every, save_every_mins,
          keep_epochs, max_minutes):
    """Train Transporter, keep the best checkpoint by validation reconstruction loss, test it."""
    check_options(_config, OPTIONS)
    spec = model_spec()
    precision = runs.resolve_precision(precision)
    tf.random.set_seed(seed)
    model = runs.build_keypoint_model(spec)
    optimizer = runs.inverse_time_adam(learning_rate, decay_steps, decay_rate)
    data = datasets()
    return runs.train_and_test(_run, spec, model, optimizer, data,
                               loss_steps(model, optimizer, precision),
                               ("recon",), write_examples, resume_dir, probe=keypoint_probe(),
                               metrics_every=metrics_every, epochs=epochs,
                               max_patience=max_patience, steps_per_epoch=steps_per_epoch,
                               valid_batches=valid_batches, save_every_mins=save_every_mins,
                               keep_epochs=keep_epochs, max_minutes=max_minutes)


@ex.capture
def write_examples(model, test_data, out_dir, num_eval_batches):
    """Save a few test pairs as npz (frames, reconstructions, keypoints, heatmaps) and PNG
    figures (the second frame, its keypoints, and its reconstruction from the first)."""
    os.makedirs(out_dir, exist_ok=True)
    for index, (frame_a, frame_b) in enumerate(test_data.take(num_eval_batches)):
        out = model(frame_a, frame_b, is_training=False)
        arrays = {"frames_a": frame_a.numpy(), "frames_b": frame_b.numpy(),
                  **{key: out[key].numpy() for key in
                     ("recon", "centres_a", "centres_b", "heatmaps_a", "heatmaps_b")}}
        runs.save_npz(os.path.join(out_dir, f"batch_{index}.npz"), arrays)
        plots.keypoint_grid(arrays["frames_b"][:8], [("Transporter", arrays["centres_b"][:8])],
                            [("reconstruction", arrays["recon"][:8])],
                            path=os.path.join(out_dir, f"keypoints_{index}.png"))
    print(f"figures and arrays: {out_dir}")
    measure_quality({"Transporter": model}, out_dir)


@ex.command
@one_line_errors
def evaluate(_run, _config, run_dir, ckpt, precision):
    """Test loss of a run's checkpoint, plus npz arrays and PNG figures of test pairs,
    computed in the same precision as training's own test."""
    check_options(_config, OPTIONS)
    steps = functools.partial(loss_steps, precision=runs.resolve_precision(precision))
    return runs.evaluate_run(_run, run_dir, ckpt, model_spec(), steps,
                             lambda: datasets()["test"], write_examples)


if __name__ == "__main__":
    runs.run_commandline(ex)
