"""Seeded short runs whose checkpoints must not change when the code is reorganised.

Three runs, each its script's own command line in a fresh process with one thread:
PermaKey `quick` for 10 steps, Transporter `quick` for 10 steps, and a PermaKey-GNN agent
for 1,000 environment steps with 125 updates on the PermaKey run's keypoints. The
digest of a checkpoint is the SHA-256 of its variables' names, dtypes and bytes (file
bytes would also hold the object graph's layout, which a rename may change without
changing a single weight).

    python tests/digest_runs.py          # print this machine's digests as JSON
    python tests/digest_runs.py CHECKOUT # the same, running the scripts of another checkout
                                         # (e.g. of the recorded commit: git worktree add)

tests/test_digests.py compares them with tests/recorded_digests.json, recorded per CPU kind
(a CPU computes bfloat16 and reduction orders its own way) at the commit it names.
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run as `python tests/digest_runs.py`: the modules are there
TINY_DATA = ["num_frames=400", "num_eval_frames=150", "metrics_frames=16",
             "valid_metrics_frames=16", "num_eval_batches=1"]
RUNS = {
    "permakey": ["pkey_train.py", "with", "quick", "epochs=1", "steps_per_epoch=10",
                 "valid_batches=2", *TINY_DATA],
    "transporter": ["transporter_train.py", "with", "quick", "epochs=1", "steps_per_epoch=10",
                    "num_pairs=320", "valid_batches=2", *TINY_DATA],
    "agent": ["agent_train.py", "with", "mspacman", 'kp_type="permakey"',
              'kpt_encoder_type="gnn"', "num_iters=1000", "warmup_steps=500", "update_every=4",
              "batch_size=4", "window_size=4", "num_envs=8", "eval_every=1000",
              "eval_episodes=1", "eval_time_limit=100", "replay_capacity=50",
              "save_replay=False"],
}
CHECKPOINTS = {"permakey": "ckpt_best", "transporter": "ckpt_best", "agent": "ckpt"}


def cpu_kind():
    """The CPU's model name and whether it computes bfloat16 natively (the precision
    `auto` picks): digests are comparable only within one kind."""
    import hardware
    bf16 = sorted(hardware.cpu_flags() & set(hardware.BF16_CPU_FLAGS))
    return f"{hardware.cpu_name() or 'unknown'} [{' '.join(bf16) or 'no bf16'}]"


def variables_digest(folder):
    """12 hex digits of the SHA-256 of the newest checkpoint in `folder`: each variable's
    name, dtype, shape and bytes, in name order."""
    import numpy as np
    import tensorflow as tf
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(folder))
    digest = hashlib.sha256()
    for name in sorted(reader.get_variable_to_shape_map()):
        if name == "_CHECKPOINTABLE_OBJECT_GRAPH":
            continue
        value = np.asarray(reader.get_tensor(name))
        digest.update(f"{name}|{value.dtype}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()[:12]


def only_run(root):
    """The one numbered run folder under `root` (the scripts number their runs)."""
    found = [folder for folder, names, _ in os.walk(root) if "model.json" in os.listdir(folder)]
    if len(found) != 1:
        raise RuntimeError(f"expected one run under {root}, found {found}")
    return found[0]


def run(name, args, workdir, repo=REPO, timeout=900):
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
               TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, os.path.join(repo, args[0]), *args[1:]], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{name} run failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                           f"{done.stderr[-3000:]}")


def digests(workdir, repo=REPO):
    """{run name: digest} of the three runs of `repo`'s scripts, made inside `workdir`."""
    data = os.path.join(workdir, "data")
    roots = {name: os.path.join(workdir, f"{name}_exp") for name in RUNS}
    run("permakey", RUNS["permakey"] + [f"data_dir={data}", f"exp_root={roots['permakey']}"],
        workdir, repo)
    run("transporter", RUNS["transporter"]
        + [f"data_dir={data}", f"exp_root={roots['transporter']}"], workdir, repo)
    permakey_run = only_run(roots["permakey"])
    run("agent", RUNS["agent"] + [f"vis_ckpt_fname={permakey_run}",
                                  f"exp_root={roots['agent']}"], workdir, repo)
    return {name: variables_digest(os.path.join(only_run(roots[name]), CHECKPOINTS[name]))
            for name in RUNS}


if __name__ == "__main__":
    checkout = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else REPO
    with tempfile.TemporaryDirectory() as workdir:
        print(json.dumps({"cpu": cpu_kind(), "checkout": checkout,
                          "digests": digests(workdir, checkout)}, indent=2))
