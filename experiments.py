"""The paper's comparisons, one command each: trainings one after another, then a table
and pictures under docs/.

    python experiments.py figure2 with budget=30        # make figure2 BUDGET=30

figure2 (the paper's Figure 2 and section 4.1): PermaKey and Transporter trained for the
same wall time (`budget` minutes each, counted across resumes), on clean frames and with
distractor bars (`noise_type="both"`), on the same frames; then `compare_kpts` for each
noise, the two grids, and a table of keypoint quality against the RAM ground truth.

Every training is the command line a user would type (printed before it starts), run in
its own process. A second call continues: finished runs are skipped, an interrupted one
resumes from its last checkpoint, a missing comparison is made.
"""
import datetime
import glob
import os
import shutil
import subprocess
import sys

from sacred import Experiment

import runs  # first: TensorFlow then starts without its start-up chatter
import preprocess
from common import ConfigError, read_json, write_json
from runs import check_options, one_line_errors

ex = runs.quiet_experiment(Experiment("experiments", save_git_info=False))

# The keypoint methods of the comparisons: script and how the table names it.
METHODS = {"permakey": ("pkey_train.py", "PermaKey"),
           "transporter": ("transporter_train.py", "Transporter")}


@ex.config
def config():
    env = "mspacman"
    num_keypoints = 7
    budget = 30.0  # minutes of training per model (max_minutes of each run)
    noise_types = ["none", "both"]  # the first is the clean reference of the robustness ratio
    pkey_recipe = "quick"  # named config of pkey_train.py
    tp_recipe = "quick"  # named config of transporter_train.py
    pkey_args = []  # more key=value for the PermaKey trainings and compare_kpts
    tp_args = []  # more key=value for the Transporter trainings
    exp_root = "figure2_exp"  # runs in <exp_root>/<method>/..., comparisons in <exp_root>/compare
    out_dir = "docs"  # figure2_<noise>_cpu.png and figure2_table.md


# Numeric options, checked where figure2 reads its config (common.check_options).
OPTIONS = {"num_keypoints": "count", "budget": "positive"}


def run_script(script, args):
    """Run one of this repository's scripts with `args`, saying the command first."""
    print(" ".join(["python", script, *args]), flush=True)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), script)
    status = subprocess.run([sys.executable, path, *args]).returncode
    if status:
        raise ConfigError(f"{script} stopped with exit status {status} (its output is above); "
                          f"call figure2 again to continue")


def run_folders(root, noise_type, env, num_keypoints):
    """Numbered run folders <root>/<noise>/<env>/<K>/<id> (as the scripts lay them out),
    oldest first."""
    folder = os.path.join(root, noise_type, preprocess.env_name(env), str(num_keypoints))
    found = [d for d in glob.glob(os.path.join(folder, "*")) if os.path.basename(d).isdigit()]
    return sorted(found, key=lambda d: int(os.path.basename(d)))


def is_finished(run_dir):
    """A training that ran to its end (Sacred's record of the run's last command)."""
    record = read_json(os.path.join(run_dir, "run.json")) or {}
    return record.get("command") == "train" and record.get("status") == "COMPLETED"


def train_or_resume(method, noise_type, recipe, env, num_keypoints, budget, train_args, exp_root):
    """Train one method for `budget` minutes, or continue or skip its run; returns its
    folder. train_args: more key=value for the method's script."""
    script, _ = METHODS[method]
    root = os.path.join(exp_root, method)
    args = [recipe, f"env={env}", f"num_keypoints={num_keypoints}", f"noise_type={noise_type}",
            f"max_minutes={budget}", "epochs=100000", "max_patience=100000", f"exp_root={root}",
            *train_args]
    previous = run_folders(root, noise_type, env, num_keypoints)
    resumable = [d for d in previous if os.path.isdir(os.path.join(d, "ckpt_last"))]
    if resumable and is_finished(resumable[-1]):
        print(f"{method} {noise_type}: finished in {resumable[-1]}, skipped")
        return resumable[-1]
    if resumable:
        args.append(f"resume_dir={resumable[-1]}")
    run_script(script, ["with", *args])
    after = [d for d in run_folders(root, noise_type, env, num_keypoints)
             if os.path.isdir(os.path.join(d, "ckpt_last"))]
    if not after or not is_finished(after[-1]):
        raise ConfigError(f"{method} {noise_type}: the training stopped before its test; "
                          f"call figure2 again to continue it")
    return after[-1]


def compare(runs_of, noise_type, pkey_recipe, env, num_keypoints, train_args, exp_root):
    """compare_kpts of the two runs of one noise (made once); returns its folder."""
    base = os.path.join(exp_root, "compare")
    done = [d for d in run_folders(base, noise_type, env, num_keypoints)
            if os.path.isfile(os.path.join(d, "keypoint_metrics.json"))
            and read_json(os.path.join(d, "inputs.json")) == runs_of]
    if done:
        return done[-1]
    args = [pkey_recipe, f"env={env}", f"num_keypoints={num_keypoints}",
            f"noise_type={noise_type}", f"pkey_fname={runs_of['permakey']}",
            f"tp_fname={runs_of['transporter']}", f"save_base_dir={base}", *train_args]
    run_script("pkey_train.py", ["compare_kpts", "with", *args])
    folder = run_folders(base, noise_type, env, num_keypoints)[-1]
    write_json(os.path.join(folder, "inputs.json"), runs_of)
    return folder


def machine_name():
    """The CPU (with its bf16 units) and cores, for the table."""
    from bench import machine
    info = machine()
    return f"{info['cpu']} ({info['cpu_flags'] or 'no AVX2'}), {info['cores']} cores"


def training_summary(run_dir):
    """(steps, minutes) of a run's training, from its resumable checkpoint's state."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(os.path.join(run_dir, "ckpt_last"))
    return (int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")),
            float(reader.get_tensor("seconds/.ATTRIBUTES/VARIABLE_VALUE")) / 60)


@ex.command
@one_line_errors
def figure2(_config, env, num_keypoints, budget, noise_types, pkey_recipe, tp_recipe, pkey_args,
            tp_args, exp_root, out_dir):
    """Train, compare and tabulate (module docstring)."""
    check_options(_config, OPTIONS)
    import plots
    if not noise_types or len(set(noise_types)) != len(noise_types):
        raise ConfigError(f"noise_types={noise_types!r}: expected distinct noise types, "
                          f"the clean reference first")
    recipes = {"permakey": pkey_recipe, "transporter": tp_recipe}
    args = {"permakey": list(pkey_args), "transporter": list(tp_args)}
    results = {}
    for noise_type in noise_types:
        runs_of = {method: train_or_resume(method, noise_type, recipes[method], env,
                                           num_keypoints, budget, args[method], exp_root)
                   for method in METHODS}
        folder = compare(runs_of, noise_type, pkey_recipe, env, num_keypoints, args["permakey"],
                         exp_root)
        measured = read_json(os.path.join(folder, "keypoint_metrics.json"))["rows"]
        results[noise_type] = {"compare": folder, "rows": measured,
                               "runs": {m: (d, *training_summary(d)) for m, d in runs_of.items()}}
    os.makedirs(out_dir, exist_ok=True)
    for noise_type, result in results.items():
        picture = os.path.join(out_dir, f"figure2_{'clean' if noise_type == 'none' else noise_type}"
                                        f"_cpu.png")
        shutil.copyfile(os.path.join(result["compare"], "compare_0.png"), picture)
        print(f"grid: {picture}")
    table = plots.figure2_table(results, {m: name for m, (_, name) in METHODS.items()},
                                env=env, budget=budget, cpu=machine_name(),
                                date=datetime.date.today().isoformat())
    path = os.path.join(out_dir, "figure2_table.md")
    with open(path, "w") as f:
        f.write(table)
    print(table)
    print(f"table: {path}")
    return results


if __name__ == "__main__":
    runs.run_commandline(ex)
