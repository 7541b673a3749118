"""Figures: keypoints on frames, error maps, Figure-2 style grids, training curves.

Every plot the scripts and `viz.ipynb` make lives here, so that it is tested.
Keypoint k always has colour KEYPOINT_COLOURS[k % 20], whichever model or frame.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from runs import atomic_path  # noqa: E402

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


def keypoint_grid(frames, keypoint_rows, image_rows=(), path=None, title=None):
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
