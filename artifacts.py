"""The run folders viz.ipynb draws from, found under its experiment roots.

The scripts lay their runs out as (run_folders, keypoint_config, agent_train):
    keypoint runs        <exp_root>/<noise>/<env>/<K>/<id>/ (evaluate/ inside)
    compare_kpts         <save_base_dir>/<noise>/<env>/<K>/<id>/batch_*.npz
    agent runs           <rl_exp>/<noise>/<kp_type>/<encoder>/<env>/<id>/evaluations.json
    agent evaluations    <rl_exp>/<noise>/<kp_type>/<encoder>/<env>/evaluate/<id>/evaluation.json
The numbered run folders of each leaf folder are run_folders.numbered_runs'. A section
of the notebook that finds nothing to draw prints why and returns an empty list
(`nothing`), so that the notebook runs top to bottom on whatever subset exists.
"""
import functools
import os
from dataclasses import dataclass

from common import read_json
from datasets import split_path
from games import GAMES
from run_folders import AGENT_LEVELS, KEYPOINT_LEVELS, numbered_runs


@dataclass
class Run:
    """A run folder: its path, the config values its parent folders name, its id, and
    its name: its place in its tree, e.g. none/mspacman/7/1."""
    path: str
    labels: dict
    id: int
    name: str

    @functools.cached_property
    def config(self):
        """Sacred's config.json of the run ({} if missing)."""
        return self.read("config.json", {})

    def read(self, name, default=None):
        """A JSON file inside the run folder, or `default` if it is not there."""
        return read_json(os.path.join(self.path, name), default)


def natural_key(value):
    """Sort key putting numbers in numeric order (K = 7 before K = 10), then names."""
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def subfolders(folder):
    """The names of the folders inside `folder` ([] if it does not exist)."""
    if not os.path.isdir(folder):
        return []
    return [entry.name for entry in os.scandir(folder)
            if entry.is_dir() and not entry.name.startswith(".")]


def find_runs(root, levels, marker, inside=()):
    """Runs in `<root>/<one folder per level>/<*inside>/<numeric id>/` that hold `marker`
    (a path inside the run folder), sorted by their labels, then id. The level folders
    name the labels (e.g. KEYPOINT_LEVELS); the run folders of each leaf are
    run_folders.numbered_runs' (Sacred's `_sources` is none)."""
    branches = [()]
    for _ in levels:
        branches = [(*parts, name) for parts in branches
                    for name in subfolders(os.path.join(root, *parts))]
    found = []
    for parts in branches:
        for path in numbered_runs(os.path.join(root, *parts, *inside)):
            if os.path.exists(os.path.join(path, marker)):
                found.append(Run(path, dict(zip(levels, parts)), int(os.path.basename(path)),
                                 os.path.relpath(path, root)))
    return sorted(found, key=lambda run: ([natural_key(v) for v in run.labels.values()], run.id))


# The sources viz.ipynb reads: attribute, what they are, which folder, how to make one.
SOURCES = (
    ("permakey", "PermaKey runs", "permakey_exp", "python pkey_train.py with quick"),
    ("transporter", "Transporter runs", "transporter_exp",
     'python transporter_train.py with env="mspacman" num_keypoints=7'),
    ("compare", "compare_kpts outputs", "compare_kpts",
     "python pkey_train.py compare_kpts with pkey_fname=RUN tp_fname=RUN"),
    ("agents", "RL agent runs", "rl_exp",
     'python agent_train.py with mspacman kp_type="permakey" vis_ckpt_fname=RUN'),
    ("agent_evaluations", "RL evaluations", "rl_exp",
     'python agent_train.py evaluate with mspacman kp_type="permakey" load_ckpts=A,B,C'),
)


@dataclass
class Artifacts:
    """Everything viz.ipynb draws from, found under the folders of its first cell."""
    folders: dict  # permakey_exp, transporter_exp, compare_kpts, rl_exp, data_dir -> path
    permakey: list  # of Run
    transporter: list
    compare: list
    agents: list
    agent_evaluations: list

    @property
    def data_dir(self):
        return self.folders["data_dir"]


def find_artifacts(permakey_exp, transporter_exp, compare_kpts, rl_exp, data_dir):
    """The runs under each folder: keypoint runs with a best checkpoint, compare_kpts
    outputs with arrays, agent runs with periodic evaluations, agent evaluate outputs."""
    folders = dict(permakey_exp=permakey_exp, transporter_exp=transporter_exp,
                   compare_kpts=compare_kpts, rl_exp=rl_exp, data_dir=data_dir)
    best = os.path.join("ckpt_best", "checkpoint")
    return Artifacts(folders,
                     permakey=find_runs(permakey_exp, KEYPOINT_LEVELS, best),
                     transporter=find_runs(transporter_exp, KEYPOINT_LEVELS, best),
                     compare=find_runs(compare_kpts, KEYPOINT_LEVELS, "batch_0.npz"),
                     agents=find_runs(rl_exp, AGENT_LEVELS, "evaluations.json"),
                     agent_evaluations=find_runs(rl_exp, AGENT_LEVELS, "evaluation.json",
                                                 inside=("evaluate",)))


def envs_with_test_split(data_dir):
    """Games with a test split in data_dir (data_dir/<env>/test.h5)."""
    return sorted(env for env in GAMES if os.path.isfile(split_path(data_dir, env, "test")))


def describe_artifacts(artifacts, max_listed=6):
    """One line per source: what was found where, or that nothing was and how to make it."""
    lines = []
    for attribute, what, folder, command in SOURCES:
        found, root = getattr(artifacts, attribute), artifacts.folders[folder]
        if not found:
            lines.append(f"no {what} under {root}/ — make one with `{command}`")
            continue
        names = [run.name for run in found[:max_listed]]
        more = f" and {len(found) - max_listed} more" if len(found) > max_listed else ""
        lines.append(f"{len(found)} {what} under {root}/: {', '.join(names)}{more}")
    envs = envs_with_test_split(artifacts.data_dir)
    lines.append(f"test splits in {artifacts.data_dir}/: {', '.join(envs)}" if envs else
                 f"no test split under {artifacts.data_dir}/ — keypoints across frames and the "
                 f"ablations need one: `python preprocess.py generate with env=mspacman` "
                 f"(training makes it too)")
    return "\n".join(lines)


def nothing(message):
    """Say why a notebook section draws nothing; an empty list of figures or tables."""
    print(message)
    return []
