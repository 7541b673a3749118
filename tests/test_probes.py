"""AtariARI-style probes (probes.py): labels, entropy filter, weighted F1, category
averages against hand computations; probes that must reach F1 1.0 or stay at chance;
representations of a fake keypoint model and their cache."""
import math
import os

import numpy as np
import pytest
import tensorflow as tf

import probes
from common import ConfigError

# ---------------------------------------------------------------- labels and categories


def test_labels_read_the_annotated_bytes():
    ram = np.zeros((2, 128), np.uint8)
    ram[:, 10] = [77, 78]      # MsPacman player_x
    ram[:, 16] = [33, 34]      # player_y
    ram[:, 123] = [2, 1]       # num_lives
    ram[:, 6] = [5, 6]         # enemy_sue_x
    got = probes.labels("mspacman", ram)
    assert len(got) == 17
    assert got["player_x"].tolist() == [77, 78] and got["player_y"].tolist() == [33, 34]
    assert got["num_lives"].tolist() == [2, 1] and got["enemy_sue_x"].tolist() == [5, 6]
    assert got["player_score"].tolist() == [0, 0]

    ram = np.arange(128, dtype=np.uint8)[None]   # byte i holds i
    seaquest = probes.labels("seaquest", ram)
    assert len(seaquest) == 18
    assert seaquest["enemy_obstacle_x_2"][0] == 32 and seaquest["score_1"][0] == 58
    assert seaquest["diver_or_enemy_missile_x_0"][0] == 71 and seaquest["player_y"][0] == 97
    frostbite = probes.labels("frosbite", ram)             # the alias names the same game
    assert len(frostbite) == 17
    assert frostbite["enemy_x_3"][0] == 87 and frostbite["score_0"][0] == 72
    assert frostbite["player_x"][0] == 102 and frostbite["player_y"][0] == 100
    battlezone = probes.labels("battlezone", ram)
    assert len(battlezone) == 14 and battlezone["score"][0] == 29
    assert battlezone["missile_y"][0] == 105


def test_unknown_game_and_bad_ram_are_one_line_errors():
    with pytest.raises(ConfigError, match="no AtariARI RAM annotations for env 'pong'"):
        probes.labels("pong", np.zeros((1, 128), np.uint8))
    with pytest.raises(ConfigError, match=r"expected \[N, 128\]"):
        probes.labels("mspacman", np.zeros((1, 64), np.uint8))


def test_categories_follow_atariari_rules():
    assert probes.categories_of("player_x") == ["agent_localization"]
    assert probes.categories_of("player_missile_x") == ["small_object_localization"]
    assert probes.categories_of("diver_or_enemy_missile_x_3") == ["small_object_localization"]
    assert probes.categories_of("enemy_sue_y") == ["other_localization"]
    assert probes.categories_of("blue_tank_size_y") == ["other_localization"]
    assert probes.categories_of("num_lives") == ["score_clock_lives_display"]
    assert probes.categories_of("oxygen_meter_value") == ["score_clock_lives_display"]
    assert probes.categories_of("dots_eaten_count") == ["misc_keys"]
    assert probes.categories_of("player_missile_direction") == ["misc_keys"]
    assert probes.categories_of("compass_needles_angle") == []
    # Every annotated variable of the four games is in at most one category.
    for game in probes.ATARIARI_RAM:
        assert all(len(probes.categories_of(v)) <= 1 for v in probes.ram_variables(game))


# ---------------------------------------------------------------- entropy, F1, averages


def test_entropy_filter_in_nats_at_0_6():
    n = 1000
    train = {"constant": np.zeros(n, int),
             "uniform4": np.arange(n) % 4,                      # ln 4 = 1.386 nats
             "p80": (np.arange(n) % 10 < 2).astype(int),        # 0.8 / 0.2: 0.500 nats
             "p70": (np.arange(n) % 10 < 3).astype(int)}        # 0.7 / 0.3: 0.611 nats
    kept, entropy = probes.entropy_filter(train)
    assert kept == ["uniform4", "p70"]
    assert entropy["constant"] == 0.0
    assert entropy["uniform4"] == pytest.approx(math.log(4))
    assert entropy["p80"] == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)))
    assert entropy["p80"] == pytest.approx(0.5004, abs=1e-4)  # 0.722 in bits: kept in bits
    assert entropy["p70"] == pytest.approx(0.6109, abs=1e-4)


def test_weighted_f1_by_hand():
    # class 0: P = 1/2, R = 1/2, F1 = 0.5, 2 true; class 1: P = 2/3, R = 1, F1 = 0.8,
    # 2 true; class 2: no hit, F1 = 0, 1 true. Weighted: (2 * 0.5 + 2 * 0.8 + 0) / 5.
    assert probes.weighted_f1([0, 0, 1, 1, 2], [0, 1, 1, 1, 0]) == pytest.approx(0.52)
    assert probes.weighted_f1([7, 7, 200], [7, 7, 200]) == 1.0
    # A predicted class with no true label weighs 0 but costs class 3 its precision:
    # class 3: P = 1/2, R = 1, F1 = 2/3, 1 true; class 5: R = 0, 1 true.
    assert probes.weighted_f1([3, 5], [3, 3]) == pytest.approx(1 / 3)
    # Majority baseline: train majority 4; test [4, 4, 4, 9]: class 4 P = 3/4, R = 1.
    assert probes.majority_f1(np.array([4, 4, 1]), np.array([4, 4, 4, 9])) == \
        pytest.approx(3 / 4 * (2 * 0.75 / 1.75))


def test_category_averages_by_hand():
    scores = {"player_x": 1.0, "player_y": 0.5,              # agent: 0.75
              "enemy_sue_x": 0.2,                            # other: 0.2
              "num_lives": 0.9,                              # score...: 0.9
              "player_direction": 0.1, "dots_eaten_count": 0.3,  # misc: 0.2
              "compass_needles_angle": 0.0}                  # no category
    got = probes.category_averages(scores)
    assert got["categories"] == pytest.approx({
        "agent_localization": 0.75, "other_localization": 0.2,
        "score_clock_lives_display": 0.9, "misc_keys": 0.2})
    assert "small_object_localization" not in got["categories"]
    assert got["overall_avg"] == pytest.approx(3.0 / 7)
    assert got["across_categories_avg"] == pytest.approx((0.75 + 0.2 + 0.9 + 0.2) / 4)


# ---------------------------------------------------------------- the probes


def synthetic_game(n, rng, player_x_probs=(0.2, 0.2, 0.2, 0.2, 0.2)):
    """MsPacman RAM [n, 128] where only player_x (5 values, `player_x_probs`) and
    num_lives (3 values, uniform) vary: every other variable is constant."""
    ram = np.zeros((n, 128), np.uint8)
    ram[:, 10] = rng.choice([20, 40, 60, 80, 100], size=n, p=player_x_probs)
    ram[:, 123] = rng.integers(1, 4, size=n)
    return ram


def one_hot(values, choices):
    return (np.asarray(values)[:, None] == np.asarray(choices)[None]).astype(np.float32)


# 5000 training frames, 78 batches an epoch: with 2000, a probe of the one-hot label
# sometimes still improves at epoch 100 (the protocol's learning rate is small).
SIZES = {"train": 5000, "valid": 300, "test": 300}


def test_probe_reaches_f1_one_when_the_features_hold_the_label():
    rng = np.random.default_rng(0)
    ram = {split: synthetic_game(n, rng) for split, n in SIZES.items()}
    features = {split: np.concatenate([one_hot(r[:, 10], [20, 40, 60, 80, 100]),
                                       one_hot(r[:, 123], [1, 2, 3]),
                                       0.1 * rng.standard_normal((len(r), 4))], axis=1)
                for split, r in ram.items()}
    table = probes.probe_table(features, ram, "mspacman")   # AtariARI's protocol as it is
    assert set(table["variables"]) == {"player_x", "num_lives"}
    assert len(table["dropped"]) == 15 and table["dropped"]["player_y"] == 0.0
    for name, result in table["variables"].items():
        assert result["f1"] == 1.0, name
        assert result["epochs"] < 100        # stopped early: 15 epochs without a gain
    assert table["categories"] == {"agent_localization": 1.0, "score_clock_lives_display": 1.0}
    assert table["across_categories_avg"] == 1.0
    assert table["majority"]["across_categories_avg"] < 0.3


def test_probe_stays_at_chance_on_noise():
    # 20000 training frames (312 batches an epoch): with 2000, early stopping ends the
    # probes before they have learnt even the labels' frequencies, and F1 on noise falls
    # below the majority baseline (0.2 against 0.41).
    rng = np.random.default_rng(1)
    sizes = dict(SIZES, train=20000)
    ram = {split: synthetic_game(n, rng, (0.6, 0.2, 0.1, 0.05, 0.05))
           for split, n in sizes.items()}
    features = {split: rng.standard_normal((len(r), 16)).astype(np.float32)
                for split, r in ram.items()}
    table = probes.probe_table(features, ram, "mspacman")
    player_x, num_lives = table["variables"]["player_x"], table["variables"]["num_lives"]
    # Always answering the majority (p = 0.6): F1 = 0.6 * (2 * 0.6 / 1.6) = 0.45.
    assert player_x["majority_f1"] == pytest.approx(0.45, abs=0.06)
    assert abs(player_x["f1"] - player_x["majority_f1"]) < 0.05
    # num_lives is 3 equally likely values: guessing scores 1/3, the majority about 1/6.
    assert num_lives["majority_f1"] == pytest.approx(1 / 6, abs=0.04)
    assert num_lives["f1"] < 0.4
    assert table["across_categories_avg"] < 0.45


def test_frozen_variable_stops_moving():
    """A stopped probe (learning rate 0) keeps its weights while the others train."""
    rng = np.random.default_rng(2)
    x = tf.constant(rng.standard_normal((128, 6)), tf.float32)
    y = tf.constant(rng.integers(0, 3, size=(128, 2)), tf.int32)
    model = probes.Probes(6, 2, seed=0)
    before = model.weights.numpy().copy()
    order = tf.constant(np.arange(128).reshape(1, 128), tf.int32)   # one Adam step
    model.train_epoch(x, y, order, tf.constant([3e-4, 0.0]))
    after = model.weights.numpy()
    assert np.array_equal(after[:, 256:], before[:, 256:])
    # Adam's first step moves every weight with a gradient by about lr (g / (|g| + eps)).
    moved = np.abs(after[:, :256] - before[:, :256])
    assert np.median(moved) == pytest.approx(3e-4, rel=0.05) and moved.max() <= 3e-4 * 1.001


def test_probe_table_checks_its_inputs():
    rng = np.random.default_rng(3)
    ram = {split: synthetic_game(n, rng) for split, n in SIZES.items()}
    features = {split: np.zeros((len(r), 3), np.float32) for split, r in ram.items()}
    with pytest.raises(ConfigError, match="no AtariARI RAM annotations"):
        probes.probe_table(features, ram, "enduro")
    with pytest.raises(ConfigError, match="test: 299 feature rows for 300 RAM rows"):
        probes.probe_table(dict(features, test=features["test"][1:]), ram, "mspacman")
    with pytest.raises(ConfigError, match="unknown probe settings"):
        probes.probe_table(features, ram, "mspacman", learning_rate=1.0)
    constant = {split: np.zeros_like(r) for split, r in ram.items()}
    with pytest.raises(ConfigError, match="no RAM variable of mspacman has label entropy"):
        probes.probe_table(features, constant, "mspacman")


# ---------------------------------------------------------------- representations


class FakeKeypointModel:
    """Two keypoints: the first at (y, x) = (v, -0.5), the second at (-v, 0.5), v the
    frame's mean pixel / 255; features [B, 42, 42, 2]: channel 0 is +1 on the left half
    and -1 on the right half, channel 1 is 3 everywhere."""

    def __init__(self):
        self.calls = 0

    def keypoints(self, images, is_training=False):
        self.calls += 1
        v = tf.reduce_mean(images, axis=[1, 2, 3])                        # [B]
        first = tf.stack([v, -0.5 * tf.ones_like(v)], axis=-1)
        second = tf.stack([-v, 0.5 * tf.ones_like(v)], axis=-1)
        return tf.stack([first, second], axis=1), None                    # [B, 2, 2]

    def features(self, images, is_training=False):
        batch = tf.shape(images)[0]
        side = tf.concat([tf.ones([21]), -tf.ones([21])], axis=0)          # [42] over x
        channel0 = tf.tile(side[None, None, :, None], [batch, 42, 1, 1])
        return tf.concat([channel0, 3.0 * tf.ones_like(channel0)], axis=-1)  # [B, 42, 42, 2]


def frames_of(values):
    return np.stack([np.full((84, 84, 3), v, np.uint8) for v in values])


def test_extract_keypoints_with_their_features_in_order():
    values = [0, 51, 102, 153, 255]
    got = probes.extract(FakeKeypointModel(), frames_of(values), batch_size=2)
    v = np.array(values) / 255.0
    assert got["positions"].shape == (5, 4)
    np.testing.assert_allclose(got["positions"],
                               np.stack([v, -0.5 + 0 * v, -v, 0.5 + 0 * v], axis=1), atol=1e-6)
    # Per keypoint: y, x, then the pooled features (left half +1, right half -1; 3).
    expected = np.stack([v, -0.5 + 0 * v, 1 + 0 * v, 3 + 0 * v,
                         -v, 0.5 + 0 * v, -1 + 0 * v, 3 + 0 * v], axis=1)
    assert got["keypoints+features"].shape == (5, 8)
    np.testing.assert_allclose(got["keypoints+features"], expected, atol=1e-6)


def test_extract_cached_reuses_only_the_same_model_and_frames(tmp_path):
    frames = frames_of([10, 20, 30])
    model = FakeKeypointModel()
    path = probes.cache_path(str(tmp_path / "cache"), "abc123", "test")
    first, seconds = probes.extract_cached(model, frames, path, "abc123")
    calls = model.calls
    again, seconds_again = probes.extract_cached(model, frames, path, "abc123")
    assert model.calls == calls                                  # read from the file
    assert seconds_again == seconds                              # the extraction's, kept
    for name in probes.REPRESENTATIONS:
        np.testing.assert_array_equal(first[name], again[name])
    probes.extract_cached(model, frames_of([10, 20, 31]), path, "abc123")
    assert model.calls > calls                                   # other frames: recomputed
    calls = model.calls
    probes.extract_cached(model, frames_of([10, 20, 31]), path, "def456")
    assert model.calls > calls                                   # other model: recomputed


def test_novel_frames_drop_test_frames_seen_in_train_or_valid():
    mask = probes.novel_frames(frames_of([1, 2, 3, 4]), [frames_of([2]), frames_of([4, 9])])
    assert mask.tolist() == [True, False, True, False]


def test_read_splits_gives_frames_and_ram(tmp_path):
    import datasets
    for i, split in enumerate(datasets.SPLITS):
        path = datasets.split_path(str(tmp_path), "mspacman", split)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        arrays = {"frames": frames_of([i, i + 1]), "ram": np.full((2, 128), 10 + i, np.uint8)}
        if split == "test":
            del arrays["ram"]
        datasets.write_h5(path, arrays, {})
    with pytest.raises(ConfigError, match="test.h5 has no console RAM"):
        probes.read_splits(str(tmp_path), "mspacman")
    datasets.write_h5(datasets.split_path(str(tmp_path), "mspacman", "test"),
                      {"frames": frames_of([2, 3]), "ram": np.full((2, 128), 12, np.uint8)}, {})
    splits = probes.read_splits(str(tmp_path), "mspacman")
    frames, ram = splits["valid"]
    assert frames.shape == (2, 84, 84, 3) and frames[1, 0, 0, 0] == 2
    assert ram.shape == (2, 128) and ram[0, 10] == 11
