"""Long runs that survive: a real training process killed (-9) or stopped (SIGTERM) in the
middle of an epoch resumes from its last timed save and ends as a run that never stopped."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import common
import conftest
import pkey_train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 3 epochs of 2 steps, no keypoint probe; the interrupted runs save after every step
# (save_every_mins=0)
CONFIG = dict(conftest.TINY_KEYPOINT_CONFIG, **conftest.SMALL_PERMAKEY, epochs=3,
              steps_per_epoch=2, metrics_every=None, valid_metrics_frames=0)


def saved_step(run_dir):
    """Step of the run's resumable checkpoint (0 before the first save)."""
    try:
        with open(os.path.join(run_dir, "ckpt_last", "checkpoint")) as f:
            return int(f.readline().split("ckpt-")[1].rstrip('"\n'))
    except (OSError, IndexError):
        return 0


def start(args, cwd=REPO):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for_save(process, run_dir, step, timeout=300):
    deadline = time.time() + timeout
    while saved_step(run_dir) < step:
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline, "no timed save"
        time.sleep(0.05)


def losses(run_dir, prefix="valid."):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    return {name: dict(zip(m["steps"], m["values"])) for name, m in metrics.items()
            if name.startswith(prefix)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_data_dir):
    """The same config trained without interruption: (config, run folder)."""
    return conftest.tiny_run(pkey_train, tmp_path_factory.mktemp("reference"), tiny_data_dir,
                             **{k: CONFIG[k] for k in ("epochs", "steps_per_epoch", "metrics_every",
                                                       "valid_metrics_frames",
                                                       *conftest.SMALL_PERMAKEY)})


def test_disk_layout_after_three_epochs(reference):
    _, run_dir = reference
    kept = sorted(f for f in os.listdir(os.path.join(run_dir, "ckpt_epochs"))
                  if f.endswith(".index"))
    selection = [v for _, v in sorted(losses(run_dir)["valid.selection"].items())]
    improved = [e for e in range(1, 4) if selection[e - 1] < min(selection[:e - 1], default=1e30)]
    assert kept == [f"ckpt-{e}.index" for e in improved]  # keep_epochs=0: improving epochs only
    assert os.listdir(os.path.join(run_dir, "ckpt_last")).count("checkpoint") == 1
    assert len([f for f in os.listdir(os.path.join(run_dir, "ckpt_last"))
                if f.endswith(".index")]) == 1
    assert len([f for f in os.listdir(os.path.join(run_dir, "ckpt_best"))
                if f.endswith(".index")]) == 1
    # epoch checkpoints hold weights only: a third of the resumable one (Adam keeps two slots)
    size = {name: common.folder_size(os.path.join(run_dir, name))
            for name in ("ckpt_last", "ckpt_best")}
    assert size["ckpt_last"] > 2.5 * size["ckpt_best"]


def test_killed_and_stopped_run_resumes_mid_epoch_and_matches(reference, tmp_path):
    config, reference_dir = reference
    exp_root = tmp_path / "permakey_exp"
    updates = [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
               for k, v in dict(config, exp_root=str(exp_root), save_every_mins=0).items()]
    run_dir = str(exp_root / "none" / "mspacman" / "3" / "1")

    # SIGTERM once the third step is saved (epoch 2, batch 1): finish the step under way,
    # save, exit 0. On a fast CPU the next step may finish first (epoch 2, batch 2: its
    # batches done, its validation not), or the signal may land in the validation (then
    # epoch 3, batch 1); each is a stop within an epoch, which the resume must continue.
    first = start(["pkey_train.py", "with", *updates])
    wait_for_save(first, run_dir, 3)
    first.send_signal(signal.SIGTERM)
    out = first.communicate(timeout=300)[0]
    assert first.returncode == 0, out
    stopped = saved_step(run_dir)
    where = re.search(r"stopped at epoch (\d+), batch (\d+) \(step (\d+)\)", out)
    assert where and int(where[3]) == stopped and stopped in (3, 4, 5), out
    batch = int(where[2])
    assert batch >= 1, out  # within an epoch, not at its end
    resume_line = out.split("resume with:\n")[1].splitlines()[0].split()
    assert resume_line[:2] == ["python", "pkey_train.py"] and f"resume_dir={run_dir}" in resume_line

    # the printed command resumes it; kill -9 once it has saved another step
    second = start([sys.executable if w == "python" else w for w in resume_line][1:])
    wait_for_save(second, run_dir, stopped + 1)
    second.kill()
    out = second.communicate(timeout=60)[0]
    assert f"batch {batch} (step {stopped})" in out
    killed_at = saved_step(run_dir)

    # resume again and finish: it picks up at the saved step, not the epoch start
    third = start([sys.executable if w == "python" else w for w in resume_line][1:])
    out = third.communicate(timeout=600)[0]
    assert third.returncode == 0, out
    assert f"(step {killed_at})" in out
    resumed, uninterrupted = losses(run_dir), losses(reference_dir)
    assert resumed["valid.total"].keys() == uninterrupted["valid.total"].keys() == {2, 4, 6}
    for name in ("valid.recon", "valid.lsp", "valid.pnet", "valid.kl"):
        for step, value in uninterrupted[name].items():
            assert resumed[name][step] == pytest.approx(value, rel=1e-3, abs=1e-5), (name, step)
    with open(os.path.join(run_dir, "run.json")) as f:
        assert json.load(f)["status"] == "COMPLETED"
