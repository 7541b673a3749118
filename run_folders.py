"""A run's folder: where a Sacred run writes, what it holds, how it is found, and how a
stopped run resumes.

Every training script keeps its runs in a folder tree named after its config, e.g.
`permakey_exp/<noise_type>/<env>/<num_keypoints>/<run id>/`, holding Sacred's files
(config.json, run.json, metrics.json, cout.txt), `model.json` (what the checkpoints
hold), TensorBoard scalars (`tb/`) and checkpoints. Resuming points `resume_dir` at such
a folder: the new invocation writes into the same folder, restores the last checkpoint
and continues its step count and metrics. A SIGTERM or SIGINT saves and stops a run
(StopSignals, Stopped) with the command line that resumes it.
"""
import datetime
import glob
import hashlib
import json
import os
import pathlib
import signal
import sys
import threading

from sacred.metrics_logger import linearize_metrics
from sacred.observers import FileStorageObserver

from common import ConfigError, read_json, write_json
from games import env_name


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


def keypoint_run_folder(command, config):
    """Folder of a keypoint-script command: `<exp_root>/<noise>/<env>/<K>/<new id>` for
    training, the run folder itself when resuming, `<run_dir>/evaluate` for evaluate,
    and `<save_base_dir>/<noise>/<env>/<K>/<new id>` for compare_kpts."""
    if command == "evaluate":
        return os.path.join(config["run_dir"] or "run_dir_unset", "evaluate"), True
    if config.get("resume_dir"):
        return config["resume_dir"], True
    root = config.get("save_base_dir") if command == "compare_kpts" else config["exp_root"]
    env = env_name(config["env"])
    return os.path.join(root, config["noise_type"], env, str(config["num_keypoints"])), False


def numbered_runs(folder):
    """The numbered run folders inside `folder` (the ids Sacred's observer gives: 1, 2,
    ...), sorted by number; [] when `folder` does not exist."""
    found = [path for path in glob.glob(os.path.join(glob.escape(folder), "*"))
             if os.path.basename(path).isdigit() and os.path.isdir(path)]
    return sorted(found, key=lambda path: int(os.path.basename(path)))


# The levels of the run-folder trees, top down (below the experiment root), that name a
# run's group: keypoint runs and agent runs.
KEYPOINT_LEVELS = ("noise_type", "env", "num_keypoints")
AGENT_LEVELS = ("noise_type", "kp_type", "kpt_encoder_type", "env")


def latest_per_group(found, keys):
    """The highest-id run of each group of runs that agree on `keys` (labels or config
    values), in the order of `found`'s first run of each group."""
    latest = {}
    for run in found:
        group = tuple(str(run.labels.get(key, run.config.get(key))) for key in keys)
        if group not in latest or run.id > latest[group].id:
            latest[group] = run
    return list(latest.values())


# ----------------------------------------------------------------------------
# What a checkpoint holds


def write_model_spec(run_dir, spec):
    """Record the model kind and the config values its checkpoints depend on."""
    write_json(os.path.join(run_dir, "model.json"), spec)


def read_model_spec(run_dir):
    """A run's model.json; ConfigError (one line) when the folder or the file is missing."""
    if not os.path.isdir(run_dir):
        raise ConfigError(f"run folder {run_dir} does not exist")
    spec = read_json(os.path.join(run_dir, "model.json"))
    if spec is None:
        raise ConfigError(f"run folder {run_dir} has no model.json: "
                          f"not a training run of this repository")
    return spec


def check_model_spec(run_dir, expected, defaults=None):
    """A run's model.json, after a ConfigError (one line) unless it matches every value of
    `expected`; `defaults` gives the values of keys that older runs did not record."""
    spec = read_model_spec(run_dir)
    for key, want in expected.items():
        have = spec.get(key, (defaults or {}).get(key))
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


def checkpoint_digest(run_dir, which="best"):
    """The first 12 hex digits of the SHA-256 of a run's `which` checkpoint files: two
    records with the same digest read the same model."""
    prefix = checkpoint_path(run_dir, which)
    digest = hashlib.sha256()
    for path in sorted(glob.glob(glob.escape(prefix) + ".*")):
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:12]


# ----------------------------------------------------------------------------
# Stopping and resuming


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
