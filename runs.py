"""Plumbing shared by the Sacred experiments: one-line errors, run folders, resume.

Every script (`pkey_train.py`, `transporter_train.py`, `agent_train.py`) keeps its
runs in a folder tree named after its config, e.g.
`permakey_exp/<noise_type>/<env>/<num_keypoints>/<run id>/`, holding Sacred's
files (config.json, run.json, metrics.json, cout.txt), TensorBoard scalars and
checkpoints. Resuming points `resume_dir` at such a folder: the new invocation
writes into the same folder and continues its metrics.
"""
import functools
import json
import os
import sys

from sacred.observers import FileStorageObserver


class ConfigError(ValueError):
    """Bad user input (config value, file, folder). Scripts print it as one line."""


def one_line_errors(fn):
    """Make a Sacred command print a ConfigError as `error: ...` and exit with 2.

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


class RunFolderObserver(FileStorageObserver):
    """FileStorageObserver whose base folder is derived from the run's config.

    `subdirs(config)` returns the path below `root`, e.g. (noise, env, K). With
    `config["resume_dir"]` set, the run writes into that existing folder instead
    of a new numbered one, keeping the metrics logged so far.
    """

    def __init__(self, root, subdirs):
        super().__init__(root)
        self.root = root
        self.subdirs = subdirs

    def started_event(self, ex_info, command, host_info, start_time, config,
                      meta_info, _id):
        resume_dir = config.get("resume_dir")
        if resume_dir:
            self.basedir = os.path.dirname(os.path.abspath(resume_dir))
            self.dir = os.path.abspath(resume_dir)
            self.saved_metrics = read_metrics(self.dir)
            self.run_entry = {"experiment": dict(ex_info), "command": command,
                              "host": dict(host_info),
                              "start_time": start_time.isoformat(),
                              "meta": meta_info, "status": "RUNNING",
                              "resources": [], "artifacts": [],
                              "heartbeat": None}
            self.config = config
            self.info = {}
            self.cout = ""
            self.cout_write_cursor = 0
            self.save_json(self.run_entry, "run.json")
            self.save_json(self.config, "config.json")
            self.save_cout()
            return os.path.basename(self.dir)
        self.basedir = os.path.join(self.root, *[str(s) for s in self.subdirs(config)])
        return super().started_event(ex_info, command, host_info, start_time,
                                     config, meta_info, _id)


def read_metrics(run_dir):
    """Sacred's metrics.json of a run folder, or {} if it has none yet."""
    path = os.path.join(run_dir, "metrics.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def run_dir_of(_run):
    """The folder this Sacred run writes to (None when run without observer)."""
    for obs in _run.observers:
        if isinstance(obs, FileStorageObserver) and obs.dir:
            return obs.dir
    return None
