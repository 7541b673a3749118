"""Plumbing shared by the Sacred experiments: errors, run folders, checkpoints, the fit loop.

Every training script keeps its runs in a folder tree named after its config, e.g.
`permakey_exp/<noise_type>/<env>/<num_keypoints>/<run id>/`, holding Sacred's files
(config.json, run.json, metrics.json, cout.txt), `model.json` (what the checkpoints
hold), TensorBoard scalars (`tb/`) and checkpoints (`ckpt_last/`, `ckpt_best/`).
Resuming points `resume_dir` at such a folder: the new invocation writes into the
same folder, restores the last checkpoint and continues its step count and metrics.
"""
import contextlib
import functools
import json
import math
import os
import pathlib
import sys

from sacred.observers import FileStorageObserver


class ConfigError(ValueError):
    """Bad user input (config value, file, folder, diverged run). Printed as one line."""


def one_line_errors(fn):
    """Make a Sacred command print a ConfigError as `error: ...` and exit with status 2.

    SystemExit is not an Exception, so Sacred does not turn it into a traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2)

    return wrapper


# ----------------------------------------------------------------------------
# Run folders


class RunFolderObserver(FileStorageObserver):
    """FileStorageObserver whose folder is chosen from the command and the config.

    `folder_for(command, config)` returns (base, exact): with `exact` False the run
    gets a new numbered folder inside `base`; with `exact` True it writes into
    `base` itself (a resumed run, or an evaluation inside its run folder), keeping
    the metrics already logged there.
    """

    def __init__(self, folder_for):
        super().__init__(os.curdir)  # the real folder is chosen per run, in started_event
        self.folder_for = folder_for

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        base, self.exact = self.folder_for(command, config)
        self.basedir = os.path.dirname(os.path.abspath(base)) if self.exact else base
        self.exact_dir = os.path.abspath(base)
        self.source_dir = pathlib.Path(self.basedir, "_sources")
        self.resource_dir = pathlib.Path(self.basedir, "_resources")
        run_id = super().started_event(ex_info, command, host_info, start_time, config,
                                       meta_info, _id)
        if self.exact:
            self.saved_metrics = read_json(os.path.join(self.dir, "metrics.json"), default={})
        return run_id

    def _make_run_dir(self, _id):
        if not self.exact:
            return super()._make_run_dir(_id)
        os.makedirs(self.exact_dir, exist_ok=True)
        self.dir = self.exact_dir


def read_json(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary name to write; rename it to `path` only if the block succeeds.

    An interrupted or failed write leaves neither a partial `path` nor the temporary.
    """
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, data):
    """Write JSON atomically; numpy scalars are written as plain numbers."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=numpy_scalar)


def numpy_scalar(value):
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def run_dir_of(_run):
    """The folder this Sacred run writes to (None when run without an observer)."""
    for obs in _run.observers:
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
        raise ConfigError(f"run folder {run_dir} has no model.json: not a training run of this repository")
    for key, want in expected.items():
        have = spec.get(key)
        if normalise(have) != normalise(want):
            raise ConfigError(f"run {run_dir} was trained with {key}={have!r}, requested {key}={want!r}")
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
        raise ConfigError(f"run folder {run_dir} has no {which!r} checkpoint; accepted: best, last, "
                          f"or a saved epoch number")
    return path


# ----------------------------------------------------------------------------
# The fit loop of the keypoint models


def fit(train_step, eval_step, datasets, checkpoint, run_dir, _run, epochs, max_patience,
        select, steps_per_epoch=None, valid_batches=None, probe=None, metrics_every=None):
    """Train with validation every epoch, best checkpoint, early stopping and resume.

    train_step(batch) / eval_step(batch) return dicts of scalar losses; `select` names
    the validation losses whose sum picks the best checkpoint. `checkpoint` is a
    tf.train.Checkpoint holding the model and optimizer; this function adds the epoch
    and the early-stopping state to it. A non-finite training loss stops the run with
    a one-line error and leaves the last good checkpoints untouched.

    probe() -> dict of keypoint metrics (kpt_metrics.split_probe), when given, runs at
    every epoch end and, with `metrics_every`, every that many steps; its values are
    logged as valid.<name> beside the validation losses and printed in the epoch line.
    """
    import tensorflow as tf
    from tqdm import tqdm

    state = {"epoch": tf.Variable(0, dtype=tf.int64), "step": tf.Variable(0, dtype=tf.int64),
             "best": tf.Variable(math.inf, dtype=tf.float64),
             "patience": tf.Variable(0, dtype=tf.int64)}
    for name, var in state.items():
        setattr(checkpoint, name, var)
    managers = {which: tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, f"ckpt_{which}"), 1)
                for which in ("last", "best")}
    epoch_manager = tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, "ckpt_epochs"), None,
                                               checkpoint_name="ckpt")
    if managers["last"].latest_checkpoint:
        checkpoint.restore(managers["last"].latest_checkpoint)
        print(f"resumed from {managers['last'].latest_checkpoint} at epoch {int(state['epoch'])}, "
              f"step {int(state['step'])}")
    writer = tf.summary.create_file_writer(os.path.join(run_dir, "tb"))
    keypoints = (None, {})  # (step, metrics) of the last probe

    def log(prefix, losses, step):
        with writer.as_default(step=step):
            for name, value in losses.items():
                _run.log_scalar(f"{prefix}.{name}", value, step)
                tf.summary.scalar(f"{prefix}/{name}", value)

    while int(state["epoch"]) < epochs and int(state["patience"]) < max_patience:
        epoch = int(state["epoch"]) + 1
        batches = datasets["train"].take(steps_per_epoch) if steps_per_epoch else datasets["train"]
        for batch in tqdm(batches, desc=f"epoch {epoch}", unit="step", leave=False):
            losses = {k: float(v) for k, v in train_step(batch).items()}
            step = int(state["step"].assign_add(1))
            bad = [k for k, v in losses.items() if not math.isfinite(v)]
            if bad:
                raise ConfigError(f"non-finite loss at step {step}: {bad[0]}={losses[bad[0]]} "
                                  f"(all: {losses}); last good checkpoint kept in {run_dir}")
            if step % 10 == 0:
                log("train", losses, step)
            if probe and metrics_every and step % metrics_every == 0:
                keypoints = (step, probe())
                log("valid", keypoints[1], step)
        step = int(state["step"])
        valid = evaluate_losses(eval_step, datasets["valid"], valid_batches)
        score = sum(valid[k] for k in select)
        log("valid", dict(valid, selection=score), step)
        if probe and keypoints[0] != step:
            keypoints = (step, probe())
            log("valid", keypoints[1], step)
        state["epoch"].assign(epoch)
        improved = score < float(state["best"])
        state["patience"].assign(0 if improved else int(state["patience"]) + 1)
        if improved:
            state["best"].assign(score)
            managers["best"].save(checkpoint_number=epoch)
        managers["last"].save(checkpoint_number=epoch)
        epoch_manager.save(checkpoint_number=epoch)
        print(f"epoch {epoch}: valid {format_losses(valid)}"
              f"{' (best)' if improved else ''}"
              f"{' | keypoints ' + format_keypoint_metrics(keypoints[1]) if probe else ''}")
    writer.flush()
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


def keypoint_run_folder(command, config):
    """Folder of a keypoint-script command: `<exp_root>/<noise>/<env>/<K>/<new id>` for
    training, the run folder itself when resuming, `<run_dir>/evaluate` for evaluate,
    and `<save_base_dir>/<noise>/<env>/<K>/<new id>` for compare_kpts."""
    if command == "evaluate":
        return os.path.join(config["run_dir"] or "run_dir_unset", "evaluate"), True
    if config.get("resume_dir"):
        return config["resume_dir"], True
    root = config.get("save_base_dir") if command == "compare_kpts" else config["exp_root"]
    env = {"frosbite": "frostbite"}.get(config["env"], config["env"])
    return os.path.join(root, config["noise_type"], env, str(config["num_keypoints"])), False


def compiled_steps(model, optimizer, loss_fn):
    """Compiled (train_step, eval_step): batch -> dict of scalar losses.

    loss_fn(batch, is_training) -> (losses, outputs); the train step follows the
    gradient of losses["total"] over all of the model's trainable variables.
    """
    import tensorflow as tf

    @tf.function
    def train_step(batch):
        with tf.GradientTape() as tape:
            losses, _ = loss_fn(batch, True)
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(losses["total"], variables), variables))
        return losses

    @tf.function
    def eval_step(batch):
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
    from vision_modules import PRECISIONS
    if precision != "auto":
        if precision not in PRECISIONS:
            raise ConfigError(f"precision={precision!r}: expected one of auto, {', '.join(PRECISIONS)}")
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
    """Adam with staircase inverse-time decay, as both keypoint models use (SPEC 2, 3).

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
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    fit(*steps, data, checkpoint, run_dir, _run, select=select,
        probe=probe and (lambda: probe(model)), **fit_args)
    checkpoint.restore(checkpoint_path(run_dir, "best")).expect_partial()
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
                 "gauss_std"),
    "transporter": ("num_keypoints", "gauss_std"),
}


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
    import vision_modules
    classes = {"permakey": vision_modules.PermaKey, "transporter": vision_modules.Transporter}
    return classes[spec["kind"]](**{key: spec[key] for key in ARCH_KEYS[spec["kind"]]})


def save_npz(path, arrays):
    """np.savez_compressed, atomically."""
    import numpy as np
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
