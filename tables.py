"""Every table: the agents' protocol scores and the keypoint quality of viz.ipynb, and the
markdown tables experiments.py writes under docs/results/ (figure2, games, table1).

Table 1's agent names live here (AGENT_KINDS): the tables name their rows with them and
experiments.py accepts them as `agents`. NumPy only: drawing a table loads no model.
"""
import collections
import os
from dataclasses import dataclass, field

import numpy as np

import stats
from run_folders import AGENT_LEVELS, latest_per_group
from games import GAMES

# Table 1's agents: (kp_type, kpt_encoder_type) -> name, and its games in its order.
# The controls (kp_type "fixed": keypoints at fixed places) are ours, not the paper's.
PAPER_AGENT_KINDS = {("permakey", "cnn"): "PKey-CNN", ("permakey", "gnn"): "PKey-GNN",
                     ("transporter", "cnn"): "Transporter",
                     ("transporter", "gnn"): "Transporter-GNN"}
AGENT_KINDS = {**PAPER_AGENT_KINDS, ("fixed", "cnn"): "Control-CNN",
               ("fixed", "gnn"): "Control-GNN"}
TABLE1_GAMES = tuple(env for env, game in GAMES.items() if game.rl_table)


def agent_kind(run):
    """Table 1's name of an agent run (or evaluation): PKey-CNN, ..., Transporter-GNN."""
    key = (run.labels["kp_type"], run.labels["kpt_encoder_type"])
    return AGENT_KINDS.get(key, "-".join(key))


def counted(count, noun):
    """"1 seed", "3 seeds": a count and its noun, plural unless one."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def markdown_row(cells):
    return "| " + " | ".join(cells) + " |"


def markdown_header(columns):
    return [markdown_row(columns), "|" + "---|" * len(columns)]


# ----------------------------------------------------------------------------
# viz.ipynb's tables


@dataclass
class Table:
    """A titled table of string cells under `columns`, printed aligned, then its notes."""
    title: str
    columns: list
    rows: list
    notes: list = field(default_factory=list)

    def __str__(self):
        widths = [max(map(len, column)) for column in zip(self.columns, *self.rows)]
        lines = [self.title] + ["  ".join(cell.ljust(width) for cell, width in zip(cells, widths))
                                for cells in [self.columns] + self.rows]
        return "\n".join(lines + self.notes)


def score_tables(evaluation_runs):
    """Table 1 per noise type (Table 2 of the paper: "both"), from `agent_train.py
    evaluate` outputs; see score_table."""
    if not evaluation_runs:
        print("no RL evaluations — make one with `python agent_train.py evaluate with "
              'mspacman kp_type="permakey" load_ckpts=A,B,C eval_seeds=1,2,3,4,5`')
        return []
    noise_types = sorted({run.labels["noise_type"] for run in evaluation_runs})
    return [score_table(noise_type, [run for run in evaluation_runs
                                     if run.labels["noise_type"] == noise_type])
            for noise_type in noise_types]


def in_table_order(found, canonical):
    """`found` names in the paper's `canonical` order, others after them, sorted."""
    return [name for name in canonical if name in found] + sorted(set(found) - set(canonical))


def score_table(noise_type, evaluation_runs):
    """Rows the paper's four agent kinds (and any other found), columns the games evaluated,
    cells "median ± std" (stats.protocol_score) of the latest evaluate output of each
    kind and game, "-" where there is none. Its notes say what each cell pooled."""
    latest = latest_per_group(evaluation_runs, AGENT_LEVELS)
    games = in_table_order({run.labels["env"] for run in latest}, TABLE1_GAMES)
    kinds = in_table_order({agent_kind(run) for run in latest}
                           | set(PAPER_AGENT_KINDS.values()), AGENT_KINDS.values())
    cells, notes = {}, []
    for run in latest:
        returns = np.asarray(run.read("evaluation.json")["returns"], float)  # [S, P, E]
        cells[agent_kind(run), run.labels["env"]] = "{:.1f} ± {:.1f}".format(
            *stats.protocol_score(returns))
        notes.append(f"{agent_kind(run)} {run.labels['env']}: {returns.shape[0]} seeds x "
                     f"{returns.shape[1]} policies x {returns.shape[2]} episodes ({run.path})")
    rows = [[kind] + [cells.get((kind, game), "-") for game in games] for kind in kinds]
    return Table(f"scores, noise {noise_type}: median over evaluation seeds ± that seed's "
                 f"pooled std (the paper's protocol)", ["agent"] + games, rows, notes)


def metric_cell(metrics, key):
    value = metrics.get(key)
    return "-" if value is None or not np.isfinite(value) else f"{value:.3f}"


def keypoint_quality_tables(keypoint_runs):
    """The keypoint quality each run's evaluate measured against RAM object boxes
    (evaluate/keypoint_metrics.json, kpt_metrics): one row per run and method, the
    random-keypoint row included. One table, in a list."""
    rows = []
    for run in keypoint_runs:
        measured = run.read(os.path.join("evaluate", "keypoint_metrics.json"))
        for method, metrics in (measured or {}).get("rows", {}).items():
            rows.append([run.name, method] + [metric_cell(metrics, key) for key in
                                              ("precision", "recall", "on_distractor",
                                               "attraction", "robustness")]
                        + [f"{measured['radius']:g}"])
    if not rows:
        print("no keypoint_metrics.json in the evaluate folders — `python pkey_train.py "
              "evaluate with run_dir=RUN` writes it for games with RAM ground truth "
              "(mspacman, seaquest, frostbite, space_invaders)")
        return []
    return [Table("keypoint quality against object boxes from the console RAM",
                  ["run", "method", "precision", "recall", "on-distractor", "attraction",
                   "robustness", "radius px"], rows)]


# ----------------------------------------------------------------------------
# experiments.figure2 and experiments.games


FIGURE2_COLUMNS = ("method", "noise", "precision", "recall", "spread px", "on-distractor",
                   "attraction", "robustness", "steps", "minutes")


def figure2_table(results, method_names, env, budget, cpu, date):
    """Markdown table of experiments.figure2: one row per method and noise type, and the
    random keypoints of each noise type.

    results: {noise_type: {"rows": keypoint_metrics.json rows of compare_kpts (method
    name -> metrics), "runs": {method: (run folder, steps, minutes)}}}, the clean
    reference first. robustness here is the Figure-2 ratio across two trainings: the
    method's precision with bars (trained and tested with them) over its precision in
    the clean run (same recipe and budget).
    """
    clean = next(iter(results))
    lines = [f"# Figure 2 on a CPU: {env}, {budget} minutes of training per model", "",
             f"Made by `make figure2 BUDGET={budget:g}` on {date}; {cpu}. Test split, RAM "
             f"ground truth, 4 px. attraction = on-distractor / that of uniformly random "
             f"keypoints on the same bars; robustness = precision with bars / precision of "
             f"the same method's clean run.", "", *markdown_header(FIGURE2_COLUMNS)]
    notes = []
    for noise_type, result in results.items():
        for method, name, metrics, run in compared_rows(result, method_names):
            cells = [name, noise_type, *quality_cells(metrics)]
            cells += [metric_cell(metrics, key) for key in ("on_distractor", "attraction")]
            reference = results[clean]["rows"].get(name, {}).get("precision")
            robust = (metrics["precision"] / reference
                      if noise_type != clean and method != "random" and reference else None)
            cells.append("-" if robust is None else f"{robust:.2f}")
            lines.append(markdown_row(cells + run_cells(run)))
            if run:
                notes.append(f"- {name}, noise {noise_type}: `{run[0]}`")
    return "\n".join(lines + ["", "Run folders:", *notes, ""])


def compared_rows(result, method_names):
    """(method, name, metrics, run or None) of each method a compare_kpts result measured,
    then of the random keypoints."""
    for method, name in [*method_names.items(), ("random", "random")]:
        metrics = result["rows"].get(name)
        if metrics is not None:
            yield method, name, metrics, result["runs"].get(method)


def quality_cells(metrics):
    """precision, recall and spread (px) cells."""
    return [metric_cell(metrics, "precision"), metric_cell(metrics, "recall"),
            f"{metrics['spread']:.1f}" if "spread" in metrics else "-"]


def run_cells(run):
    """steps and training minutes cells of a (run folder, steps, minutes) or None."""
    return [str(run[1]), f"{run[2]:.1f}"] if run else ["-", "-"]


GAMES_COLUMNS = ["game", "K", "method", "precision", "recall", "spread (px)", "steps",
                 "training minutes"]


def games_table(results, method_names, budget, cpu, date):
    """Markdown table of experiments.games: per game, one row per method and one for
    uniformly random keypoints.

    results: {game: {"num_keypoints": K, "rows": keypoint_metrics.json rows of
    compare_kpts (method name -> metrics), "runs": {method: (run folder, steps, minutes)}}}.
    """
    lines = [f"# Keypoints on every game: {budget:g} minutes of training per model", "",
             f"Made by `python experiments.py games with envs={','.join(results)} "
             f"budget={budget:g}` (`make games` runs all five games) on {date}; {cpu}. Test "
             f"split, RAM ground truth, 4 px; K is the paper's for each game.", "",
             *markdown_header(GAMES_COLUMNS)]
    notes = []
    for game, result in results.items():
        for _, name, metrics, run in compared_rows(result, method_names):
            cells = [game, str(result["num_keypoints"]), name, *quality_cells(metrics),
                     *run_cells(run)]
            lines.append(markdown_row(cells))
            if run:
                notes.append(f"- {game}, {name}: `{run[0]}`")
    return "\n".join(lines + ["", "Run folders:", *notes, ""])


# ----------------------------------------------------------------------------
# experiments.table1: the agents of one game against their floors


def is_old_floor(record):
    """A floor measured under the old definition: a training of its own whose num_iters
    was the warm-up, so that its epsilon reached its end value within the warm-up; not
    the agent it names. A floor now scores the agent run's own policy at step policy_at."""
    return record["part"] == "floors" and record.get("policy_at") is None


def table1_results(records):
    """The records of a table1 (one per measurement; runner.RecordStore) grouped:
    {"agents", "floors" and "old_floors" (is_old_floor): {agent name: its records in
    seed order}, "random": the random policies' returns [S, P, E] or None,
    "random_record": their record or None}."""
    results = {"random": None, "random_record": None, "agents": {}, "floors": {},
               "old_floors": {}}
    for record in records:
        if record["part"] == "random":
            results["random"], results["random_record"] = record["returns"], record
        else:
            part = "old_floors" if is_old_floor(record) else record["part"]
            results[part].setdefault(record["agent"], []).append(record)
    for part in ("agents", "floors", "old_floors"):
        for runs in results[part].values():
            runs.sort(key=lambda r: r["seed"])
    return results


OLD_FLOOR = "†"  # marks the rows of floors measured under the old definition
ROW_SUFFIXES = {"agents": "", "floors": " after warm-up",
                "old_floors": ", warm-up only " + OLD_FLOOR}
STICKY = "sticky_"  # the prefix of a record's fields under the sticky-action protocol


@dataclass
class Row:
    """One row of table1: its runs' records in seed order (the random policies: one
    record of several policies) and how many runs were asked."""
    records: list
    asked: int

    @property
    def random(self):
        return self.records[0]["part"] == "random"

    @property
    def runs(self):
        """How many runs (the random policies: policies) the row has."""
        return len(self.records[0]["seed"]) if self.random else len(self.records)

    def returns(self, prefix=""):
        """Returns [S, P, E] under the deterministic ("") or sticky (STICKY) protocol, or
        None when a record lacks them (kept with its score only, or measured before)."""
        found = [r.get(prefix + "returns") for r in self.records]
        if any(returns is None for returns in found):
            return None
        if self.random:
            return np.asarray(found[0], float)
        return np.stack([np.asarray(returns, float) for returns in found], axis=1)

    def scores(self, prefix=""):
        """Each run's mean return (the random policies: each policy's), or None."""
        if self.random:
            returns = self.returns(prefix)
            return None if returns is None else list(returns.mean(axis=(0, 2)))
        scores = [r.get(prefix + "score") for r in self.records]
        return None if None in scores else scores


def table1_rows(results, seeds):
    """{row name: Row} of table1_results: the agents (in AGENT_KINDS' order, whatever the
    order of the call), their floors, the floors of the old definition, then random.
    seeds: the runs asked of each agent ({name: count}; others: the most asked)."""
    rows = {}
    order = list(AGENT_KINDS.values())
    most = max(seeds.values(), default=0)
    for part, suffix in ROW_SUFFIXES.items():
        for name in sorted(results[part], key=order.index):
            rows[name + suffix] = Row(results[part][name], seeds.get(name, most))
    if results["random_record"] is not None:
        rows["random policy"] = Row([results["random_record"]],
                                    len(results["random_record"]["seed"]))
    return rows


def table1_comparisons(rows):
    """(label, row a, row b) pairs: every agent against its floors; PermaKey agents
    against the Transporter agent and the control of their encoder."""
    pairs = []
    for key, name in AGENT_KINDS.items():
        if name not in rows:
            continue
        for floor in ["random policy"] + [name + ROW_SUFFIXES[p] for p in ("floors", "old_floors")]:
            if floor in rows:
                pairs.append((f"{name} - {floor}", name, floor))
        if key[0] == "permakey":
            for other in ("transporter", "fixed"):
                other_name = AGENT_KINDS[(other, key[1])]
                if other_name in rows:
                    pairs.append((f"{name} - {other_name}", name, other_name))
    return pairs


def minutes(seconds):
    if seconds is None:
        return "-"
    return f"{seconds / 60:.0f}" if seconds >= 600 else f"{seconds / 60:.1f}"


def runs_of_each(counts, separator):
    """"a (2 runs), b (1 run)" of a Counter of runs."""
    return separator.join(f"{what} ({counted(n, 'run')})" for what, n in counts.items())


NOT_RECORDED = "not recorded"


def keypoint_models(records):
    """Counter of the keypoint checkpoints (digests) `records` read."""
    return collections.Counter(r.get("keypoint_checkpoint") or NOT_RECORDED for r in records)


def keypoint_cell(records):
    """The keypoint model of a row: its digest, or "mixed: ..." when its runs read
    different models or do not all say which (table1's rows must say so)."""
    models = keypoint_models(records)
    if len(models) == 1:
        return next(iter(models))
    return "mixed: " + runs_of_each(models, ", ")


def keypoints_text(sources, records):
    """How each method's keypoint runs were made, and the checkpoints `records` read,
    each with the test precision its runs recorded."""
    parts = []
    for method, source in sources.items():
        used = [r for r in records if r.get("keypoint_method") == method]
        counts = collections.Counter()
        for digest, n in keypoint_models(used).items():
            precisions = {r["keypoint_precision"] for r in used
                          if r.get("keypoint_checkpoint") == digest
                          and r.get("keypoint_precision") is not None}
            counts[digest + "".join(f", precision {p:.2f}" for p in sorted(precisions))] = n
        if counts:
            parts.append(f"{method} `{source}`, checkpoints " + runs_of_each(counts, ", "))
    return "; ".join(parts)


def machines_text(records):
    """The machines of `records`, with their numbers of runs when there are several."""
    counts = collections.Counter(r.get("machine") or "machine not recorded" for r in records)
    return next(iter(counts)) if len(counts) == 1 else runs_of_each(counts, "; ")


def detectable_text(results, seeds):
    """The sentence giving the smallest difference a table of `seeds` seeds per agent
    detects, from the trained agents' pooled seed std (table1_results)."""
    agents = [[r["score"] for r in runs] for runs in results["agents"].values()]
    std = stats.pooled_std(agents)
    smallest = stats.detectable_difference(std, seeds)
    if smallest is None:
        return ("Smallest detectable difference: needs two or more seeds in some agent's row "
                "and SEEDS >= 2.")
    return (f"Smallest difference of means this table detects with {counted(seeds, 'seed')} "
            f"per agent (80% power, two-sided 5%): **{smallest:.0f}** = (t_0.975,{2 * seeds - 2}"
            f" + t_0.80,{2 * seeds - 2}) x s x sqrt(2/{seeds}), s = {std:.0f} the pooled seed "
            f"std of the {counted(len(agents), 'agent')} (stats.detectable_difference).")


def mean_std(values, digits=2, plus_minus="±", missing="—"):
    """'m ± s' (sample std) of two or more values, 'm' of one, `missing` of none; values
    None are left out."""
    values = [v for v in values if v is not None]
    if not values:
        return missing
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return (f"{np.mean(values):.{digits}f} {plus_minus} "
            f"{np.std(values, ddof=1):.{digits}f}")


def score_cell(returns):
    """"median +- std" of the protocol (stats.protocol_score), "-" without episodes."""
    return "-" if returns is None else "{:.0f} +- {:.0f}".format(*stats.protocol_score(returns))


def rests_on_cell(row, prefix=""):
    """What a protocol score rests on: the distinct starts among its episodes and the
    distinct returns of each run's (each random policy's) episodes; "-" where a record
    does not say (measured before evaluate counted them)."""
    returns = row.returns(prefix)
    starts = [r.get(prefix + "distinct_starts") for r in row.records]
    if returns is None or None in starts:
        return "-"
    distinct = [n for r in row.records for n in np.ravel(r[prefix + "distinct_returns"])]
    episodes = returns.shape[0] * returns.shape[2]
    return (f"{', '.join(map(str, sorted(set(starts))))}/{episodes} starts; "
            f"{', '.join(map(str, distinct))} returns")


def seeds_text(seeds):
    """"3 training seeds", or the count of each agent when they differ."""
    if len(set(seeds.values())) == 1:
        return counted(next(iter(seeds.values())), "training seed")
    return "training seeds " + ", ".join(f"{name} {n}" for name, n in seeds.items())


def make_command(env, steps, seeds, noise_type):
    """The make line of a table (the Makefile's table1 and table2 targets)."""
    counts = list(seeds.values())
    counts = str(counts[0]) if len(set(counts)) == 1 else ",".join(map(str, counts))
    if noise_type == "none":
        return f"make table1 GAME={env} SEEDS={counts} STEPS={steps}"
    return f"make table2 GAME={env} TABLE2_SEEDS={counts} STEPS={steps}"


TABLE1_COLUMNS = ("agent", "runs", "protocol score", "rests on", "sticky protocol score",
                  "sticky rests on", "seed scores: mean +- std", "seed scores", "policy steps",
                  "training minutes per run", "protocol minutes per run (deterministic/sticky)",
                  "keypoint model")
COMPARISON_COLUMNS = ("comparison", "difference", "95% interval (Welch)", "df", "p",
                      "verdict", "smallest detectable")
TABLE_TITLES = {"none": "Table 1 on a CPU: {env}",
                "both": "Table 2 on a CPU: {env} with distractor bars (noise both)"}


def table1_table(records, env, steps, seeds, warmup, sources, date, records_name,
                 noise_type="none"):
    """Markdown of experiments.table1 from its records (table1_results): per agent (and
    floor) the protocol score, deterministic and with sticky actions, each with the
    distinct starts and returns it rests on, the mean and std of its training seeds'
    scores, each seed's score, selected policy step, wall times and keypoint model; then
    the differences of means with Welch t 95% intervals (stats.welch_difference), under
    both protocols, "above" only where the interval excludes 0, and the smallest
    difference the seeds detect.

    A record: run, step, returns [S, E] (or None: the protocol score is then not given),
    score (their mean), distinct_starts, distinct_returns, the same prefixed "sticky_"
    (sticky actions), seconds, protocol_seconds, keypoint_method, keypoint_checkpoint,
    keypoint_precision, machine. seeds: {agent name: training seeds asked} of the call
    (other agents: the most asked); sources: {method: how its keypoint runs are made};
    records_name: the records' file; noise_type: none (Table 1) or both (Table 2).
    """
    results = table1_results(records)
    rows = table1_rows(results, seeds)
    title = TABLE_TITLES[noise_type].format(env=env)
    lines = [f"# {title}, {steps} environment steps, {seeds_text(seeds)}", "",
             f"Made by `{make_command(env, steps, seeds, noise_type)}` on {date}, from the runs "
             f"recorded in `{records_name}` (the command trains the missing ones); runs on "
             f"{machines_text(records)}. Keypoint runs: {keypoints_text(sources, records)}.",
             "",
             "Each run is scored by its last policy kept by the authors' rule (periodic "
             "evaluations, a policy kept at >= 0.95 x the best mean so far), with the "
             "authors' protocol: greedy episodes for each evaluation seed. "
             "*protocol score*: median over evaluation seeds of the mean over the runs' "
             "policies, +- that seed's pooled std (the paper's). *sticky protocol score*: the "
             "same episodes' seeds with sticky actions (repeat_action_probability 0.25, the "
             "ALE v5 default), under which episodes from one start differ. *rests on*: the "
             "distinct start states among the protocol's episodes (a greedy policy in the "
             "deterministic emulator replays a repeated start exactly; with bars, sticky "
             "actions or the random policy every episode is its own) and the distinct "
             "returns of each run's episodes. A score, count or time shown as - is not in "
             "the run's record (measured before it was recorded). *seed score*: one run's "
             "mean over its episodes. "
             f"*after warm-up*: the floor of an agent, each of its runs' own policy at step "
             f"{warmup}, the end of its warm-up (the checkpoint its first periodic evaluation "
             "kept), scored by the same protocols, no training of its own; the random policy "
             "plays the same episodes. *keypoint model*: the digest of the keypoint "
             "checkpoint the row's runs read.", "",
             *markdown_header(TABLE1_COLUMNS)]
    for name, row in rows.items():
        scores = row.scores()
        spread = mean_std(scores or [], digits=0, plus_minus="+-", missing="-")
        cells = [name, f"{row.runs}/{row.asked}",
                 score_cell(row.returns()), rests_on_cell(row), score_cell(row.returns(STICKY)),
                 rests_on_cell(row, STICKY), spread,
                 "-" if scores is None else ", ".join(f"{s:.0f}" for s in scores)]
        runs = [] if row.random else row.records
        cells += ([", ".join(str(r["step"]) for r in runs),
                   ", ".join(minutes(r.get("seconds")) for r in runs),
                   ", ".join(protocol_minutes(r) for r in runs),
                   keypoint_cell(runs)] if runs else ["-", "-", "-", "-"])
        lines.append(markdown_row(cells))
    mixed = [name for name, row in rows.items()
             if not row.random and len(keypoint_models(row.records)) > 1]
    if mixed:
        lines += ["", "Rows whose runs read different keypoint models, or do not all record "
                  "which: " + ", ".join(mixed) + "."]
    shared = [name for name, row in rows.items()
              if row.records[0]["part"] == "agents" and not all(map(own_selection, row.records))]
    if shared:
        lines += ["", "Rows whose runs chose their policy on the protocol's own episodes "
                  "(their periodic evaluations were made before selection had episodes of "
                  "its own, or are not recorded): " + ", ".join(shared) + "."]
    if results["old_floors"]:
        lines += ["", f"{OLD_FLOOR} A floor measured under the old definition, kept as "
                  f"recorded: a training of its own of {warmup} steps (num_iters = the "
                  "warm-up), whose epsilon fell to its end value within the warm-up, while a "
                  "full run's is still near its start there; so not the agent it names. "
                  + ("The *after warm-up* rows are the floors." if results["floors"] else
                     "The floors of the current definition (*after warm-up*) are not yet "
                     "measured.")]
    lines += ["", "Differences of the means of seed scores, with Welch's t 95% interval over "
              "training seeds (df: Welch-Satterthwaite; p: two-sided, equal means), under the "
              "deterministic protocol, then (*sticky*) under sticky actions where both rows "
              "have it. *verdict*: above or below only where the interval excludes 0. "
              "*smallest detectable*: the difference these two rows' seed counts detect with "
              "80% power (two-sided 5%) at their pooled seed std.", "",
              *markdown_header(COMPARISON_COLUMNS)]
    for prefix, suffix in (("", ""), (STICKY, ", sticky")):
        for label, a, b in table1_comparisons(rows):
            first, second = rows[a].scores(prefix), rows[b].scores(prefix)
            if first is not None and second is not None:
                lines.append(markdown_row(comparison_cells(label + suffix, first, second)))
    lines += ["", detectable_text(results, max(seeds.values()))]
    lines += ["", "Run folders (on the machine that trained each):"] + [
        f"- {name}: " + ", ".join(run_text(r) for r in row.records)
        for name, row in rows.items() if not row.random]
    return "\n".join(lines + [""])


def protocol_minutes(record):
    """"deterministic/sticky" minutes of a record's two protocol evaluations."""
    both = [record.get("protocol_seconds"), record.get(STICKY + "protocol_seconds")]
    return "-" if both == [None, None] else "/".join(map(minutes, both))


def own_selection(record):
    """Whether a run chose its policy on periodic evaluations of their own episodes, not
    the protocol's: those record how many distinct starts they had."""
    evaluations = record.get("evaluations") or []
    return bool(evaluations) and all("distinct_starts" in e for e in evaluations)


def run_text(record):
    """A run folder in the table's list: a floor's at its step, a run kept without its
    episodes marked."""
    at = f"@{record['policy_at']}" if record.get("policy_at") is not None else ""
    lost = "" if record.get("returns") is not None else " (lost, score only)"
    return f"`{record['run']}{at}`{lost}"


def comparison_cells(label, a, b):
    """The cells of one comparison of per-seed scores a and b (COMPARISON_COLUMNS)."""
    result = stats.welch_difference(a, b)
    smallest = stats.detectable_difference(stats.pooled_std([a, b]), min(len(a), len(b)))
    interval = "-" if result.low is None else f"[{result.low:.0f}, {result.high:.0f}]"
    return [label, f"{result.difference:.0f}", interval,
            "-" if result.df is None else f"{result.df:.1f}",
            "-" if result.p is None else f"{result.p:.3f}", result.verdict,
            "-" if smallest is None else f"{smallest:.0f}"]
