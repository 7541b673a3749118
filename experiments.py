"""The paper's comparisons, one command each: trainings one after another, then a table
and pictures under docs/.

    python experiments.py figure2 with budget=30        # make figure2 BUDGET=30
    python experiments.py table1 with mspacman seeds=3 steps=100000   # make table1
    python experiments.py games with budget=11          # make games

figure2 (the paper's Figure 2 and section 4.1): PermaKey and Transporter trained for the
same wall time (`budget` minutes each, counted across resumes), on clean frames and with
distractor bars (`noise_type="both"`), on the same frames; then `compare_kpts` for each
noise, the two grids, and a table of keypoint quality against the RAM ground truth.

games: figure2's clean comparison on each game of the paper (MsPacman, Seaquest,
Frostbite, BattleZone, SpaceInvaders, each with its K), a table and a picture per game.

table1 (the paper's Table 1, one game): keypoint agents trained for `steps` environment
steps with `seeds` training seeds each, the floors measured with the same protocol (a
uniformly random policy; each agent kind after its warm-up only) and a control whose
keypoints sit at fixed places; each run's selected policy scored by the authors'
protocol; a table with the differences of means and their bootstrap intervals, and the
training curves. The keypoint runs are given (pkey_run, tp_run) or made with the
recipes (TABLE1_KEYPOINT_ARGS). Each finished run is also recorded beside the table
(<table1_stem>_runs.json), which a call on a machine without the run folders reads: it
trains only the runs not recorded there. The table holds every agent recorded for the
game and budget, so a call for some agents adds their rows to the others'.

Every training is the command line a user would type (printed before it starts), run in
its own process. A second call continues: finished runs are skipped, an interrupted one
resumes from its last checkpoint, a missing comparison is made.
"""
import collections
import datetime
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
from sacred import Experiment

import runs  # first: TensorFlow then starts without its start-up chatter
import preprocess
from common import ConfigError, atomic_path, numpy_scalar, read_json, write_json
from runs import check_options, one_line_errors

ex = runs.quiet_experiment(Experiment("experiments", save_git_info=False))

# The keypoint methods of the comparisons: script and how the table names it.
METHODS = {"permakey": ("pkey_train.py", "PermaKey"),
           "transporter": ("transporter_train.py", "Transporter")}


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
    out_dir = "docs"  # figure2_<noise>_cpu.png, figure2_table.md; table1_stem(): .md, _curves.png
    # games
    envs = ["mspacman", "seaquest", "frostbite", "battlezone", "space_invaders"]  # K: the paper's
    # table1
    agents = ["PKey-GNN", "Transporter-GNN", "Control-GNN"]  # names of plots.AGENT_KINDS
    seeds = 3  # training seeds 0 .. seeds-1 of every agent
    steps = 100_000  # environment steps per agent run
    warmup = 10_000  # warm-up steps of every agent run; the warm-up floor stops after them
    pkey_run = None  # PermaKey keypoint run of the agents (and the control); None: made
    tp_run = None  # Transporter keypoint run; None: made with its recipe
    agent_args = []  # more key=value for every agent_train.py call (training and evaluate)
    eval_seeds = [1, 2, 3, 4, 5]  # the protocol: evaluation seeds ...
    num_eval_episodes = 10  # ... and greedy episodes per seed and policy
    only_recorded = False  # True: tabulate the runs recorded beside the table, train none


# Numeric options, checked where figure2 reads its config (common.check_options).
OPTIONS = {"num_keypoints": "count", "budget": "positive", "seeds": "count", "steps": "count",
           "warmup": "count", "num_eval_episodes": "count"}

runs.add_game_configs(ex)  # `with seaquest`: env and the paper's num_keypoints


def run_script(script, args):
    """Run one of this repository's scripts with `args`, saying the command first."""
    print(" ".join(["python", script, *args]), flush=True)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), script)
    status = subprocess.run([sys.executable, path, *args]).returncode
    if status:
        raise ConfigError(f"{script} stopped with exit status {status} (its output is above); "
                          f"call the command again to continue")


def run_folders(root, noise_type, env, num_keypoints):
    """Numbered run folders <root>/<noise>/<env>/<K>/<id> (as the scripts lay them out),
    oldest first."""
    return run_folders_in(os.path.join(root, noise_type, preprocess.env_name(env),
                                       str(num_keypoints)))


def is_finished(run_dir):
    """A training that ran to its end (Sacred's record of the run's last command)."""
    record = read_json(os.path.join(run_dir, "run.json")) or {}
    return record.get("command") == "train" and record.get("status") == "COMPLETED"


def train_or_resume(method, noise_type, recipe, env, num_keypoints, train_args, exp_root):
    """Train one keypoint method with its recipe, or continue or skip its run; returns its
    folder. train_args: more key=value for the method's script (its budget first)."""
    script, _ = METHODS[method]
    root = os.path.join(exp_root, method)
    args = [recipe, f"env={env}", f"num_keypoints={num_keypoints}", f"noise_type={noise_type}",
            *train_args, f"exp_root={root}"]
    previous = run_folders(root, noise_type, env, num_keypoints)
    resumable = [d for d in previous if os.path.isdir(os.path.join(d, "ckpt_last"))]
    if resumable and is_finished(resumable[-1]):
        print(f"{method} {noise_type}: finished in {resumable[-1]}, skipped")
        return resumable[-1]
    if resumable:
        args.append(f"resume_dir={resumable[-1]}")
    run_script(script, ["with", *args])
    after = [d for d in run_folders(root, noise_type, env, num_keypoints)
             if os.path.isdir(os.path.join(d, "ckpt_last"))]
    if not after or not is_finished(after[-1]):
        raise ConfigError(f"{method} {noise_type}: the training stopped before its test; "
                          f"call the command again to continue it")
    return after[-1]


def compare(runs_of, noise_type, pkey_recipe, env, num_keypoints, train_args, exp_root):
    """compare_kpts of the two runs of one noise (made once); returns its folder."""
    base = os.path.join(exp_root, "compare")
    done = [d for d in run_folders(base, noise_type, env, num_keypoints)
            if os.path.isfile(os.path.join(d, "keypoint_metrics.json"))
            and read_json(os.path.join(d, "inputs.json")) == runs_of]
    if done:
        return done[-1]
    args = [pkey_recipe, f"env={env}", f"num_keypoints={num_keypoints}",
            f"noise_type={noise_type}", f"pkey_fname={runs_of['permakey']}",
            f"tp_fname={runs_of['transporter']}", f"save_base_dir={base}", *train_args]
    run_script("pkey_train.py", ["compare_kpts", "with", *args])
    folder = run_folders(base, noise_type, env, num_keypoints)[-1]
    write_json(os.path.join(folder, "inputs.json"), runs_of)
    return folder


def train_and_compare(env, num_keypoints, noise_type, budget, pkey_recipe, tp_recipe,
                      pkey_args, tp_args, exp_root):
    """Both methods trained (or continued) for `budget` minutes each on one game and noise,
    then compared on its test frames: {"compare": folder, "rows": keypoint metrics per
    method name, "runs": {method: (run folder, steps, minutes)}}."""
    recipes = {"permakey": pkey_recipe, "transporter": tp_recipe}
    budget_args = [f"max_minutes={budget}", "epochs=100000", "max_patience=100000"]
    args = {"permakey": budget_args + list(pkey_args), "transporter": budget_args + list(tp_args)}
    runs_of = {method: train_or_resume(method, noise_type, recipes[method], env, num_keypoints,
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


def save_table(table, path):
    """Write a markdown table and show it."""
    with open(path, "w") as f:
        f.write(table)
    print(table)
    print(f"table: {path}")


def machine_name():
    """The CPU (with its bf16 units) and cores, for the table."""
    from bench import machine
    info = machine()
    return f"{info['cpu']} ({info['cpu_flags'] or 'no AVX2'}), {info['cores']} cores"


def training_summary(run_dir):
    """(steps, minutes) of a run's training, from its resumable checkpoint's state."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(os.path.join(run_dir, "ckpt_last"))
    return (int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")),
            float(reader.get_tensor("seconds/.ATTRIBUTES/VARIABLE_VALUE")) / 60)


@ex.command
@one_line_errors
def figure2(_config, env, num_keypoints, budget, noise_types, pkey_recipe, tp_recipe, pkey_args,
            tp_args, exp_root, out_dir):
    """Train, compare and tabulate (module docstring)."""
    check_options(_config, OPTIONS)
    import plots
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
    save_table(plots.figure2_table(results, {m: name for m, (_, name) in METHODS.items()},
                                   env=env, budget=budget, cpu=machine_name(),
                                   date=datetime.date.today().isoformat()),
               os.path.join(out_dir, "figure2_table.md"))
    return results


# --------------------------------------------------------------------------------------
# games


@ex.command
@one_line_errors
def games(_config, envs, budget, pkey_recipe, tp_recipe, pkey_args, tp_args, exp_root, out_dir):
    """Both methods' recipes on every game of `envs` (with the paper's K of each), `budget`
    minutes each, on clean frames: docs/games_table.md and a picture per game."""
    check_options(_config, OPTIONS)
    import plots
    envs = [preprocess.canonical_env(env)
            for env in (envs.split(",") if isinstance(envs, str) else envs)]
    if not envs:
        raise ConfigError("envs=[]: expected one or more games")
    exp_root = exp_root or "games_exp"
    results = {}
    for game in envs:
        num_keypoints = preprocess.GAMES[game].num_keypoints
        results[game] = dict(train_and_compare(game, num_keypoints, "none", budget, pkey_recipe,
                                               tp_recipe, pkey_args, tp_args, exp_root),
                             num_keypoints=num_keypoints)
        save_grid(results[game]["compare"], os.path.join(out_dir, f"games_{game}.png"))
    save_table(plots.games_table(results, {m: name for m, (_, name) in METHODS.items()},
                                 budget=budget, cpu=machine_name(),
                                 date=datetime.date.today().isoformat()),
               os.path.join(out_dir, "games_table.md"))
    return results


# --------------------------------------------------------------------------------------
# table1

# table1's keypoint runs when none are given: each method's `quick` recipe for a number
# of steps rather than minutes, so that the agents read the same keypoints on any
# machine: PermaKey's `make demo` run (600 steps), Transporter for the 1600 steps it
# reaches in figure2's 20 minutes (docs/figure2_table.md).
TABLE1_KEYPOINT_ARGS = {"permakey": ["max_minutes=1000"],
                        "transporter": ["epochs=16", "max_minutes=1000"]}


def agent_kinds(names):
    """[(name, kp_type, kpt_encoder_type)] of Table 1's agent names (plots.AGENT_KINDS),
    case-insensitive; ConfigError naming the accepted ones."""
    import plots
    known = {name.lower(): (name, *key) for key, name in plots.AGENT_KINDS.items()}
    unknown = [n for n in names if str(n).lower() not in known]
    if unknown or not names or len({str(n).lower() for n in names}) != len(names):
        raise ConfigError(f"agents={','.join(map(str, names))}: expected distinct names among "
                          f"{', '.join(plots.AGENT_KINDS.values())}")
    return [known[str(n).lower()] for n in names]


def agent_runs(game_dir, seed, num_iters, keypoint_run, agent_args=()):
    """The agent run folders of `game_dir` trained with `seed` for `num_iters` steps on
    `keypoint_run` and with every key=value of `agent_args` (their Sacred config.json),
    oldest first."""
    found = []
    for run_dir in run_folders_in(game_dir):
        config = read_json(os.path.join(run_dir, "config.json")) or {}
        if (config.get("seed") == seed and config.get("num_iters") == num_iters
                and os.path.realpath(str(config.get("vis_ckpt_fname")))
                == os.path.realpath(keypoint_run) and has_options(config, agent_args)):
            found.append(run_dir)
    return found


def has_options(config, options):
    """Whether a recorded config holds each key=value of `options`, read as Sacred reads a
    command line (one value for a list key is a list of one)."""
    from sacred.arg_parser import _convert_value

    def as_list(value):
        return list(value) if isinstance(value, (list, tuple)) else [value]

    for option in options:
        key, assigns, text = str(option).partition("=")
        if not assigns:  # a named config
            continue
        value, recorded = _convert_value(text), config.get(key)
        if isinstance(value, (list, tuple)) or isinstance(recorded, (list, tuple)):
            value, recorded = as_list(value), as_list(recorded)
        if value != recorded:
            return False
    return True


def run_folders_in(folder):
    """Numbered run folders of `folder`, oldest first."""
    found = [d for d in glob.glob(os.path.join(folder, "*")) if os.path.basename(d).isdigit()]
    return sorted(found, key=lambda d: int(os.path.basename(d)))


def newest_evaluation(folder):
    """The evaluation.json of the last `agent_train.py evaluate` run in `folder`."""
    return read_json(os.path.join(run_folders_in(folder)[-1], "evaluation.json"))


def train_agent(game_dir, common, kp_type, encoder, keypoint_run, seed, num_iters, warmup, label,
                agent_args):
    """Train one agent run, or continue or skip it; returns its folder. `common` holds
    `agent_args`, which a run must have been trained with to be continued or skipped."""
    args = [*common, f"kp_type={kp_type}", f"kpt_encoder_type={encoder}",
            f"vis_ckpt_fname={keypoint_run}", "vis_load=best", f"num_iters={num_iters}",
            f"warmup_steps={warmup}", f"seed={seed}"]
    previous = [d for d in agent_runs(game_dir, seed, num_iters, keypoint_run, agent_args)
                if glob.glob(os.path.join(d, "ckpt", "ckpt-*.index"))]
    if previous and is_finished(previous[-1]):
        print(f"{label}: finished in {previous[-1]}, skipped")
        return previous[-1]
    if previous:
        args.append(f"resume_dir={previous[-1]}")
    run_script("agent_train.py", ["with", *args])
    done = [d for d in agent_runs(game_dir, seed, num_iters, keypoint_run, agent_args)
            if is_finished(d)]
    if not done:
        raise ConfigError(f"{label}: the training stopped before its end; call the command "
                          f"again to continue it")
    return done[-1]


def protocol_returns(run_dir, common, kp_type, encoder, game_dir, protocol):
    """The protocol's returns [eval seeds, episodes] of an agent run's selected policy,
    measured once (`agent_train.py evaluate`) and kept in <run>/protocol.json."""
    import agent_train
    step = agent_train.policy_checkpoint(run_dir)[1]
    path = os.path.join(run_dir, "protocol.json")
    kept = read_json(path) or {}
    if kept.get("protocol") == protocol and kept.get("step") == step:
        return kept
    run_script("agent_train.py", ["evaluate", "with", *common, f"kp_type={kp_type}",
                                  f"kpt_encoder_type={encoder}", f"load_ckpts={run_dir}"])
    evaluation = newest_evaluation(os.path.join(game_dir, "evaluate"))
    if evaluation["policies"] != [os.path.abspath(run_dir)]:
        raise ConfigError(f"the last evaluation in {game_dir}/evaluate is not of {run_dir}")
    kept = {"protocol": protocol, "step": evaluation["policy_steps"][0],
            "returns": [r[0] for r in evaluation["returns"]]}                 # [S, E]
    write_json(path, kept)
    return kept


def random_floor(root, common, seeds, protocol):
    """The protocol's returns [eval seeds, policies, episodes] of `seeds` uniformly random
    policies, measured once (kept in <root>/protocol.json)."""
    path = os.path.join(root, "protocol.json")
    kept = read_json(path) or {}
    if kept.get("protocol") == protocol and len(kept.get("returns", [[]])[0]) == seeds:
        return kept["returns"]
    run_script("agent_train.py", ["evaluate", "with", *common,
                                  "load_ckpts=" + ",".join(["random"] * seeds)])
    found = sorted(glob.glob(os.path.join(root, "*", "*", "*", "*", "evaluate", "*",
                                          "evaluation.json")), key=os.path.getmtime)
    write_json(path, {"protocol": protocol, "returns": read_json(found[-1])["returns"]})
    return read_json(found[-1])["returns"]


def run_record(run_dir, protocol):
    """What the table says of one agent run."""
    timing = read_json(os.path.join(run_dir, "time.json")) or {}
    return {"run": run_dir, "step": protocol["step"], "returns": protocol["returns"],
            "score": float(np.mean(protocol["returns"])), "seconds": timing.get("seconds"),
            "cpu_seconds": timing.get("cpu_seconds"), "cpus": timing.get("cpus", []),
            "evaluations": read_json(os.path.join(run_dir, "evaluations.json")) or []}


# Every finished table1 measurement is also kept in docs/ beside its table
# (<table1_stem>_runs.json, one line per run), so that the table's data outlives the run
# folders: a call on a machine without them skips the recorded runs, trains the others
# and tabulates all. A record matches a run by the fields of `measurement_key`.
def measurement_key(part, name, seed, num_iters, warmup, protocol, agent_args, keypoints):
    """The fields that make two table1 measurements the same one. seed: the training
    seed, or the list of them for the random policies (one each); keypoints: how the
    agent's keypoint run was made (keypoint_source), None for the random policies."""
    return {"part": part, "agent": name, "seed": seed, "num_iters": num_iters,
            "warmup": warmup, "protocol": protocol, "agent_args": [str(a) for a in agent_args],
            "keypoints": keypoints}


def keypoint_source(method, given, recipe):
    """How a method's keypoint run is made: the recipe and its arguments, or the folder."""
    if given is not None:
        return "run " + os.path.realpath(str(given))
    return " ".join([recipe, *TABLE1_KEYPOINT_ARGS[method]])


def checkpoint_digest(run_dir, which="best"):
    """The first 12 hex digits of the SHA-256 of a keypoint run's checkpoint files: two
    records with the same digest read the same keypoint model."""
    import hashlib
    prefix = runs.checkpoint_path(run_dir, which)
    digest = hashlib.sha256()
    for path in sorted(glob.glob(prefix + ".*")):
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:12]


def read_records(path):
    """The records of a table1_<game>_runs.json ([] when there is none)."""
    try:
        records = read_json(path, [])
        problem = None if isinstance(records, list) and all(
            isinstance(r, dict) for r in records) else "not a list of objects"
    except ValueError as error:
        problem = error
    if problem:
        raise ConfigError(f"{path}: expected a JSON list of run records ({problem}); "
                          f"mend it or move it away")
    return records


def write_records(path, records):
    """One JSON line per record, written atomically (a diff shows the runs that changed)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(r, sort_keys=True, default=numpy_scalar)
                                    for r in records) + "\n]\n")


def keypoints_text(sources, records):
    """{method: how its keypoint runs were made, and the checkpoints `records` read}."""
    text = {}
    for method, source in sources.items():
        digests = collections.Counter(r.get("keypoint_checkpoint") or "not recorded"
                                      for r in records if r.get("keypoint_method") == method)
        if digests:
            text[method] = f"`{source}`, checkpoints " + runs_of_each(digests, ", ")
    return text


def machines_text(records):
    """The machines of `records`, with their numbers of runs when there are several."""
    counts = collections.Counter(r.get("machine") or "machine not recorded" for r in records)
    return next(iter(counts)) if len(counts) == 1 else runs_of_each(counts, "; ")


def runs_of_each(counts, separator):
    """"a (2 runs), b (1 run)" of a Counter of runs."""
    import plots
    return separator.join(f"{what} ({plots.counted(n, 'run')})" for what, n in counts.items())


def find_record(records, key):
    return next((r for r in records if all(r.get(k) == v for k, v in key.items())), None)


def table1_stem(game, steps):
    """The file name (without suffix) of a game's table under out_dir: Atari-100k's is
    table1_<game>; another budget carries its steps, so that it never replaces that one."""
    return f"table1_{game}" if steps == 100_000 else f"table1_{game}_{steps}steps"


@ex.command
@one_line_errors
def table1(_config, env, num_keypoints, agents, seeds, steps, warmup, pkey_run, tp_run,
           pkey_recipe, tp_recipe, agent_args, eval_seeds, num_eval_episodes, only_recorded,
           exp_root, out_dir):
    """Train, evaluate and tabulate the agents of one game (module docstring)."""
    check_options(_config, OPTIONS)
    import plots
    kinds = agent_kinds(agents.split(",") if isinstance(agents, str) else list(agents))
    if warmup >= steps:
        raise ConfigError(f"warmup={warmup}: expected fewer than steps={steps}")
    for name, path in (("pkey_run", pkey_run), ("tp_run", tp_run)):
        if path is not None and not os.path.isdir(str(path)):
            raise ConfigError(f"{name}={path!r}: not a keypoint run folder")
    exp_root = exp_root or "table1_exp"
    game = preprocess.env_name(env)
    # the keypoint runs the agents read: given, or made with the recipes when a run needs one
    given = {"permakey": pkey_run, "transporter": tp_run}
    recipes = {"permakey": pkey_recipe, "transporter": tp_recipe}
    sources = {m: keypoint_source(m, given[m], recipes[m]) for m in METHODS}
    keypoint_runs = dict(given)
    import agent_train

    def keypoint_run(method):
        if keypoint_runs[method] is None:
            keypoint_runs[method] = train_or_resume(
                method, "none", recipes[method], env, num_keypoints,
                TABLE1_KEYPOINT_ARGS[method], os.path.join(exp_root, "keypoints"))
        return keypoint_runs[method]

    protocol = {"eval_seeds": list(eval_seeds), "num_eval_episodes": num_eval_episodes}
    common = [env, f"num_keypoints={num_keypoints}", *map(str, agent_args),
              "eval_seeds=" + ",".join(map(str, eval_seeds)),
              f"num_eval_episodes={num_eval_episodes}"]
    results = {"random": None, "floors": {}, "agents": {}}
    stem = os.path.join(out_dir, table1_stem(game, steps))
    records_path = stem + "_runs.json"
    # a malformed file, or none to tabulate, stops the call before any training
    if not read_records(records_path) and only_recorded:
        raise ConfigError(f"only_recorded=True: no runs recorded in {records_path}")
    used = []  # the records of this table

    def measured(key, measure):
        """The record of `key`: the one kept beside the table, or measure() and keep it
        (the file read again first: a call for other agents may have added to it); None
        if it is not recorded and only_recorded."""
        record = find_record(read_records(records_path), key)
        if record is None and only_recorded:
            print(f"{key['agent']} ({key['part']}) seed {key['seed']}: not recorded, left out")
            return None
        if record is None:
            record = dict(measure(), **key, date=datetime.date.today().isoformat(),
                          machine=machine_name())
            write_records(records_path, read_records(records_path) + [record])
        else:
            print(f"{key['agent']} ({key['part']}) seed {key['seed']}: recorded in "
                  f"{records_path}, skipped")
        used.append(record)
        return record

    def write_table():
        os.makedirs(out_dir, exist_ok=True)
        table = plots.table1_table(results, env=game, steps=steps, seeds=seeds, warmup=warmup,
                                   keypoint_runs=keypoints_text(sources, used),
                                   cpu=machines_text(used),
                                   date=datetime.date.today().isoformat(),
                                   records=os.path.basename(records_path))
        with open(stem + ".md", "w") as f:
            f.write(table)
        plots.save_figure(plots.table1_curves(results, game, steps), stem + "_curves.png")
        return table

    def agent_key(part, name, kp_type, seed, num_iters):
        return measurement_key(part, name, seed, num_iters, warmup, protocol, agent_args,
                               sources[agent_train.KEYPOINT_KINDS[kp_type]])

    parts = (("floors", warmup), ("agents", steps))
    # the agents this call does not train keep their recorded rows: a call for some
    # agents adds to the game's table, never drops the others from it
    others = [(name, kp_type) for (kp_type, _), name in plots.AGENT_KINDS.items()
              if name not in {kind[0] for kind in kinds}]
    recorded = read_records(records_path)
    for part, num_iters in parts:
        for seed in range(seeds):
            for name, kp_type in others:
                record = find_record(recorded, agent_key(part, name, kp_type, seed, num_iters))
                if record is not None:
                    used.append(record)
                    results[part].setdefault(name, []).append(record)
    if used:
        names = dict.fromkeys([*results["floors"], *results["agents"]])
        print(f"also in the table, as recorded (not trained by this call): {', '.join(names)}")

    # the floor of every agent: uniformly random policies, one per training seed
    root = os.path.join(exp_root, "random")
    random = measured(
        measurement_key("random", "random policy", list(range(seeds)), None, None, protocol,
                        agent_args, None),
        lambda: {"returns": random_floor(root, common + [f"exp_root={root}"], seeds,
                                         protocol)})
    results["random"] = random and random["returns"]
    # then each agent kind after its warm-up only, then the agents, seed after seed
    for part, num_iters in parts:
        root = os.path.join(exp_root, part)
        for seed in range(seeds):
            for name, kp_type, encoder in kinds:
                method = agent_train.KEYPOINT_KINDS[kp_type]
                key = agent_key(part, name, kp_type, seed, num_iters)

                def measure():
                    game_dir = os.path.join(root, "none", kp_type, encoder, game)
                    label = f"{name} {'warm-up only' if part == 'floors' else ''} seed {seed}"
                    run_args = common + [f"exp_root={root}"]
                    run_dir = train_agent(game_dir, run_args, kp_type, encoder,
                                          keypoint_run(method), seed, num_iters, warmup,
                                          " ".join(label.split()), agent_args)
                    kept = protocol_returns(run_dir, run_args, kp_type, encoder, game_dir,
                                            protocol)
                    return dict(run_record(run_dir, kept), keypoint_method=method,
                                keypoint_checkpoint=checkpoint_digest(keypoint_run(method)))

                record = measured(key, measure)
                if record is not None:
                    results[part].setdefault(name, []).append(record)
                    write_table()
    table = write_table()
    print(table)
    print(f"table: {stem}.md")
    return results


if __name__ == "__main__":
    runs.run_commandline(ex)
