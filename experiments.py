"""The paper's comparisons, one command each: trainings one after another, then a table
and pictures under docs/results/.

    python experiments.py figure2 with budget=30        # make figure2 BUDGET=30
    python experiments.py games with budget=11          # make games
    python experiments.py table1 with mspacman seeds=3 steps=100000   # make table1
    python experiments.py table1 with mspacman noise_type=both seeds=5,5,3   # make table2
    python experiments.py probes with probe_games=mspacman probe_seeds=1    # make probes

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
(`load_ckpts=RUN@STEP`: no training of its own). Every score is measured twice:
deterministic (the paper's protocol) and with sticky actions. The table gives the
differences of means with Welch t intervals and the smallest difference the seeds can
detect; every finished measurement is recorded beside it (<table1_stem>_runs.json), so
that a call on a machine without the run folders trains only what is missing.
agent_tables.py holds the measurements, their folders and records.

probes (issue 40): AtariARI-style linear probes of every keypoint model's
representation against the console RAM, per game and keypoint seed (probe_runs.py).

Every training is the command line a user would type (printed before it starts), run in
its own process in a folder of its own (runner.py). A second call continues: finished
runs are skipped, an interrupted one resumes from its last checkpoint, a missing
comparison is made.
"""
import os
import shutil

import tf_quiet  # noqa: F401 (first: TensorFlow starts without its start-up chatter)
from sacred import Experiment

import agent_tables
import figures
import probe_runs
import runner
import tables
from common import (ConfigError, as_list, check_options, one_line_errors, quiet_experiment,
                    read_json)
from games import GAMES, add_game_configs, canonical_env
from run_folders import keypoint_run_folder, run_commandline

ex = quiet_experiment(Experiment("experiments", save_git_info=False))

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
    # probes
    probe_games = "mspacman,seaquest,frostbite,battlezone"  # AtariARI-annotated games
    probe_seeds = None  # keypoint seeds per game: None = 3 on mspacman, seaquest, else 1 (issue 40)
    probe_frames = 10_000  # probe split: training frames of a random policy (valid, test: below)
    probe_eval_frames = 2_000  # probe split: validation and test frames each
    probe_data_seed = 1  # other episodes than the keypoint trainings' (their data_seed 0)
    probe_data_dir = None  # None: data/probes_<frames>x<eval>_seed<data seed>
    probe_precision = "auto"  # as the agents compute the keypoint models (resolve_precision)
    probe_protocol = {}  # overrides of probes.PROTOCOL (lr, batch_size, epochs, patience): tests


# Numeric options, checked where each command reads its config (common.check_options).
OPTIONS = {"num_keypoints": "count", "budget": "positive", "steps": "count",
           "warmup": "count", "num_eval_episodes": "count"}  # table1's seeds: seed_counts

add_game_configs(ex)  # `with seaquest`: env and the paper's num_keypoints


# --------------------------------------------------------------------------------------
# Scripts and their runs


def compare(runs_of, noise_type, pkey_recipe, env, num_keypoints, train_args, exp_root):
    """compare_kpts of the two runs of one noise, made once into a folder of its own;
    returns its run folder."""
    base = os.path.join(exp_root, "compare", runner.key_digest([runs_of, pkey_recipe, train_args]))
    settings = {"save_base_dir": base, "noise_type": noise_type, "env": env,
                "num_keypoints": num_keypoints}
    folder, _ = keypoint_run_folder("compare_kpts", settings)
    done = runner.latest_run(folder, "keypoint_metrics.json")
    if done:
        return done
    args = [pkey_recipe, f"env={env}", f"num_keypoints={num_keypoints}",
            f"noise_type={noise_type}", f"pkey_fname={runs_of['permakey']}",
            f"tp_fname={runs_of['transporter']}", f"save_base_dir={base}", *train_args]
    runner.run_script("pkey_train.py", ["compare_kpts", "with", *args])
    done = runner.latest_run(folder, "keypoint_metrics.json")
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
    runs_of = {method: runner.train_keypoints(method, noise_type, recipes[method], env,
                                              num_keypoints, args[method], exp_root)
               for method in runner.METHODS}
    folder = compare(runs_of, noise_type, pkey_recipe, env, num_keypoints, pkey_args, exp_root)
    rows = read_json(os.path.join(folder, "keypoint_metrics.json"))["rows"]
    return {"compare": folder, "rows": rows,
            "runs": {method: (d, *runner.training_summary(d)) for method, d in runs_of.items()}}


def save_grid(compare_folder, picture):
    """The first Figure-2 grid of a compare_kpts folder, copied to `picture`."""
    os.makedirs(os.path.dirname(picture) or ".", exist_ok=True)
    shutil.copyfile(os.path.join(compare_folder, "compare_0.png"), picture)
    print(f"grid: {picture}")


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
    runner.save_table(tables.figure2_table(results, runner.method_names(), env=env, budget=budget,
                                    cpu=runner.machine_name(), date=runner.today()),
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
    runner.save_table(tables.games_table(results, runner.method_names(), budget=budget,
                                         cpu=runner.machine_name(), date=runner.today()),
                      os.path.join(out_dir, "games_table.md"))
    return results


# --------------------------------------------------------------------------------------
# table1: the measurements, their records, and how one is measured


def write_table1(records, setup, steps, seeds, stem, show=False):
    """The table and its curves from `records` (tables.table1_table), shown if `show`.
    seeds: {agent name: training seeds asked}."""
    table = tables.table1_table(records, env=setup.game, steps=steps, seeds=seeds,
                                warmup=setup.warmup, sources=setup.sources, date=runner.today(),
                                records_name=os.path.basename(stem) + "_runs.json",
                                noise_type=setup.noise_type)
    frames = setup.game + ("" if setup.noise_type == "none" else
                           f" with distractors (noise_type={setup.noise_type})")
    figures.save_figure(figures.table1_curves(tables.table1_results(records), frames, steps),
                        stem + "_curves.png")
    runner.save_table(table, stem + ".md", show)


@ex.command
@one_line_errors
def table1(_config, env, num_keypoints, noise_type, agents, seeds, steps, warmup, pkey_run,
           tp_run, pkey_recipe, tp_recipe, agent_args, eval_seeds, num_eval_episodes,
           only_recorded, exp_root, out_dir):
    """Train, evaluate and tabulate the agents of one game (module docstring)."""
    check_options(_config, OPTIONS)
    kinds = agent_tables.agent_kinds(as_list(agents))
    counts = agent_tables.seed_counts(seeds, kinds)
    if warmup >= steps:
        raise ConfigError(f"warmup={warmup}: expected fewer than steps={steps}")
    if noise_type not in agent_tables.TABLE_OF_NOISE:
        raise ConfigError(f"noise_type={noise_type!r}: expected "
                          f"{' or '.join(agent_tables.TABLE_OF_NOISE)} "
                          f"(Table 1 clean, Table 2 with both bars)")
    given = {"permakey": pkey_run, "transporter": tp_run}
    for method, name in (("permakey", "pkey_run"), ("transporter", "tp_run")):
        if given[method] is not None and not os.path.isdir(str(given[method])):
            raise ConfigError(f"{name}={given[method]!r}: not a keypoint run folder")
    exp_root = exp_root or f"{agent_tables.TABLE_OF_NOISE[noise_type]}_exp"
    recipes = {"permakey": pkey_recipe, "transporter": tp_recipe}
    setup = agent_tables.Table1Setup(env, num_keypoints, warmup,
                        {"eval_seeds": list(eval_seeds), "num_eval_episodes": num_eval_episodes},
                        tuple(agent_args), {m: agent_tables.keypoint_source(m, given[m], recipes[m])
                                            for m in runner.METHODS}, exp_root, noise_type)
    stem = os.path.join(out_dir, agent_tables.table1_stem(setup.game, steps, noise_type))
    store = runner.RecordStore(stem + "_runs.json")
    # a malformed file, or none to tabulate, stops the call before any training
    if not store.read() and only_recorded:
        raise ConfigError(f"only_recorded=True: no runs recorded in {store.path}")
    keypoint_runs = agent_tables.KeypointRuns(given, recipes, env, num_keypoints, noise_type,
                                 os.path.join(exp_root, "keypoints"))
    # the agents this call does not train keep their recorded rows, every recorded seed:
    # a call for some agents adds to the game's table, never drops the others from it
    others = [(name, *key) for key, name in tables.AGENT_KINDS.items()
              if name not in {kind[0] for kind in kinds}]
    recorded_seeds = [r["seed"] + 1 for r in store.read() if isinstance(r.get("seed"), int)]
    most = [max([*counts, *recorded_seeds])] * len(others)
    used = [record for m in agent_tables.table1_plan(others, most, steps, random=False)
            for record in agent_tables.recorded(store, setup, m)]
    if used:
        names = dict.fromkeys(record["agent"] for record in used)
        print(f"also in the table, as recorded (not trained by this call): {', '.join(names)}")
    agent_runs = {}  # (agent, seed) -> the run folder of its record, for its floor
    for m in agent_tables.table1_plan(kinds, counts, steps):
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
            record = dict(agent_tables.measure(setup, m, keypoint_runs, agent_run),
                          **setup.key(m), noise_type=noise_type, date=runner.today(),
                          machine=runner.machine_name(), commit=runner.git_commit())
            store.add(record)
            write_table1(used + [record], setup, steps, agent_tables.seeds_of(kinds, counts),
                         stem)
        if m.part == "agents":
            agent_runs[m.agent, m.seed] = agent_tables.run_of(record, m)
        used.append(record)
    write_table1(used, setup, steps, agent_tables.seeds_of(kinds, counts), stem, show=True)
    return tables.table1_results(used)


# --------------------------------------------------------------------------------------
# probes: AtariARI-style linear probes of every keypoint model (issue 40, docs/probes.md)
#
#     python experiments.py probes with probe_games=mspacman probe_seeds=1   # make probes
#
# For each game and keypoint-model seed: the keypoint runs (PermaKey and Transporter with
# table1's recipes, runner.TABLE1_KEYPOINT_ARGS, shared with the agent tables: seed 0's under
# <exp_root>/keypoints, seed s's under <exp_root>/keypoints_seed<s>), a probe split of
# random-policy frames that no keypoint model trained on (probe_data_seed), each model's
# representations of it extracted once and cached under its run (<run>/probes/), then one
# probes.probe_table per representation, each recorded in out_dir/probes_runs.json (a
# second call, here or on a machine with none of the runs, skips it), and
# out_dir/probes_table.md rewritten after each.


@ex.command
@one_line_errors
def probes(_config, probe_games, probe_seeds, probe_frames, probe_eval_frames, probe_data_seed,
           probe_data_dir, probe_precision, probe_protocol, pkey_recipe, tp_recipe, pkey_args,
           tp_args, exp_root, out_dir):
    """Probe every representation of every game and keypoint seed; write the table
    (the section's comment above)."""
    import time

    from datasets import DEFAULT_DATA_DIR
    from hardware import resolve_precision
    from probes import PROTOCOL, probe_table
    check_options(_config, probe_runs.PROBE_OPTIONS)
    plan = probe_runs.probe_plan(probe_games, probe_seeds)
    unknown = set(probe_protocol) - set(PROTOCOL)
    if unknown:
        raise ConfigError(f"probe_protocol: unknown settings {sorted(unknown)}; known: "
                          f"{sorted(PROTOCOL)}")
    precision = resolve_precision(probe_precision)
    exp_root = exp_root or "table1_exp"
    recipes = {"permakey": pkey_recipe, "transporter": tp_recipe}
    extra_args = {"permakey": list(pkey_args), "transporter": list(tp_args)}
    settings = probe_runs.probe_settings(probe_frames, probe_eval_frames, probe_data_seed,
                                         precision, dict(probe_protocol), recipes, extra_args)
    data_root = probe_data_dir or os.path.join(
        DEFAULT_DATA_DIR, f"probes_{probe_frames}x{probe_eval_frames}_seed{probe_data_seed}")
    table_path = os.path.join(out_dir, "probes_table.md")
    store = runner.RecordStore(os.path.join(out_dir, "probes_runs.json"))
    started, machine = time.time(), runner.machine_name()
    for game, count in plan:
        splits = None  # the game's probe frames, read when a result needs them
        for seed in range(count):
            done = {name for name in probe_runs.PROBE_REPRESENTATIONS
                    if store.find(probe_runs.probe_key(game, seed, name, settings))}
            if len(done) == len(probe_runs.PROBE_REPRESENTATIONS):
                print(f"probes {game} seed {seed}: every representation measured, skipped")
                continue
            runs = probe_runs.probe_keypoint_runs(game, seed, exp_root, recipes, extra_args)
            if splits is None:
                splits = probe_runs.probe_splits(game, data_root, probe_frames, probe_eval_frames,
                                      probe_data_seed)
            features = probe_runs.ProbeFeatures(game, seed, runs, splits,
                                     f"{game}_{probe_frames}x{probe_eval_frames}_seed"
                                     f"{probe_data_seed}", precision)
            for name, (label, model, representation) in probe_runs.PROBE_REPRESENTATIONS.items():
                if name in done:
                    print(f"probes {game} seed {seed} {label}: measured, skipped")
                    continue
                arrays, extract_seconds = features(model)
                print(f"probes {game} seed {seed} {label}: training the probes", flush=True)
                probe_started = time.time()
                table = probe_table({split: arrays[split][representation] for split in splits},
                                    {split: ram for split, (_, ram) in splits.items()}, game,
                                    seed=seed, **probe_protocol)
                result = dict(table, game=game, seed=seed, representation=name, model=model,
                              features=representation, settings=settings,
                              keypoint_runs=runs, model_key=features.model(model)[1],
                              extract_seconds=extract_seconds,
                              probe_seconds=time.time() - probe_started, date=runner.today(),
                              machine=machine, commit=runner.git_commit())
                store.add(result)
                print(f"probes {game} seed {seed} {label}: F1 "
                      f"{result['across_categories_avg']:.3f} across categories "
                      f"({result['probe_seconds']:.0f} s)", flush=True)
                results = probe_runs.read_probe_results(store, settings)
                runner.save_table(probe_runs.probes_table(results, runner.today()), table_path,
                                  show=False)
    results = probe_runs.read_probe_results(store, settings)
    if not results:
        raise ConfigError(f"no probe results of these settings in {store.path}")
    runner.save_table(probe_runs.probes_table(results, runner.today()), table_path)
    print(f"probes: {(time.time() - started) / 60:.1f} minutes of wall time for this call")
    return {f"{r['game']}/seed{r['seed']}/{r['representation']}": r["across_categories_avg"]
            for r in results}


if __name__ == "__main__":
    run_commandline(ex)
