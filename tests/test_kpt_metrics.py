"""Ground-truth boxes from RAM checked against rendered frames, and the keypoint scores
(kpt_metrics.py)."""
import json
import math
import os

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

import atari_env
import datasets
import kpt_metrics as km
from common import ConfigError

FRAMES_PER_GAME = 600

# ---------------------------------------------------------------- sprites in rendered frames
#
# Each class is recognised in the 84 x 84 frames by its colours. The frame is a max over
# two screens, so a moving sprite's edge pixels become max(sprite, background): a pixel
# "shows" colour c when it is >= c in every channel and equal to c in at least two.
# Rows outside the playfield (score, lives: same colours as some sprites) are ignored.

PLAYFIELD_ROWS = {  # first and last frame row
    "mspacman": (0, 68), "seaquest": (16, 63), "frostbite": (16, 74), "space_invaders": (8, 77),
    "battlezone": (34, 46)}

# (game, label): colours, fewest boxes to judge, least share of boxes showing the colour
SPRITE_COLOURS = {
    ("mspacman", "player"): ([(210, 164, 74)], 0.95),
    # ghosts: their own four colours, frightened blue, flashing white; they flicker
    ("mspacman", "ghost"): ([(180, 122, 48), (84, 184, 153), (198, 89, 179), (200, 72, 72),
                             (66, 114, 194), (214, 214, 214)], 0.8),
    ("mspacman", "fruit"): ([(184, 50, 50)], 0.9),
    ("seaquest", "player"): ([(187, 187, 53)], 0.95),
    ("seaquest", "shark"): ([(92, 186, 92), (160, 171, 79)], 0.95),  # their colour changes by wave
    ("seaquest", "diver"): ([(66, 72, 200)], 0.95),
    ("frostbite", "player"): ([(162, 98, 33), (198, 108, 58)], 0.95),
    ("frostbite", "bird"): ([(132, 144, 252)], 0.95),
    ("frostbite", "ice_floe"): ([(214, 214, 214), (84, 138, 210)], 0.95),
    ("space_invaders", "player"): ([(50, 132, 50)], 0.85),
    ("space_invaders", "alien"): ([(134, 134, 29)], 0.95),
    # tanks and saucers blue, fighters red
    ("battlezone", "enemy"): ([(24, 80, 128), (66, 136, 176), (45, 109, 152), (200, 72, 72),
                              (214, 92, 92), (167, 26, 26), (184, 50, 50)], 0.9),
}


def shows_colours(frames, colours):
    """[N, 84, 84, 3] uint8 -> [N, 84, 84] bool: pixels showing one of `colours` (see above)."""
    shown = np.zeros(frames.shape[:3], bool)
    for colour in np.asarray(colours, np.uint8):
        shown |= np.all(frames >= colour, axis=-1) & ((frames == colour).sum(axis=-1) >= 2)
    return shown


def box_pixels(box, margin=0):
    """Row and column slices of the frame pixels a box (grown by `margin` pixels) shows."""
    y0, x0, y1, x1 = np.ceil(np.asarray(box) + [-margin, -margin, margin, margin]).astype(int)
    return slice(max(y0, 0), max(y1, 0)), slice(max(x0, 0), max(x1, 0))


def sprite_statistics(mask, boxes_per_frame, rng, margin=2):
    """How boxes [M_n, 4] per frame hold the sprite pixels of mask [N, 84, 84].

    hit: share of boxes with a sprite pixel inside; chance: the same for each box moved
    to a random place; coverage: share of the sprite pixels near a box (within `margin`
    pixels) that lie inside it, the test of offsets and sizes.
    """
    hits, chance, inside, near = [], [], 0, 0
    for frame_mask, boxes in zip(mask, boxes_per_frame):
        for box in boxes:
            rows, cols = box_pixels(box)
            hits.append(frame_mask[rows, cols].any())
            inside += frame_mask[rows, cols].sum()
            rows, cols = box_pixels(box, margin)
            near += frame_mask[rows, cols].sum()
            shift = rng.uniform([0, 0], [km.FRAME_SIZE, km.FRAME_SIZE]) - box[:2]
            rows, cols = box_pixels(box + np.tile(shift, 2))
            chance.append(frame_mask[rows, cols].any())
    return {"boxes": len(hits), "hit": np.mean(hits), "chance": np.mean(chance),
            "coverage": inside / max(near, 1)}


class SummonFruit(gym.Wrapper):
    """MsPacman's fruit comes in when its dot counter ram[119] reaches 50 (rare under a
    random policy): set the counter to 49 every 100 steps so that the next dot calls it."""

    def step(self, action):
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps % 100 == 1:
            self.env.unwrapped.ale.setRAM(119, 49)
        return self.env.step(action)


@pytest.fixture(scope="module")
def rendered():
    """game -> (frames [N, 84, 84, 3], RAM [N, 128], FrameObjects per frame) from random play,
    made once."""
    cache = {}

    def play(game):
        if game not in cache:
            with pytest.MonkeyPatch.context() as patch:
                if game == "mspacman":
                    make_env = datasets.make_env
                    patch.setattr(datasets, "make_env",
                                  lambda *a, **k: SummonFruit(make_env(*a, **k)))
                data = datasets.play_random(game, FRAMES_PER_GAME, seed=1)
            cache[game] = data["frames"], data["ram"], km.object_boxes_batch(game, data["ram"])
        return cache[game]

    return play


@pytest.mark.parametrize("game, label", list(SPRITE_COLOURS))
def test_ram_boxes_hold_their_sprites(rendered, game, label):
    frames, _, objects = rendered(game)
    colours, least_hit = SPRITE_COLOURS[game, label]
    top, bottom = PLAYFIELD_ROWS[game]
    mask = shows_colours(frames, colours)
    mask[:, :top] = mask[:, bottom + 1:] = False
    stats = sprite_statistics(mask, [o.boxes[o.labels == label] for o in objects],
                              np.random.default_rng(0))
    assert stats["boxes"] >= 100, stats
    assert stats["hit"] >= least_hit, stats
    assert stats["chance"] <= stats["hit"] / 2, stats
    assert stats["coverage"] >= 0.8, stats


# ---------------------------------------------------------------- RAM -> boxes by hand


def screen_box(top, left, height, width):
    """A screen rectangle in 84 x 84 box coordinates, computed as the module docstring says."""
    return [top * 0.4 - 0.5, left * 0.525 - 0.5,
            (top + height) * 0.4 - 0.5, (left + width) * 0.525 - 0.5]


def test_mspacman_player_box_from_hand_made_ram():
    ram = np.zeros(128, np.uint8)
    ram[10], ram[16] = 80, 50  # ghosts at x byte 0 lie wholly off screen; no fruit
    objects = km.object_boxes("mspacman", ram)
    assert list(objects.labels) == ["player"]
    assert objects.boxes.dtype == np.float32 and objects.boxes.shape == (1, 4)
    np.testing.assert_allclose(objects.boxes[0], screen_box(51, 68, 10, 8), atol=1e-5)


def test_fruit_partly_off_screen_is_clipped_and_absent_without_position():
    ram = np.zeros(128, np.uint8)
    ram[10], ram[16] = 80, 50
    ram[11], ram[17] = 5, 100  # left edge at screen x = -7
    objects = km.object_boxes("mspacman", ram)
    np.testing.assert_allclose(objects.boxes[objects.labels == "fruit"][0],
                               screen_box(101, 0, 10, 1), atol=1e-5)
    ram[11] = 0
    assert "fruit" not in km.object_boxes("mspacman", ram).labels


def test_battlezone_enemy_size_by_distance_wrapped_hidden_and_absent():
    ram = np.zeros(128, np.uint8)
    ram[46], ram[47], ram[48] = 20, 3, 100                 # distance class 3 at x byte 100
    np.testing.assert_allclose(km.object_boxes("battlezone", ram).boxes,
                               [screen_box(93, 101, 5, 8)], atol=1e-5)
    ram[47], ram[48] = 8, 150                              # near, wrapped: left edge at -9
    np.testing.assert_allclose(km.object_boxes("battlezone", ram).boxes,
                               [screen_box(90, 0, 15, 7)], atol=1e-5)
    for byte, value in ((48, 145), (47, 0), (47, 9), (46, 0)):  # hidden, a dot, none, none
        changed = ram.copy()
        changed[byte] = value
        assert len(km.object_boxes("battlezone", changed).boxes) == 0, (byte, value)
    ram[86], ram[88], ram[90] = 18, 236, 226               # the game waits to start
    assert len(km.object_boxes("battlezone", ram).boxes) == 0


def test_batch_and_single_frame_agree(rendered):
    _, rams, objects = rendered("seaquest")
    for ram, frame_objects in zip(rams[:100], objects):
        single = km.object_boxes("seaquest", ram)
        np.testing.assert_array_equal(single.boxes, frame_objects.boxes)
        np.testing.assert_array_equal(single.labels, frame_objects.labels)


@pytest.mark.parametrize("game", sorted(km.RAM_MAPS))
def test_boxes_lie_in_the_frame(rendered, game):
    _, _, objects = rendered(game)
    boxes = np.concatenate([o.boxes for o in objects])
    assert boxes.min() >= -0.5 and boxes.max() <= km.FRAME_SIZE - 0.5
    assert np.all(boxes[:, 2:] > boxes[:, :2])


# ---------------------------------------------------------------- datasets without ground truth


def test_unmapped_game_names_the_covered_ones():
    with pytest.raises(km.NoGroundTruth,
                       match="no ground-truth mapping for game enduro; covered: mspacman"):
        km.object_boxes("enduro", np.ones(128, np.uint8))
    with pytest.raises(ConfigError, match="enduro"):
        km.ground_truth_for_split({"ram": np.ones((3, 128), np.uint8)}, "enduro")


def small_split(tmp_path, attrs, frames=20):
    data = datasets.play_random("mspacman", frames, seed=2)
    path = str(tmp_path / "test.h5")
    datasets.write_h5(path, data, attrs)
    return path, data


def test_ground_truth_for_a_generated_file(tmp_path):
    path, data = small_split(tmp_path, {"env": "mspacman", "source": "random_policy"})
    objects = km.ground_truth_for_split(path, "mspacman")
    assert len(objects) == len(data["frames"])
    assert all("player" in o.labels for o in objects)


def test_converted_npz_frames_have_no_ground_truth(tmp_path):
    path, _ = small_split(tmp_path, {"env": "mspacman", "source": "authors_npz", "has_ram": False})
    with pytest.raises(km.NoGroundTruth,
                       match=r"^no ground truth for .*test\.h5: its frames carry no console RAM"):
        km.ground_truth_for_split(path, "mspacman")


def test_arrays_without_ram_have_no_ground_truth():
    frames = np.zeros((4, 84, 84, 3), np.uint8)
    for arrays in ({"frames": frames}, {"frames": frames, "ram": np.zeros((4, 128), np.uint8)}):
        with pytest.raises(km.NoGroundTruth, match="no ground truth for these frames"):
            km.ground_truth_for_split(arrays, "mspacman")


def test_file_of_another_game_is_refused(tmp_path):
    path, _ = small_split(tmp_path, {"env": "mspacman", "source": "random_policy"}, frames=2)
    with pytest.raises(ConfigError, match="holds mspacman frames, not seaquest"):
        km.ground_truth_for_split(path, "seaquest")


# ---------------------------------------------------------------- scores


def to_centres(pixels):
    """Pixel coordinates (y, x) -> keypoint centres in [-1, 1]."""
    return np.asarray(pixels, np.float64) / 83 * 2 - 1


BOX_A, BOX_B = [10, 10, 20, 20], [50, 60, 54, 64]


def test_precision_and_recall_by_hand():
    centres = to_centres([
        [[15, 15], [10, 25], [23, 20], [70, 70]],  # inside A; 5 px right of A; 3 px below A; far
        [[15, 15], [0, 0], [40, 40], [83, 83]],    # a frame without objects: all misses
    ])
    metrics = km.keypoint_metrics(centres, [np.array([BOX_A, BOX_B]), np.zeros((0, 4))], radius=4.0)
    assert metrics["precision"] == pytest.approx(2 / 8)
    assert metrics["recall"] == pytest.approx(1 / 2)  # A found, B not
    assert metrics["num_keypoints"] == 8 and metrics["num_objects"] == 2
    assert "on_distractor" not in metrics


def test_radius_widens_the_reach():
    centres = to_centres([[[10, 25], [58, 70]]])  # 5 px from A; (4, 6) px from B: 7.2 px
    boxes = [np.array([BOX_A, BOX_B])]
    assert km.keypoint_metrics(centres, boxes, radius=4.0)["precision"] == 0
    assert km.keypoint_metrics(centres, boxes, radius=5.5)["recall"] == pytest.approx(0.5)
    assert km.keypoint_metrics(centres, boxes, radius=7.5)["precision"] == 1


def test_fraction_on_distractor_bars():
    masks = np.zeros((1, 84, 84), bool)
    masks[0, :, 40:45] = True  # pixel columns 40..44 cover x in [39.5, 44.5]
    # gaps 0, 4.5, 3.5, 3.5, 4.5
    centres = to_centres([[[30, 42], [30, 35], [30, 36], [30, 48], [30, 49]]])
    metrics = km.keypoint_metrics(centres, [np.zeros((0, 4))], radius=4.0, bar_masks=masks)
    assert metrics["on_distractor"] == pytest.approx(3 / 5)
    metrics = km.keypoint_metrics(centres, [np.zeros((0, 4))],
                                  bar_masks=np.zeros((1, 84, 84), bool))
    assert metrics["on_distractor"] == 0


def test_distractor_masks_from_bars_drawn_on_frames():
    frames = atari_env.add_distractors(np.zeros((50, 84, 84, 3), np.uint8), "both",
                                np.random.default_rng(0))
    masks = np.all(frames == atari_env.BAR_COLOUR, axis=-1)
    centres = np.random.default_rng(1).uniform(-1, 1, (50, 40, 2))
    on_bar = km.keypoint_metrics(centres, [np.zeros((0, 4))] * 50, radius=0.0,
                                 bar_masks=masks)["on_distractor"]
    pixels = np.rint(km.pixel_coordinates(centres)).astype(int)
    assert on_bar == pytest.approx(
        masks[np.arange(50)[:, None], pixels[..., 0], pixels[..., 1]].mean(), abs=0.01)


def test_random_on_distractor_is_the_share_of_the_frame_within_reach_of_a_bar():
    masks = np.zeros((3, 84, 84), bool)
    masks[0, :, 40:45] = True  # x in [39.5, 44.5]: reach [35.5, 48.5], 13 of the 83 px span
    masks[1, :, 0:5] = True    # at the border: reach [-0.5, 8.5] clipped to [0, 8.5]
    masks[2, 40:45] = True
    masks[2, :, 40:45] = True  # a cross: 13 + 13 - 13 * 13 / 83 of 83 per axis
    shares = km.random_on_distractor(masks, radius=4.0)
    assert shares == pytest.approx([13 / 83, 8.5 / 83, 2 * 13 / 83 - (13 / 83) ** 2], abs=1e-3)
    assert km.random_on_distractor(np.zeros((1, 84, 84), bool))[0] == 0.0
    # against uniform points measured one by one
    points = np.random.default_rng(0).uniform(0, 83, (3, 4000, 2))
    sampled = (km.mask_distances(points, masks) <= 4.0).mean(axis=1)
    assert sampled == pytest.approx(shares, abs=0.02)


def bar_frames():
    """Two frames with a vertical bar at columns 60..64 and a horizontal one at rows
    70..74, and an object box at (20..24, 20..24) in each."""
    masks = np.zeros((2, 84, 84), bool)
    masks[:, :, 60:65] = True
    masks[:, 70:75] = True
    return masks, [np.array([[20.0, 20.0, 24.0, 24.0]])] * 2


def test_distractor_ratios_of_keypoints_on_the_bars_on_sprites_and_at_random():
    masks, boxes = bar_frames()
    expected = km.random_on_distractor(masks).mean()  # 2 * 13/83 - (13/83)^2 = 0.289
    assert expected == pytest.approx(2 * 13 / 83 - (13 / 83) ** 2, abs=1e-3)
    on_sprite = to_centres([[[22, 22]]] * 2)
    on_bar = to_centres([[[30, 62]]] * 2)
    clean = km.keypoint_metrics(on_sprite, boxes)
    # keypoints that stay on the sprite with bars elsewhere: never near a bar, not displaced
    sprite = km.keypoint_metrics(on_sprite, boxes, bar_masks=masks)
    ratios = km.distractor_ratios(sprite, clean, expected)
    assert ratios == {"precision_clean": 1.0, "attraction": 0.0, "robustness": 1.0}
    # keypoints that the bars pull off the sprite: always on a bar, precision lost
    bar = km.keypoint_metrics(on_bar, boxes, bar_masks=masks)
    ratios = km.distractor_ratios(bar, clean, expected)
    assert ratios["attraction"] == pytest.approx(1 / expected)  # 3.46
    assert ratios["robustness"] == 0.0
    # half the keypoints on a bar: attraction half of that
    half = km.keypoint_metrics(np.concatenate([on_sprite, on_bar], 1), boxes, bar_masks=masks)
    assert km.distractor_ratios(half, half, expected)["attraction"] == pytest.approx(0.5 / expected)
    # uniformly random keypoints: attraction 1 within Monte Carlo error
    rng = np.random.default_rng(0)
    many = np.repeat(masks, 500, axis=0)
    random_centres = rng.uniform(-1, 1, (1000, 20, 2))
    random_metrics = km.keypoint_metrics(random_centres, boxes * 500, bar_masks=many)
    assert km.distractor_ratios(random_metrics, random_metrics,
                                 km.random_on_distractor(many).mean())["attraction"] == \
        pytest.approx(1.0, abs=0.03)


def test_distractor_ratios_without_clean_precision_or_bars_are_nan():
    masks, boxes = bar_frames()
    far = km.keypoint_metrics(to_centres([[[5, 5]]] * 2), boxes, bar_masks=masks)
    ratios = km.distractor_ratios(far, far, km.random_on_distractor(masks).mean())
    assert math.isnan(ratios["robustness"]) and ratios["attraction"] == 0.0
    no_bars = np.zeros_like(masks)
    expected = km.random_on_distractor(no_bars).mean()  # 0: no bars
    assert math.isnan(km.distractor_ratios(far, far, expected)["attraction"])


def test_random_baseline_matches_the_area_within_reach_of_one_box():
    box, radius, keypoints = [30, 30, 40, 45], 4.0, 10
    height, width = box[2] - box[0], box[3] - box[1]
    share = (height * width + 2 * radius * (height + width) + math.pi * radius ** 2) / 83 ** 2
    boxes = [np.array([box])] * 2000
    expected = km.random_expectation(boxes[:1], keypoints, radius)
    assert expected["precision"] == pytest.approx(share, abs=0.002)
    assert expected["recall"] == pytest.approx(1 - (1 - share) ** keypoints, abs=0.01)
    sampled = km.random_baseline(boxes, keypoints, radius, rng=0)
    assert sampled["precision"] == pytest.approx(share, abs=0.006)  # 3.5 standard errors
    assert sampled["recall"] == pytest.approx(1 - (1 - share) ** keypoints, abs=0.04)


@pytest.mark.parametrize("game", ["mspacman", "space_invaders"])
def test_random_baseline_near_its_expectation_on_game_boxes(rendered, game):
    _, _, objects = rendered(game)
    boxes = [o.boxes for o in objects]
    expected = km.random_expectation(boxes, 25)
    sampled = km.random_baseline(boxes, 25, rng=0)
    assert sampled["precision"] == pytest.approx(expected["precision"], abs=0.01)
    assert sampled["recall"] == pytest.approx(expected["recall"], abs=0.02)


# ---------------------------------------------------------------- reporting


def test_metrics_table():
    table = km.metrics_table([
        ("PermaKey", {"precision": 0.8123, "recall": 0.5, "on_distractor": 0.05}),
        ("random", {"precision": 0.25, "recall": 0.125}),
    ])
    header, permakey, random_row = table.splitlines()
    assert header.split() == ["method", "precision", "recall", "on-distractor", "attraction",
                              "robustness"]
    assert permakey.split() == ["PermaKey", "0.812", "0.500", "0.050", "-", "-"]
    assert random_row.split() == ["random", "0.250", "0.125", "-", "-", "-"]


# ---------------------------------------------------------------- models on a test split


class FixedKeypoints:
    """A stand-in keypoint model that puts the same centres on every frame."""

    def __init__(self, centres):
        self.centres = np.asarray(centres, np.float32)  # [K, 2]

    def keypoints(self, images, is_training=False):
        return (tf.repeat(self.centres[None], tf.shape(images)[0], axis=0),)


@pytest.fixture(scope="module")
def tiny_splits(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("data"))
    for env in ("mspacman", "enduro"):
        datasets.generate_dataset(env, data_dir, num_frames=40, num_eval_frames=30, seed=0)
    return data_dir


def test_report_scores_models_and_a_random_row(tiny_splits, tmp_path, capsys):
    arrays, _ = datasets.read_h5(datasets.split_path(tiny_splits, "mspacman", "test"))
    player = km.object_boxes("mspacman", arrays["ram"][0]).boxes[0]  # on the player in frame 0
    on_player = to_centres([[(player[0] + player[2]) / 2, (player[1] + player[3]) / 2]])  # [1, 2]
    models = {"on player": FixedKeypoints(on_player), "corner": FixedKeypoints([[-1.0, -1.0]])}
    rows = km.report_keypoint_quality(models, str(tmp_path), "mspacman", tiny_splits, "vertical",
                                      metrics_radius=4.0, metrics_frames=20, seed=0)
    assert set(rows) == {"on player", "corner", "random"}
    assert rows["on player"]["num_keypoints"] == 20 and rows["random"]["num_keypoints"] == 20
    assert rows["on player"]["precision"] > rows["corner"]["precision"]
    assert all(0.0 <= row["on_distractor"] <= 1.0 for row in rows.values())
    # fixed keypoints ignore the bars: the same precision without them, robustness 1
    assert rows["on player"]["precision_clean"] == rows["on player"]["precision"] > 0
    assert rows["on player"]["robustness"] == 1.0
    assert math.isnan(rows["corner"]["robustness"])  # precision 0 with and without bars
    assert rows["corner"]["attraction"] == pytest.approx(
        rows["corner"]["on_distractor"] / km.random_on_distractor(
            (atari_env.add_distractors(arrays["frames"][:20], "vertical", np.random.default_rng(0))
             == atari_env.BAR_COLOUR).all(-1)).mean())
    with open(tmp_path / "keypoint_metrics.json") as f:
        written = json.load(f)
    assert written["rows"]["corner"] == pytest.approx(rows["corner"], nan_ok=True)
    assert written["noise_type"] == "vertical" and written["radius"] == 4.0
    assert "on player" in capsys.readouterr().out


def test_report_without_ground_truth_says_so_and_goes_on(tiny_splits, tmp_path, capsys):
    result = km.report_keypoint_quality({"m": FixedKeypoints([[0.0, 0.0]])}, str(tmp_path),
                                        "enduro", tiny_splits, "none", 4.0, 10, 0)
    assert result is None and os.listdir(tmp_path) == []
    assert ("no ground-truth mapping for game enduro; covered: mspacman"
            in capsys.readouterr().out)


def test_spread_by_hand():
    # keypoint 0 alternates between two pixels 6 px apart along x: 3 px from its mean
    # in every frame; keypoint 1 never moves.
    pixels = np.array([[[40.0, 10.0], [20.0, 20.0]],
                       [[40.0, 16.0], [20.0, 20.0]]] * 5)  # [10, 2, 2]
    assert km.keypoint_spread(to_centres(pixels)) == pytest.approx((3.0 + 0.0) / 2)


class OracleKeypoints:
    """A stand-in model that puts its keypoints on the centres of each frame's true
    objects (looked up by the frame's bytes), padded with the far corner."""

    def __init__(self, arrays, env, num_keypoints):
        self.table = {}
        for frame, objects in zip(arrays["frames"], km.ground_truth_for_split(arrays, env)):
            centres = [[(y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2] for y0, x0, y1, x1 in objects.boxes]
            centres = (centres + [[83.0, 83.0]] * num_keypoints)[:num_keypoints]
            self.table[frame.tobytes()] = to_centres(centres).astype(np.float32)

    def keypoints(self, images, is_training=False):
        def lookup(batch):
            frames = np.round(batch * 255.0).astype(np.uint8)
            return np.stack([self.table[frame.tobytes()] for frame in frames])
        return tf.numpy_function(lookup, [images], tf.float32), None


def test_split_probe_scores_the_validation_frames(tiny_splits):
    arrays, _ = datasets.read_h5(datasets.split_path(tiny_splits, "mspacman", "valid"))
    oracle = OracleKeypoints(arrays, "mspacman", num_keypoints=3)
    probe = km.split_probe("mspacman", tiny_splits, "none", 4.0, valid_metrics_frames=10, seed=0)
    metrics = probe(oracle)
    assert set(metrics) == {"precision", "recall", "spread"}
    # the padding keypoints in the corner are the only misses; each keypoint finds its object
    counts = [len(o.boxes) for o in km.ground_truth_for_split(arrays, "mspacman")]
    counts = [counts[i] for i in np.unique(np.linspace(0, len(counts) - 1, 10).round().astype(int))]
    assert metrics["precision"] == pytest.approx(np.mean([min(m, 3) / 3 for m in counts]))
    assert metrics["recall"] >= sum(min(m, 3) for m in counts) / sum(counts) - 1e-9
    assert probe(FixedKeypoints([[-1.0, -1.0]]))["spread"] == 0.0


def test_split_probe_counts_bars_and_is_none_without_ground_truth(tiny_splits, capsys):
    probe = km.split_probe("mspacman", tiny_splits, "both", 4.0, valid_metrics_frames=10, seed=0)
    metrics = probe(FixedKeypoints([[0.0, 0.0], [-0.3, 0.1]]))
    assert 0.0 <= metrics["on_distractor"] <= 1.0
    assert set(metrics) == {"precision", "recall", "spread", "on_distractor", "precision_clean",
                            "attraction", "robustness"}
    assert metrics["precision_clean"] == metrics["precision"]  # keypoints that ignore the bars
    assert km.split_probe("enduro", tiny_splits, "none", 4.0, 10, 0) is None
    assert "no ground-truth mapping for game enduro" in capsys.readouterr().out
    assert km.split_probe("mspacman", tiny_splits, "none", 4.0, 0, 0) is None


def test_truth_frames_pick_frames_boxes_and_bars_together(tiny_splits):
    arrays, attrs = datasets.read_h5(datasets.split_path(tiny_splits, "mspacman", "test"))
    objects = km.ground_truth_for_split(arrays, "mspacman", attrs)
    picked = km.truth_frames(arrays, attrs, "mspacman", np.array([3, 7]), "none",
                             np.random.default_rng(0))
    np.testing.assert_array_equal(picked.frames, arrays["frames"][[3, 7]])
    np.testing.assert_array_equal(picked.boxes[1], objects[7].boxes)
    assert picked.bar_masks is None and picked.expected is None
    first = km.truth_frames(arrays, attrs, "mspacman", slice(5), "both", np.random.default_rng(0))
    bars = atari_env.add_distractors(arrays["frames"][:5], "both", np.random.default_rng(0))
    np.testing.assert_array_equal(first.frames, bars)                 # drawn as in training
    np.testing.assert_array_equal(first.clean, arrays["frames"][:5])
    np.testing.assert_array_equal(first.bar_masks, (bars == atari_env.BAR_COLOUR).all(-1))
    assert first.expected == pytest.approx(km.random_on_distractor(first.bar_masks).mean())
    assert len(first.boxes) == 5


@pytest.mark.parametrize("noise_type", ["none", "both"])
def test_the_probe_measures_as_the_evaluation_does_on_the_same_frames(tiny_splits, noise_type):
    # the probe of every frame of the test split against measure_models on them: one
    # pipeline, the same numbers (the probe leaves out the counts)
    arrays, _ = datasets.read_h5(datasets.split_path(tiny_splits, "mspacman", "test"))
    models = {"middle": FixedKeypoints([[0.0, 0.0], [-0.3, 0.1]]),
              "corner": FixedKeypoints([[-1.0, -1.0]])}
    if noise_type == "none":  # the oracle knows the frames without bars
        models["oracle"] = OracleKeypoints(arrays, "mspacman", num_keypoints=3)
    count = len(arrays["frames"])
    probe = km.split_probe("mspacman", tiny_splits, noise_type, 4.0, count, seed=3, split="test")
    rows = km.measure_models(models, "mspacman", tiny_splits, noise_type, 4.0, count, seed=3)
    for name, model in models.items():
        expected = {k: v for k, v in rows[name].items()
                    if k not in ("num_keypoints", "num_objects")}
        assert probe(model) == pytest.approx(expected, nan_ok=True)
    assert set(rows) == {*models, "random"}
