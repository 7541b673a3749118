"""Environments, distractors, dataset generation, loading and conversion (preprocess.py)."""
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from common import ConfigError
import atari_env
import datasets
import games

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """A tiny MsPacman dataset: 1200 train frames, 250 valid, 250 test."""
    data_dir = str(tmp_path_factory.mktemp("data"))
    datasets.generate_dataset("mspacman", data_dir, num_frames=1200, num_eval_frames=250, seed=3)
    return data_dir


# ---------------------------------------------------------------- environment


def test_env_frames_are_84x84_rgb_uint8():
    env = atari_env.make_env("mspacman", "train", seed=0)
    frame, info = env.reset(seed=0)
    assert frame.shape == (84, 84, 3) and frame.dtype == np.uint8
    assert info["ram"].shape == (128,)
    frame, *_ = env.step(0)
    assert frame.shape == (84, 84, 3) and frame.std() > 0


def test_env_skips_four_frames_per_step():
    env = atari_env.make_env("mspacman", "eval", seed=0)
    env.reset(seed=0)
    ale = env.unwrapped.ale
    before = ale.getEpisodeFrameNumber()
    env.step(0)
    assert ale.getEpisodeFrameNumber() - before == 4


def test_resize_is_nearest_with_half_pixel_centres():
    screen = np.arange(210 * 160 * 3, dtype=np.int64).reshape(210, 160, 3)
    small = atari_env.resize_frame(screen)
    assert small.shape == (84, 84, 3)
    # row i samples screen row floor((i + 0.5) * 2.5), column j floor((j + 0.5) * 160 / 84)
    assert (small[1, 2] == screen[3, 4]).all()
    assert (small[83, 83] == screen[208, 159]).all()


def lives_lost_and_terminated(mode, seed=1, max_steps=3000):
    """Play randomly until the first life is lost; return (terminated at that step, lives left)."""
    env = atari_env.make_env("mspacman", mode, seed=seed)
    env.reset(seed=seed)
    lives = env.unwrapped.ale.lives()
    rng = np.random.default_rng(seed)
    for _ in range(max_steps):
        _, reward, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        assert mode != "train" or reward in (-1.0, 0.0, 1.0)
        if env.unwrapped.ale.lives() < lives:
            return terminated, env.unwrapped.ale.lives()
    raise AssertionError("no life lost in a random game")


def test_life_loss_ends_episode_only_in_training():
    terminated, lives_left = lives_lost_and_terminated("train")
    assert terminated and lives_left > 0
    terminated, lives_left = lives_lost_and_terminated("eval")
    assert not terminated and lives_left > 0


def test_training_reset_after_life_loss_continues_the_game():
    env = atari_env.make_env("mspacman", "train", seed=2)
    env.reset(seed=2)
    rng = np.random.default_rng(2)
    while True:
        *_, terminated, truncated, _ = env.step(int(rng.integers(9)))
        if terminated:
            break
    lives = env.unwrapped.ale.lives()
    env.reset()
    assert env.unwrapped.ale.lives() == lives > 0  # not a fresh game with full lives


def test_eval_mode_has_time_limit():
    env = atari_env.make_env("mspacman", "eval", seed=0, eval_time_limit=5)
    env.reset(seed=0)
    truncated = [env.step(0)[3] for _ in range(5)]
    assert truncated == [False] * 4 + [True]


def test_env_names_and_alias():
    assert games.gym_id("frosbite") == "FrostbiteNoFrameskip-v4"
    with pytest.raises(ConfigError, match="unknown env 'pacman'.*mspacman"):
        atari_env.make_env("pacman")
    with pytest.raises(ConfigError, match="unknown noise_type 'diagonal'.*both"):
        atari_env.make_env("mspacman", noise_type="diagonal")


# ---------------------------------------------------------------- distractors


def bar_columns_and_rows(frame):
    mask = (frame == atari_env.BAR_COLOUR).all(-1)  # [84, 84]
    return np.flatnonzero(mask.all(0)), np.flatnonzero(mask.all(1))


@pytest.mark.parametrize("noise_type, n_cols, n_rows", [
    ("vertical", 5, 0), ("horizontal", 0, 5), ("both", 5, 5), ("none", 0, 0)])
def test_distractor_bars_have_colour_width_and_full_length(noise_type, n_cols, n_rows):
    frames = np.zeros((6, 84, 84, 3), np.uint8)
    noisy = atari_env.add_distractors(frames, noise_type, np.random.default_rng(0))
    assert not frames.any()  # input untouched
    for frame in noisy:
        cols, rows = bar_columns_and_rows(frame)
        assert len(cols) == n_cols and len(rows) == n_rows
        for idx in (cols, rows):
            if len(idx):
                assert idx[-1] - idx[0] == 4  # one contiguous 5-px bar
    painted = (noisy == atari_env.BAR_COLOUR).all(-1).sum((1, 2))
    assert (painted == 84 * 5 * (n_cols > 0) + 84 * 5 * (n_rows > 0)
            - 25 * (n_cols > 0) * (n_rows > 0)).all()


def test_distractors_are_redrawn_per_frame():
    noisy = atari_env.add_distractors(np.zeros((20, 84, 84, 3), np.uint8), "vertical",
                               np.random.default_rng(1))
    starts = {bar_columns_and_rows(f)[0][0] for f in noisy}
    assert len(starts) > 5


def test_env_observations_carry_distractors():
    env = atari_env.make_env("seaquest", "train", seed=0, noise_type="both")
    frame, _ = env.reset(seed=0)
    cols, rows = bar_columns_and_rows(frame)
    assert len(cols) == 5 and len(rows) == 5


# ---------------------------------------------------------------- generation


def test_generation_is_deterministic_for_a_seed():
    a = datasets.play_random("mspacman", 150, seed=7)
    b = datasets.play_random("mspacman", 150, seed=7)
    c = datasets.play_random("mspacman", 150, seed=8)
    for name in datasets.FIELDS:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["frames"], c["frames"])


def test_generated_files_layout(small_data):
    sizes = {"train": 1200, "valid": 250, "test": 250}
    for split, size in sizes.items():
        arrays, attrs = datasets.read_h5(datasets.split_path(small_data, "mspacman", split))
        assert arrays["frames"].shape == (size, 84, 84, 3) and arrays["frames"].dtype == np.uint8
        assert arrays["ram"].shape == (size, 128) and arrays["ram"].dtype == np.uint8
        assert attrs["num_frames"] == size and attrs["split"] == split
        # steps count up inside an episode and restart at 0 with a new episode id
        new_episode = np.diff(arrays["episode"]) != 0
        assert (arrays["step"][1:][new_episode] == 0).all()
        assert (np.diff(arrays["step"])[~new_episode] == 1).all()
    with h5py.File(datasets.split_path(small_data, "mspacman", "train")) as f:
        assert f["frames"].chunks is not None and f["frames"].compression == "gzip"


def test_splits_share_no_episode(small_data):
    episodes = [set(datasets.read_h5(datasets.split_path(small_data, "mspacman", s))[0]["episode"])
                for s in datasets.SPLITS]
    assert (not (episodes[0] & episodes[1]) and not (episodes[0] & episodes[2])
            and not (episodes[1] & episodes[2]))


def test_rerun_reuses_existing_files(small_data):
    path = datasets.split_path(small_data, "mspacman", "train")
    mtime = os.path.getmtime(path)
    datasets.generate_dataset("mspacman", small_data, num_frames=1200, num_eval_frames=250, seed=3)
    assert os.path.getmtime(path) == mtime


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    path = str(tmp_path / "train.h5")

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(h5py.File, "create_dataset", explode)
    with pytest.raises(KeyboardInterrupt):
        datasets.write_h5(path, {"frames": np.zeros((2, 84, 84, 3), np.uint8)}, {})
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- loading


def test_frame_batches_are_float_in_unit_range(small_data):
    ds = datasets.get_datasets("mspacman", "frames", small_data, batch_size=16, num_frames=1200,
                         num_eval_frames=250, seed=3, data_seed=3)
    batch = next(iter(ds["train"](1)))
    assert batch.shape == (16, 84, 84, 3) and batch.dtype.name == "float32"
    assert 0.0 <= float(batch.numpy().min()) and float(batch.numpy().max()) <= 1.0
    assert sum(1 for _ in ds["valid"]) == 250 // 16  # drop_remainder


def test_spread_batches_take_frames_at_even_intervals_across_the_split():
    # Each frame's value is its index: 100 frames in batches of 4 (25 batches); 2
    # batches spread out take every 12th frame instead of frames 0-7.
    frames = np.broadcast_to(np.arange(100, dtype=np.uint8)[:, None, None, None], (100, 2, 2, 1))
    dataset = datasets.frame_dataset(frames, 4, "none", seed=0)
    batches = [b.numpy() for b in datasets.spread_batches(dataset, 2)]
    indices = np.concatenate([np.round(b[:, 0, 0, 0] * 255) for b in batches])
    assert [b.shape for b in batches] == [(4, 2, 2, 1)] * 2
    np.testing.assert_array_equal(indices, np.arange(0, 96, 12))
    assert not list(datasets.spread_batches(dataset, 0))                    # num_eval_batches=0


def test_noisy_frame_batches_have_bars(small_data):
    ds = datasets.get_datasets("mspacman", "frames", small_data, batch_size=8,
                               noise_type="vertical", num_frames=1200, num_eval_frames=250,
                               seed=3, data_seed=3)
    batch = np.round(next(iter(ds["train"](1))).numpy() * 255).astype(np.uint8)
    assert all(len(bar_columns_and_rows(f)[0]) == 5 for f in batch)


def test_pairs_come_from_one_episode_within_the_window(small_data):
    episode = datasets.read_h5(datasets.split_path(small_data, "mspacman", "train"))[0]["episode"]
    starts = datasets.window_starts(episode)
    assert len(starts) > 0
    assert all(episode[s] == episode[s + 99] for s in starts)
    t1, t2 = datasets.sample_pairs(starts, 5000, np.random.default_rng(0))
    assert (episode[t1] == episode[t2]).all()
    assert ((t2 - t1) >= 2).all() and ((t2 - t1) <= 98).all()
    # t1 is within [0, 49) and t2 within [50, 99) of some valid window start
    assert all(any(0 <= a - s < 49 and 50 <= b - s < 99 for s in starts)
               for a, b in zip(t1[:50], t2[:50]))


def test_pair_batches_match_dataset_frames(small_data):
    ds = datasets.get_datasets("mspacman", "pairs", small_data, batch_size=4, num_frames=1200,
                         num_eval_frames=250, num_pairs=40, seed=3, data_seed=3)
    a, b = next(iter(ds["train"](1)))
    assert a.shape == b.shape == (4, 84, 84, 3)
    frames = datasets.read_h5(datasets.split_path(small_data, "mspacman", "train"))[0]["frames"]
    stored = {f.tobytes() for f in frames}
    assert all(np.round(x * 255).astype(np.uint8).tobytes() in stored for x in a.numpy())
    assert sum(1 for _ in ds["train"](1)) == 10
    valid_twice = [np.concatenate([p.numpy() for p, _ in ds["valid"]]) for _ in range(2)]
    np.testing.assert_array_equal(*valid_twice)  # fixed pairs for validation


# ---------------------------------------------------------------- conversion


def authors_npz(root, episodes):
    """The authors' layout under `root`: {split: [frames of each episode]} -> npz files."""
    for split, frames in episodes.items():
        folder = root / split / "MsPacmanNoFrameskip-v4"
        folder.mkdir(parents=True)
        for i, episode in enumerate(frames):
            np.savez(folder / f"ep{i}.npz", frames=episode)
    return str(root)


def test_convert_authors_npz(tmp_path):
    rng = np.random.default_rng(0)
    npz = authors_npz(tmp_path / "npz", {
        split: [rng.random((10 + i, 210, 160, 3)).astype(np.float32) for i in range(count)]
        for split, count in (("train", 2), ("test", 4))})
    paths = datasets.convert_npz(npz, "mspacman", str(tmp_path / "data"))
    lengths = {split: len(datasets.read_h5(path)[0]["frames"]) for split, path in paths.items()}
    assert lengths == {"train": 10 + 11, "valid": 10 + 11, "test": 12 + 13}
    arrays, attrs = datasets.read_h5(paths["train"])
    assert arrays["frames"].shape[1:] == (84, 84, 3) and attrs["source"] == "authors_npz"
    assert not attrs["has_ram"]
    assert sorted(set(arrays["episode"])) == [0, 1]
    # converted files are never overwritten by generation
    assert datasets.reusable(paths["train"], datasets.generation_attrs("mspacman", "train", 100, 0))


def test_data_of_other_sizes_is_refused_not_replaced(small_data):
    paths = [datasets.split_path(small_data, "mspacman", split) for split in datasets.SPLITS]
    before = [os.path.getmtime(p) for p in paths]
    with pytest.raises(ConfigError, match=r"train.h5 holds other data \(1200 frames, data_seed 3, "
                                          r"version 1\) than this run asks for \(5000 frames, "
                                          r"data_seed 3, version 1\); keep both by giving another "
                                          r"data_dir"):
        datasets.generate_dataset("mspacman", small_data, num_frames=5000, num_eval_frames=250,
                                  seed=3)
    # only the eval size differs
    with pytest.raises(ConfigError, match="valid.h5 holds other data"):
        datasets.generate_dataset("mspacman", small_data, num_frames=1200, num_eval_frames=300,
                                  seed=3)
    assert [os.path.getmtime(p) for p in paths] == before  # nothing written


def test_damaged_file_is_named_then_generated_again(tmp_path, capsys):
    paths = datasets.generate_dataset("mspacman", str(tmp_path), num_frames=40, num_eval_frames=30)
    good = datasets.read_h5(paths["train"])[0]["frames"]
    with open(paths["train"], "r+b") as f:
        f.truncate(os.path.getsize(paths["train"]) // 2)
    datasets.generate_dataset("mspacman", str(tmp_path), num_frames=40, num_eval_frames=30)
    lines = capsys.readouterr().err.strip().splitlines()
    assert any(line.startswith(f"data file {paths['train']} is damaged (") and
               line.endswith("); generating it again") for line in lines)
    np.testing.assert_array_equal(datasets.read_h5(paths["train"])[0]["frames"], good)


def test_converted_data_is_never_overwritten(tmp_path):
    rng = np.random.default_rng(0)
    npz = authors_npz(tmp_path / "npz", {
        split: [rng.integers(0, 255, (5, 210, 160, 3), np.uint8) for _ in range(count)]
        for split, count in (("train", 1), ("test", 2))})
    data_dir = str(tmp_path / "data")
    paths = datasets.convert_npz(npz, "mspacman", data_dir)
    with pytest.raises(ConfigError, match="exists; converting would replace it"):
        datasets.convert_npz(npz, "mspacman", data_dir)
    # converted data of any size is used
    datasets.generate_dataset("mspacman", data_dir, num_frames=40)
    (tmp_path / "data" / "mspacman" / "train.h5").write_bytes(b"damaged")
    with pytest.raises(ConfigError, match=r"is damaged \(.*\) and holds converted authors' data; "
                                          r"re-convert: delete .*mspacman and run python "
                                          r"preprocess.py convert with env=mspacman "
                                          r"npz_dir=\.\.\."):
        datasets.generate_dataset("mspacman", data_dir, num_frames=40)
    assert open(paths["train"], "rb").read() == b"damaged"  # not replaced


# ---------------------------------------------------------------- bad input


def test_corrupt_file_is_one_clear_error(tmp_path):
    path = tmp_path / "train.h5"
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(ConfigError, match="corrupt or truncated data file"):
        datasets.read_h5(str(path))
    with pytest.raises(ConfigError, match="missing data file"):
        datasets.read_h5(str(tmp_path / "nothing.h5"))


def test_truncated_file_is_one_clear_error(small_data, tmp_path):
    data = open(datasets.split_path(small_data, "mspacman", "valid"), "rb").read()
    path = tmp_path / "valid.h5"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="corrupt or truncated data file"):
        datasets.read_h5(str(path))


def test_data_dir_that_is_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        datasets.generate_dataset("mspacman", str(target), num_frames=10)


def test_data_dir_not_writable(tmp_path, monkeypatch):
    # CI runs as root, who may write anywhere
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ConfigError, match=f"data_dir {tmp_path} is not writable"):
        datasets.generate_dataset("mspacman", str(tmp_path), num_frames=10)


def test_too_few_frames_for_a_batch_or_a_window(small_data):
    with pytest.raises(ConfigError, match="fewer than one batch of 512"):
        datasets.get_datasets("mspacman", "frames", small_data, batch_size=512, num_frames=1200,
                        num_eval_frames=250, seed=3, data_seed=3)


def test_too_short_episodes_for_pairs(tmp_path):
    datasets.generate_dataset("mspacman", str(tmp_path), num_frames=90, num_eval_frames=40, seed=0)
    with pytest.raises(ConfigError, match="no episode of 100 frames"):
        datasets.get_datasets("mspacman", "pairs", str(tmp_path), batch_size=4, num_frames=90,
                        num_eval_frames=40, seed=0)


def test_command_line_prints_one_line_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "preprocess.py", "generate", "with", "env=pacman", f"data_dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert (("error: unknown env 'pacman'; accepted: " + ", ".join(games.GAMES))
            in result.stderr.splitlines())
    assert "Traceback" not in result.stderr
