"""The probes experiment (issue 40, docs/probes.md): for each game and keypoint-model seed,
the keypoint runs (table1's recipes, shared with the agent tables), a probe split of
random-policy frames no keypoint model trained on, each representation extracted once
and cached under its run, one probes.probe_table per representation recorded in
<out_dir>/probes_runs.json (runner.RecordStore: the records outlive the run folders, and
a call on another machine continues from them), and the table of them.
experiments.py's `probes` command runs it.
"""
import hashlib
import os

import numpy as np

import runner
import stats
import tables
from common import ConfigError, as_list, counts_per
from games import GAMES, canonical_env
from run_folders import checkpoint_digest, normalise


# Keypoint-model seeds per game when probe_seeds is None (issue 40).
PROBE_SEEDS = {"mspacman": 3, "seaquest": 3, "frostbite": 1, "battlezone": 1}


# The representations, in table order: file name -> (table name, model, probes.extract
# key). Models: a keypoint run's ("permakey", "transporter"); the control's fixed places
# over the PermaKey run's encoder features ("fixed", keypoint_models.FixedKeypoints);
# PermaKey's architecture with random weights ("random", AtariARI's random-CNN baseline).
PROBE_REPRESENTATIONS = {
    "permakey": ("PermaKey", "permakey", "keypoints+features"),
    "transporter": ("Transporter", "transporter", "keypoints+features"),
    "control": ("Control: fixed places, PermaKey features", "fixed", "keypoints+features"),
    "random": ("PermaKey, random weights", "random", "keypoints+features"),
    "permakey_positions": ("PermaKey positions", "permakey", "positions"),
    "transporter_positions": ("Transporter positions", "transporter", "positions"),
}


# AtariARI's published F1 of ST-DIM averaged across categories (Anand et al. 2019,
# "Unsupervised State Representation Learning in Atari", its table of probe F1 per game;
# BattleZone is not among its games). Their frames: 210 x 160 grayscale.
ST_DIM_F1 = {"mspacman": 0.72, "frostbite": 0.75, "seaquest": 0.67}


PROBE_CATEGORY_NAMES = {"small_object_localization": "small object loc.",
                        "agent_localization": "agent loc.",
                        "other_localization": "other loc.",
                        "score_clock_lives_display": "score/clock/lives",
                        "misc_keys": "misc"}


PROBE_OPTIONS = {"probe_frames": "count", "probe_eval_frames": "count",
                 "probe_data_seed": "index"}


def probe_plan(probe_games, probe_seeds):
    """[(game, seed count)] of the call: probe_seeds None (PROBE_SEEDS), one count for
    all games, or one per game; ConfigError for a game without AtariARI annotations."""
    from probes import ATARIARI_RAM
    names = [canonical_env(game) for game in as_list(probe_games)]
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"probe_games={probe_games!r}: expected distinct games among "
                          f"{', '.join(ATARIARI_RAM)}")
    for game in names:
        if game not in ATARIARI_RAM:
            raise ConfigError(f"probe_games: {game} has no AtariARI RAM annotations; "
                              f"annotated: {', '.join(ATARIARI_RAM)}")
    counts = ([PROBE_SEEDS.get(game, 1) for game in names] if probe_seeds is None
              else counts_per(probe_seeds, len(names), "probe_seeds", "game"))
    return list(zip(names, counts))


def probe_keypoint_root(exp_root, seed, recipes, extra_args):
    """Where the keypoint runs of a seed live: <exp_root>/keypoints for seed 0 with
    table1's recipes (the agent tables' runs), <exp_root>/keypoints_seed<s> for seed s;
    other recipes or more arguments add their digest, so that no folder holds two kinds."""
    name = "keypoints" + (f"_seed{seed}" if seed else "")
    default = all(recipe == "quick" for recipe in recipes.values()) and not any(
        extra_args.values())
    if not default:
        name += "_" + runner.key_digest([recipes, extra_args])
    return os.path.join(exp_root, name)


def probe_keypoint_runs(game, seed, exp_root, recipes, extra_args):
    """{method: finished keypoint run} of one game and seed, trained or continued with the
    method's recipe, runner.TABLE1_KEYPOINT_ARGS, `seed=<s>` for s > 0 and extra_args[method];
    the game's K (games.GAMES) on clean frames."""
    root = probe_keypoint_root(exp_root, seed, recipes, extra_args)
    return {method: runner.train_keypoints(method, "none", recipes[method], game,
                                    GAMES[game].num_keypoints,
                                    [*runner.TABLE1_KEYPOINT_ARGS[method],
                                     *([f"seed={seed}"] if seed else []),
                                     *extra_args[method]], root)
            for method in runner.METHODS}


def probe_settings(probe_frames, probe_eval_frames, probe_data_seed, precision, protocol,
                   recipes, extra_args):
    """What a probe result depends on besides its game, seed and representation, as the
    records store it (run_folders.normalise): a result recorded with other settings is
    measured again, and only results of the call's settings are tabulated."""
    from probes import PROTOCOL
    return normalise({"probe_data": {"train": probe_frames, "eval": probe_eval_frames,
                           "data_seed": probe_data_seed},
            "precision": precision, "protocol": dict(PROTOCOL, **protocol),
            "keypoints": {method: " ".join([recipes[method],
                                            *runner.TABLE1_KEYPOINT_ARGS[method],
                                            *extra_args[method]])
                          for method in runner.METHODS}})


def probe_key(game, seed, representation, settings):
    """What identifies a probe result among the records (runner.RecordStore.find);
    `settings` as probe_settings gives them."""
    return {"game": game, "seed": seed, "representation": representation, "settings": settings}


def read_probe_results(store, settings):
    """Every probe result of the records in `store` measured with `settings` (as
    probe_settings gives them)."""
    return [result for result in store.read() if result.get("settings") == settings]


def weights_digest(model):
    """12 hex digits of the SHA-256 of a module's variables (names and values)."""
    digest = hashlib.sha256()
    for variable in sorted(model.variables, key=lambda v: v.name):
        digest.update(variable.name.encode())
        digest.update(variable.numpy().tobytes())
    return digest.hexdigest()[:12]


class ProbeFeatures:
    """The representations of one game's probe splits by the models of one keypoint
    seed: each model is built (a run's best checkpoint; the control over the PermaKey
    run; PermaKey's architecture with weights drawn from the seed) and its frames'
    representations extracted, or read from its cache under its run, the first time a
    representation asks for it."""

    def __init__(self, game, seed, runs, splits, data_tag, precision):
        self.game, self.seed, self.runs, self.splits = game, seed, runs, splits
        self.data_tag, self.precision = data_tag, precision
        self.models, self.extracted = {}, {}

    def model(self, name):
        """(model, model_key, cache folder) of "permakey", "transporter", "fixed" or
        "random"."""
        import tensorflow as tf
        from keypoint_models import FixedKeypoints, build_keypoint_model, load_keypoint_model
        if name not in self.models:
            method = "permakey" if name in ("fixed", "random") else name
            run = self.runs[method]
            cache = os.path.join(run, "probes", self.data_tag)
            if name in runner.METHODS:
                model, spec = load_keypoint_model(run, "best", {"kind": name, "env": self.game,
                                                               "noise_type": "none"})
                self.models[name] = (model, f"{name}-{checkpoint_digest(run, 'best')}", cache,
                                     spec)
            elif name == "fixed":
                permakey, key, _, spec = self.model("permakey")
                self.models[name] = (FixedKeypoints(permakey, spec["num_keypoints"]),
                                     "fixed-" + key, cache, spec)
            else:  # AtariARI's random-CNN baseline: PermaKey's architecture, never trained
                spec = self.model("permakey")[3]
                tf.random.set_seed(self.seed)
                model = build_keypoint_model(spec)
                model.keypoints_and_features(tf.zeros([1, 84, 84, 3]))  # makes its variables
                self.models[name] = (model, f"random{self.seed}-{weights_digest(model)}",
                                     cache, spec)
        return self.models[name]

    def __call__(self, name):
        """({split: {"keypoints+features", "positions"}}, seconds of the extraction) of a
        model; the seconds are those of the extraction that made the cache."""
        import layers
        from probes import cache_path, extract_cached
        if name not in self.extracted:
            model, key, cache, _ = self.model(name)
            key = f"{key}-{self.precision}"
            arrays, seconds = {}, 0.0
            for split, (frames, _) in self.splits.items():
                with layers.precision(self.precision):
                    arrays[split], took = extract_cached(model, frames,
                                                         cache_path(cache, key, split), key)
                seconds += took
            self.extracted[name] = arrays, seconds
        return self.extracted[name]


def probe_splits(game, data_dir, probe_frames, probe_eval_frames, probe_data_seed):
    """{split: (frames, RAM)} of a game's probe frames, generated on first use."""
    from datasets import generate_dataset
    from probes import read_splits
    generate_dataset(game, data_dir, probe_frames, probe_eval_frames, seed=probe_data_seed)
    return read_splits(data_dir, game)


def probes_table(results, date):
    """The markdown table of probe results (dicts as `probes` writes them): F1 per
    category and across categories (AtariARI's number), per game and representation,
    mean ± std over keypoint seeds, the minutes of extraction and probes, the majority
    label's F1 and AtariARI's ST-DIM."""
    from probes import ENTROPY_THRESHOLD
    order = list(PROBE_SEEDS) + sorted({r["game"] for r in results} - set(PROBE_SEEDS))
    games = [game for game in order if any(r["game"] == game for r in results)]
    categories = list(PROBE_CATEGORY_NAMES)
    header = ["game", "representation", "seeds", *PROBE_CATEGORY_NAMES.values(),
              "**overall**", "features", "extract min", "probes min"]
    lines = ["# AtariARI-style linear probes of the keypoint models", "",
             f"Written by `make probes` (experiments.py probes) on {date} from its records "
             f"(probes_runs.json); docs/probes.md describes the protocol.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes, differences = [], []
    for game in games:
        title = GAMES[game].ale_id if game in GAMES else game
        of_game = [r for r in results if r["game"] == game]
        planned = PROBE_SEEDS.get(game, 1)
        overall = {}
        for name, (label, _, _) in PROBE_REPRESENTATIONS.items():
            rows = sorted((r for r in of_game if r["representation"] == name),
                          key=lambda r: r["seed"])
            if not rows:
                continue
            overall[label] = [r["across_categories_avg"] for r in rows]
            seeds = f"{len(rows)}" + (f" of {planned}" if len(rows) < planned else "")
            cells = [tables.mean_std([r["categories"].get(c) for r in rows]) for c in categories]
            lines.append("| " + " | ".join([
                title, label, seeds, *cells, f"**{tables.mean_std(overall[label])}**",
                str(rows[0]["feature_size"]),
                tables.mean_std([r["extract_seconds"] / 60 for r in rows], 1),
                tables.mean_std([r["probe_seconds"] / 60 for r in rows], 1)]) + " |")
        first = {r["seed"]: r for r in of_game}
        majority = [r["majority"] for r in first.values()]
        lines.append("| " + " | ".join([
            title, "majority label (chance)", str(len(majority)),
            *[tables.mean_std([m["categories"].get(c) for m in majority]) for c in categories],
            tables.mean_std([m["across_categories_avg"] for m in majority]), "—", "—", "—"]) + " |")
        if game in ST_DIM_F1:
            lines.append("| " + " | ".join([
                title, "AtariARI ST-DIM (published; 210x160 gray)", "—",
                *["—"] * len(categories), f"{ST_DIM_F1[game]:.2f}", "—", "—", "—"]) + " |")
        example = next(iter(first.values()))
        dropped = ", ".join(sorted(example["dropped"])) or "none"
        compute = sum(r["probe_seconds"] for r in of_game) + sum(
            {(r["seed"], r["model"]): r["extract_seconds"] for r in of_game}.values())
        notes.append(f"- {title}: {len(example['variables'])} RAM variables probed; dropped "
                     f"for label entropy below {ENTROPY_THRESHOLD} nats on the training "
                     f"split: {dropped}. Frames: "
                     + ", ".join(f"{example['frames'][split]} {split}"
                                 for split in ("train", "valid", "test"))
                     + f". Compute: {compute / 60:.1f} minutes over {len(first)} seed(s) "
                     f"(extraction once per model, plus every probe).")
        reference = overall.get(PROBE_REPRESENTATIONS["permakey"][0])
        for label, values in overall.items():
            if reference is None or label == PROBE_REPRESENTATIONS["permakey"][0]:
                continue
            gap = stats.welch_difference(reference, values)
            if gap.low is None:
                verdict = "one seed: no std to compare with"
            else:
                spread = max(np.std(reference, ddof=1), np.std(values, ddof=1))
                verdict = (("exceeds" if abs(gap.difference) > spread else "within")
                           + f" the larger std ({spread:.2f}); Welch "
                           f"{100 * stats.LEVEL:.0f}% interval [{gap.low:+.3f}, "
                           f"{gap.high:+.3f}]: {gap.verdict}")
            differences.append(f"- {title}: PermaKey minus {label}: {gap.difference:+.2f} "
                               f"({verdict}).")
        fewest_seeds = min((len(values) for values in overall.values()), default=0)
        pooled = stats.pooled_std(overall.values())
        detectable = stats.detectable_difference(pooled, fewest_seeds)
        if detectable is not None:
            differences.append(
                f"- {title}: the smallest difference {fewest_seeds} seeds per representation "
                f"detect ({100 * stats.POWER:.0f}% power, two-sided "
                f"{100 * (1 - stats.LEVEL):.0f}%, pooled seed std {pooled:.3f}): "
                f"{detectable:.2f}.")
    settings = results[0]["settings"] if results else {}
    data = settings.get("probe_data", {})
    machines = sorted({r["machine"] for r in results})
    lines += ["", "F1: weighted F1 on the test frames of one linear probe per RAM variable "
              "(AtariARI's annotations), averaged within each of AtariARI's categories, then "
              "across them (**overall**, the number AtariARI reports); mean ± std (sample) "
              "over keypoint-model seeds, where the seeds column says how many of the "
              "planned ones are done. Features: the probe's input size. Minutes: the "
              "model's feature extraction over all probe frames (shared by its two "
              "representations) and the probes' training, per seed.", "",
              "Representations: what the GNN agent reads (each keypoint's position and the "
              "encoder features pooled under it, in keypoint order) for PermaKey and "
              "Transporter (`quick` recipes, table1's keypoint runs), for the control (fixed "
              "places over the PermaKey run's features) and for PermaKey's architecture "
              "with random weights (AtariARI's random-CNN baseline; seeded by the keypoint "
              "seed); and the keypoint positions alone.", "",
              f"Frames probed: {data.get('train')} training, {data.get('eval')} validation "
              f"and {data.get('eval')} test frames of a uniformly random policy's episodes "
              f"(probe data seed {data.get('data_seed')}; the keypoint models trained on "
              f"other episodes, data seed 0), 84x84 RGB, split by episode. Keypoint models "
              f"computed in {settings.get('precision')}, as the agents' on this machine.",
              "", "Not comparable as such with AtariARI's numbers: theirs are 210x160 "
              "grayscale frames, ours 84x84 RGB; both from random agents (theirs never "
              "takes NOOP).", ""]
    lines += ["Per game:", "", *notes, ""]
    missing = []
    for game, planned in PROBE_SEEDS.items():
        seeds = sorted(set(range(planned)) - {r["seed"] for r in results if r["game"] == game})
        if seeds:
            missing.append(f"{GAMES[game].ale_id} seed{'s' if len(seeds) > 1 else ''} "
                           + ", ".join(map(str, seeds)))
    if missing:
        lines += [f"Planned (issue 40), not measured yet: {'; '.join(missing)}.", ""]
    if differences:
        lines += ["Differences of the overall F1 (Welch's t over keypoint seeds: \"above\" or "
                  "\"below\" only where the interval excludes 0):", "", *differences, ""]
    lines += [f"Machine: {machine}." for machine in machines]
    return "\n".join(lines) + "\n"
