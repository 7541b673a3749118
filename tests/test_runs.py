"""The shared experiment plumbing: fit loop (early stopping, NaN stop, resume), model specs."""
import json
import math
import os

import numpy as np

import pytest
import tensorflow as tf

import runs
from runs import ConfigError


class FakeRun:
    """Collects what `fit` logs, like Sacred's _run.log_scalar."""

    def __init__(self):
        self.logged = {}

    def log_scalar(self, name, value, step=None):
        self.logged.setdefault(name, []).append((step, value))


def counting_fit(run_dir, valid_losses, epochs, max_patience=10, nan_at=None):
    """fit() on a dummy model whose validation loss follows `valid_losses` per epoch."""
    weight = tf.Variable(0.0)
    steps = {"n": 0}

    def train_step(batch):
        steps["n"] += 1
        weight.assign_add(1.0)
        return {"loss": math.nan if steps["n"] == nan_at else 1.0}

    def eval_step(batch):
        epoch = int(weight.numpy()) // 2 - 1  # two training steps per epoch
        return {"loss": valid_losses[epoch]}

    data = {"train": tf.data.Dataset.range(2), "valid": tf.data.Dataset.range(1)}
    state = runs.fit(train_step, eval_step, data, tf.train.Checkpoint(weight=weight), str(run_dir),
                     FakeRun(), epochs, max_patience, select=("loss",))
    return state, weight


def test_fit_keeps_best_checkpoint_and_stops_early(tmp_path):
    state, weight = counting_fit(tmp_path, [5.0, 3.0, 4.0, 4.0, 4.0, 1.0], epochs=6, max_patience=3)
    assert int(state["epoch"]) == 5  # epochs 3, 4, 5 did not improve on epoch 2
    assert float(state["best"]) == 3.0
    assert runs.checkpoint_path(str(tmp_path), "best").endswith("ckpt-2")
    assert runs.checkpoint_path(str(tmp_path), "last").endswith("ckpt-5")
    assert runs.checkpoint_path(str(tmp_path), 4).endswith("ckpt-4")


def test_fit_resumes_from_last_checkpoint(tmp_path):
    counting_fit(tmp_path, [5.0, 4.0, 3.0, 2.0], epochs=2)
    state, weight = counting_fit(tmp_path, [5.0, 4.0, 3.0, 2.0], epochs=4)
    assert int(state["step"]) == 8 and float(weight.numpy()) == 8.0
    assert float(state["best"]) == 2.0


def test_non_finite_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match=r"non-finite loss at step 3: loss=nan"):
        counting_fit(tmp_path, [5.0, 4.0], epochs=2, nan_at=3)
    assert runs.checkpoint_path(str(tmp_path), "last").endswith("ckpt-1")


def test_missing_checkpoint_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="has no 'best' checkpoint"):
        runs.checkpoint_path(str(tmp_path), "best")
    with pytest.raises(ConfigError, match="has no 7 checkpoint"):
        runs.checkpoint_path(str(tmp_path), 7)


def test_model_spec_mismatch_names_key_and_values(tmp_path):
    runs.write_model_spec(str(tmp_path), {"kind": "permakey", "num_keypoints": 7, "lsp_layers": [0, 1]})
    runs.check_model_spec(str(tmp_path), {"kind": "permakey", "lsp_layers": (0, 1)})  # tuples == lists
    with pytest.raises(ConfigError, match="trained with kind='permakey', requested kind='transporter'"):
        runs.check_model_spec(str(tmp_path), {"kind": "transporter"})
    with pytest.raises(ConfigError, match="does not exist"):
        runs.check_model_spec(os.path.join(str(tmp_path), "nope"), {})
    with pytest.raises(ConfigError, match="has no model.json"):
        runs.check_model_spec(str(tmp_path.parent), {})


def test_write_json_is_written_whole_or_not_at_all(tmp_path):
    path = str(tmp_path / "m.json")
    runs.write_json(path, {"precision": np.float32(0.5), "recall": 0.25})
    with open(path) as f:
        assert json.load(f) == {"precision": 0.5, "recall": 0.25}
    with pytest.raises(TypeError):
        runs.write_json(path, {"precision": object()})
    with open(path) as f:
        assert json.load(f)["recall"] == 0.25  # the earlier file is intact
    assert os.listdir(tmp_path) == ["m.json"]


@pytest.mark.parametrize("flags, gpus, chosen", [
    ({"avx2", "fma"}, [], "float32"),
    ({"avx512f", "avx512_bf16"}, [], "bf16"),
    ({"avx512f", "amx_tile", "amx_bf16"}, [], "bf16"),
    ({"avx2"}, [(8, 0)], "bf16"),            # the GPU computes, whatever the CPU has
    ({"amx_bf16"}, [(7, 5)], "float32"),
    ({"amx_bf16"}, [(8, 6), (7, 0)], "float32"),
])
def test_auto_precision_follows_the_hardware(flags, gpus, chosen, capsys):
    assert runs.resolve_precision("auto", flags=flags, gpus=gpus) == chosen
    assert capsys.readouterr().out.startswith(f"precision auto: {chosen} (")


@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_explicit_precision_wins(precision, capsys):
    assert runs.resolve_precision(precision, flags={"amx_bf16"}, gpus=[]) == precision
    assert runs.resolve_precision(precision, flags={"avx2"}, gpus=[]) == precision
    assert capsys.readouterr().out == ""


def test_unknown_precision_names_the_accepted_ones():
    with pytest.raises(ConfigError, match=r"^precision='fp16': expected one of auto, float32, bf16$"):
        runs.resolve_precision("fp16", flags=set(), gpus=[])


def test_cpu_flags_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 amx_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu avx2 amx_bf16\n")
    assert runs.cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "amx_bf16"}
    assert runs.cpu_flags(str(tmp_path / "missing")) == set()
