"""The shared experiment plumbing: fit loop (early stopping, NaN stop, resume), model specs."""
import datetime
import json
import math
import os
import signal
import subprocess
import sys
import types

import numpy as np

import pytest
import tensorflow as tf
from sacred.metrics_logger import MetricsLogger
from sacred.observers import FileStorageObserver

import common
import fit
import hardware
import run_folders
from common import ConfigError


class FakeRun:
    """Collects what `fit` logs, like Sacred's _run.log_scalar."""

    def __init__(self):
        self.logged = {}
        self.meta_info = {"options": {"UPDATE": ["quick", "resume_dir=old"]}}
        self.experiment_info = {"mainfile": "/repo/pkey_train.py"}

    def log_scalar(self, name, value, step=None):
        self.logged.setdefault(name, []).append((step, value))


def counting_fit(run_dir, valid_losses, epochs, max_patience=10, nan_at=None, **fit_args):
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

    data = {"train": lambda epoch, start=0: tf.data.Dataset.range(start, 2),
            "valid": tf.data.Dataset.range(1)}
    model = tf.Module()
    model.weight = weight
    state = fit.fit(train_step, eval_step, data, model, None, str(run_dir), FakeRun(), epochs,
                     max_patience, select=("loss",), **fit_args)
    return state, weight


def test_fit_keeps_best_checkpoint_and_stops_early(tmp_path):
    state, weight = counting_fit(tmp_path, [5.0, 3.0, 4.0, 4.0, 4.0, 1.0], epochs=6, max_patience=3)
    assert int(state["epoch"]) == 5  # epochs 3, 4, 5 did not improve on epoch 2
    assert float(state["best"]) == 3.0
    assert run_folders.checkpoint_path(str(tmp_path), "best").endswith("ckpt-2")
    # numbered by step
    assert run_folders.checkpoint_path(str(tmp_path), "last").endswith("ckpt-10")
    # ckpt_epochs keeps the epochs that improved (1, 2), weights only
    assert sorted(os.listdir(tmp_path / "ckpt_epochs")) == [
        f"ckpt-{e}.{ext}" for e in (1, 2) for ext in ("data-00000-of-00001", "index")]
    with pytest.raises(ConfigError, match="has no 4 checkpoint"):
        run_folders.checkpoint_path(str(tmp_path), 4)
    variables = [name for name, _ in
                 tf.train.list_variables(run_folders.checkpoint_path(str(tmp_path), 2))]
    assert any("weight" in name for name in variables) and not any("step" in v for v in variables)


def test_keep_epochs_adds_the_last_epochs_and_minus_one_keeps_all(tmp_path):
    counting_fit(tmp_path / "a", [5.0, 3.0, 4.0, 4.0, 4.0], epochs=5, keep_epochs=2)
    assert sorted(f for f in os.listdir(tmp_path / "a" / "ckpt_epochs")
                  if f.endswith(".index")) == [
        "ckpt-1.index", "ckpt-2.index", "ckpt-4.index", "ckpt-5.index"]
    assert fit.epochs_to_keep([1, 2], 5, -1) == {1, 2, 3, 4, 5}
    assert fit.epochs_to_keep([1, 3], 6, 0) == {1, 3}
    assert fit.epochs_to_keep([], 3, 10) == {1, 2, 3}
    # the quick recipes keep the best improving epoch only (keep_improved=1)
    assert fit.epochs_to_keep([1, 2, 5, 7], 9, 0, keep_improved=1) == {7}
    assert fit.epochs_to_keep([1, 2, 5, 7], 9, 1, keep_improved=2) == {5, 7, 9}
    assert fit.epochs_to_keep([1, 2, 5, 7], 9, 0, keep_improved=0) == set()


def test_fit_resumes_from_last_checkpoint(tmp_path):
    counting_fit(tmp_path, [5.0, 4.0, 3.0, 2.0], epochs=2)
    state, weight = counting_fit(tmp_path, [5.0, 4.0, 3.0, 2.0], epochs=4)
    assert int(state["step"]) == 8 and float(weight.numpy()) == 8.0
    assert float(state["best"]) == 2.0


class Crash(Exception):
    pass


def batch_fit(run_dir, seen, epochs=2, crash_at=None, signal_at=None, save_every_mins=0):
    """fit() with 4 batches per epoch whose values (0..3) are recorded in `seen`; the step
    numbered `crash_at` raises Crash before training, `signal_at` sends this process SIGTERM."""
    model = tf.Module()
    model.weight = tf.Variable(0.0)

    def train_step(batch):
        if len(seen) + 1 == crash_at:
            raise Crash()
        if len(seen) + 1 == signal_at:
            os.kill(os.getpid(), signal.SIGTERM)
        seen.append(int(batch))
        model.weight.assign_add(1.0)
        return {"loss": 1.0}

    data = {"train": lambda epoch, start=0: tf.data.Dataset.range(start, 4),
            "valid": tf.data.Dataset.range(1)}
    return fit.fit(train_step, lambda batch: {"loss": 1.0}, data, model, None, str(run_dir),
                    FakeRun(), epochs, 10, select=("loss",), save_every_mins=save_every_mins), model


def test_timed_saves_let_a_crashed_run_resume_within_its_epoch(tmp_path, capsys):
    seen = []
    with pytest.raises(Crash):  # save_every_mins=0: a timed save after every step
        batch_fit(tmp_path, seen, crash_at=4)
    assert seen == [0, 1, 2]
    state, model = batch_fit(tmp_path, seen)
    assert "at epoch 1, batch 3 (step 3)" in capsys.readouterr().out
    assert seen == [0, 1, 2, 3, 0, 1, 2, 3]  # the same batches as a run that never stopped
    assert int(state["step"]) == 8 and float(model.weight.numpy()) == 8.0


class SacredRun(FakeRun):
    """FakeRun that keeps its scalars as Sacred does, until a heartbeat (here: never, or
    run_folders.flush_metrics) hands them to a file observer writing <run_dir>/metrics.json."""

    def __init__(self, run_dir):
        super().__init__()
        self._metrics, self.info = MetricsLogger(), {}
        self.observers = [FileStorageObserver(str(run_dir))]
        self.observers[0].dir = str(run_dir)

    def log_scalar(self, name, value, step=None):
        self._metrics.log_scalar_metric(name, value, step)


def test_a_checkpoint_is_never_ahead_of_the_metrics_on_disk(tmp_path):
    # A crash (as kill -9) in the first step after epoch 1's checkpoint: Sacred's heartbeat
    # never ran, yet epoch 1's validation is in metrics.json; the resumed run logs it once.
    def train(crash_at=None):
        def train_step(batch):
            if int(model.weight.numpy()) + 1 == crash_at:
                raise Crash()
            model.weight.assign_add(1.0)
            return {"loss": 1.0}
        data = {"train": lambda epoch, start=0: tf.data.Dataset.range(start, 4),
                "valid": tf.data.Dataset.range(1)}
        return fit.fit(train_step, lambda batch: {"loss": 1.0}, data, model, None,
                       str(tmp_path), SacredRun(tmp_path), 2, 10, select=("loss",),
                       save_every_mins=60)

    model = tf.Module()
    model.weight = tf.Variable(0.0)
    with pytest.raises(Crash):
        train(crash_at=5)
    assert common.read_json(tmp_path / "metrics.json")["valid.loss"]["steps"] == [4]
    train()
    assert common.read_json(tmp_path / "metrics.json")["valid.loss"]["steps"] == [4, 8]


def test_a_resumed_run_drops_the_metrics_logged_after_its_checkpoint(tmp_path):
    # saved at 12:00:05 during step 4 (its batches done, its validation not): the
    # validation at step 4 (12:00:07) and all of step 6 go; step 4's training loss stays
    def entry(*logged):
        return {"steps": [s for s, _ in logged], "values": [float(s) for s, _ in logged],
                "timestamps": [f"2026-12-05T12:00:{t:02d}.000000" for _, t in logged]}
    common.write_json(tmp_path / "metrics.json", {"train.loss": entry((2, 1), (4, 4), (6, 9)),
                                                "valid.loss": entry((2, 2), (4, 7), (6, 10))})
    saved_at = datetime.datetime(2026, 12, 5, 12, 0, 5, tzinfo=datetime.timezone.utc).timestamp()
    run_folders.drop_metrics_after(str(tmp_path), 4, saved_at)
    metrics = common.read_json(tmp_path / "metrics.json")
    assert metrics["train.loss"]["steps"] == [2, 4] and metrics["valid.loss"]["steps"] == [2]
    assert metrics["valid.loss"]["timestamps"] == ["2026-12-05T12:00:02.000000"]
    run_folders.drop_metrics_after(str(tmp_path), 2)  # without a save time: by step only
    assert common.read_json(tmp_path / "metrics.json")["train.loss"]["steps"] == [2]


def test_without_timed_saves_a_crash_loses_the_epoch(tmp_path):
    seen = []
    with pytest.raises(Crash):
        batch_fit(tmp_path, seen, crash_at=7, save_every_mins=60)
    state, model = batch_fit(tmp_path, seen[:4])  # resumes from the end of epoch 1
    assert int(state["step"]) == 8 and float(model.weight.numpy()) == 8.0


def test_time_budget_ends_the_epoch_early_and_counts_across_resumes(tmp_path, monkeypatch,
                                                                      capsys):
    clock = {"now": 1000.0}
    monkeypatch.setattr(fit, "time", types.SimpleNamespace(time=lambda: clock["now"]))
    model = tf.Module()
    model.weight = tf.Variable(0.0)

    def train_step(batch):  # each step takes half a minute of the fake clock
        clock["now"] += 30.0
        model.weight.assign_add(1.0)
        return {"loss": 1.0}

    def budget_fit(max_minutes):
        data = {"train": lambda epoch, start=0: tf.data.Dataset.range(start, 4),
                "valid": tf.data.Dataset.range(1)}
        return fit.fit(train_step, lambda batch: {"loss": float(model.weight.numpy())}, data,
                        model, None, str(tmp_path), FakeRun(), 5, 10, select=("loss",),
                        max_minutes=max_minutes)

    state = budget_fit(1.5)  # 3 of epoch 1's 4 steps, then the epoch ends early
    assert int(state["step"]) == 3 and int(state["epoch"]) == 1 and int(state["batch"]) == 0
    assert run_folders.checkpoint_path(str(tmp_path), "best").endswith("ckpt-1")
    assert "max_minutes=1.5 spent at epoch 1 (step 3)" in capsys.readouterr().out
    clock["now"] += 3600.0  # time between the two processes does not count
    state = budget_fit(4.0)  # 1.5 minutes were spent: 5 more steps (epoch 2, epoch 3 begun)
    assert int(state["step"]) == 8 and int(state["epoch"]) == 3
    assert float(state["seconds"]) == 240.0


def adam_fit(run_dir, crash_in_validation):
    """fit() of one weight by Adam, 2 steps per epoch, a timed save after every step."""
    model = tf.Module()
    model.weight = tf.Variable(1.0)
    optimizer = tf.keras.optimizers.Adam(0.1)

    def train_step(batch):
        with tf.GradientTape() as tape:
            loss = model.weight ** 2
        optimizer.apply_gradients([(tape.gradient(loss, model.weight), model.weight)])
        return {"loss": float(loss)}

    def eval_step(batch):
        if crash_in_validation:
            raise Crash()
        return {"loss": 1.0}

    data = {"train": lambda epoch, start=0: tf.data.Dataset.range(start, 2),
            "valid": tf.data.Dataset.range(1)}
    fit.fit(train_step, eval_step, data, model, optimizer, str(run_dir), FakeRun(), 1, 10,
             select=("loss",), save_every_mins=0)
    return optimizer


def test_resuming_at_an_epoch_end_keeps_the_optimizer_state(tmp_path):
    # Saved after the epoch's last step, crashed in validation: the resumed run trains no
    # step before its epoch-end save, which must still hold Adam's moments.
    with pytest.raises(Crash):
        adam_fit(tmp_path, crash_in_validation=True)
    saved = dict(tf.train.list_variables(run_folders.checkpoint_path(str(tmp_path), "last")))
    optimizer = adam_fit(tmp_path, crash_in_validation=False)
    resaved = tf.train.load_checkpoint(run_folders.checkpoint_path(str(tmp_path), "last"))
    slots = [name for name in saved if name.startswith("optimizer/_variables/")]
    assert len(slots) == 2  # the weight's two moments
    for name in slots:
        assert resaved.has_tensor(name), name
    assert int(optimizer.iterations) == 2


def test_sigterm_finishes_the_step_saves_and_prints_how_to_resume(tmp_path, capsys):
    seen = []
    with pytest.raises(run_folders.Stopped):
        batch_fit(tmp_path, seen, signal_at=6, save_every_mins=60)
    out = capsys.readouterr().out
    assert seen == [0, 1, 2, 3, 0, 1]  # step 6 ran to its end
    assert "SIGTERM: stopped at epoch 2, batch 2 (step 6)" in out
    assert f"python pkey_train.py with quick resume_dir={tmp_path}" in out
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone again
    batch_fit(tmp_path, seen)
    assert seen == [0, 1, 2, 3, 0, 1, 2, 3]


def test_non_finite_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match=r"non-finite loss at step 3: loss=nan"):
        counting_fit(tmp_path, [5.0, 4.0], epochs=2, nan_at=3)
    # the end of epoch 1
    assert run_folders.checkpoint_path(str(tmp_path), "last").endswith("ckpt-2")


def test_missing_checkpoint_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="has no 'best' checkpoint"):
        run_folders.checkpoint_path(str(tmp_path), "best")
    with pytest.raises(ConfigError, match="has no 7 checkpoint"):
        run_folders.checkpoint_path(str(tmp_path), 7)


def test_model_spec_mismatch_names_key_and_values(tmp_path):
    run_folders.write_model_spec(str(tmp_path), {"kind": "permakey", "num_keypoints": 7,
                                          "lsp_layers": [0, 1]})
    # tuples == lists
    run_folders.check_model_spec(str(tmp_path), {"kind": "permakey", "lsp_layers": (0, 1)})
    with pytest.raises(ConfigError,
                       match="trained with kind='permakey', requested kind='transporter'"):
        run_folders.check_model_spec(str(tmp_path), {"kind": "transporter"})
    with pytest.raises(ConfigError, match="does not exist"):
        run_folders.check_model_spec(os.path.join(str(tmp_path), "nope"), {})
    with pytest.raises(ConfigError, match="has no model.json"):
        run_folders.check_model_spec(str(tmp_path.parent), {})


def test_write_json_is_written_whole_or_not_at_all(tmp_path):
    path = str(tmp_path / "m.json")
    common.write_json(path, {"precision": np.float32(0.5), "recall": 0.25})
    with open(path) as f:
        assert json.load(f) == {"precision": 0.5, "recall": 0.25}
    with pytest.raises(TypeError):
        common.write_json(path, {"precision": object()})
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
    assert hardware.resolve_precision("auto", flags=flags, gpus=gpus) == chosen
    assert capsys.readouterr().out.startswith(f"precision auto: {chosen} (")


@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_explicit_precision_wins(precision, capsys):
    assert hardware.resolve_precision(precision, flags={"amx_bf16"}, gpus=[]) == precision
    assert hardware.resolve_precision(precision, flags={"avx2"}, gpus=[]) == precision
    assert capsys.readouterr().out == ""


def test_unknown_precision_names_the_accepted_ones():
    with pytest.raises(ConfigError,
                       match=r"^precision='fp16': expected one of auto, float32, bf16$"):
        hardware.resolve_precision("fp16", flags=set(), gpus=[])


def test_cpu_flags_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 amx_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu avx2 amx_bf16\n")
    assert hardware.cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "amx_bf16"}
    assert hardware.cpu_flags(str(tmp_path / "missing")) == set()


def test_a_game_added_to_the_table_is_a_named_config_of_every_script():
    # A fresh interpreter adds a game to games.GAMES before the scripts are imported,
    # as an edit of the table would; the three scripts must all offer it.
    program = """
import json, games
games.GAMES["pong"] = games.Game("Pong", 3, replay_capacity=200, aliases=("ping",))
import pkey_train, transporter_train, agent_train
configs = {}
for script in (pkey_train, transporter_train, agent_train):
    for name in ("pong", "ping"):
        run = script.ex._create_run("print_config", named_configs=[name])
        configs[f"{script.__name__} {name}"] = {key: run.config.get(key) for key in
                                               ("env", "num_keypoints", "replay_capacity")}
print(json.dumps(configs))
"""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", program], cwd=repo, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    configs = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("pong", "ping"):
        assert configs[f"pkey_train {name}"] == {"env": "pong", "num_keypoints": 3,
                                                 "replay_capacity": None}
        assert configs[f"transporter_train {name}"] == configs[f"pkey_train {name}"]
        assert configs[f"agent_train {name}"] == {"env": "pong", "num_keypoints": 3,
                                                  "replay_capacity": 200}



def test_train_step_is_traced_once_and_its_variables_are_made_without_training_state():
    # tf.function traces twice when its first trace creates variables, so the step makes
    # them first with an eager inference call. That call must draw nothing training
    # would: no batch-norm statistics, no VAE noise (a resumed run draws what an
    # uninterrupted one would).
    import vision_modules
    from ul_loss import permakey_losses
    tf.random.set_seed(0)
    model = vision_modules.PermaKey(2, lsp_layers=(0,), patch_sizes=(2,), latent_dim_size=4,
                                    image_size=32)
    noise_state = model.noise.state.numpy()
    at_first_trace = []

    def loss_fn(images, training):
        if training and tf.inside_function() and not at_first_trace:
            with tf.init_scope():  # eager: the variables' values before any update
                at_first_trace.append(model.noise.state.numpy())
                at_first_trace.extend(v.numpy() for v in model.variables
                                      if not v.trainable and v is not model.noise.state)
        return permakey_losses(model, images, training)

    step, _ = fit.compiled_steps(model, tf.keras.optimizers.Adam(1e-3), loss_fn)
    images = tf.random.stateless_uniform([4, 32, 32, 3], seed=[1, 2])
    first, second = (float(step(images)["total"]) for _ in range(2))
    assert step.compiled.experimental_get_tracing_count() == 1
    np.testing.assert_array_equal(at_first_trace[0], noise_state)
    statistics = at_first_trace[1:]  # the batch norms' moving averages and counters
    assert len(statistics) > 10 and not any(np.any(value) for value in statistics)
    assert np.isfinite(first) and second != first
