"""Keypoint quality measured against true object positions read from the console RAM.

The paper judged keypoints by eye. Here every frame of a generated dataset comes with
the 128-byte console RAM of the same step, and per-game tables (after the public
OCAtari annotations, each entry re-checked against our rendered frames, see
tests/test_kpt_metrics.py) turn that RAM into object boxes. Keypoints are then scored:

- precision: the fraction of keypoints within `radius` pixels of some object box,
- recall: the fraction of objects with a keypoint within `radius` pixels of their box,
- on_distractor: with distractor bars, the fraction of keypoints within `radius`
  pixels of a bar pixel (the same reach as for objects, so that the two compare),
- attraction: on_distractor over the expected on_distractor of uniformly random
  keypoints on the same bars (1: not drawn to the bars, > 1: drawn, < 1: avoided).
  Keypoints exactly on the sprites land near randomly placed bars about as often as
  random points do, so on_distractor alone cannot tell robust from random;
- robustness: precision on the frames with bars over precision on the same frames
  without them, for the same model (1: the bars do not displace its keypoints),

next to the same numbers for uniformly random keypoints (Monte Carlo and expectation).
Across two trainings (a model trained with bars against one of the same kind and
budget trained without), the robustness ratio of the paper's Figure 2 is the noisy
run's precision over the clean run's (tables.figure2_table).

Coordinates. Boxes are (y0, x0, y1, x1) in 84 x 84 frame coordinates whose pixel
(i, j) has its centre at (i, j); a box covers the screen area of the sprite, so frame
pixel (i, j) shows that area exactly when y0 <= i < y1 and x0 <= j < x1 (the nearest,
half-pixel-centre resize of atari_env.resize_frame). A pixel is the unit square
around its centre, so a box made of whole pixels i0..i1-1 runs from i0 - 0.5 to
i1 - 0.5. Keypoint centres (y, x) in [-1, 1] sit on the linspace(-1, 1) grid of pixel
centres: pixel = (c + 1) / 2 * 83.

Covered games and classes (others raise NoGroundTruth):
    mspacman        player, ghost (4), fruit (when on screen)
    seaquest        player, shark, diver (not: enemy submarines and their missiles,
                    too rare under a random policy to check)
    frostbite       player, bird, ice_floe (level-1 objects only: not the bear, crabs,
                    clams, fish, nor the split floes of later levels)
    space_invaders  player, alien
battlezone is not covered: its enemy sprite changes size with distance.

How well they fit (3000 random-policy frames per game, 84 x 84): a class's own colour
shows inside 97-100% of its boxes, except MsPacman ghosts (90%) and the Space Invaders
cannon (94%), which blink; at random places the same boxes hold it 0.3-2% of the time
(the dense alien grid and ice floes: 20% and 14%). Of the sprite pixels within 2 px of
a box, 89-100% lie inside it.
"""
import os
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from atari_env import BAR_COLOUR, add_distractors
from datasets import read_h5, split_path
from games import canonical_env
from common import ConfigError, write_json

SCREEN_HEIGHT, SCREEN_WIDTH = 210, 160  # the console screen the RAM positions refer to
FRAME_SIZE = 84
PIXEL_SPAN = FRAME_SIZE - 1  # keypoint coordinate -1 is pixel 0, +1 is pixel 83


class NoGroundTruth(ConfigError):
    """A dataset or game without RAM boxes; evaluate commands print it and carry on."""


class FrameObjects(NamedTuple):
    """The objects of one frame: boxes [M, 4] float32 (y0, x0, y1, x1) and labels [M] str."""
    boxes: np.ndarray
    labels: np.ndarray


# ----------------------------------------------------------------------------
# RAM -> sprite positions on the 210 x 160 screen
#
# A `locate` function maps RAM [N, 128] (int) to the top-left corners of up to M
# sprites and whether each is there: top, left, present, all [N, M].


@dataclass(frozen=True)
class Sprites:
    """One class of sprites: a label, their size on the screen, and where the RAM puts them.

    height and width are screen pixels, or None where `locate` returns each sprite's
    size as well (top, left, present, height, width: [N, M] each).
    """
    label: str
    height: int | None
    width: int | None
    locate: Callable


def at_bytes(x_bytes, y_bytes=None, dx=0, dy=0, present=None):
    """Sprites at (ram[y] + dy, ram[x] + dx), one per x byte; without y bytes the top is dy.

    `present(ram)` -> [N] or [N, M] bool; None: always there.
    """
    def locate(ram):
        left = ram[:, list(x_bytes)] + dx                             # [N, M]
        top = np.full(left.shape, dy) if y_bytes is None else ram[:, list(y_bytes)] + dy
        shown = np.ones(top.shape, bool) if present is None else present(ram)
        return top, left, np.broadcast_to(np.reshape(shown, (len(ram), -1)), top.shape)
    return locate


def formation(x_bytes, row_tops, slot_spacing, num_slots, present, dx=0, wrap=None, dy_byte=None,
              dy_scale=1):
    """Rows of evenly spaced sprites, as the games draw enemies in lanes or grids.

    Row r's slot s has its left edge at ram[x_bytes[r]] + dx + s * slot_spacing (modulo
    `wrap` if given) and its top at row_tops[r] (+ dy_scale * ram[dy_byte] if given);
    `present(ram)` -> [N, rows, slots] bool. Returns [N, rows * slots] arrays.
    """
    def locate(ram):
        slots = np.arange(num_slots) * slot_spacing                   # [S]
        left = ram[:, list(x_bytes), None] + dx + slots               # [N, R, S]
        if wrap is not None:
            left = left % wrap
        top = np.broadcast_to(np.asarray(row_tops)[None, :, None], left.shape)
        if dy_byte is not None:
            top = top + dy_scale * ram[:, dy_byte, None, None]
        n = len(ram)
        return top.reshape(n, -1), left.reshape(n, -1), present(ram).reshape(n, -1)
    return locate


def bit(values, index):
    """Bit `index` of integer arrays (broadcasting)."""
    return (values >> index) & 1 == 1


# MsPacman: x, y bytes of the player (10, 16), ghosts (6..9, 12..15), fruit (11, 17);
# each sprite fills the 8 x 10 screen pixels right-below (ram[y] + 1, ram[x] - 12).
def mspacman_fruit_shown(ram):
    return (ram[:, 11] > 0) & (ram[:, 17] > 0)


# Seaquest: lane 0 is the bottom lane (top row 141), 24 rows apart. ram[30 + lane] is
# the lane's left edge (three slots 16 px apart, wrapping at 256), ram[36 + lane] says
# which slots are filled (bit 2 = leftmost), ram[89 + lane] % 8 in 4..6 makes it a
# submarine lane; sharks bob by ram[93] - 4. ram[71 + lane] is the lane's diver (or, in
# a submarine lane, the enemy missile), whose head starts 4 rows above the lane top.
# ram[105] counts 1..22 while the player's submarine explodes.
SEAQUEST_LANE_TOPS = [141, 117, 93, 69]


def seaquest_submarine_lanes(ram):  # [N, 4]
    kind = ram[:, 89:93] % 8
    return (kind > 3) & (kind < 7)


def seaquest_sharks_shown(ram):  # [N, 4, 3]
    slots = bit(ram[:, 36:40, None], np.array([2, 1, 0]))
    return slots & ~seaquest_submarine_lanes(ram)[:, :, None]


def seaquest_divers_shown(ram):  # [N, 4, 1]
    x = ram[:, 71:75]
    return ((x > 0) & (x < SCREEN_WIDTH) & ~seaquest_submarine_lanes(ram))[:, :, None]


def seaquest_player_shown(ram):
    return ~((ram[:, 105] > 0) & (ram[:, 105] < 23))


# Frostbite: lane 0 is the bottom one. Birds: ram[84 + lane] is the left one's x, a
# second flies 32 px to its right when ram[88 + lane] > 0, ram[35 + lane] in {18, 26}
# says birds. Ice floes: three per row, 32 px apart, from ram[31 + row] - 8 (wrapping),
# when ram[30] == 8 (single floes). ram[107] >= 18: the player has sunk.
def frostbite_birds_shown(ram):  # [N, 4, 2]
    birds = np.isin(ram[:, 35:39], (18, 26))
    x, pair = ram[:, 84:88], ram[:, 88:92] > 0
    first = ((x > 0) & (x < SCREEN_WIDTH)) | pair
    return np.stack([first, pair], axis=-1) & birds[:, :, None]


def frostbite_floes_shown(ram):  # [N, 4, 3]
    return np.broadcast_to((ram[:, 30] == 8)[:, None, None], (len(ram), 4, 3))


def frostbite_player_shown(ram):
    return (ram[:, 107] < 18) & (ram[:, 106] != 26)


# Space Invaders: ram[18 + row] holds the live aliens of a row (row 0 at the bottom,
# bit c = column c from the left); columns are 16 px apart from ram[26] - 1, rows 18 px
# apart, and the formation steps down 2 px per unit of ram[16]. The cannon sits at
# (185, ram[28] - 1).
def space_invaders_aliens_shown(ram):  # [N, 6, 6]
    return bit(ram[:, 18:24, None], np.arange(6))


# BattleZone: one enemy at a time (tank, super tank, fighter or saucer) near the horizon.
# ram[47] is its distance class, 1 (far) to 8 (near), which sets its top row and size
# (the width of the widest kind: a narrow one shows up to 6 px less); 0 (a dot of one or
# two pixels) and 9 (none, or its explosion) are not counted. Its left edge is
# ram[48] + 1; from ram[48] = 148 on it has wrapped (partly off the left edge), and at
# 143..147 it is hidden in the screen's wrap gap. ram[46] = 0 while no enemy is out
# (after the player's tank is hit), and ram[86, 88, 90] hold 18, 236, 226 while a game
# waits to start. Not in the map: shells (no RAM position found), the radar and
# crosshair (HUD), the player's tank.
BATTLEZONE_ENEMY = {1: (95, 3, 5), 2: (94, 4, 6), 3: (93, 5, 8), 4: (93, 7, 12),
                    5: (92, 9, 16), 6: (91, 10, 16), 7: (91, 13, 16), 8: (90, 15, 16)}
# distance class: (top row, height, width)
_BATTLEZONE_ENEMY_ROWS = np.zeros((10, 3), int)  # the same, indexed by class 0..9 (0, 9: none)
_BATTLEZONE_ENEMY_ROWS[list(BATTLEZONE_ENEMY)] = list(BATTLEZONE_ENEMY.values())


def battlezone_enemy(ram):
    distance, x = ram[:, 47:48], ram[:, 48:49]                        # [N, 1] each
    top, height, width = np.moveaxis(_BATTLEZONE_ENEMY_ROWS[np.clip(distance, 0, 9)], -1, 0)
    left = np.where(x >= 148, x + 1 - SCREEN_WIDTH, x + 1)
    waiting = (ram[:, 86:87] == 18) & (ram[:, 88:89] == 236) & (ram[:, 90:91] == 226)
    shown = ((distance >= 1) & (distance <= 8) & (ram[:, 46:47] != 0)
             & ((x < 143) | (x > 147)) & ~waiting)
    return top, left, shown, height, width


# Sprite boxes per game, read from the console RAM (the games of games.GAMES that have one).
RAM_MAPS = {
    "mspacman": (
        Sprites("player", 10, 8, at_bytes([10], [16], dx=-12, dy=1)),
        Sprites("ghost", 10, 8, at_bytes([6, 7, 8, 9], [12, 13, 14, 15], dx=-12, dy=1)),
        Sprites("fruit", 10, 8, at_bytes([11], [17], dx=-12, dy=1, present=mspacman_fruit_shown)),
    ),
    "seaquest": (
        Sprites("player", 11, 16, at_bytes([70], [97], dy=33, present=seaquest_player_shown)),
        Sprites("shark", 7, 8, formation(range(30, 34), [t - 4 for t in SEAQUEST_LANE_TOPS], 16, 3,
                                         seaquest_sharks_shown, wrap=256, dy_byte=93)),
        Sprites("diver", 14, 8, formation(range(71, 75), [t - 4 for t in SEAQUEST_LANE_TOPS], 0, 1,
                                          seaquest_divers_shown)),
    ),
    "frostbite": (
        Sprites("player", 18, 8, at_bytes([102], [100], dy=29, present=frostbite_player_shown)),
        Sprites("bird", 7, 8, formation(range(84, 88), [160, 134, 108, 82], 32, 2,
                                        frostbite_birds_shown)),
        Sprites("ice_floe", 7, 24, formation(range(31, 35), [174, 148, 122, 96], 32, 3,
                                             frostbite_floes_shown, dx=-8, wrap=SCREEN_WIDTH)),
    ),
    "space_invaders": (
        Sprites("player", 10, 7, at_bytes([28], dx=-1, dy=185)),
        Sprites("alien", 10, 8, formation([26] * 6, [121 - 18 * row for row in range(6)], 16, 6,
                                          space_invaders_aliens_shown, dx=-1, dy_byte=16,
                                          dy_scale=2)),
    ),
    "battlezone": (
        Sprites("enemy", None, None, battlezone_enemy),
    ),
}


def sprite_boxes(sprites, ram):
    """Boxes of one sprite class in 84 x 84 coordinates: boxes [N, M, 4] and shown [N, M].

    Screen rectangles are clipped to the screen; a sprite wholly off screen is not shown.
    """
    top, left, present, *size = sprites.locate(ram)                   # [N, M] each
    height, width = size or (sprites.height, sprites.width)
    y0, y1 = np.clip(top, 0, SCREEN_HEIGHT), np.clip(top + height, 0, SCREEN_HEIGHT)
    x0, x1 = np.clip(left, 0, SCREEN_WIDTH), np.clip(left + width, 0, SCREEN_WIDTH)
    shown = present & (y1 > y0) & (x1 > x0)
    scale_y, scale_x = FRAME_SIZE / SCREEN_HEIGHT, FRAME_SIZE / SCREEN_WIDTH
    boxes = np.stack([y0 * scale_y, x0 * scale_x, y1 * scale_y, x1 * scale_x], axis=-1) - 0.5
    return boxes.astype(np.float32), shown                            # [N, M, 4], [N, M]


def object_boxes_batch(env, rams):
    """RAM [N, 128] of `env` -> a list of N FrameObjects (boxes in 84 x 84 coordinates).

    Raises NoGroundTruth for a game without a RAM table.
    """
    env = canonical_env(env)
    if env not in RAM_MAPS:
        raise NoGroundTruth(f"no ground-truth mapping for game {env}; "
                            f"covered: {', '.join(RAM_MAPS)}")
    rams = np.asarray(rams, np.int64).reshape(-1, 128)
    per_class = [(sprites.label, *sprite_boxes(sprites, rams)) for sprites in RAM_MAPS[env]]
    frames = []
    for n in range(len(rams)):
        boxes = [b[n][shown[n]] for _, b, shown in per_class]
        labels = [np.full(shown[n].sum(), label) for label, _, shown in per_class]
        frames.append(FrameObjects(np.concatenate(boxes).reshape(-1, 4), np.concatenate(labels)))
    return frames


def object_boxes(env, ram):
    """One frame's RAM [128] -> FrameObjects(boxes [M, 4], labels [M])."""
    return object_boxes_batch(env, np.asarray(ram)[None])[0]


def has_console_ram(arrays, attrs):
    """False for frames converted from the authors' npz files (their RAM is stored as zeros)."""
    if ("ram" not in arrays or not attrs.get("has_ram", True)
            or attrs.get("source") == "authors_npz"):
        return False
    return bool(np.any(arrays["ram"]))


def ground_truth_for_split(path_or_arrays, env, attrs=None):
    """Object boxes for every frame of a dataset: a list of FrameObjects, one per frame.

    `path_or_arrays`: an HDF5 split file, or per-frame arrays with a "ram" field (as
    returned by datasets.read_h5 or play_random; pass read_h5's attrs along).
    Raises NoGroundTruth (a one-line ConfigError) when the frames have no console RAM
    or the game has no RAM table; evaluate commands print it and carry on.
    """
    env = canonical_env(env)
    if isinstance(path_or_arrays, (str, os.PathLike)):
        arrays, attrs = read_h5(path_or_arrays, ("frames", "ram"))
        source = str(path_or_arrays)
    else:
        arrays, attrs, source = path_or_arrays, attrs or {}, "these frames"
    if not has_console_ram(arrays, attrs):
        raise NoGroundTruth(f"no ground truth for {source}: its frames carry no console RAM "
                            f"(converted from the authors' npz files?); "
                            f"generate data to measure keypoints")
    if attrs.get("env", env) != env:
        raise ConfigError(f"{source} holds {attrs['env']} frames, not {env}")
    return object_boxes_batch(env, arrays["ram"])


# ----------------------------------------------------------------------------
# Scores of keypoints against boxes


def pixel_coordinates(centres):
    """Keypoint centres (y, x) in [-1, 1] -> 84 x 84 pixel coordinates in [0, 83]."""
    return (np.asarray(centres, np.float64) + 1.0) / 2.0 * PIXEL_SPAN


def padded_boxes(boxes_per_frame):
    """A list of N box arrays [M_n, 4] -> boxes [N, M, 4] (M = max M_n) and valid [N, M]."""
    most = max([len(b) for b in boxes_per_frame], default=0)
    boxes = np.zeros((len(boxes_per_frame), most, 4))
    valid = np.zeros((len(boxes_per_frame), most), bool)
    for n, frame_boxes in enumerate(boxes_per_frame):
        boxes[n, :len(frame_boxes)] = np.reshape(frame_boxes, (-1, 4))
        valid[n, :len(frame_boxes)] = True
    return boxes, valid


def axis_gap(coord, low, high):
    """Distance from a coordinate to the interval [low, high] (0 inside)."""
    return np.maximum(np.maximum(low - coord, coord - high), 0.0)


def box_distances(points, boxes):
    """Euclidean distance from points [N, K, 2] to boxes [N, M, 4] of the same frame: [N, K, M]."""
    y, x = points[:, :, None, 0], points[:, :, None, 1]              # [N, K, 1]
    y0, x0, y1, x1 = (boxes[:, None, :, i] for i in range(4))       # [N, 1, M]
    return np.hypot(axis_gap(y, y0, y1), axis_gap(x, x0, x1))


def mask_distances(points, masks, chunk=32):
    """Distance from points [N, K, 2] to the nearest True pixel (a unit square) of masks
    [N, 84, 84]: [N, K].

    inf where a frame's mask is empty.
    """
    masks = np.asarray(masks, bool)
    centres = np.arange(FRAME_SIZE)
    out = np.empty(points.shape[:2])
    for start in range(0, len(points), chunk):
        p = points[start:start + chunk]
        gap_y = axis_gap(p[..., 0, None], centres - 0.5, centres + 0.5) ** 2   # [n, K, 84]
        gap_x = axis_gap(p[..., 1, None], centres - 0.5, centres + 0.5) ** 2   # [n, K, 84]
        squared = gap_y[..., :, None] + gap_x[..., None, :]                      # [n, K, 84, 84]
        squared = np.where(masks[start:start + chunk, None], squared, np.inf)
        out[start:start + chunk] = np.sqrt(squared.min(axis=(2, 3)))
    return out


def keypoint_metrics(centres, boxes_per_frame, radius=4.0, bar_masks=None):
    """Score keypoints [N, K, 2] ((y, x) in [-1, 1]) against N frames' boxes ([M_n, 4] each).

    A keypoint is near a box (or a bar) within `radius` pixels of it, 0 inside.
    Returns a dict: precision (share of keypoints near some box of their frame),
    recall (share of objects with a keypoint of their frame near them; nan without
    objects), on_distractor (share of keypoints near a pixel of bar_masks [N, 84, 84],
    when given), num_keypoints, num_objects.
    """
    points = pixel_coordinates(centres)                                # [N, K, 2]
    if len(points) != len(boxes_per_frame):
        raise ValueError(f"{len(points)} frames of keypoints but "
                         f"{len(boxes_per_frame)} frames of boxes")
    boxes, valid = padded_boxes(boxes_per_frame)                       # [N, M, 4], [N, M]
    near = (box_distances(points, boxes) <= radius) & valid[:, None]   # [N, K, M]
    found = near.any(axis=1)[valid]                                    # [objects]
    metrics = {
        "precision": float(near.any(axis=2).mean()),
        "recall": float(found.mean()) if found.size else float("nan"),
        "num_keypoints": int(points.shape[0] * points.shape[1]),
        "num_objects": int(found.size),
    }
    if bar_masks is not None:
        metrics["on_distractor"] = float((mask_distances(points, bar_masks) <= radius).mean())
    return metrics


def random_on_distractor(bar_masks, radius=4.0, grid_step=0.5, chunk=8):
    """Expected on_distractor of a uniformly random keypoint on each of N frames' bars.

    bar_masks [N, 84, 84] -> [N]: the share of the keypoint square [0, 83]^2 within
    `radius` of a True pixel (a unit square), measured at the cell midpoints of a grid
    `grid_step` pixels apart (as random_expectation). The squared distance to the nearest
    bar pixel is a min over rows of (row gap^2 + the least column gap^2 within that row),
    so no [grid, grid, 84, 84] array is formed.
    """
    masks = np.asarray(bar_masks, bool)
    cells = int(round(PIXEL_SPAN / grid_step))
    grid = (np.arange(cells) + 0.5) * (PIXEL_SPAN / cells)                      # [G]
    pixels = np.arange(FRAME_SIZE)
    gap_sq = (axis_gap(grid[:, None], pixels - 0.5, pixels + 0.5) ** 2).astype(np.float32)
    shares = np.empty(len(masks))
    for start in range(0, len(masks), chunk):
        m = masks[start:start + chunk]                                          # [n, 84, 84]
        # per frame, row i and grid column g: the least column gap^2 to a bar pixel of row i
        row_best = np.where(m[:, :, None, :], gap_sq[None, None], np.inf).min(-1)  # [n, 84, G]
        squared = (gap_sq.T[None, :, :, None] + row_best[:, :, None]).min(1)      # [n, G, G]
        shares[start:start + chunk] = (squared <= radius ** 2).mean(axis=(1, 2))
    return shares


def distractor_ratios(metrics, clean_metrics, expected):
    """attraction and robustness (module docstring) of one model: `metrics` on frames
    with bars, `clean_metrics` on the same frames without, `expected` the mean
    random_on_distractor of those bars (computed once per set of frames)."""
    return {"precision_clean": clean_metrics["precision"],
            "attraction": metrics["on_distractor"] / expected if expected else float("nan"),
            "robustness": (metrics["precision"] / clean_metrics["precision"]
                           if clean_metrics["precision"] else float("nan"))}


def keypoint_spread(centres):
    """How much keypoints move across frames, in pixels: for each keypoint the RMS
    distance of its position [N, K, 2] from its mean position, averaged over keypoints.
    Keypoints that follow moving objects move; parked ones have a spread near 0."""
    points = pixel_coordinates(centres)                                # [N, K, 2]
    return float(np.mean(np.sqrt(points.var(axis=0).sum(axis=-1))))


def random_baseline(boxes_per_frame, num_keypoints, radius=4.0, rng=None, bar_masks=None):
    """keypoint_metrics of `num_keypoints` uniformly random keypoints per frame (Monte Carlo)."""
    rng = np.random.default_rng(rng)
    centres = rng.uniform(-1.0, 1.0, size=(len(boxes_per_frame), num_keypoints, 2))
    return keypoint_metrics(centres, boxes_per_frame, radius, bar_masks)


def random_expectation(boxes_per_frame, num_keypoints, radius=4.0, grid_step=0.5):
    """Expected precision and recall of uniformly random keypoints, by quadrature.

    A uniform keypoint is near a frame's objects with probability u = the share of the
    [0, 83]^2 keypoint square within `radius` of a box, so precision = mean_n u_n; an
    object with share a is found by one of K keypoints with probability 1 - (1 - a)^K.
    The shares are measured on a grid of cell midpoints `grid_step` pixels apart.
    """
    cells = int(round(PIXEL_SPAN / grid_step))
    grid = (np.arange(cells) + 0.5) * (PIXEL_SPAN / cells)            # [G]
    union_shares, object_shares = [], []
    for frame_boxes in boxes_per_frame:
        b = np.reshape(frame_boxes, (-1, 4))
        gap_y = axis_gap(grid[:, None], b[:, 0], b[:, 2]) ** 2         # [G, M]
        gap_x = axis_gap(grid[:, None], b[:, 1], b[:, 3]) ** 2         # [G, M]
        near = gap_y[:, None] + gap_x[None] <= radius ** 2             # [G, G, M]
        union_shares.append(near.any(axis=2).mean())
        object_shares.extend(near.mean(axis=(0, 1)))
    object_shares = np.asarray(object_shares)
    recall = 1.0 - (1.0 - object_shares) ** num_keypoints
    return {"precision": float(np.mean(union_shares)) if union_shares else float("nan"),
            "recall": float(recall.mean()) if recall.size else float("nan")}


# ----------------------------------------------------------------------------
# Reporting


def metrics_table(rows):
    """A printable table of (method, metrics) pairs: precision, recall, on-distractor,
    attraction, robustness ("-" where a row has no such value)."""
    columns = (("precision", "precision"), ("recall", "recall"), ("on_distractor", "on-distractor"),
               ("attraction", "attraction"), ("robustness", "robustness"))
    width = max([len("method")] + [len(str(method)) for method, _ in rows])
    lines = ["  ".join([f"{'method':<{width}}"] + [f"{title:>13}" for _, title in columns])]
    for method, metrics in rows:
        cells = [f"{metrics[key]:13.3f}" if key in metrics else f"{'-':>13}" for key, _ in columns]
        lines.append("  ".join([f"{method:<{width}}"] + cells))
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Keypoint models on frames with ground truth: one pipeline for the evaluation of a run
# (measure_models, on its test split) and the probe during training (split_probe)


@dataclass(frozen=True)
class TruthFrames:
    """Frames with their ground truth, as every model is measured on them: the frames
    without and with the distractor bars of the noise type, the object boxes of each,
    the bars' pixels and the on_distractor that uniformly random keypoints expect there
    (None without bars)."""
    clean: np.ndarray  # [N, 84, 84, 3] uint8
    frames: np.ndarray  # [N, 84, 84, 3] uint8, with the bars drawn
    boxes: list  # N arrays [M_n, 4]
    bar_masks: np.ndarray | None  # [N, 84, 84] bool
    expected: float | None  # mean random_on_distractor of the bars


def truth_frames(arrays, attrs, env, picks, noise_type, rng, radius=4.0):
    """The frames `picks` (a slice or indices) of a split's arrays (read_h5's, with "ram")
    with their ground truth; the bars drawn with `rng` as in training. Raises
    NoGroundTruth (see ground_truth_for_split)."""
    objects = ground_truth_for_split(arrays, env, attrs)
    picks = np.arange(len(objects))[picks]
    clean = arrays["frames"][picks]
    frames = add_distractors(clean, noise_type, rng)
    bar_masks = (frames == BAR_COLOUR).all(-1) if noise_type != "none" else None
    expected = None if bar_masks is None else float(random_on_distractor(bar_masks, radius).mean())
    return TruthFrames(clean, frames, [objects[i].boxes for i in picks], bar_masks, expected)


def model_centres(model, frames, batch_size=32):
    """Keypoint centres [N, K, 2] of a keypoint model on uint8 frames [N, 84, 84, 3]."""
    batches = [np.asarray(model.keypoints(frames[i:i + batch_size].astype(np.float32) / 255.0)[0])
               for i in range(0, len(frames), batch_size)]
    return np.concatenate(batches)


def compiled_centres(batch_size=32):
    """A function (model, uint8 frames) -> centres like model_centres, through one traced
    tf.function per model: the probe's, called again and again during training."""
    import tensorflow as tf
    compiled = {}

    def centres_of(model, frames):
        if id(model) not in compiled:
            compiled[id(model)] = tf.function(
                lambda batch: model.keypoints(batch, is_training=False)[0])
        batches = tf.data.Dataset.from_tensor_slices(frames).batch(batch_size).map(
            lambda batch: tf.cast(batch, tf.float32) / 255.0)
        return np.concatenate([compiled[id(model)](batch).numpy() for batch in batches])

    return centres_of


def measure_on_frames(models, truth, radius=4.0, centres_of=model_centres):
    """keypoint_metrics and spread of each {name: model} on TruthFrames; with bars also
    precision_clean (the same frames without them), attraction and robustness
    (distractor_ratios). centres_of(model, uint8 frames) -> centres [N, K, 2]."""
    rows = {}
    for name, model in models.items():
        centres = centres_of(model, truth.frames)
        rows[name] = keypoint_metrics(centres, truth.boxes, radius, truth.bar_masks)
        rows[name]["spread"] = keypoint_spread(centres)
        if truth.bar_masks is not None:
            clean_metrics = keypoint_metrics(centres_of(model, truth.clean), truth.boxes, radius)
            rows[name].update(distractor_ratios(rows[name], clean_metrics, truth.expected))
    return rows


def measure_models(models, env, data_dir, noise_type="none", radius=4.0, num_frames=1000, seed=0):
    """measure_on_frames of each {name: model} on the first `num_frames` test frames,
    plus a "random" row of uniformly random keypoints (as many as the models have).

    With distractors, the bars are drawn as in training (seeded) and on_distractor
    counts keypoints near them. Raises NoGroundTruth (see ground_truth_for_split).
    """
    arrays, attrs = read_h5(split_path(data_dir, env, "test"), ("frames", "ram"))
    rng = np.random.default_rng(seed)  # the bars, then the random keypoints
    truth = truth_frames(arrays, attrs, env, slice(num_frames), noise_type, rng, radius)
    rows = measure_on_frames(models, truth, radius)
    num_keypoints = rows[next(iter(rows))]["num_keypoints"] // len(truth.frames)
    rows["random"] = random_baseline(truth.boxes, num_keypoints, radius, rng, truth.bar_masks)
    if truth.bar_masks is not None:
        rows["random"]["attraction"] = distractor_ratios(rows["random"], rows["random"],
                                                         truth.expected)["attraction"]
    return rows


def split_probe(env, data_dir, noise_type="none", metrics_radius=4.0, valid_metrics_frames=256,
                seed=0, split="valid"):
    """A function `probe(model) -> metrics` scoring a keypoint model on
    `valid_metrics_frames` frames of a split, taken at even intervals across it
    (consecutive frames look alike), within `metrics_radius` pixels: measure_on_frames'
    metrics without the counts, from the model's keypoints in inference mode. The frames,
    their boxes and bars (drawn seeded as in training) are made once.
    Returns None with valid_metrics_frames=0, and after printing why when the split has
    no ground truth.
    """
    if not valid_metrics_frames:
        return None
    arrays, attrs = read_h5(split_path(data_dir, env, split), ("frames", "ram"))
    picks = np.unique(
        np.linspace(0, len(arrays["frames"]) - 1, valid_metrics_frames).round().astype(int))
    try:
        truth = truth_frames(arrays, attrs, env, picks, noise_type, np.random.default_rng(seed),
                             metrics_radius)
    except NoGroundTruth as e:
        print(f"keypoint metrics during training: {e}")
        return None
    centres_of = compiled_centres()

    def probe(model):
        metrics = measure_on_frames({"model": model}, truth, metrics_radius, centres_of)["model"]
        return {k: v for k, v in metrics.items() if k not in ("num_keypoints", "num_objects")}

    return probe


def report_keypoint_quality(models, out_dir, env, data_dir, noise_type, metrics_radius,
                            metrics_frames, seed):
    """measure_models, printed as a table and written to out_dir/keypoint_metrics.json.

    Without ground truth (no RAM, or a game without a RAM table) it prints why and
    returns None: evaluation goes on.
    """
    try:
        rows = measure_models(models, env, data_dir, noise_type, metrics_radius, metrics_frames,
                              seed)
    except NoGroundTruth as e:
        print(f"keypoint metrics: {e}")
        return None
    write_json(os.path.join(out_dir, "keypoint_metrics.json"),
               {"env": canonical_env(env), "noise_type": noise_type, "radius": metrics_radius,
                "num_frames": metrics_frames, "rows": rows})
    print(f"keypoint quality on {canonical_env(env)} test frames (radius {metrics_radius} px):")
    print(metrics_table(list(rows.items())))
    return rows


def probe_options(config):
    """split_probe's arguments from a keypoint script's config."""
    return {key: config[key] for key in ("env", "data_dir", "noise_type", "metrics_radius",
                                         "valid_metrics_frames", "seed")}


def quality_options(config):
    """report_keypoint_quality's arguments (after the models and out_dir) from a keypoint
    script's config."""
    return {key: config[key] for key in ("env", "data_dir", "noise_type", "metrics_radius",
                                         "metrics_frames", "seed")}
