"""The paper's comparisons, one command each: trainings one after another, then a table
and pictures under docs/results/.

    python experiments.py figure2 with budget=30        # make figure2 BUDGET=30
    python experiments.py table1 with mspacman seeds=3 steps=100000   # make table1
    python experiments.py table1 with mspacman noise_type=both seeds=5,5,3   # make table2
    python experiments.py games with budget=11          # make games

figure2 (the paper's Figure 2 and section 4.1): PermaKey and Transporter trained for the
same wall time (`budget` minutes each, counted across resumes), on clean frames and with
distractor bars (`noise_type="both"`), on the same frames; then `compare_kpts` for each
noise, the two grids, and a table of keypoint quality against the RAM ground truth.

games: figure2's clean comparison on each game of the paper (MsPacman, Seaquest,
Frostbite, BattleZone, SpaceInvaders, each with its K), a table and a picture per game.

table1 (the paper's Table 1, one game; with `noise_type="both"` its Table 2: the
keypoint runs trained and the agents playing with distractor bars): keypoint agents
trained for `steps` environment steps with `seeds` training seeds each (one count for
all, or one per agent), a control whose keypoints sit at fixed places, and the floors:
a uniformly random policy, and each agent run's own policy at the end of its warm-up
(its checkpoint at step `warmup`, `load_ckpts=RUN@STEP`: no training of its own). Every
run's selected policy, and every floor, is scored by the authors' protocol twice:
deterministic (the paper's) and with sticky actions (STICKY_ACTIONS). A table with the
differences of means, their Welch t intervals and the smallest difference the seeds can
detect (tables.table1_table), and the training curves. The keypoint runs are given
(pkey_run, tp_run) or made with the recipes (TABLE1_KEYPOINT_ARGS). The measurements
are plain data (table1_plan: one Measurement per run, a floor right after its agent
run) and each finished one is recorded beside the table (<table1_stem>_runs.json,
RecordStore), which a call on a machine without the run folders reads: it trains only
the measurements not recorded there. The table holds every agent recorded for the game,
noise and budget, so a call for some agents adds their rows to the others'. Floors of
the old definition (a training of their own, `num_iters` = the warm-up) stay in the
records and are tabulated marked as such.

Folders. Every training and evaluation gets a folder of its own, named after what it
measures, given to its script as `exp_root` (`save_base_dir` for compare_kpts). The
script keeps the run in a numbered folder inside (several only when a start failed
before its first checkpoint); this module reads the latest one's record of how it ended
(Sacred's run.json) and its result file (keypoint_metrics.json, evaluation.json):
    <exp_root>/<method>/<noise>/<env>/<K>/<id>               figure2's and games' trainings
    <exp_root>/compare/<digest>/<noise>/<env>/<K>/<id>        their compare_kpts
    table1_exp/keypoints/<method>/<noise>/<env>/<K>/<id>      table1's keypoint runs
    table1_exp/agents/<agent>/seed<s>_<steps>steps_<digest>/<noise>/<kp_type>/<encoder>/
        <env>/<id>, evaluate/<id>                             an agent run and its protocol
    table1_exp/floors/<agent>/seed<s>_<steps>steps_<digest>/<noise>/.../evaluate/<id>
                                                              a floor's protocol
    table1_exp/random/seeds<n>_<digest>/<noise>/.../evaluate/<id>   the random policies
    <measurement folder>/sticky/<noise>/.../evaluate/<id>     its sticky-action protocol
(table2_exp/... with bars). A digest (key_digest) is of everything else the measurement
depends on (warm-up, agent_args, the keypoint recipe or run, the protocol, a floor's
step), so that a changed option never continues another measurement's run.

Every training is the command line a user would type (printed before it starts), run in
its own process. A second call continues: finished runs are skipped, an interrupted one
resumes from its last checkpoint, a missing comparison is made.
"""
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace

import tf_quiet  # noqa: F401 (first: TensorFlow starts without its start-up chatter)
import numpy as np
from sacred import Experiment

import figures
import tables
from agent_runs import policy_checkpoint, selected_steps
from common import (ConfigError, as_list, atomic_path, check_options, numpy_scalar,
                    one_line_errors, quiet_experiment, read_json)
from games import GAMES, add_game_configs, canonical_env, env_name
from keypoint_config import keypoint_run_folder
from keypoint_models import KEYPOINT_KINDS
from run_folders import numbered_runs, run_commandline

ex = quiet_experiment(Experiment("experiments", save_git_info=False))

# The keypoint methods of the comparisons: script and how the tables name it.
METHODS = {"permakey": ("pkey_train.py", "PermaKey"),
           "transporter": ("transporter_train.py", "Transporter")}
RESULTS_DIR = os.path.join("docs", "results")


@ex.config
def config():
    env = "mspacman"
    num_keypoints = 7
    budget = 30.0  # minutes of training per model (max_minutes of each run)
    noise_types = ["none", "both"]  # the first is the clean reference of the robustness ratio
    pkey_recipe = "quick"  # named config of pkey_train.py
    tp_recipe = "quick"  # named config of transporter_train.py
    pkey_args = []  # more key=value for the PermaKey trainings and compare_kpts
    tp_args = []  # more key=value for the Transporter trainings
    exp_root = None  # default <command>_exp: figure2_exp/<method>/..., table1_exp/agents/...
    out_dir = RESULTS_DIR  # figure2_<noise>_cpu.png, figure2_table.md; table1_stem(): .md, ...
    # games
    envs = ["mspacman", "seaquest", "frostbite", "battlezone", "space_invaders"]  # K: the paper's
    # table1
    agents = ["PKey-GNN", "Transporter-GNN", "Control-GNN"]  # names of tables.AGENT_KINDS
    seeds = 3  # training seeds 0 .. seeds-1 of every agent, or one count per agent (5,5,3)
    noise_type = "none"  # table1's frames: "both" = the paper's Table 2 (bars), table2_<game>
    steps = 100_000  # environment steps per agent run
    warmup = 10_000  # warm-up steps of every agent run; the warm-up floor stops after them
    pkey_run = None  # PermaKey keypoint run of the agents (and the control); None: made
    tp_run = None  # Transporter keypoint run; None: made with its recipe
    agent_args = []  # more key=value for every agent_train.py call (training and evaluate)
    eval_seeds = [1, 2, 3, 4, 5]  # the protocol: evaluation seeds ...
    num_eval_episodes = 10  # ... and greedy episodes per seed and policy
    only_recorded = False  # True: tabulate the runs recorded beside the table, train none


# Numeric options, checked where each command reads its config (common.check_options).
OPTIONS = {"num_keypoints": "count", "budget": "positive", "steps": "count",
           "warmup": "count", "num_eval_episodes": "count"}  # table1's seeds: seed_counts

add_game_configs(ex)  # `with seaquest`: env and the paper's num_keypoints


# --------------------------------------------------------------------------------------
# Scripts and their runs


def run_script(script, args):
    """Run one of this repository's scripts with `args`, saying the command first."""
    print(" ".join(["python", script, *args]), flush=True)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), script)
    status = subprocess.run([sys.executable, path, *args]).returncode
    if status:
        raise ConfigError(f"{script} stopped with exit status {status} (its output is above); "
                          f"call the command again to continue")


def key_digest(value):
    """8 hex digits naming a JSON-able value: the folder name part of a measurement's
    options (equal options, equal digest)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def latest_run(folder, marker):
    """The last numbered run folder of `folder` that holds `marker` (its checkpoint or
    result), or None. The folder holds one measurement's runs only: a later one is a
    new start after an earlier start failed before writing anything."""
    found = [run for run in numbered_runs(folder) if os.path.exists(os.path.join(run, marker))]
    return found[-1] if found else None


def is_finished(run_dir, command="train"):
    """A run whose `command` ran to its end (Sacred's record of the run)."""
    record = read_json(os.path.join(run_dir, "run.json")) or {}
    return record.get("command") == command and record.get("status") == "COMPLETED"


def train_or_resume(script, args, folder, marker, label):
    """Run `script` with `args` into `folder` (a measurement's own; args name it) unless
    its latest run there finished; resume that run when it holds `marker` (a checkpoint
    folder). Returns the finished run's folder."""
    previous = latest_run(folder, marker)
    if previous and is_finished(previous):
        print(f"{label}: finished in {previous}, skipped")
        return previous
    if previous:
        args = [*args, f"resume_dir={previous}"]
    run_script(script, ["with", *args])
    done = latest_run(folder, marker)
    if done is None or not is_finished(done):
        raise ConfigError(f"{label}: the training stopped before its end; call the command "
                          f"again to continue it")
    return done


def train_keypoints(method, noise_type, recipe, env, num_keypoints, train_args, exp_root):
    """Train one keypoint method with its recipe into <exp_root>/<method>, or continue or
    skip its run; returns its folder. train_args: more key=value (its budget first)."""
    script, _ = METHODS[method]
    root = os.path.join(exp_root, method)
    settings = {"exp_root": root, "noise_type": noise_type, "env": env,
                "num_keypoints": num_keypoints}
    folder, _ = keypoint_run_folder("train", settings)
    args = [recipe, f"env={env}", f"num_keypoints={num_keypoints}", f"noise_type={noise_type}",
            *train_args, f"exp_root={root}"]
    return train_or_resume(script, args, folder, "ckpt_last", f"{method} {noise_type}")


def compare(runs_of, noise_type, pkey_recipe, env, num_keypoints, train_args, exp_root):
    """compare_kpts of the two runs of one noise, made once into a folder of its own;
    returns its run folder."""
    base = os.path.join(exp_root, "compare", key_digest([runs_of, pkey_recipe, train_args]))
    settings = {"save_base_dir": base, "noise_type": noise_type, "env": env,
                "num_keypoints": num_keypoints}
    folder, _ = keypoint_run_folder("compare_kpts", settings)
    done = latest_run(folder, "keypoint_metrics.json")
    if done:
        return done
    args = [pkey_recipe, f"env={env}", f"num_keypoints={num_keypoints}",
            f"noise_type={noise_type}", f"pkey_fname={runs_of['permakey']}",
            f"tp_fname={runs_of['transporter']}", f"save_base_dir={base}", *train_args]
    run_script("pkey_train.py", ["compare_kpts", "with", *args])
    done = latest_run(folder, "keypoint_metrics.json")
    if done is None:
        raise ConfigError(f"compare_kpts {noise_type}: no keypoint_metrics.json in {folder}; "
                          f"the game has no RAM ground truth?")
    return done


def train_and_compare(env, num_keypoints, noise_type, budget, pkey_recipe, tp_recipe,
                      pkey_args, tp_args, exp_root):
    """Both methods trained (or continued) for `budget` minutes each on one game and noise,
    then compared on its test frames: {"compare": folder, "rows": keypoint metrics per
    method name, "runs": {method: (run folder, steps, minutes)}}."""
    recipes = {"permakey": pkey_recipe, "transporter": tp_recipe}
    budget_args = [f"max_minutes={budget}", "epochs=100000", "max_patience=100000"]
    args = {"permakey": budget_args + list(pkey_args), "transporter": budget_args + list(tp_args)}
    runs_of = {method: train_keypoints(method, noise_type, recipes[method], env, num_keypoints,
                                       args[method], exp_root)
               for method in METHODS}
    folder = compare(runs_of, noise_type, pkey_recipe, env, num_keypoints, pkey_args, exp_root)
    rows = read_json(os.path.join(folder, "keypoint_metrics.json"))["rows"]
    return {"compare": folder, "rows": rows,
            "runs": {method: (d, *training_summary(d)) for method, d in runs_of.items()}}


def save_grid(compare_folder, picture):
    """The first Figure-2 grid of a compare_kpts folder, copied to `picture`."""
    os.makedirs(os.path.dirname(picture) or ".", exist_ok=True)
    shutil.copyfile(os.path.join(compare_folder, "compare_0.png"), picture)
    print(f"grid: {picture}")


def save_table(table, path, show=True):
    """Write a markdown table (atomically) and show it."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(table)
    if show:
        print(table)
        print(f"table: {path}")


def machine_name():
    """The CPU (with its bf16 units) and cores, for the table."""
    from hardware import machine
    info = machine()
    return f"{info['cpu']} ({info['cpu_flags'] or 'no AVX2'}), {info['cores']} cores"


def training_summary(run_dir):
    """(steps, minutes) of a run's training, from its resumable checkpoint's state."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(os.path.join(run_dir, "ckpt_last"))
    return (int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")),
            float(reader.get_tensor("seconds/.ATTRIBUTES/VARIABLE_VALUE")) / 60)


def method_names():
    return {method: name for method, (_, name) in METHODS.items()}


def today():
    return datetime.date.today().isoformat()


@ex.command
@one_line_errors
def figure2(_config, env, num_keypoints, budget, noise_types, pkey_recipe, tp_recipe, pkey_args,
            tp_args, exp_root, out_dir):
    """Train, compare and tabulate (module docstring)."""
    check_options(_config, OPTIONS)
    exp_root = exp_root or "figure2_exp"
    if not noise_types or len(set(noise_types)) != len(noise_types):
        raise ConfigError(f"noise_types={noise_types!r}: expected distinct noise types, "
                          f"the clean reference first")
    results = {noise_type: train_and_compare(env, num_keypoints, noise_type, budget,
                                             pkey_recipe, tp_recipe, pkey_args, tp_args,
                                             exp_root)
               for noise_type in noise_types}
    for noise_type, result in results.items():
        save_grid(result["compare"], os.path.join(
            out_dir, f"figure2_{'clean' if noise_type == 'none' else noise_type}_cpu.png"))
    save_table(tables.figure2_table(results, method_names(), env=env, budget=budget,
                                    cpu=machine_name(), date=today()),
               os.path.join(out_dir, "figure2_table.md"))
    return results


# --------------------------------------------------------------------------------------
# games


@ex.command
@one_line_errors
def games(_config, envs, budget, pkey_recipe, tp_recipe, pkey_args, tp_args, exp_root,
                  out_dir):
    """Both methods' recipes on every game of `envs` (with the paper's K of each), `budget`
    minutes each, on clean frames: games_table.md and a picture per game."""
    check_options(_config, OPTIONS)
    envs = [canonical_env(env) for env in as_list(envs)]
    if not envs:
        raise ConfigError("envs=[]: expected one or more games")
    exp_root = exp_root or "games_exp"
    results = {}
    for game in envs:
        num_keypoints = GAMES[game].num_keypoints
        results[game] = dict(train_and_compare(game, num_keypoints, "none", budget, pkey_recipe,
                                               tp_recipe, pkey_args, tp_args, exp_root),
                             num_keypoints=num_keypoints)
        save_grid(results[game]["compare"], os.path.join(out_dir, f"games_{game}.png"))
    save_table(tables.games_table(results, method_names(), budget=budget, cpu=machine_name(),
                                  date=today()),
               os.path.join(out_dir, "games_table.md"))
    return results


# --------------------------------------------------------------------------------------
# table1: the measurements, their records, and how one is measured

# table1's keypoint runs when none are given: each method's `quick` recipe for a number
# of steps rather than minutes, so that the agents read the same keypoints on any
# machine: PermaKey's `make demo` run (600 steps), Transporter for the 1600 steps it
# reaches in figure2's 20 minutes (docs/results/figure2_table.md).
TABLE1_KEYPOINT_ARGS = {"permakey": ["max_minutes=1000"],
                        "transporter": ["epochs=16", "max_minutes=1000"]}
# noise_type -> the table: the paper's Table 1 on clean frames, its Table 2 with
# distractor bars on the keypoint trainings and the agents' frames.
TABLE_OF_NOISE = {"none": "table1", "both": "table2"}
RANDOM_NAME = "random policy"
# The second protocol every measurement is scored by: the ALE's sticky actions (v5's
# default, Machado et al. 2018), under which episodes from one start differ.
STICKY_ACTIONS = 0.25


@dataclass(frozen=True)
class Measurement:
    """One measurement of table1: an agent trained with a seed for `num_iters` steps and
    scored by the protocol (part "agents"); that agent run's policy at the end of its
    warm-up, scored the same way (part "floors": no training of its own); or (part
    "random") the uniformly random policies, one per training seed."""
    part: str  # "agents", "floors" or "random"
    agent: str  # a name of tables.AGENT_KINDS, or RANDOM_NAME
    seed: object  # the training seed; for the random policies the list of them
    num_iters: int = None  # environment steps of the agent run (None: random)
    kp_type: str = None
    encoder: str = None

    @property
    def method(self):
        """The keypoint method whose run the agent reads (None: random)."""
        return self.kp_type and KEYPOINT_KINDS[self.kp_type]

    @property
    def label(self):
        floor = " after warm-up" if self.part == "floors" else ""
        return f"{self.agent}{floor} seed {self.seed}"

    @property
    def agent_run(self):
        """The agent measurement whose run a floor scores."""
        return replace(self, part="agents")


def agent_kinds(names):
    """[(name, kp_type, kpt_encoder_type)] of Table 1's agent names (tables.AGENT_KINDS),
    case-insensitive; ConfigError naming the accepted ones."""
    known = {name.lower(): (name, *key) for key, name in tables.AGENT_KINDS.items()}
    unknown = [n for n in names if str(n).lower() not in known]
    if unknown or not names or len({str(n).lower() for n in names}) != len(names):
        raise ConfigError(f"agents={','.join(map(str, names))}: expected distinct names among "
                          f"{', '.join(tables.AGENT_KINDS.values())}")
    return [known[str(n).lower()] for n in names]


def seed_counts(seeds, kinds):
    """Training seeds per agent kind: `seeds` is one count for all, or one per kind."""
    counts = as_list(seeds)
    if len(counts) == 1:
        counts = counts * len(kinds)
    if len(counts) != len(kinds) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in counts):
        raise ConfigError(f"seeds={','.join(map(str, as_list(seeds)))}: expected a whole "
                          f"number >= 1, or one per agent ({len(kinds)})")
    return counts


def table1_plan(kinds, counts, steps, random=True):
    """The measurements of a table, in the order they are made: the random policies (if
    `random`), then seed after seed each agent run followed by its floor (which scores
    that run's checkpoint). kinds: [(name, kp_type, encoder)]; counts: seeds per kind."""
    plan = [Measurement("random", RANDOM_NAME, list(range(max(counts))))] if random else []
    for seed in range(max(counts, default=0)):
        for (name, kp_type, encoder), count in zip(kinds, counts):
            if seed < count:
                agent = Measurement("agents", name, seed, steps, kp_type, encoder)
                plan += [agent, replace(agent, part="floors")]
    return plan


@dataclass(frozen=True)
class Table1Setup:
    """What every measurement of one table shares: the game, the distractors, the
    protocol, the options of every agent_train.py call, how each method's keypoint run
    is made (sources) and the root of the run folders."""
    env: str
    num_keypoints: int
    warmup: int
    protocol: dict  # {"eval_seeds": [...], "num_eval_episodes": n}
    agent_args: tuple
    sources: dict  # {method: keypoint_source}
    exp_root: str
    noise_type: str = "none"

    @property
    def game(self):
        return env_name(self.env)

    def key(self, m):
        """The fields that make two records the same measurement (a record matches a
        measurement by these). keypoints: how the agent's keypoint run was made (None
        for the random policies); policy_at: the step a floor scores (the end of the
        warm-up), which no floor of the old definition (old_floor_key) carries."""
        key = {"part": m.part, "agent": m.agent, "seed": m.seed, "num_iters": m.num_iters,
               "warmup": None if m.part == "random" else self.warmup,
               "protocol": self.protocol, "agent_args": [str(a) for a in self.agent_args],
               "keypoints": m.method and self.sources[m.method]}
        if m.part == "floors":
            key["policy_at"] = self.warmup
        return key

    def old_floor_key(self, m):
        """The key of a floor measured under the old definition: a training of its own
        of num_iters = warm-up steps (its epsilon fell to its end value within them), not
        the named agent. Such records stay in the records file and are tabulated marked."""
        key = dict(self.key(m), num_iters=self.warmup)
        del key["policy_at"]
        return key

    def folder(self, m):
        """The measurement's own folder (module docstring), the exp_root of its runs."""
        key = dict(self.key(m), env=self.game, num_keypoints=self.num_keypoints)
        if m.part == "random":
            return os.path.join(self.exp_root, "random", f"seeds{len(m.seed)}_{key_digest(key)}")
        return os.path.join(self.exp_root, m.part, m.agent,
                            f"seed{m.seed}_{m.num_iters}steps_{key_digest(key)}")

    def root(self, m, sticky=False):
        """The exp_root of the measurement's runs: its folder; its sticky-action
        evaluation's is a folder inside, so that each protocol has its own runs."""
        return os.path.join(self.folder(m), "sticky") if sticky else self.folder(m)

    def agent_dir(self, m, sticky=False):
        """Where agent_train.py keeps the runs of exp_root=root(m) (its agent_run_folder):
        <exp_root>/<noise>/<kp_type>/<encoder>/<env>. The random policies are evaluated
        under permakey/cnn, which they ignore."""
        return os.path.join(self.root(m, sticky), self.noise_type, m.kp_type or "permakey",
                            m.encoder or "cnn", self.game)

    def args(self, m, sticky=False):
        """The options of every agent_train.py call of the measurement."""
        return [self.env, f"num_keypoints={self.num_keypoints}", f"noise_type={self.noise_type}",
                f"kp_type={m.kp_type or 'permakey'}", f"kpt_encoder_type={m.encoder or 'cnn'}",
                *map(str, self.agent_args),
                "eval_seeds=" + ",".join(map(str, self.protocol["eval_seeds"])),
                f"num_eval_episodes={self.protocol['num_eval_episodes']}",
                f"exp_root={self.root(m, sticky)}"]


def keypoint_source(method, given, recipe):
    """How a method's keypoint run is made: the recipe and its arguments, or the folder."""
    if given is not None:
        return "run " + os.path.realpath(str(given))
    return " ".join([recipe, *TABLE1_KEYPOINT_ARGS[method]])


class KeypointRuns:
    """The keypoint run each method's agents read: the given one, or trained with its
    recipe (TABLE1_KEYPOINT_ARGS) on the table's frames (noise_type) the first time a
    measurement needs it."""

    def __init__(self, given, recipes, env, num_keypoints, noise_type, root):
        self.folders, self.recipes = dict(given), recipes
        self.env, self.num_keypoints, self.noise_type = env, num_keypoints, noise_type
        self.root = root

    def folder(self, method):
        if self.folders[method] is None:
            self.folders[method] = train_keypoints(
                method, self.noise_type, self.recipes[method], self.env, self.num_keypoints,
                TABLE1_KEYPOINT_ARGS[method], self.root)
        return self.folders[method]


class RecordStore:
    """The records of one table: a JSON list, one line per record, beside the table
    (<table1_stem>_runs.json), so that the table's data outlives the run folders. Read
    again before every look-up and addition: a call for other agents may have added to
    it."""

    def __init__(self, path):
        self.path = path

    def read(self):
        """The records ([] when there is no file); ConfigError when it is malformed."""
        try:
            records = read_json(self.path, [])
            problem = None if isinstance(records, list) and all(
                isinstance(r, dict) for r in records) else "not a list of objects"
        except ValueError as error:
            problem = error
        if problem:
            raise ConfigError(f"{self.path}: expected a JSON list of run records ({problem}); "
                              f"mend it or move it away")
        return records

    def find(self, key):
        """The record whose fields hold every value of `key`, or None."""
        return next((r for r in self.read() if all(r.get(k) == v for k, v in key.items())),
                    None)

    def add(self, record):
        """Append one record; the file is written whole (atomically), one JSON line per
        record, so that a diff shows the runs that changed."""
        records = self.read() + [record]
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with atomic_path(self.path) as tmp, open(tmp, "w") as f:
            f.write("[\n" + ",\n".join(json.dumps(r, sort_keys=True, default=numpy_scalar)
                                        for r in records) + "\n]\n")


def evaluation_of(folder, policies, protocol, steps, sticky):
    """(run folder, evaluation.json) of the last `agent_train.py evaluate` run in `folder`
    if it scored `policies` (["random", ...] or [run folder]) at `steps` (None: any) with
    `protocol` and sticky-action probability `sticky`, and counted its distinct starts;
    else None."""
    done = latest_run(folder, "evaluation.json")
    evaluation = done and read_json(os.path.join(done, "evaluation.json"))
    if not evaluation or "distinct_starts" not in evaluation:
        return None  # none, or made before evaluate counted the distinct starts
    returns = np.asarray(evaluation["returns"])                            # [S, P, E]
    if (evaluation["policies"] == policies and evaluation["eval_seeds"] == protocol["eval_seeds"]
            and returns.shape[2] == protocol["num_eval_episodes"]
            and steps in (None, evaluation["policy_steps"])
            and evaluation["repeat_action_probability"] == sticky):
        return done, evaluation
    return None


def protocol_evaluation(setup, m, load_ckpts, policies, steps=None, sticky=False):
    """The protocol's evaluation of `load_ckpts` (whose policies are `policies` at
    `steps`), deterministic or with sticky actions, measured once in the measurement's
    own evaluate folder: (evaluate run folder, evaluation.json)."""
    folder = os.path.join(setup.agent_dir(m, sticky), "evaluate")
    probability = STICKY_ACTIONS if sticky else 0.0
    found = evaluation_of(folder, policies, setup.protocol, steps, probability)
    if found is None:
        run_script("agent_train.py", ["evaluate", "with", *setup.args(m, sticky),
                                      "load_ckpts=" + ",".join(load_ckpts),
                                      f"repeat_action_probability={probability}"])
        found = evaluation_of(folder, policies, setup.protocol, steps, probability)
    if found is None:
        raise ConfigError(f"{m.label}: the last evaluation in {folder} is not of "
                          f"{','.join(load_ckpts)} under the protocol {setup.protocol} with "
                          f"repeat_action_probability={probability}")
    return found


def run_seconds(run_dir):
    """Wall seconds of a finished Sacred run (its run.json's start and stop), or None."""
    record = read_json(os.path.join(run_dir, "run.json")) or {}
    if not record.get("start_time") or not record.get("stop_time"):
        return None
    start, stop = (datetime.datetime.fromisoformat(record[k]) for k in ("start_time", "stop_time"))
    return (stop - start).total_seconds()


def scored(setup, m, load_ckpts, policies, steps=None):
    """The protocol's scores of a measurement's policies, deterministic and with sticky
    actions (prefix "sticky_"): the returns ([S, E] of one agent policy, [S, P, E] of the
    random policies), their mean (agents), how many distinct starts and distinct returns
    they rest on and the evaluation's minutes; and the keypoint model of the first policy."""
    fields = {"sticky_repeat_action_probability": STICKY_ACTIONS}
    for prefix, sticky in (("", False), ("sticky_", True)):
        run, evaluation = protocol_evaluation(setup, m, load_ckpts, policies, steps, sticky)
        returns = evaluation["returns"]                                    # [S, P, E]
        distinct = evaluation["distinct_returns"]
        if m.part != "random":
            returns, distinct = [seed_returns[0] for seed_returns in returns], distinct[0]
            fields[prefix + "score"] = float(np.mean(returns))
        fields.update({prefix + "returns": returns, prefix + "distinct_returns": distinct,
                       prefix + "distinct_starts": evaluation["distinct_starts"],
                       prefix + "protocol_seconds": run_seconds(run)})
    return fields, evaluation


def git_commit():
    """The commit this code runs at ("+" when the tree has changes), or None."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here,
                                capture_output=True, text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                 cwd=here, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+" if changed else "")


def keypoint_fields(m, evaluation):
    """The keypoint model the evaluation's policy read: its method, checkpoint digest and
    the test precision its run measured (evaluation.json's keypoint_models)."""
    model = evaluation["keypoint_models"][0]
    return {"keypoint_method": m.method, "keypoint_checkpoint": model["digest"],
            "keypoint_precision": model["precision"], "keypoint_run": model["run"]}


def measure(setup, m, keypoint_runs, agent_run=None):
    """Train (or continue) and score one measurement; its record (without the key). A
    floor scores `agent_run` (its agent measurement's run folder) at the warm-up's end."""
    if m.part == "random":
        return scored(setup, m, ["random"] * len(m.seed), ["random"] * len(m.seed))[0]
    if m.part == "floors":
        if setup.warmup not in selected_steps(agent_run):
            raise ConfigError(f"{m.label}: agent run {agent_run} kept no checkpoint at step "
                              f"{setup.warmup}, the end of its warm-up; its first periodic "
                              f"evaluation must come then (eval_every={setup.warmup})")
        run = os.path.abspath(agent_run)
        fields, evaluation = scored(setup, m, [f"{run}@{setup.warmup}"], [run], [setup.warmup])
        return {"run": agent_run, "step": setup.warmup, **fields, "seconds": None,
                **keypoint_fields(m, evaluation)}
    keypoints = keypoint_runs.folder(m.method)
    run_dir = train_or_resume(
        "agent_train.py", [*setup.args(m), f"vis_ckpt_fname={keypoints}", "vis_load=best",
                           f"num_iters={m.num_iters}", f"warmup_steps={setup.warmup}",
                           f"seed={m.seed}"],
        setup.agent_dir(m), "ckpt", m.label)
    step = policy_checkpoint(run_dir)[1]
    fields, evaluation = scored(setup, m, [os.path.abspath(run_dir)],
                                [os.path.abspath(run_dir)], [step])
    timing = read_json(os.path.join(run_dir, "time.json")) or {}
    return {"run": run_dir, "step": step, **fields,
            "seconds": timing.get("seconds"), "cpu_seconds": timing.get("cpu_seconds"),
            "cpus": timing.get("cpus", []),
            "evaluations": read_json(os.path.join(run_dir, "evaluations.json")) or [],
            **keypoint_fields(m, evaluation)}


def table1_stem(game, steps, noise_type="none"):
    """The file name (without suffix) of a game's table under out_dir: table1_<game> on
    clean frames, table2_<game> with bars (TABLE_OF_NOISE); a budget other than
    Atari-100k's carries its steps, so that it never replaces that one."""
    stem = f"{TABLE_OF_NOISE[noise_type]}_{game}"
    return stem if steps == 100_000 else f"{stem}_{steps}steps"


def write_table1(records, setup, steps, seeds, stem, show=False):
    """The table and its curves from `records` (tables.table1_table), shown if `show`.
    seeds: {agent name: training seeds asked}."""
    table = tables.table1_table(records, env=setup.game, steps=steps, seeds=seeds,
                                warmup=setup.warmup, sources=setup.sources, date=today(),
                                records_name=os.path.basename(stem) + "_runs.json",
                                noise_type=setup.noise_type)
    figures.save_figure(figures.table1_curves(tables.table1_results(records), setup.game, steps),
                        stem + "_curves.png")
    save_table(table, stem + ".md", show)


def recorded(store, setup, m):
    """The records of measurement m: its own, and for a floor the one measured under the
    old definition (old_floor_key), if recorded."""
    keys = [setup.key(m)] + ([setup.old_floor_key(m)] if m.part == "floors" else [])
    return [record for key in keys if (record := store.find(key)) is not None]


@ex.command
@one_line_errors
def table1(_config, env, num_keypoints, noise_type, agents, seeds, steps, warmup, pkey_run,
           tp_run, pkey_recipe, tp_recipe, agent_args, eval_seeds, num_eval_episodes,
           only_recorded, exp_root, out_dir):
    """Train, evaluate and tabulate the agents of one game (module docstring)."""
    check_options(_config, OPTIONS)
    kinds = agent_kinds(as_list(agents))
    counts = seed_counts(seeds, kinds)
    if warmup >= steps:
        raise ConfigError(f"warmup={warmup}: expected fewer than steps={steps}")
    if noise_type not in TABLE_OF_NOISE:
        raise ConfigError(f"noise_type={noise_type!r}: expected {' or '.join(TABLE_OF_NOISE)} "
                          f"(Table 1 clean, Table 2 with both bars)")
    given = {"permakey": pkey_run, "transporter": tp_run}
    for method, name in (("permakey", "pkey_run"), ("transporter", "tp_run")):
        if given[method] is not None and not os.path.isdir(str(given[method])):
            raise ConfigError(f"{name}={given[method]!r}: not a keypoint run folder")
    exp_root = exp_root or f"{TABLE_OF_NOISE[noise_type]}_exp"
    recipes = {"permakey": pkey_recipe, "transporter": tp_recipe}
    setup = Table1Setup(env, num_keypoints, warmup,
                        {"eval_seeds": list(eval_seeds), "num_eval_episodes": num_eval_episodes},
                        tuple(agent_args), {m: keypoint_source(m, given[m], recipes[m])
                                            for m in METHODS}, exp_root, noise_type)
    stem = os.path.join(out_dir, table1_stem(setup.game, steps, noise_type))
    store = RecordStore(stem + "_runs.json")
    # a malformed file, or none to tabulate, stops the call before any training
    if not store.read() and only_recorded:
        raise ConfigError(f"only_recorded=True: no runs recorded in {store.path}")
    keypoint_runs = KeypointRuns(given, recipes, env, num_keypoints, noise_type,
                                 os.path.join(exp_root, "keypoints"))
    # the agents this call does not train keep their recorded rows, every recorded seed:
    # a call for some agents adds to the game's table, never drops the others from it
    others = [(name, *key) for key, name in tables.AGENT_KINDS.items()
              if name not in {kind[0] for kind in kinds}]
    recorded_seeds = [r["seed"] + 1 for r in store.read() if isinstance(r.get("seed"), int)]
    used = [record for m in table1_plan(others, [max([*counts, *recorded_seeds])] * len(others),
                                        steps, random=False)
            for record in recorded(store, setup, m)]
    if used:
        names = dict.fromkeys(record["agent"] for record in used)
        print(f"also in the table, as recorded (not trained by this call): {', '.join(names)}")
    agent_runs = {}  # (agent, seed) -> the run folder of its record, for its floor
    for m in table1_plan(kinds, counts, steps):
        record = store.find(setup.key(m))
        agent_run = None
        if m.part == "floors":  # a floor of the old definition is tabulated, marked
            used += [r for r in [store.find(setup.old_floor_key(m))] if r is not None]
            agent_run = agent_runs.get((m.agent, m.seed))
        if record is not None:
            print(f"{m.label} ({m.part}): recorded in {store.path}, skipped")
        elif only_recorded:
            print(f"{m.label} ({m.part}): not recorded, left out")
            continue
        elif m.part == "floors" and agent_run is None:
            print(f"{m.label} ({m.part}): its agent run's folder is not on this machine (or "
                  f"holds another run), left out")
            continue
        else:
            record = dict(measure(setup, m, keypoint_runs, agent_run),
                          **setup.key(m), noise_type=noise_type, date=today(),
                          machine=machine_name(), commit=git_commit())
            store.add(record)
            write_table1(used + [record], setup, steps, seeds_of(kinds, counts), stem)
        if m.part == "agents":
            agent_runs[m.agent, m.seed] = run_of(record, m)
        used.append(record)
    write_table1(used, setup, steps, seeds_of(kinds, counts), stem, show=True)
    return tables.table1_results(used)


def run_of(record, m):
    """The run folder of agent measurement m's record if it is on this machine and is
    that run (its config has m's seed and steps: an older record may name a folder that
    a later run reused), else None."""
    run = record.get("run")
    config = run and read_json(os.path.join(run, "config.json"))
    if config and (config.get("seed"), config.get("num_iters")) == (m.seed, m.num_iters):
        return run
    return None


def seeds_of(kinds, counts):
    """{agent name: training seeds asked} of this call's agents."""
    return {name: count for (name, *_), count in zip(kinds, counts)}


if __name__ == "__main__":
    run_commandline(ex)
