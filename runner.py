"""Running the repository's scripts one after another for an experiment: each training
in a folder of its own, skipped when finished, resumed when interrupted (the script's
own command line, printed first), plus what a result records of its making: the
machine, the date and the commit."""
import datetime
import hashlib
import json
import os
import subprocess
import sys

from common import ConfigError, atomic_path, numpy_scalar, read_json
from run_folders import keypoint_run_folder, numbered_runs


# The keypoint methods of the comparisons: script and how the tables name it.
METHODS = {"permakey": ("pkey_train.py", "PermaKey"),
           "transporter": ("transporter_train.py", "Transporter")}


def run_script(script, args):
    """Run one of this repository's scripts with `args`, saying the command first."""
    print(" ".join(["python", script, *args]), flush=True)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), script)
    status = subprocess.run([sys.executable, path, *args]).returncode
    if status:
        raise ConfigError(f"{script} stopped with exit status {status} (its output is above); "
                          f"call the command again to continue")


def key_digest(value):
    """8 hex digits naming a JSON-able value: the folder name part of a measurement's
    options (equal options, equal digest)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def latest_run(folder, marker):
    """The last numbered run folder of `folder` that holds `marker` (its checkpoint or
    result), or None. The folder holds one measurement's runs only: a later one is a
    new start after an earlier start failed before writing anything."""
    found = [run for run in numbered_runs(folder) if os.path.exists(os.path.join(run, marker))]
    return found[-1] if found else None


def is_finished(run_dir, command="train"):
    """A run whose `command` ran to its end (Sacred's record of the run)."""
    record = read_json(os.path.join(run_dir, "run.json")) or {}
    return record.get("command") == command and record.get("status") == "COMPLETED"


def train_or_resume(script, args, folder, marker, label):
    """Run `script` with `args` into `folder` (a measurement's own; args name it) unless
    its latest run there finished; resume that run when it holds `marker` (a checkpoint
    folder). Returns the finished run's folder."""
    previous = latest_run(folder, marker)
    if previous and is_finished(previous):
        print(f"{label}: finished in {previous}, skipped")
        return previous
    if previous:
        args = [*args, f"resume_dir={previous}"]
    run_script(script, ["with", *args])
    done = latest_run(folder, marker)
    if done is None or not is_finished(done):
        raise ConfigError(f"{label}: the training stopped before its end; call the command "
                          f"again to continue it")
    return done


def train_keypoints(method, noise_type, recipe, env, num_keypoints, train_args, exp_root):
    """Train one keypoint method with its recipe into <exp_root>/<method>, or continue or
    skip its run; returns its folder. train_args: more key=value (its budget first)."""
    script, _ = METHODS[method]
    root = os.path.join(exp_root, method)
    settings = {"exp_root": root, "noise_type": noise_type, "env": env,
                "num_keypoints": num_keypoints}
    folder, _ = keypoint_run_folder("train", settings)
    args = [recipe, f"env={env}", f"num_keypoints={num_keypoints}", f"noise_type={noise_type}",
            *train_args, f"exp_root={root}"]
    return train_or_resume(script, args, folder, "ckpt_last", f"{method} {noise_type}")


def save_table(table, path, show=True):
    """Write a markdown table (atomically) and show it."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(table)
    if show:
        print(table)
        print(f"table: {path}")


def machine_name():
    """The CPU (with its bf16 units) and cores, for the table."""
    from hardware import machine
    info = machine()
    return f"{info['cpu']} ({info['cpu_flags'] or 'no AVX2'}), {info['cores']} cores"


def training_summary(run_dir):
    """(steps, minutes) of a run's training, from its resumable checkpoint's state."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(os.path.join(run_dir, "ckpt_last"))
    return (int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")),
            float(reader.get_tensor("seconds/.ATTRIBUTES/VARIABLE_VALUE")) / 60)


def method_names():
    return {method: name for method, (_, name) in METHODS.items()}


def today():
    return datetime.date.today().isoformat()


def git_commit():
    """The commit this code runs at ("+" when the tree has changes), or None."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here,
                                capture_output=True, text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                 cwd=here, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+" if changed else "")


# table1's keypoint runs when none are given: each method's `quick` recipe for a number
# of steps rather than minutes, so that the agents read the same keypoints on any
# machine: PermaKey's `make demo` run (600 steps), Transporter for the 1600 steps it
# reaches in figure2's 20 minutes (docs/results/figure2_table.md).
TABLE1_KEYPOINT_ARGS = {"permakey": ["max_minutes=1000"],
                        "transporter": ["epochs=16", "max_minutes=1000"]}


class RecordStore:
    """The records of one table: a JSON list, one line per record, beside the table
    (docs/results/<table>_runs.json), so that the table's data outlives the run folders
    and a call on another machine continues from it. Read again before every look-up and
    addition: another call may have added to it."""

    def __init__(self, path):
        self.path = path

    def read(self):
        """The records ([] when there is no file); ConfigError when it is malformed."""
        try:
            records = read_json(self.path, [])
            problem = None if isinstance(records, list) and all(
                isinstance(r, dict) for r in records) else "not a list of objects"
        except ValueError as error:
            problem = error
        if problem:
            raise ConfigError(f"{self.path}: expected a JSON list of run records ({problem}); "
                              f"mend it or move it away")
        return records

    def find(self, key):
        """The record whose fields hold every value of `key`, or None."""
        return next((r for r in self.read() if all(r.get(k) == v for k, v in key.items())),
                    None)

    def add(self, record):
        """Append one record; the file is written whole (atomically), one JSON line per
        record, so that a diff shows the runs that changed."""
        records = self.read() + [record]
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with atomic_path(self.path) as tmp, open(tmp, "w") as f:
            f.write("[\n" + ",\n".join(json.dumps(r, sort_keys=True, default=numpy_scalar)
                                        for r in records) + "\n]\n")
