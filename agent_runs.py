"""What an agent run's folder says about its policies: the authors' checkpoint rule and
the checkpoints it kept (ckpt_selected/), the policy an evaluation reads, and the
keypoint run the agent was trained on."""
import glob
import os
import shutil

import tensorflow as tf

from common import ConfigError, as_list, read_json
from run_folders import numbered_runs


# The authors' checkpoint rule (their agent_train.py): after a periodic evaluation, keep
# the policy when its mean return is at least this share of the best mean so far; that
# mean then becomes the best (even when a little below it).
SELECT_SHARE = 0.95


def select_policy(mean, best):
    """(kept, best after, why) of the authors' rule for one evaluation's mean, given the
    best mean so far (None before the first evaluation)."""
    if best is None:
        return True, mean, "first evaluation"
    if mean >= SELECT_SHARE * best:
        return True, mean, f"mean {mean:.1f} >= {SELECT_SHARE} x best {best:.1f}"
    return False, best, f"mean {mean:.1f} < {SELECT_SHARE} x best {best:.1f}"


SELECTED_DIR = "ckpt_selected"  # the policies the selection rule kept, apart from ckpt/


def keep_selected(checkpoint, run_dir):
    """Copy a saved checkpoint (its path prefix, ckpt/ckpt-<step>) into <run>/ckpt_selected/.

    A copy of the files, not a second save: on a cluster only the chief evaluates, and a
    save would need every worker."""
    folder = os.path.join(run_dir, SELECTED_DIR)
    os.makedirs(folder, exist_ok=True)
    for path in glob.glob(checkpoint + ".*"):
        shutil.copy2(path, os.path.join(folder, os.path.basename(path)))


def selected_steps(run_dir):
    """Steps of a run's selected checkpoints, in order."""
    found = glob.glob(os.path.join(run_dir, SELECTED_DIR, "ckpt-*.index"))
    return sorted(int(os.path.basename(path)[len("ckpt-"):-len(".index")]) for path in found)


def policy_checkpoint(run_dir, step=None):
    """(checkpoint path, step, how chosen) of an agent run's policy for evaluation: the
    selected checkpoint at `step`, by default the last one selected; a run without
    selected checkpoints (made before the rule) gives its last checkpoint."""
    steps = selected_steps(run_dir)
    if step is not None:
        if step not in steps:
            raise ConfigError(f"agent run {run_dir} has no selected checkpoint at step {step}; "
                              f"selected: {', '.join(map(str, steps)) or 'none'}")
        return os.path.join(run_dir, SELECTED_DIR, f"ckpt-{step}"), step, "selected (given)"
    if steps:
        return os.path.join(run_dir, SELECTED_DIR, f"ckpt-{steps[-1]}"), steps[-1], "selected"
    last = tf.train.latest_checkpoint(os.path.join(run_dir, "ckpt"))
    if last is None:
        raise ConfigError(f"agent run {run_dir} has no checkpoint in ckpt/")
    return last, int(last.rsplit("-", 1)[1]), "last (no selected checkpoint)"


def resolve_policies(load_ckpts, game_dir):
    """[(run folder, checkpoint, step, how chosen)] for evaluate's load_ckpts: run folders
    (each its last selected checkpoint), RUN@STEP (a run's selected checkpoint at STEP:
    the floors are each run's checkpoint at the end of its warm-up), or the authors' form,
    one selected step per run of the experiment folder `game_dir` in run order
    (load_ckpts=30000,80000,50000)."""
    given = as_list(load_ckpts)
    if given and all(isinstance(g, int) and not isinstance(g, bool) for g in given):
        folders = numbered_runs(game_dir)
        if len(folders) != len(given):
            raise ConfigError(f"load_ckpts={','.join(map(str, given))} gives {len(given)} "
                              f"steps for the {len(folders)} runs in {game_dir}; give one "
                              f"step per run, or run folders")
        return [(run, *policy_checkpoint(run, step)) for run, step in zip(folders, given)]
    return [(run, *policy_checkpoint(run, step)) for run, step in map(run_and_step, given)]


def run_and_step(policy):
    """(run folder, step or None) of a load_ckpts entry, RUN or RUN@STEP."""
    run, at, step = str(policy).rpartition("@") if "@" in str(policy) else (str(policy), "", "")
    if at and not step.isdigit():
        raise ConfigError(f"load_ckpts entry {policy!r}: expected RUN or RUN@STEP with a "
                          f"whole number of environment steps")
    return run, int(step) if at else None


def recorded_keypoint_run(run_dir, vis_ckpt_fname, vis_load):
    """The keypoint run an agent run was trained on, or the given one if it names the
    same (default: the recorded one); ConfigError if it names another."""
    spec = read_json(os.path.join(run_dir, "model.json"), default={})
    recorded, recorded_load = spec.get("vis_ckpt_fname"), spec.get("vis_load")
    if not vis_ckpt_fname:
        return recorded, recorded_load
    moved = recorded is None or not os.path.isdir(recorded)  # then trust the given one
    same_run = moved or os.path.realpath(vis_ckpt_fname) == os.path.realpath(recorded)
    same_load = recorded_load is None or str(vis_load) == str(recorded_load)
    if not (same_run and same_load):
        raise ConfigError(f"agent run {run_dir} was trained on keypoint run {recorded} "
                          f"(vis_load={recorded_load}), not {vis_ckpt_fname} (vis_load={vis_load})")
    return vis_ckpt_fname, vis_load
