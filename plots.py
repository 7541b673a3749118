"""Figures and tables: keypoints on frames, error maps, Figure-2 style grids, training
curves, RL evaluation curves, the Table-1 scores and the keypoint-quality table.

Every plot the scripts and `viz.ipynb` make lives here, so that it is tested; the
notebook's cells only call these functions. Keypoint k always has colour
KEYPOINT_COLOURS[k % 20], whichever model or frame.

The notebook reads the run folders the scripts write (runs.py):
    keypoint runs        <exp_root>/<noise>/<env>/<K>/<id>/ (evaluate/ inside)
    compare_kpts         <save_base_dir>/<noise>/<env>/<K>/<id>/batch_*.npz
    agent runs           <rl_exp>/<noise>/<kp_type>/<encoder>/<env>/<id>/evaluations.json
    agent evaluations    <rl_exp>/<noise>/<kp_type>/<encoder>/<env>/evaluate/<id>/evaluation.json
A function that finds nothing to draw prints why and returns an empty list, so that the
notebook runs top to bottom on whatever subset of these exists.
"""
import functools
import glob
import os
from dataclasses import dataclass, field

import matplotlib

if not os.environ.get("MPLBACKEND"):  # scripts draw off-screen; a notebook keeps its own backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import kpt_metrics  # noqa: E402
import preprocess  # noqa: E402
import runs  # noqa: E402
from common import atomic_path  # noqa: E402

KEYPOINT_COLOURS = plt.get_cmap("tab20")(np.arange(20))[:, :3]  # [20, 3] RGB in [0, 1]


def to_pixels(centres, size=84):
    """Centres (y, x) in [-1, 1] -> pixel coordinates in a size x size frame (pixel centres)."""
    return (np.asarray(centres) + 1.0) / 2.0 * (size - 1)


def keypoint_colours(num_keypoints):
    return KEYPOINT_COLOURS[np.arange(num_keypoints) % len(KEYPOINT_COLOURS)]


def show_keypoints(ax, frame, centres, marker_size=40):
    """Draw `frame` [H, W, 3] with keypoints [K, 2] on it, one fixed colour per index."""
    ax.imshow(np.clip(frame, 0, 1), interpolation="nearest")
    pixels = to_pixels(centres, frame.shape[0])  # [K, 2] (y, x)
    ax.scatter(pixels[:, 1], pixels[:, 0], s=marker_size, c=keypoint_colours(len(pixels)),
               edgecolors="white", linewidths=0.8)
    ax.set_xlim(-0.5, frame.shape[1] - 0.5)
    ax.set_ylim(frame.shape[0] - 0.5, -0.5)


def error_map_rows(error_maps, lsp_layers):
    """Image rows for keypoint_grid, one per LSP layer, from error maps [N, H, W, L]."""
    return [(f"error layer {layer}", error_maps[..., i]) for i, layer in enumerate(lsp_layers)]


def keypoint_grid(frames, keypoint_rows, image_rows=(), path=None, title=None, column_titles=None):
    """The paper's Figure 2 layout: one column per example; rows top to bottom are the
    frame, one row per (label, centres [N, K, 2]) in `keypoint_rows` (drawn on the
    frame), then one row per (label, images) in `image_rows`: RGB [N, H, W, 3] as is,
    single-channel [N, H, W] maps in [0, 1] with a colour map. Saved atomically to `path`.
    """
    frames = np.asarray(frames)
    num_examples, num_rows = len(frames), 1 + len(keypoint_rows) + len(image_rows)
    fig, axes = plt.subplots(num_rows, num_examples, squeeze=False,
                             figsize=(1.6 * num_examples, 1.6 * num_rows))
    for col in range(num_examples):
        axes[0, col].imshow(np.clip(frames[col], 0, 1), interpolation="nearest")
        for row, (_, centres) in enumerate(keypoint_rows, start=1):
            show_keypoints(axes[row, col], frames[col], centres[col])
        for row, (_, images) in enumerate(image_rows, start=1 + len(keypoint_rows)):
            axes[row, col].imshow(np.clip(images[col], 0, 1), cmap="viridis", vmin=0, vmax=1,
                                  interpolation="nearest")
    labels = ["frame"] + [label for label, _ in keypoint_rows] + [label for label, _ in image_rows]
    for row, label in enumerate(labels):
        axes[row, 0].set_ylabel(label, fontsize=8)
    for col, label in enumerate(column_titles or ()):
        axes[0, col].set_title(label, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    if path:
        save_figure(fig, path)
    return fig


def save_figure(fig, path):
    """Save a figure as PNG atomically (temporary name, then rename) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------
# Finding runs

KEYPOINT_LEVELS = ("noise_type", "env", "num_keypoints")
AGENT_LEVELS = ("noise_type", "kp_type", "kpt_encoder_type", "env")


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
        return runs.read_json(os.path.join(self.path, name), default)


def natural_key(value):
    """Sort key putting numbers in numeric order (K = 7 before K = 10), then names."""
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def find_runs(root, levels, marker, inside=()):
    """Runs in `<root>/<one folder per level>/<*inside>/<numeric id>/` that hold `marker`
    (a path inside the run folder), sorted by their labels, then id. The level folders
    name the labels (e.g. KEYPOINT_LEVELS); Sacred's `_sources` and other non-numeric
    folders at the id level are not runs."""
    pattern = os.path.join(glob.escape(root), *["*"] * len(levels), *inside, "*", marker)
    found = []
    for match in glob.glob(pattern):
        path = match[:-len(marker) - 1]
        name = os.path.relpath(path, root)
        parts = name.split(os.sep)
        if parts[-1].isdigit():
            found.append(Run(path, dict(zip(levels, parts)), int(parts[-1]), name))
    return sorted(found, key=lambda run: ([natural_key(v) for v in run.labels.values()], run.id))


def latest_per_group(found, keys):
    """The highest-id run of each group of runs that agree on `keys` (labels or config
    values), in the order of `found`'s first run of each group."""
    latest = {}
    for run in found:
        group = tuple(str(run.labels.get(key, run.config.get(key))) for key in keys)
        if group not in latest or run.id > latest[group].id:
            latest[group] = run
    return list(latest.values())


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
    return sorted(env for env in preprocess.GAMES
                  if os.path.isfile(preprocess.split_path(data_dir, env, "test")))


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


# ----------------------------------------------------------------------------
# Keypoints on frames


def figure2(compare_runs, noisy, num_examples=8):
    """Figure 2: Transporter and PermaKey keypoints on the same test frames, from the
    latest compare_kpts output of each noise type, game and K; clean (noise "none") or
    noisy (distractor bars) ones. One figure each."""
    chosen = [run for run in latest_per_group(compare_runs, KEYPOINT_LEVELS)
              if (run.labels["noise_type"] != "none") == noisy]
    if not chosen:
        return nothing(f"no compare_kpts outputs {'with' if noisy else 'without'} distractors — "
                       f"make one with `python pkey_train.py compare_kpts with pkey_fname=RUN "
                       f"tp_fname=RUN{' noise_type=both' if noisy else ''}`")
    return [compare_figure(run, num_examples) for run in chosen]


def compare_figure(run, num_examples):
    """Rows frame, Transporter (when compared), PermaKey, of a compare_kpts batch."""
    arrays = np.load(os.path.join(run.path, "batch_0.npz"))
    rows = [(label, arrays[f"{prefix}_centres"][:num_examples])
            for label, prefix in (("Transporter", "tp"), ("PermaKey", "pkey"))
            if f"{prefix}_centres" in arrays]
    return keypoint_grid(arrays["frames"][:num_examples], rows, title=f"compare_kpts {run.name}")


def error_map_figures(pkey_runs, num_examples=8):
    """PermaKey keypoints above the error map of each LSP layer, from the test batch the
    latest run of each noise type, game and K saved in its evaluate folder."""
    chosen = latest_per_group([run for run in pkey_runs if os.path.isfile(
        os.path.join(run.path, "evaluate", "batch_0.npz"))], KEYPOINT_LEVELS)
    if not chosen:
        return nothing("no PermaKey run with evaluate/batch_0.npz — training writes it, as does "
                       "`python pkey_train.py evaluate with run_dir=RUN`")
    return [error_map_figure(run, num_examples) for run in chosen]


def error_map_figure(run, num_examples):
    arrays = np.load(os.path.join(run.path, "evaluate", "batch_0.npz"))
    return keypoint_grid(arrays["frames"][:num_examples],
                         [("PermaKey", arrays["centres"][:num_examples])],
                         error_map_rows(arrays["error_maps"][:num_examples],
                                        run.config["lsp_layers"]),
                         title=f"PermaKey {run.name}: error maps per LSP layer")


def load_model(run, ckpt="best"):
    """The keypoint model of a run folder, restored from its `ckpt` checkpoint."""
    return runs.load_keypoint_model(run.path, ckpt, {})[0]


def read_test_split(data_dir, env):
    """Frames and episode ids of data_dir/<env>/test.h5, or None after saying how to make it."""
    path = preprocess.split_path(data_dir, env, "test")
    if not os.path.isfile(path):
        print(f"no test split {path} — `python preprocess.py generate with env={env}`")
        return None
    return preprocess.read_h5(path, ("frames", "episode"))[0]


def with_distractors(frames, noise_type, seed=0):
    """uint8 frames with the distractor bars (seeded) a model of `noise_type` was trained on."""
    return preprocess.add_distractors(frames, noise_type, np.random.default_rng(seed))


def episode_indices(episode, num_frames):
    """Indices of `num_frames` consecutive frames from the middle of the first episode
    that has that many (the test split is stored in episode order); None if none has."""
    _, starts, lengths = np.unique(episode, return_index=True, return_counts=True)
    order = np.argsort(starts)
    for start, length in zip(starts[order], lengths[order]):
        if length >= num_frames:
            first = start + (length - num_frames) // 2
            return np.arange(first, first + num_frames)
    return None


def episode_figure(pkey_runs, tp_runs, data_dir, num_frames=8, ckpt="best"):
    """Keypoints across consecutive frames of one test episode (columns t, t+1, ...) of
    the latest PermaKey run of the first noise type, game and K (noise "none" first)
    and the latest Transporter run of the same ones, if any. One figure, in a list."""
    if not pkey_runs:
        return nothing("no PermaKey run to follow through an episode")
    clean = [run for run in pkey_runs if run.labels["noise_type"] == "none"]
    pkey = latest_per_group(clean or pkey_runs, KEYPOINT_LEVELS)[0]
    partners = latest_per_group([run for run in tp_runs if run.labels == pkey.labels],
                                KEYPOINT_LEVELS)
    env, noise_type = pkey.labels["env"], pkey.labels["noise_type"]
    split = read_test_split(data_dir, env)
    if split is None:
        return []
    indices = episode_indices(split["episode"], num_frames)
    if indices is None:
        return nothing(f"no test episode of {num_frames} frames for {env} in {data_dir}")
    frames = with_distractors(split["frames"][indices], noise_type)
    rows = [(label, kpt_metrics.model_centres(load_model(run, ckpt), frames))
            for label, run in [("Transporter", run) for run in partners] + [("PermaKey", pkey)]]
    return [keypoint_grid(frames / 255.0, rows, column_titles=[f"t+{j}" for j in range(num_frames)],
                          title=f"test frames {indices[0]}-{indices[-1]} of one episode, {env}, "
                                f"noise {noise_type}, K={pkey.labels['num_keypoints']}")]


# The paper's ablations: runs that differ in one config value, side by side.
ABLATIONS = {"num_keypoints": ("number of keypoints", "K={}"),
             "lsp_layers": ("LSP layers", "layers {}")}


def ablation_groups(pkey_runs, vary):
    """Groups of PermaKey runs that agree on noise type, game, K and LSP layers except
    `vary`, with at least two values of it: the latest run per value, sorted by it."""
    fixed = [key for key in ("noise_type", "env", "num_keypoints", "lsp_layers") if key != vary]
    groups = {}
    for run in latest_per_group(pkey_runs, fixed + [vary]):
        groups.setdefault(tuple(str(run.config.get(key)) for key in fixed), []).append(run)
    return [sorted(group, key=lambda run: run.config[vary])
            for group in groups.values() if len(group) > 1]


def ablation_figures(pkey_runs, vary, data_dir, num_examples=6, ckpt="best"):
    """One figure per ablation group: a row of keypoints per run, on the same test frames
    spread over the test split."""
    groups = ablation_groups(pkey_runs, vary)
    if not groups:
        return nothing(f"no PermaKey runs that differ only in {ABLATIONS[vary][0]} — train one "
                       f"more with another {vary}")
    figures = []
    for group in groups:
        split = read_test_split(data_dir, group[0].labels["env"])
        if split is not None:
            indices = np.linspace(0, len(split["frames"]) - 1, num_examples).astype(int)
            figures.append(ablation_figure(group, vary, split["frames"][indices], ckpt))
    return figures


def ablation_figure(group, vary, frames, ckpt):
    what, label = ABLATIONS[vary]
    noise_type = group[0].labels["noise_type"]
    frames = with_distractors(frames, noise_type)
    rows = [(label.format(",".join(map(str, np.atleast_1d(run.config[vary])))),
             kpt_metrics.model_centres(load_model(run, ckpt), frames)) for run in group]
    return keypoint_grid(frames / 255.0, rows,
                         title=f"ablation: {what}, {group[0].labels['env']}, noise {noise_type}")


# ----------------------------------------------------------------------------
# Curves


def run_colour(index):
    return plt.get_cmap("tab10")(index % 10)


def panels(count, columns=4, width=3.2, height=2.8):
    """A figure with `count` panels, at most `columns` a row: (figure, list of axes)."""
    rows, cols = -(-count // columns), min(count, columns)
    fig, axes = plt.subplots(rows, cols, squeeze=False, figsize=(width * cols, height * rows))
    for ax in axes.flat[count:]:
        ax.remove()
    return fig, list(axes.flat[:count])


def split_curves(metrics, splits=("train", "valid")):
    """Sacred metrics {"<split>.<name>": {"steps": [...], "values": [...]}} ->
    {name: {split: (steps, values)}} for the given splits."""
    curves = {}
    for key, logged in metrics.items():
        split, _, name = key.partition(".")
        if split in splits and name:
            curves.setdefault(name, {})[split] = (logged["steps"], logged["values"])
    return curves


def training_curves(keypoint_runs, what):
    """Training curves from the Sacred metrics of keypoint runs: one panel per loss, each
    run in its own colour, training loss solid (every 10 steps), validation dashed with
    dots (every epoch). One figure, in a list."""
    curves = {run.name: split_curves(run.read("metrics.json", {})) for run in keypoint_runs}
    names = sorted({name for per_run in curves.values() for name in per_run})
    if not names:
        return nothing(f"no {what} training metrics to plot")
    fig, axes = panels(len(names))
    for index, (run_name, per_run) in enumerate(curves.items()):
        for ax, name in zip(axes, names):
            for split, style in (("train", "-"), ("valid", "--o")):
                if split in per_run.get(name, {}):
                    ax.plot(*per_run[name][split], style, color=run_colour(index), markersize=3,
                            label=f"{run_name} {split}")
    for ax, name in zip(axes, names):
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"{what} training", fontsize=9)
    fig.tight_layout()
    return [fig]


# Table 1's agents: (kp_type, kpt_encoder_type) -> name, and its games in its order.
# The controls (kp_type "fixed": keypoints at fixed places) are ours, not the paper's.
PAPER_AGENT_KINDS = {("permakey", "cnn"): "PKey-CNN", ("permakey", "gnn"): "PKey-GNN",
                     ("transporter", "cnn"): "Transporter",
                     ("transporter", "gnn"): "Transporter-GNN"}
AGENT_KINDS = {**PAPER_AGENT_KINDS, ("fixed", "cnn"): "Control-CNN",
               ("fixed", "gnn"): "Control-GNN"}
TABLE1_GAMES = tuple(env for env, game in preprocess.GAMES.items() if game.rl_table)


def agent_kind(run):
    """Table 1's name of an agent run (or evaluation): PKey-CNN, ..., Transporter-GNN."""
    key = (run.labels["kp_type"], run.labels["kpt_encoder_type"])
    return AGENT_KINDS.get(key, "-".join(key))


def agent_colour(kind):
    kinds = list(AGENT_KINDS.values())
    return run_colour(kinds.index(kind)) if kind in kinds else "grey"


def agent_curves(agent_runs):
    """Greedy evaluation returns over training (agent_train's evaluations.json): one panel
    per noise type and game, one line per run (mean over its evaluation episodes, band
    +- their std), coloured by agent kind. One figure, in a list."""
    games = {}
    for run in agent_runs:
        games.setdefault((run.labels["noise_type"], run.labels["env"]), []).append(run)
    if not games:
        return nothing("no RL agent runs to plot — make one with "
                       '`python agent_train.py with mspacman kp_type="permakey" '
                       'vis_ckpt_fname=RUN`')
    fig, axes = panels(len(games), width=4.2, height=3.2)
    for ax, ((noise_type, env), group) in zip(axes, games.items()):
        for run in group:
            plot_evaluations(ax, run)
        ax.set_title(f"{env}, noise {noise_type}", fontsize=9)
        ax.set_xlabel("environment steps", fontsize=8)
        ax.set_ylabel("greedy evaluation return", fontsize=8)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return [fig]


def plot_evaluations(ax, run):
    """An agent run's evaluation means against steps, with a band of +- their std."""
    evaluations = run.read("evaluations.json", [])
    steps = np.array([e["step"] for e in evaluations])
    mean, std = (np.array([e[key] for e in evaluations]) for key in ("mean", "std"))
    kind = agent_kind(run)
    ax.plot(steps, mean, "-o", markersize=3, color=agent_colour(kind), label=f"{kind} #{run.id}")
    ax.fill_between(steps, mean - std, mean + std, color=agent_colour(kind), alpha=0.15)


# ----------------------------------------------------------------------------
# Tables


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


def protocol_summary(returns):
    """The paper's evaluation protocol over returns [seeds, policies, episodes].

    Per seed: the mean of the policy means and the pooled std sqrt(mean of the policy
    variances). Reported: the median seed's mean with that seed's pooled std (for an
    even number of seeds, the lower of the two middle seeds, so the std is a seed's).
    """
    policy_means = returns.mean(axis=-1)                                   # [S, P]
    seed_means = policy_means.mean(axis=-1)                                # [S]
    pooled_stds = np.sqrt(returns.var(axis=-1).mean(axis=-1))              # [S]
    median = int(np.argsort(seed_means, kind="stable")[(len(seed_means) - 1) // 2])
    return {"policy_means": policy_means, "seed_means": seed_means,
            "pooled_stds": pooled_stds, "median_index": median}


def protocol_score(returns):
    """The paper's reported score of returns [seeds, policies, episodes]: the median seed's
    mean of policy means and its pooled std, as agent_train's evaluate computes it."""
    summary = protocol_summary(np.asarray(returns, float))
    median = summary["median_index"]
    return float(summary["seed_means"][median]), float(summary["pooled_stds"][median])


def score_tables(evaluation_runs):
    """Table 1 per noise type (Table 2 of the paper: "both"), from `agent_train.py
    evaluate` outputs; see score_table."""
    if not evaluation_runs:
        return nothing("no RL evaluations — make one with `python agent_train.py evaluate with "
                       'mspacman kp_type="permakey" load_ckpts=A,B,C eval_seeds=1,2,3,4,5`')
    noise_types = sorted({run.labels["noise_type"] for run in evaluation_runs})
    return [score_table(noise_type, [run for run in evaluation_runs
                                     if run.labels["noise_type"] == noise_type])
            for noise_type in noise_types]


def in_table_order(found, canonical):
    """`found` names in the paper's `canonical` order, others after them, sorted."""
    return [name for name in canonical if name in found] + sorted(set(found) - set(canonical))


def score_table(noise_type, evaluation_runs):
    """Rows the paper's four agent kinds (and any other found), columns the games evaluated,
    cells "median ± std" (protocol_score) of the latest evaluate output of each kind
    and game, "-" where there is none. Its notes say what each cell pooled."""
    latest = latest_per_group(evaluation_runs, AGENT_LEVELS)
    games = in_table_order({run.labels["env"] for run in latest}, TABLE1_GAMES)
    kinds = in_table_order({agent_kind(run) for run in latest}
                           | set(PAPER_AGENT_KINDS.values()), AGENT_KINDS.values())
    cells, notes = {}, []
    for run in latest:
        returns = np.asarray(run.read("evaluation.json")["returns"], float)  # [S, P, E]
        cells[agent_kind(run), run.labels["env"]] = "{:.1f} ± {:.1f}".format(
            *protocol_score(returns))
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
        return nothing("no keypoint_metrics.json in the evaluate folders — `python pkey_train.py "
                       "evaluate with run_dir=RUN` writes it for games with RAM ground truth "
                       "(mspacman, seaquest, frostbite, space_invaders)")
    return [Table("keypoint quality against object boxes from the console RAM",
                  ["run", "method", "precision", "recall", "on-distractor", "attraction",
                   "robustness", "radius px"], rows)]


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
             f"the same method's clean run.", "",
             "| " + " | ".join(FIGURE2_COLUMNS) + " |",
             "|" + "---|" * len(FIGURE2_COLUMNS)]
    notes = []
    for noise_type, result in results.items():
        for method, name, metrics, run in compared_rows(result, method_names):
            cells = [name, noise_type, *quality_cells(metrics)]
            cells += [metric_cell(metrics, key) for key in ("on_distractor", "attraction")]
            reference = results[clean]["rows"].get(name, {}).get("precision")
            robust = (metrics["precision"] / reference
                      if noise_type != clean and method != "random" and reference else None)
            cells.append("-" if robust is None else f"{robust:.2f}")
            lines.append("| " + " | ".join(cells + run_cells(run)) + " |")
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
             "| " + " | ".join(GAMES_COLUMNS) + " |", "|" + "---|" * len(GAMES_COLUMNS)]
    notes = []
    for game, result in results.items():
        for _, name, metrics, run in compared_rows(result, method_names):
            cells = [game, str(result["num_keypoints"]), name, *quality_cells(metrics),
                     *run_cells(run)]
            lines.append("| " + " | ".join(cells) + " |")
            if run:
                notes.append(f"- {game}, {name}: `{run[0]}`")
    return "\n".join(lines + ["", "Run folders:", *notes, ""])


# ----------------------------------------------------------------------------
# experiments.table1: the agents of one game against their floors


BOOTSTRAP_RESAMPLES = 10_000


def bootstrap_difference(a, b, resamples=BOOTSTRAP_RESAMPLES, seed=0):
    """mean(a) - mean(b) and its 95% percentile bootstrap interval, a and b resampled
    with replacement independently (e.g. per-training-seed scores of two agents); the
    interval is None when either has fewer than two values."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    difference = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return difference, None
    rng = np.random.default_rng(seed)
    resampled = (rng.choice(a, (resamples, len(a))).mean(axis=1)
                 - rng.choice(b, (resamples, len(b))).mean(axis=1))
    low, high = np.percentile(resampled, [2.5, 97.5])
    return difference, (float(low), float(high))


def table1_rows(results):
    """{row name: (per-seed scores, returns [S, P, E] or None, agent runs or None)} of
    experiments.table1's results, agents first (in AGENT_KINDS' order, whatever the
    order of the call), then their warm-up floors, then random."""
    rows = {}
    order = list(AGENT_KINDS.values())
    for part, suffix in (("agents", ""), ("floors", ", warm-up only")):
        for name in sorted(results[part], key=order.index):
            records = results[part][name]
            returns = None  # a record kept without its episodes has only its score
            if all(r.get("returns") is not None for r in records):
                returns = np.stack([np.asarray(r["returns"], float) for r in records], axis=1)
            rows[name + suffix] = ([r["score"] for r in records], returns, records)
    if results.get("random") is not None:
        returns = np.asarray(results["random"], float)                    # [S, P, E]
        rows["random policy"] = (list(returns.mean(axis=(0, 2))), returns, None)
    return rows


def table1_comparisons(rows):
    """(label, row a, row b) pairs: every agent against its floors; PermaKey agents
    against the Transporter agent and the control of their encoder."""
    pairs = []
    agents = {name: key for key, name in AGENT_KINDS.items()}
    for name, key in agents.items():
        if name not in rows:
            continue
        for floor in ("random policy", f"{name}, warm-up only"):
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


def table1_table(results, env, steps, seeds, warmup, keypoint_runs, cpu, date,
                 records):
    """Markdown of experiments.table1: per agent (and floor) the protocol score, the mean
    and std of its training seeds' scores, each seed's score, selected policy step and
    wall time; then the differences of means with bootstrap 95% intervals.

    results: {"agents" and "floors": {name: [run record per seed]}, "random": returns
    [S, P, E]}; a run record: run, step, returns [S, E] (or None: the protocol score is
    then not given), score (their mean), seconds. keypoint_runs: {method: text}; records:
    the name of the file holding the records."""
    rows = table1_rows(results)
    first = next((r for records in results["agents"].values() for r in records), None)
    lines = [f"# Table 1 on a CPU: {env}, {steps} environment steps, {seeds} training seeds",
             "", f"Made by `make table1 GAME={env} SEEDS={seeds} STEPS={steps}` on {date}, "
             f"from the runs recorded in `{records}` (the command trains the missing "
             f"ones); runs on {cpu}. Keypoint runs: " +
             "; ".join(f"{m} {r}" for m, r in keypoint_runs.items() if r) + ".", "",
             "Each run is scored by its last policy kept by the authors' rule (periodic "
             "evaluations, a policy kept at >= 0.95 x the best mean so far), with the authors' "
             "protocol: greedy episodes for each evaluation seed. *protocol score*: median "
             "over evaluation seeds of the mean over the runs' policies, +- that seed's "
             "pooled std (the paper's). *seed score*: one run's mean over its episodes. "
             f"The warm-up floors are the same agents after the {warmup} warm-up steps and "
             "one update; the random policy plays the same episodes.", "",
             "| agent | runs | protocol score | seed scores: mean +- std | seed scores | "
             "policy steps | training minutes per run |", "|---|---|---|---|---|---|---|"]
    for name, (scores, returns, records) in rows.items():
        protocol = "-"
        if returns is not None:
            protocol = "{:.0f} +- {:.0f}".format(*protocol_score(returns))
        spread = f"{np.mean(scores):.0f} +- {np.std(scores, ddof=1):.0f}" \
            if len(scores) > 1 else f"{scores[0]:.0f}"
        cells = [name, f"{len(scores)}/{seeds}", protocol, spread,
                 ", ".join(f"{s:.0f}" for s in scores)]
        cells += ([", ".join(str(r["step"]) for r in records),
                   ", ".join(minutes(r["seconds"]) for r in records)] if records else
                  ["-", "-"])
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Differences of the means of seed scores, with a 95% bootstrap interval "
              f"over training seeds ({BOOTSTRAP_RESAMPLES} resamples):", "",
              "| comparison | difference | 95% interval | interval above 0 |", "|---|---|---|---|"]
    for label, a, b in table1_comparisons(rows):
        difference, interval = bootstrap_difference(rows[a][0], rows[b][0])
        bounds = "-" if interval is None else f"[{interval[0]:.0f}, {interval[1]:.0f}]"
        above = "-" if interval is None else ("yes" if interval[0] > 0 else "no")
        lines.append(f"| {label} | {difference:.0f} | {bounds} | {above} |")
    if first:
        lines += ["", "Run folders (on the machine that trained each):"] + [
            f"- {name}: " + ", ".join(f"`{r['run']}`" + ("" if r.get("returns") is not None
                                                          else " (lost, score only)")
                                      for r in records)
            for name, (_, _, records) in rows.items() if records]
    return "\n".join(lines + [""])


def counted(count, noun):
    """"1 seed", "3 seeds": a count and its noun, plural unless one."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def table1_curves(results, env, steps):
    """Greedy evaluation means over training of every table1 agent run (thin, one per
    seed) and their mean over seeds (thick), with the floors as horizontal lines. A run
    recorded without its evaluations has no curve; the legend says how many seeds have."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, records in results["agents"].items():
        colour = agent_colour(name)
        curves = {}
        drawn = [r for r in records if r.get("evaluations")]
        for r in drawn:
            points = [(e["step"], e["mean"]) for e in r["evaluations"]]
            ax.plot(*zip(*points), "-", color=colour, alpha=0.3, linewidth=0.8)
            for step, mean in points:
                curves.setdefault(step, []).append(mean)
        common = sorted(step for step, means in curves.items() if len(means) == len(drawn))
        seeds = counted(len(drawn), "seed") + ("" if len(drawn) == len(records) else
                                           f" of {len(records)}")
        ax.plot(common, [np.mean(curves[s]) for s in common], "-o", color=colour, markersize=3,
                label=f"{name} ({seeds})")
    for name, floor in results["floors"].items():
        ax.axhline(np.mean([r["score"] for r in floor]), color=agent_colour(name), linestyle=":",
                   linewidth=1, label=f"{name} after warm-up ({counted(len(floor), 'seed')})")
    if results.get("random") is not None:
        ax.axhline(float(np.mean(results["random"])), color="grey", linestyle="--",
                   label="random policy")
    ax.set_xlim(0, steps)
    ax.set_title(f"{env}: greedy evaluations during training (dotted: after warm-up only)",
                 fontsize=9)
    ax.set_xlabel("environment steps", fontsize=8)
    ax.set_ylabel("evaluation return", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
