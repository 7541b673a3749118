"""The agent tables (the paper's Tables 1 and 2, one game each): the measurements as data
(Measurement, table1_plan), how each is trained and scored by the authors' protocol
(measure), the records that outlive the run folders (runner.RecordStore), and the table and
curves written from them (write_table1). experiments.py's `table1` command runs them.

Folders: every measurement has its own, named after what it measures (Table1Setup):
    <exp_root>/keypoints/<method>/<noise>/<env>/<K>/<id>     its keypoint runs
    <exp_root>/<part>/<agent>/seed<s>_<steps>steps_<digest>/<noise>/<kp_type>/<encoder>/
        <env>/<id>, evaluate/<id>                           an agent run and its protocol
    <exp_root>/random/seeds<n>_<digest>/.../evaluate/<id>   the random policies
A digest (runner.key_digest) is of everything else the measurement depends on.
"""
import datetime
import os
from dataclasses import dataclass, replace

import numpy as np

import runner
import tables
from agent_runs import policy_checkpoint, selected_steps
from common import ConfigError, counts_per, read_json
from games import env_name
from keypoint_models import KEYPOINT_KINDS


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
    return counts_per(seeds, len(kinds), "seeds", "agent")


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
            return os.path.join(self.exp_root, "random",
                                f"seeds{len(m.seed)}_{runner.key_digest(key)}")
        return os.path.join(self.exp_root, m.part, m.agent,
                            f"seed{m.seed}_{m.num_iters}steps_{runner.key_digest(key)}")

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
    return " ".join([recipe, *runner.TABLE1_KEYPOINT_ARGS[method]])


class KeypointRuns:
    """The keypoint run each method's agents read: the given one, or trained with its
    recipe (runner.TABLE1_KEYPOINT_ARGS) on the table's frames (noise_type) the first time a
    measurement needs it."""

    def __init__(self, given, recipes, env, num_keypoints, noise_type, root):
        self.folders, self.recipes = dict(given), recipes
        self.env, self.num_keypoints, self.noise_type = env, num_keypoints, noise_type
        self.root = root

    def folder(self, method):
        if self.folders[method] is None:
            self.folders[method] = runner.train_keypoints(
                method, self.noise_type, self.recipes[method], self.env, self.num_keypoints,
                runner.TABLE1_KEYPOINT_ARGS[method], self.root)
        return self.folders[method]


def evaluation_of(folder, policies, protocol, steps, sticky):
    """(run folder, evaluation.json) of the last `agent_train.py evaluate` run in `folder`
    if it scored `policies` (["random", ...] or [run folder]) at `steps` (None: any) with
    `protocol` and sticky-action probability `sticky`, and counted its distinct starts;
    else None."""
    done = runner.latest_run(folder, "evaluation.json")
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
        runner.run_script("agent_train.py", ["evaluate", "with", *setup.args(m, sticky),
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
    run_dir = runner.train_or_resume(
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


def recorded(store, setup, m):
    """The records of measurement m: its own, and for a floor the one measured under the
    old definition (old_floor_key), if recorded."""
    keys = [setup.key(m)] + ([setup.old_floor_key(m)] if m.part == "floors" else [])
    return [record for key in keys if (record := store.find(key)) is not None]


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
