"""Plumbing shared by the Sacred experiments: errors, run folders, checkpoints, the fit loop.

Every training script keeps its runs in a folder tree named after its config, e.g.
`permakey_exp/<noise_type>/<env>/<num_keypoints>/<run id>/`, holding Sacred's files
(config.json, run.json, metrics.json, cout.txt), `model.json` (what the checkpoints
hold), TensorBoard scalars (`tb/`) and checkpoints (`ckpt_last/`, `ckpt_best/`).
Resuming points `resume_dir` at such a folder: the new invocation writes into the
same folder, restores the last checkpoint and continues its step count and metrics.
"""
import datetime
import json
import math
import os
import pathlib
import signal
import sys
import tempfile
import threading
import time

from sacred.metrics_logger import linearize_metrics
from sacred.observers import FileStorageObserver

# Re-exported: the scripts take their errors and file helpers from here with the rest.
from common import (CHECKPOINT_KEYS, ConfigError, atomic_path, check_options,  # noqa: F401
                    folder_size, one_line_errors, quiet_experiment, read_json, save_npz,
                    write_json)


# ----------------------------------------------------------------------------
# A quiet console

# TensorFlow's start-up lines that say nothing to a user of this repository (printed by its
# C++ runtime before logging is set up, so TF_CPP_MIN_LOG_LEVEL does not hide them).
STARTUP_NOISE = ("absl::InitializeLog", "cuda drivers", "cuInit", "oneDNN custom operations",
                 "cpu_feature_guard", "rebuild TensorFlow with the appropriate compiler flags",
                 "Unable to register cu", "TF-TRT Warning", "computation_placer", "cuda_blas",
                 "cuda_dnn", "cuda_fft")
# Config entries that take a checkpoint name or an epoch number: best, last, 15.


def import_tensorflow():
    """Import TensorFlow with its start-up lines filtered out of stderr (other lines pass),
    and say in one line which GPUs it uses, if any. Returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
            gpus = tf.config.list_physical_devices("GPU")  # CUDA initialises (and complains) here
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if line.strip() and not any(noise in line for noise in STARTUP_NOISE):
                    sys.stderr.write(line)
    import logging
    logging.getLogger("absl").setLevel(logging.WARNING)  # "Sharding callback duration" per save
    if gpus:
        details = [tf.config.experimental.get_device_details(gpu) for gpu in gpus]
        print("TensorFlow uses " + ", ".join(
            f"{gpu.name.split(':', 1)[1]} ({d.get('device_name', '?')}, compute "
            f"{'.'.join(map(str, d.get('compute_capability', ('?',))))})"
            for gpu, d in zip(gpus, details)))
    return tf


import_tensorflow()  # at import: scripts import runs before anything imports TensorFlow
import preprocess  # noqa: E402
import layers  # noqa: E402  (after TensorFlow has started quietly)
import vision_modules  # noqa: E402


# ----------------------------------------------------------------------------
# Run folders


class RunFolderObserver(FileStorageObserver):
    """FileStorageObserver whose folder is chosen from the command and the config, and made
    only once the command asks for it (run_dir_of): a run stopped by a config error before
    then leaves no folder and uses up no run id.

    `folder_for(command, config)` returns (base, exact): with `exact` False the run
    gets a new numbered folder inside `base`; with `exact` True it writes into
    `base` itself (a resumed run, or an evaluation inside its run folder), keeping
    the metrics already logged there.
    """

    def __init__(self, folder_for):
        super().__init__(os.curdir)  # the real folder is chosen per run, in start()
        self.folder_for = folder_for
        self.pending = None
        self.lock = threading.Lock()  # Sacred's heartbeat thread calls the events too

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        self.dir, self.pending = None, (ex_info, command, host_info, start_time, config,
                                        meta_info, _id)
        return _id

    def start(self):
        """Make the run folder and write Sacred's files into it (once); returns the folder."""
        with self.lock:
            if self.pending is not None:
                ex_info, command, host_info, start_time, config, meta_info, _id = self.pending
                self.pending = None
                base, self.exact = self.folder_for(command, config)
                self.basedir = os.path.dirname(os.path.abspath(base)) if self.exact else base
                self.exact_dir = os.path.abspath(base)
                self.source_dir = pathlib.Path(self.basedir, "_sources")
                self.resource_dir = pathlib.Path(self.basedir, "_resources")
                super().started_event(ex_info, command, host_info, start_time, config,
                                      meta_info, _id)
            return self.dir

    def _make_run_dir(self, _id):
        if not self.exact:
            return super()._make_run_dir(_id)
        os.makedirs(self.exact_dir, exist_ok=True)
        self.dir = self.exact_dir

    def _when_started(name):  # noqa: N805 (a decorator factory used in the class body)
        def event(self, *args, **kwargs):
            with self.lock:
                if self.dir is not None:
                    return getattr(FileStorageObserver, name)(self, *args, **kwargs)
        event.__name__ = name
        return event

    heartbeat_event = _when_started("heartbeat_event")
    completed_event = _when_started("completed_event")
    interrupted_event = _when_started("interrupted_event")
    failed_event = _when_started("failed_event")
    resource_event = _when_started("resource_event")
    artifact_event = _when_started("artifact_event")
    log_metrics = _when_started("log_metrics")
    del _when_started


def run_dir_of(_run):
    """The folder this Sacred run writes to, made now if it does not exist yet (None when
    run without an observer). Call it once the config has been checked."""
    for obs in _run.observers:
        if isinstance(obs, RunFolderObserver):
            return obs.start()
        if isinstance(obs, FileStorageObserver) and obs.dir:
            return obs.dir
    return None


# ----------------------------------------------------------------------------
# What a checkpoint holds


def write_model_spec(run_dir, spec):
    """Record the model kind and the config values its checkpoints depend on."""
    write_json(os.path.join(run_dir, "model.json"), spec)


def check_model_spec(run_dir, expected):
    """ConfigError (one line) unless `run_dir` holds checkpoints of the `expected` model."""
    if not os.path.isdir(run_dir):
        raise ConfigError(f"run folder {run_dir} does not exist")
    spec = read_json(os.path.join(run_dir, "model.json"))
    if spec is None:
        raise ConfigError(f"run folder {run_dir} has no model.json: "
                          f"not a training run of this repository")
    for key, want in expected.items():
        have = spec.get(key, ARCH_DEFAULTS.get(key))
        if normalise(have) != normalise(want):
            raise ConfigError(f"run {run_dir} was trained with {key}={have!r}, "
                              f"requested {key}={want!r}")
    return spec


def normalise(value):
    """Compare configs as JSON would store them (tuples become lists)."""
    return json.loads(json.dumps(value))


def checkpoint_path(run_dir, which="best"):
    """Path of the `which` ("best", "last", or an epoch number) checkpoint of a run."""
    import tensorflow as tf
    if str(which).isdigit():
        matches = tf.io.gfile.glob(os.path.join(run_dir, "ckpt_epochs", f"ckpt-{int(which)}.index"))
        path = matches[0][:-len(".index")] if matches else None
    else:
        path = tf.train.latest_checkpoint(os.path.join(run_dir, f"ckpt_{which}"))
    if path is None:
        raise ConfigError(f"run folder {run_dir} has no {which!r} checkpoint; "
                          f"accepted: best, last, or a saved epoch number")
    return path


# ----------------------------------------------------------------------------
# The fit loop of the keypoint models


class Stopped(KeyboardInterrupt):
    """Training stopped on SIGTERM or SIGINT after saving; Sacred marks the run INTERRUPTED
    and run_commandline exits with status 0."""


def run_commandline(ex, argv=None):
    """ex.run_commandline(argv), exiting with status 0 when training stopped cleanly on a
    signal, and with one line naming the named configs when `with` gives an unknown one."""
    check_named_configs(ex, sys.argv if argv is None else argv)
    try:
        ex.run_commandline(argv)
    except Stopped:
        sys.exit(0)


def check_named_configs(ex, argv):
    """Exit with one line for an unknown named config after `with`.

    Sacred's own message names an exception and speaks of "config values"; a game
    name is the likely intent, so say which named configs there are.
    """
    if "with" not in argv:
        return
    for token in argv[argv.index("with") + 1:]:
        if token.startswith("-"):
            break  # Sacred options follow the updates
        if "=" in token or token in ex.named_configs or os.path.isfile(token):
            continue
        print(f"error: unknown named config {token!r}; named configs: "
              f"{', '.join(ex.named_configs)}", file=sys.stderr)
        raise SystemExit(2)


class StopSignals:
    """Within the block, SIGTERM and SIGINT set `received` (the signal's name) instead of
    killing the process, so that the loop can finish its step and save; a second signal
    interrupts at once. Outside the main thread no handler is installed."""

    def __enter__(self):
        self.received, self.previous = None, {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def handle(self, signum, frame):
        if self.received:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc_info):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def resume_command(_run, run_dir):
    """The command line that continues this run: its script and config updates, resume_dir."""
    updates = [u for u in _run.meta_info.get("options", {}).get("UPDATE", [])
               if not u.startswith("resume_dir=")]
    script = os.path.basename(_run.experiment_info.get("mainfile") or sys.argv[0])
    return " ".join(["python", script, "with", *updates, f"resume_dir={run_dir}"])


def epochs_to_keep(improved_epochs, last_epoch, keep_epochs):
    """Epoch numbers whose weights ckpt_epochs/ keeps: every epoch that improved validation,
    and the last `keep_epochs` epochs (-1: all of them)."""
    if keep_epochs < 0:
        return set(range(1, last_epoch + 1))
    return set(improved_epochs) | set(range(max(last_epoch - keep_epochs, 0) + 1, last_epoch + 1))


def flush_metrics(_run):
    """Write the scalars logged so far to the run's observers (metrics.json) now, not at
    Sacred's next heartbeat (every 10 s): a checkpoint saved after this call is never
    ahead of the metrics on disk, even when the process is killed right after it."""
    pending = getattr(_run, "_metrics", None)  # Sacred keeps them here between heartbeats
    if pending is None:
        return
    metrics = linearize_metrics(pending.get_last_metrics())
    for observer in _run.observers:
        observer.log_metrics(metrics_by_name=metrics, info=_run.info)


def drop_metrics_after(run_dir, step, saved_at=None):
    """Remove metrics.json entries logged after `step`, or after the wall time `saved_at`
    (seconds since the epoch, UTC) when given: a run resumed from a checkpoint logs
    again what came after it (a checkpoint in the middle of step `step`'s work, e.g.
    before its validation, is followed by entries at `step` itself)."""
    path = os.path.join(run_dir, "metrics.json")
    metrics = read_json(path, {})

    def after_save(timestamp):  # Sacred stamps with datetime.utcnow(): naive, UTC
        logged = datetime.datetime.fromisoformat(timestamp)
        return logged.replace(tzinfo=datetime.timezone.utc).timestamp() > saved_at

    for entry in metrics.values():
        keep = [i for i, (s, t) in enumerate(zip(entry["steps"], entry["timestamps"]))
                if s <= step and not (saved_at and after_save(t))]
        for key in ("values", "steps", "timestamps"):
            entry[key] = [entry[key][i] for i in keep]
    if metrics:
        write_json(path, metrics)


def fit(train_step, eval_step, datasets, model, optimizer, run_dir, _run, epochs, max_patience,
        select, steps_per_epoch=None, valid_batches=None, probe=None, metrics_every=None,
        save_every_mins=10, keep_epochs=0, max_minutes=None):
    """Train with validation every epoch, best checkpoint, early stopping and resume.

    train_step(batch) / eval_step(batch) return dicts of scalar losses; `select` names
    the validation losses whose sum picks the best checkpoint. datasets["train"](epoch,
    start) gives an epoch's batches from batch `start` on (preprocess.get_datasets).
    The resumable checkpoint holds the model, the optimizer (if any), the epoch, the batch
    within it, and the early-stopping state.

    Checkpoints: ckpt_last/ holds one resumable checkpoint, saved at every epoch end,
    every `save_every_mins` minutes and on SIGTERM/SIGINT (after which the run stops with
    the command that resumes it); ckpt_best/ the weights of the best epoch; ckpt_epochs/
    the weights of every epoch that improved validation and of the last `keep_epochs`
    (-1: all). A resumed run continues from the saved batch of its epoch, reading the
    same batches as a run that never stopped. A non-finite training loss stops the run
    with a one-line error and leaves the last good checkpoints untouched.

    probe() -> dict of keypoint metrics (kpt_metrics.split_probe), when given, runs at
    every epoch end and, with `metrics_every`, every that many steps; its values are
    logged as valid.<name> beside the validation losses and printed in the epoch line.

    max_minutes, when set, is a wall-time budget for the run, counted across resumes:
    once it is spent, the current epoch ends early (validation, checkpoints as at any
    epoch end) and training stops. Methods compared at equal wall time use it.
    """
    import tensorflow as tf
    from tqdm import tqdm

    state = {"epoch": tf.Variable(0, dtype=tf.int64), "step": tf.Variable(0, dtype=tf.int64),
             "batch": tf.Variable(0, dtype=tf.int64),  # batches of the current epoch done
             "best": tf.Variable(math.inf, dtype=tf.float64),
             "patience": tf.Variable(0, dtype=tf.int64),
             "improved": tf.Variable(""),  # epochs that improved validation: "1 2 5"
             "seconds": tf.Variable(0.0, dtype=tf.float64),  # wall time of the run so far
             "saved_at": tf.Variable(0.0, dtype=tf.float64)}  # time.time() of this save
    checkpoint = tf.train.Checkpoint(model=model, **state,
                                     **({"optimizer": optimizer} if optimizer else {}))
    last = tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, "ckpt_last"), 1)
    weights = tf.train.Checkpoint(model=model)
    best = tf.train.CheckpointManager(weights, os.path.join(run_dir, "ckpt_best"), 1)
    if last.latest_checkpoint:
        checkpoint.restore(last.latest_checkpoint)
        # Sonnet and Keras make their variables on first use, and a checkpoint restores a
        # variable when it is made. Make them all now: a save before the first training step
        # (resuming at an epoch's end) would otherwise overwrite this checkpoint without
        # the optimizer's state, which is then lost.
        eval_step(next(iter(datasets["valid"])))
        if optimizer is not None:
            optimizer.build(model.trainable_variables)
        drop_metrics_after(run_dir, int(state["step"]), float(state["saved_at"]) or None)
        print(f"resumed from {last.latest_checkpoint} at epoch {int(state['epoch']) + 1}, "
              f"batch {int(state['batch'])} (step {int(state['step'])})")
    writer = tf.summary.create_file_writer(os.path.join(run_dir, "tb"))
    keypoints = (None, {})  # (step, metrics) of the last probe

    def log(prefix, losses, step):
        with writer.as_default(step=step):
            for name, value in losses.items():
                _run.log_scalar(f"{prefix}.{name}", value, step)
                tf.summary.scalar(f"{prefix}/{name}", value)

    run_started = time.time() - float(state["seconds"])

    def out_of_time():
        return max_minutes is not None and time.time() - run_started >= 60 * max_minutes

    def save_last():
        flush_metrics(_run)  # first: what the checkpoint has done is on disk
        started = time.time()
        state["seconds"].assign(started - run_started)
        state["saved_at"].assign(started)
        last.save(checkpoint_number=int(state["step"]))
        return started

    with StopSignals() as stop:
        last_save = time.time()
        while (int(state["epoch"]) < epochs and int(state["patience"]) < max_patience
               and not out_of_time()):
            epoch, start = int(state["epoch"]) + 1, int(state["batch"])
            batches = datasets["train"](epoch, start)
            total = min(steps_per_epoch or math.inf, start + int(batches.cardinality()))
            for batch in tqdm(batches.take(total - start), desc=f"epoch {epoch}", unit="step",
                              initial=start, total=total, leave=False):
                losses = {k: float(v) for k, v in train_step(batch).items()}
                step = int(state["step"].assign_add(1))
                state["batch"].assign_add(1)
                bad = [k for k, v in losses.items() if not math.isfinite(v)]
                if bad:
                    raise ConfigError(f"non-finite loss at step {step}: {bad[0]}={losses[bad[0]]} "
                                      f"(all: {losses}); last good checkpoint kept in {run_dir}")
                if step % 10 == 0:
                    log("train", losses, step)
                if probe and metrics_every and step % metrics_every == 0:
                    keypoints = (step, probe())
                    log("valid", keypoints[1], step)
                if stop.received or time.time() - last_save >= 60 * save_every_mins:
                    last_save = save_last()
                if stop.received:
                    writer.flush()
                    print(f"{stop.received}: stopped at epoch {epoch}, batch {int(state['batch'])} "
                          f"(step {step}), saved in {last.latest_checkpoint}; resume with:\n"
                          f"  {resume_command(_run, run_dir)}")
                    raise Stopped()
                if out_of_time():
                    break
            step = int(state["step"])
            valid = evaluate_losses(eval_step, datasets["valid"], valid_batches)
            score = sum(valid[k] for k in select)
            log("valid", dict(valid, selection=score), step)
            if probe and keypoints[0] != step:
                keypoints = (step, probe())
                log("valid", keypoints[1], step)
            improved = score < float(state["best"])
            state["epoch"].assign(epoch)
            state["batch"].assign(0)
            state["patience"].assign(0 if improved else int(state["patience"]) + 1)
            if improved:
                state["best"].assign(score)
                state["improved"].assign(f"{state['improved'].numpy().decode()} {epoch}".strip())
                best.save(checkpoint_number=epoch)
            weights.write(os.path.join(run_dir, "ckpt_epochs", f"ckpt-{epoch}"))
            improved_epochs = [int(e) for e in state["improved"].numpy().decode().split()]
            for old in set(range(1, epoch + 1)) - epochs_to_keep(improved_epochs, epoch,
                                                                   keep_epochs):
                for path in tf.io.gfile.glob(os.path.join(run_dir, "ckpt_epochs", f"ckpt-{old}.*")):
                    os.remove(path)
            last_save = save_last()
            print(f"epoch {epoch}: valid {format_losses(valid)}"
                  f"{' (best)' if improved else ''}"
                  f"{' | keypoints ' + format_keypoint_metrics(keypoints[1]) if probe else ''}")
    writer.flush()
    if out_of_time():
        print(f"time budget max_minutes={max_minutes} spent at epoch {int(state['epoch'])} "
              f"(step {int(state['step'])})")
    print(f"run folder size: {folder_size(run_dir) / 1e6:.0f} MB")
    return state


def evaluate_losses(eval_step, dataset, max_batches=None):
    """Mean of each loss over the batches of `dataset` (at most `max_batches`)."""
    totals, count = {}, 0
    for batch in dataset.take(max_batches) if max_batches else dataset:
        for name, value in eval_step(batch).items():
            totals[name] = totals.get(name, 0.0) + float(value)
        count += 1
    return {name: total / count for name, total in totals.items()}


# ----------------------------------------------------------------------------
# The keypoint experiments (pkey_train.py, transporter_train.py) share these


# The numeric options of both keypoint scripts (common.check_options), checked where a
# command reads its config (`seed` is Sacred's: it seeds the generators before that).
KEYPOINT_OPTIONS = {
    "num_keypoints": "count", "num_frames": "count", "num_eval_frames": "count or None",
    "gauss_std": "positive", "batch_size": "count", "epochs": "count",
    "steps_per_epoch": "count or None", "valid_batches": "count or None",
    "learning_rate": "positive", "decay_steps": "count", "decay_rate": "non-negative",
    "max_patience": "count", "data_seed": "index", "save_every_mins": "non-negative",
    "keep_epochs": "epochs to keep", "max_minutes": "positive or None",
    "metrics_radius": "non-negative", "metrics_frames": "count", "valid_metrics_frames": "index",
    "metrics_every": "count or None", "num_eval_batches": "count",
}


def keypoint_run_folder(command, config):
    """Folder of a keypoint-script command: `<exp_root>/<noise>/<env>/<K>/<new id>` for
    training, the run folder itself when resuming, `<run_dir>/evaluate` for evaluate,
    and `<save_base_dir>/<noise>/<env>/<K>/<new id>` for compare_kpts."""
    if command == "evaluate":
        return os.path.join(config["run_dir"] or "run_dir_unset", "evaluate"), True
    if config.get("resume_dir"):
        return config["resume_dir"], True
    root = config.get("save_base_dir") if command == "compare_kpts" else config["exp_root"]
    env = preprocess.env_name(config["env"])
    return os.path.join(root, config["noise_type"], env, str(config["num_keypoints"])), False


def add_game_configs(ex, keys=("env", "num_keypoints")):
    """One named config per game of preprocess.GAMES and per alias (`with seaquest`),
    setting `keys` of env, num_keypoints (the paper's K) and replay_capacity."""
    for name, game in preprocess.GAMES.items():
        values = {"env": name, "num_keypoints": game.num_keypoints,
                  "replay_capacity": game.replay_capacity}
        for config_name in (name, *game.aliases):
            ex.add_named_config(config_name, {key: values[key] for key in keys})


def compiled_steps(model, optimizer, loss_fn, precision="float32"):
    """Compiled (train_step, eval_step): batch -> dict of scalar losses.

    loss_fn(batch, is_training) -> (losses, outputs), run in `precision` (float32 |
    bf16: layers.precision); the train step follows the gradient of losses["total"]
    over all of the model's trainable variables.
    """
    import tensorflow as tf
    layers.compute_dtype(precision)  # a one-line ConfigError before tracing

    @tf.function
    def compiled_train_step(batch):
        with tf.GradientTape() as tape, layers.precision(precision):
            losses, _ = loss_fn(batch, True)
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(losses["total"], variables), variables))
        return losses

    def train_step(batch):
        # tf.function traces a function twice when its first trace creates variables; an
        # eager inference call on one example and optimizer.build create them first, so
        # the step is traced once (seconds per start). Inference mode: no batch-norm
        # update, no VAE noise drawn, so training draws what it would have drawn.
        if not optimizer.built:
            with layers.precision(precision):
                loss_fn(tf.nest.map_structure(lambda t: t[:1], batch), False)
            optimizer.build(model.trainable_variables)
        return compiled_train_step(batch)

    train_step.compiled = compiled_train_step  # the tf.function itself (bench counts its FLOPs)

    @tf.function
    def eval_step(batch):
        with layers.precision(precision):
            return loss_fn(batch, False)[0]

    return train_step, eval_step


# CPU flags (Linux /proc/cpuinfo names) of units that compute bfloat16 natively.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(path="/proc/cpuinfo"):
    """This machine's CPU feature flags (an empty set where /proc/cpuinfo does not exist)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpu_compute_capabilities():
    """(major, minor) of each visible GPU."""
    import tensorflow as tf
    return [tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
            for gpu in tf.config.list_physical_devices("GPU")]


def resolve_precision(precision, flags=None, gpus=None):
    """The precision a training step computes in: "auto" becomes "bf16" where the hardware
    computes bfloat16 natively (GPUs of compute capability 8.0 or more; without a GPU, a
    CPU with AVX512_BF16 or AMX) and "float32" elsewhere, saying which and why. An
    explicit "float32" or "bf16" is returned as given; anything else is a ConfigError.

    flags: CPU flags (default: this machine's); gpus: GPU compute capabilities (default:
    the visible GPUs').
    """
    if precision != "auto":
        if precision not in layers.PRECISIONS:
            raise ConfigError(f"precision={precision!r}: expected one of auto, "
                              f"{', '.join(layers.PRECISIONS)}")
        return precision
    gpus = gpu_compute_capabilities() if gpus is None else gpus
    if gpus:
        native = all(tuple(capability) >= (8, 0) for capability in gpus)
        reason = f"GPU compute capability {', '.join('.'.join(map(str, c)) for c in gpus)}"
    else:
        flags = cpu_flags() if flags is None else set(flags)
        found = [flag for flag in BF16_CPU_FLAGS if flag in flags]
        native = bool(found)
        reason = f"CPU has {' and '.join(found)}" if found else \
            f"CPU has none of {', '.join(BF16_CPU_FLAGS)}"
    chosen = "bf16" if native else "float32"
    print(f"precision auto: {chosen} ({reason})")
    return chosen


def inverse_time_adam(learning_rate, decay_steps, decay_rate):
    """Adam with staircase inverse-time decay, as both keypoint models use (docs/DESIGN.md).

    A Keras optimizer (not a Keras model): it also works under tf.distribute strategies.
    """
    import tensorflow as tf
    schedule = tf.keras.optimizers.schedules.InverseTimeDecay(
        learning_rate, decay_steps, decay_rate, staircase=True)
    return tf.keras.optimizers.Adam(schedule)


def train_and_test(_run, spec, model, optimizer, data, steps, select, write_examples, resume_dir,
                   probe=None, **fit_args):
    """Main command of a keypoint script: fit, restore the best checkpoint, test, write examples.

    steps = (train_step, eval_step); `write_examples(model, test_data, out_dir)` saves
    figures and arrays for a few test batches into `<run>/evaluate`; `probe(model)`, if
    given, measures keypoint quality during training (see fit).
    """
    import tensorflow as tf
    if resume_dir:
        check_model_spec(resume_dir, spec)
    run_dir = run_dir_of(_run)
    write_model_spec(run_dir, spec)
    fit(*steps, data, model, optimizer, run_dir, _run, select=select,
        probe=probe and (lambda: probe(model)), **fit_args)
    tf.train.Checkpoint(model=model).restore(checkpoint_path(run_dir, "best")).expect_partial()
    test = evaluate_losses(steps[1], data["test"])
    for name, value in test.items():
        _run.log_scalar(f"test.{name}", value)
    print(f"test: {format_losses(test)}")
    write_examples(model, data["test"], os.path.join(run_dir, "evaluate"))
    print(f"run folder: {run_dir}")
    return test


def evaluate_run(_run, run_dir, ckpt, spec, loss_steps, test_data, write_examples):
    """The evaluate command of a keypoint script: restore the run's `ckpt` checkpoint
    (refusing one whose model.json differs from `spec`), write its test losses (JSON)
    and example figures into `<run_dir>/evaluate`. `test_data` is called lazily, after
    the checks, as it may generate data."""
    if not run_dir:
        raise ConfigError(f"run_dir is not set; give a {spec['kind']} run folder")
    model, _ = load_keypoint_model(run_dir, ckpt, spec)
    data = test_data()
    out_dir = run_dir_of(_run) or os.path.join(run_dir, "evaluate")
    test = evaluate_losses(loss_steps(model, None)[1], data)
    write_json(os.path.join(out_dir, "test_losses.json"), test)
    print(f"test: {format_losses(test)}")
    write_examples(model, data, out_dir)
    return test


def format_losses(losses):
    return " ".join(f"{name}={value:.4f}" for name, value in losses.items())


def format_keypoint_metrics(metrics):
    return " ".join(f"{name}={value:.1f}px" if name == "spread" else f"{name}={value:.2f}"
                    for name, value in metrics.items())


ARCH_KEYS = {  # constructor arguments of each keypoint model, as stored in model.json
    "permakey": ("num_keypoints", "lsp_layers", "patch_sizes", "latent_dim_size", "decoder_type",
                 "gauss_std", "pnet_readout"),
    "transporter": ("num_keypoints", "gauss_std", "decoder_head", "keypoint_readout",
                    "readout_scale", "centre_maps"),
}


# Values of model.json keys added after runs were made: what those runs had.
ARCH_DEFAULTS = {"pnet_readout": "axis", "decoder_head": "bn_sigmoid", "keypoint_readout": "axis",
                 "readout_scale": 10.0, "centre_maps": False}


def load_keypoint_model(run_dir, ckpt, expected):
    """Build the keypoint model a run folder describes and restore its `ckpt` checkpoint.

    `expected` holds the spec values the caller relies on (kind, env, num_keypoints,
    noise_type, ...); any difference is a one-line ConfigError. Returns (model, spec).
    """
    import tensorflow as tf
    spec = check_model_spec(run_dir, expected)
    model = build_keypoint_model(spec)
    tf.train.Checkpoint(model=model).restore(checkpoint_path(run_dir, ckpt)).expect_partial()
    return model, spec


def build_keypoint_model(spec):
    """A fresh PermaKey or Transporter module from a model spec (see ARCH_KEYS)."""
    classes = {"permakey": vision_modules.PermaKey, "transporter": vision_modules.Transporter}
    return classes[spec["kind"]](**{key: spec.get(key, ARCH_DEFAULTS.get(key))
                                    for key in ARCH_KEYS[spec["kind"]]})
