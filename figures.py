"""Every picture: keypoints on frames (the paper's Figure 2 layout), error maps, the
ablations, training curves, agents' evaluation curves and Table 1's curves.

Every plot the scripts and `viz.ipynb` make lives here, so that it is tested; the
notebook's cells only call these functions, on the runs artifacts.find_artifacts finds.
Keypoint k always has colour KEYPOINT_COLOURS[k % 20], whichever model or frame.
"""
import os

import matplotlib

if not os.environ.get("MPLBACKEND"):  # scripts draw off-screen; a notebook keeps its own backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import kpt_metrics  # noqa: E402
from artifacts import nothing  # noqa: E402
from atari_env import add_distractors  # noqa: E402
from common import atomic_path  # noqa: E402
from datasets import read_h5, split_path  # noqa: E402
from run_folders import KEYPOINT_LEVELS, latest_per_group  # noqa: E402
from tables import AGENT_KINDS, agent_kind, counted  # noqa: E402

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
    """The keypoint model of a run folder, restored from its `ckpt` checkpoint (TensorFlow
    starts here, not when the figures are imported)."""
    from keypoint_models import load_keypoint_model
    return load_keypoint_model(run.path, ckpt, {})[0]


def read_test_split(data_dir, env):
    """Frames and episode ids of data_dir/<env>/test.h5, or None after saying how to make it."""
    path = split_path(data_dir, env, "test")
    if not os.path.isfile(path):
        print(f"no test split {path} — `python preprocess.py generate with env={env}`")
        return None
    return read_h5(path, ("frames", "episode"))[0]


def with_distractors(frames, noise_type, seed=0):
    """uint8 frames with the distractor bars (seeded) a model of `noise_type` was trained on."""
    return add_distractors(frames, noise_type, np.random.default_rng(seed))


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
# experiments.table1


def table1_curves(results, played, steps):
    """Greedy evaluation means over training of every table1 agent run (thin, one per
    seed) and their mean over seeds (thick), with the floors (tables.table1_results: also
    those of the old definition, dash-dotted) as horizontal lines. A run
    recorded without its evaluations has no curve; the legend says how many seeds have.
    played: the title's game (and distractors)."""
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
    styles = []  # the title's key to the floor lines drawn
    for part, style, what, key in (
            ("floors", ":", "after warm-up", "dotted: each run's policy at the end of its warm-up"),
            ("old_floors", "-.", "warm-up only, old floor", "dash-dotted: old floors")):
        styles += [key] if results.get(part) else []
        for name, floor in results.get(part, {}).items():
            ax.axhline(np.mean([r["score"] for r in floor]), color=agent_colour(name),
                       linestyle=style, linewidth=1,
                       label=f"{name} {what} ({counted(len(floor), 'seed')})")
    if results["random"] is not None:
        ax.axhline(float(np.mean(results["random"])), color="grey", linestyle="--",
                   label="random policy")
    ax.set_xlim(0, steps)
    ax.set_title(f"{played}: greedy evaluations during training"
                 + (f"\n({'; '.join(styles)})" if styles else ""), fontsize=9)
    ax.set_xlabel("environment steps", fontsize=8)
    ax.set_ylabel("evaluation return", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
