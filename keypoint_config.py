"""What the two keypoint scripts (pkey_train.py, transporter_train.py) share as Sacred
experiments: the config entries they have in common, their numeric checks, their run
folders, and the experiment itself with its game configs and observer.

The shared entries are one Sacred config scope added before each script's own scope,
which sets what differs (batch_size, learning-rate decay, exp_root, the architecture).
A Sacred Ingredient would prefix every entry with its name (`keypoints.env=...`); the
authors' command lines (`with env="mspacman" num_keypoints=7`) keep working this way.
"""
import os

import games
import keypoint_models
from common import ConfigError, quiet_experiment, read_json
from datasets import DEFAULT_DATA_DIR
from run_folders import RunFolderObserver, keypoint_run_folder


def shared_config():
    env = "mspacman"  # short game name: mspacman, frostbite, seaquest, battlezone, ...
    num_keypoints = 7
    noise_type = "none"  # none | horizontal | vertical | both
    data_dir = DEFAULT_DATA_DIR  # generated on first use
    num_frames = 100_000  # training frames to generate (valid/test: num_eval_frames)
    num_eval_frames = None  # None: num_frames // 10
    precision = "auto"  # auto | float32 | bf16 (compute in bfloat16; variables, losses float32).
    # auto: bf16 where the hardware computes it natively (AVX512_BF16, AMX, GPU >= sm_80)
    epochs = 100
    learning_rate = 2e-4
    max_patience = 10
    seed = 0  # initialisation, shuffling, distractors
    data_seed = 0  # the random-policy games of the generated dataset
    resume_dir = None  # a run folder to continue from its last checkpoint
    save_every_mins = 10  # also save the resumable checkpoint this often within an epoch
    keep_epochs = 0  # ckpt_epochs/: weights of improving epochs plus the last this many (-1: all)
    keep_improved = -1  # ckpt_epochs/: of the improving epochs, the last this many (-1: all)
    max_minutes = None  # wall-time budget of the training, counted across resumes (fit.fit)
    run_dir = None  # evaluate: the run folder to load
    ckpt = "best"  # evaluate: best | last | an epoch number
    metrics_radius = 4.0  # keypoint metrics: px (84 x 84) from an object box that counts as on it
    metrics_frames = 1000  # keypoint metrics: test frames measured against RAM ground truth
    valid_metrics_frames = 256  # keypoint metrics during training: validation frames (0: none)
    metrics_every = None  # keypoint metrics during training: also every this many steps
    num_eval_batches = 2  # evaluate, compare_kpts: test batches saved as npz and PNG


# The numeric options of both keypoint scripts (common.check_options), checked where a
# command reads its config (`seed` is Sacred's: it seeds the generators before that).
KEYPOINT_OPTIONS = {
    "num_keypoints": "count", "num_frames": "count", "num_eval_frames": "count or None",
    "gauss_std": "positive", "batch_size": "count", "epochs": "count",
    "steps_per_epoch": "count or None", "valid_batches": "count or None",
    "learning_rate": "positive", "decay_steps": "count", "decay_rate": "non-negative",
    "max_patience": "count", "data_seed": "index", "save_every_mins": "non-negative",
    "keep_epochs": "epochs to keep", "keep_improved": "epochs to keep",
    "max_minutes": "positive or None",
    "metrics_radius": "non-negative", "metrics_frames": "count", "valid_metrics_frames": "index",
    "metrics_every": "count or None", "num_eval_batches": "count",
}


def keypoint_experiment(ex):
    """Make a keypoint script's Sacred experiment (made in the script, which Sacred then
    names as the run's main file) one of the two: quiet logging, the shared config scope
    (the script adds its own after it), `with <game>` configs and the run folders."""
    ex = quiet_experiment(ex)
    ex.config(shared_config)
    games.add_game_configs(ex)  # `with seaquest`: env and the paper's num_keypoints
    ex.observers.append(RunFolderObserver(keypoint_run_folder))
    return ex


def config_of_run(_run, _config, run_dir, kind):
    """The config a command on an existing run uses (evaluate, compare_kpts): the run's
    own (its config.json), with the entries typed on this command line (`key=value`) on
    top; named configs (`quick`, `seaquest`) yield to the run. What the command asks of
    the model (env, K, noise, architecture; typed or from a named config) must agree
    with the run's model.json, else a one-line ConfigError. Runs without config.json use
    this command's config."""
    if not run_dir:
        raise ConfigError(f"run_dir is not set; give a {kind} run folder")
    keypoint_models.check_spec(run_dir, {"kind": kind})  # the folder is a run of this kind
    changed = {key.split(".")[0] for key in _run.config_modifications.modified}
    options = _run.meta_info.get("options", {})
    typed = ({update.split("=")[0] for update in options["UPDATE"] if "=" in update}
             if options.get("UPDATE") is not None else changed)
    asked = keypoint_models.model_spec(kind, _config)
    keypoint_models.check_spec(run_dir, {key: value for key, value in asked.items()
                                         if key in changed or key == "kind"})
    recorded = read_json(os.path.join(run_dir, "config.json"), default={})
    return dict(_config, **{key: value for key, value in recorded.items()
                            if key in _config and key not in typed})
