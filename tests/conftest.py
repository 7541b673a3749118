"""Test-session set-up: quiet TensorFlow, two logical CPU devices, repo on sys.path.

Two logical CPUs let the multi-replica (tf.distribute) code paths run on this
2-core, GPU-less machine. Logical devices must be configured before TensorFlow
initialises its runtime, hence here, at import.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `make test` runs the suite in pytest-xdist workers, one per core: each worker's TensorFlow
# (and the scripts it starts) gets its share of the cores instead of all of them, so two
# workers do not fight over the same threads.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    _threads = str(max(1, (_cores or 1) // _WORKERS))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", _threads)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", _threads)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tf_quiet  # noqa: E402,F401 (first: TensorFlow starts without its start-up chatter)
import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * 2)


import pytest  # noqa: E402


@pytest.fixture
def one_line_error(capsys):
    """`one_line_error(experiment, command, config)` runs a Sacred command that must stop
    on bad input with exit code 2, and returns the one line it printed last to stderr."""
    def run(experiment, command, config):
        with pytest.raises(SystemExit) as exit_info:
            experiment.run(command, config_updates=config)
        assert exit_info.value.code == 2
        return capsys.readouterr().err.strip().splitlines()[-1]
    return run


# A tiny keypoint-training config: a few hundred generated MsPacman frames, 3 steps,
# keypoint metrics at step 2 and at the epoch end.
TINY_KEYPOINT_CONFIG = {"num_frames": 400, "num_eval_frames": 150, "batch_size": 4, "epochs": 1,
                        "steps_per_epoch": 3, "valid_batches": 2, "num_keypoints": 3,
                        "metrics_frames": 16, "valid_metrics_frames": 16, "metrics_every": 2}


# PermaKey for the tests of plumbing (run folders, resume, commands, agents): one LSP layer
# and a 4-d latent, through the same code paths: 2.0M weights instead of the paper's 11.9M
# (the second LSP layer's 5.8M, the latent layer's 3.6M), checkpoints a sixth of the size.
# The tests of the architecture and its learning build the paper's sizes.
SMALL_PERMAKEY = {"lsp_layers": [0], "patch_sizes": [2], "latent_dim_size": 4}


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))


def tiny_run(script, root, data_dir, **updates):
    """Train `script`'s experiment on the tiny config: (config, run folder)."""
    config = dict(TINY_KEYPOINT_CONFIG, data_dir=data_dir, exp_root=str(root), **updates)
    run = script.ex.run(config_updates=config)
    return config, run.observers[0].dir


@pytest.fixture(scope="session")
def tiny_pkey_run(tmp_path_factory, tiny_data_dir):
    """A tiny trained PermaKey run shared by the tests: (config, run folder)."""
    import pkey_train
    return tiny_run(pkey_train, tmp_path_factory.mktemp("permakey_exp"), tiny_data_dir,
                    **SMALL_PERMAKEY)


@pytest.fixture(scope="session")
def tiny_transporter_run(tmp_path_factory, tiny_data_dir):
    """A tiny trained Transporter run shared by the tests: (config, run folder)."""
    import transporter_train
    return tiny_run(transporter_train, tmp_path_factory.mktemp("transporter_exp"), tiny_data_dir,
                    num_pairs=12)
