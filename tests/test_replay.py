"""Episodic replay: windows stay inside one episode, whole episodes are evicted."""
import numpy as np
import pytest

import common
import replay

SEQUENCE_LENGTH = 12


def fill(buffer, episode_lengths, first_episode=0):
    """Episodes whose frames and extras spell out (episode id, step index)."""
    for episode, length in enumerate(episode_lengths, start=first_episode):
        for step in range(length):
            buffer.add(np.array([episode, step], np.uint8), action=step % 3,
                       reward=float(step), done=step == length - 1,
                       centres=np.full([4, 2], step, np.float32))


def test_windows_stay_inside_one_episode_and_pad_after_its_end():
    lengths = [3, 30, 12, 1, 20]                 # some shorter than a window
    buffer = replay.EpisodeReplay(capacity=10, sequence_length=SEQUENCE_LENGTH, seed=0)
    fill(buffer, lengths)
    windows = buffer.sample(2000)
    assert windows["frames"].shape == (2000, SEQUENCE_LENGTH, 2)
    assert windows["frames"].dtype == np.uint8
    assert windows["centres"].shape == (2000, SEQUENCE_LENGTH, 4, 2)
    for row in range(2000):
        real = windows["mask"][row] == 1
        num_real = real.sum()
        assert real[:num_real].all()             # real steps first, then padding
        episode, steps = windows["frames"][row, real].T
        assert (episode == episode[0]).all()
        np.testing.assert_array_equal(steps, steps[0] + np.arange(num_real))
        np.testing.assert_array_equal(windows["actions"][row, real], steps % 3)
        np.testing.assert_array_equal(windows["rewards"][row, real], steps)
        np.testing.assert_array_equal(windows["centres"][row, real, 0, 0], steps)
        length = lengths[episode[0]]
        assert num_real == min(SEQUENCE_LENGTH, length - steps[0])
        np.testing.assert_array_equal(windows["dones"][row, real], steps == length - 1)
        padding = ~real
        assert (windows["dones"][row, padding] == 1).all()
        for name in ("frames", "actions", "rewards", "centres"):
            assert (windows[name][row, padding] == 0).all()


def test_window_starts_are_uniform_over_stored_steps():
    lengths = [5, 15, 1]
    buffer = replay.EpisodeReplay(capacity=10, sequence_length=SEQUENCE_LENGTH, seed=1)
    fill(buffer, lengths)
    num_samples = 21000
    first = buffer.sample(num_samples)["frames"][:, 0]               # [S, 2]
    counts = np.zeros([len(lengths), max(lengths)])
    np.add.at(counts, (first[:, 0], first[:, 1]), 1)
    expected = num_samples / sum(lengths)                            # 1000 per step
    for episode, length in enumerate(lengths):
        assert (counts[episode, length:] == 0).all()
        # 5 standard deviations of a binomial count around 1000.
        assert np.abs(counts[episode, :length] - expected).max() < 5 * np.sqrt(expected)


def test_capacity_evicts_whole_oldest_episodes():
    buffer = replay.EpisodeReplay(capacity=3, sequence_length=SEQUENCE_LENGTH, seed=2)
    lengths = [4, 7, 2, 9, 5]
    fill(buffer, lengths)
    buffer.add(np.array([99, 0], np.uint8), action=0, reward=0.0, done=False,
               centres=np.zeros([4, 2], np.float32))                # unfinished episode
    assert buffer.num_episodes == 3
    assert buffer.num_steps == 2 + 9 + 5
    windows = buffer.sample(1000)
    episodes = windows["frames"][:, :, 0][windows["mask"] == 1]
    assert set(np.unique(episodes)) == {2, 3, 4}
    # The surviving episodes are complete: every step of each can open a window.
    first = windows["frames"][:, 0]
    for episode in (2, 3, 4):
        assert set(first[first[:, 0] == episode, 1]) == set(range(lengths[episode]))


def test_same_seed_same_windows():
    samples = []
    for _ in range(2):
        buffer = replay.EpisodeReplay(capacity=5, sequence_length=SEQUENCE_LENGTH, seed=7)
        fill(buffer, [6, 25, 13])
        samples.append(buffer.sample(16)["frames"])
    np.testing.assert_array_equal(samples[0], samples[1])


def test_bad_input_is_rejected():
    with pytest.raises(common.ConfigError, match="capacity"):
        replay.EpisodeReplay(capacity=0, sequence_length=SEQUENCE_LENGTH)
    with pytest.raises(common.ConfigError, match="sequence_length"):
        replay.EpisodeReplay(capacity=5, sequence_length=2.5)
    buffer = replay.EpisodeReplay(capacity=5, sequence_length=SEQUENCE_LENGTH)
    with pytest.raises(ValueError, match="no complete episode"):
        buffer.sample(1)
    with pytest.raises(ValueError, match="uint8"):
        buffer.add(np.zeros([2], np.float32), action=0, reward=0.0, done=False)
    buffer.add(np.zeros([2], np.uint8), action=0, reward=0.0, done=False)
    with pytest.raises(ValueError, match="differ"):
        buffer.add(np.zeros([3], np.uint8), action=0, reward=0.0, done=False)


# --------------------------------------------------------------------------------------
# Saved with the checkpoint, restored on resume.


def test_saved_replay_loads_equal_to_the_original(tmp_path):
    path = str(tmp_path / "replay.npy.gz")
    original = replay.EpisodeReplay(capacity=4, sequence_length=SEQUENCE_LENGTH, seed=0)
    fill(original, [3, 30, 12, 1, 20])                   # the first is evicted
    original.add(np.array([9, 9], np.uint8), 0, 0.0, False, stream=1,
                 centres=np.zeros([4, 2], np.float32))   # unfinished: not saved
    original.save(path, step=1234)
    assert replay.saved_step(path) == 1234
    restored = replay.EpisodeReplay(capacity=4, sequence_length=SEQUENCE_LENGTH, seed=0)
    assert restored.load(path) == 1234
    assert (restored.num_episodes, restored.num_steps) == (4, 63)
    for ours, theirs in zip(restored._episodes, original._episodes, strict=True):
        assert ours.keys() == theirs.keys()
        for name in ours:
            assert ours[name].dtype == theirs[name].dtype
            np.testing.assert_array_equal(ours[name], theirs[name])
    resampled = replay.EpisodeReplay(capacity=4, sequence_length=SEQUENCE_LENGTH, seed=0)
    fill(resampled, [30, 12, 1, 20], first_episode=1)    # what the original holds
    expected = resampled.sample(64)
    for name, windows in restored.sample(64).items():
        np.testing.assert_array_equal(windows, expected[name])
    fill(restored, [5], first_episode=7)                 # steps of the same fields fit
    smaller = replay.EpisodeReplay(capacity=2, sequence_length=SEQUENCE_LENGTH)
    smaller.load(path)
    assert [e["frames"][0, 0] for e in smaller._episodes] == [3, 4]   # the newest two


def test_replay_load_refuses_other_windows_and_save_is_all_or_nothing(tmp_path, monkeypatch):
    path = str(tmp_path / "replay.npy.gz")
    buffer = replay.EpisodeReplay(capacity=4, sequence_length=SEQUENCE_LENGTH)
    fill(buffer, [5, 6])
    buffer.save(path, step=10)
    other = replay.EpisodeReplay(capacity=4, sequence_length=SEQUENCE_LENGTH + 1)
    with pytest.raises(common.ConfigError, match="holds windows of 12 steps, not 13"):
        other.load(path)
    saves = []

    def failing_save(f, array, **kwargs):                # the disk fills after the header
        saves.append(array)
        if len(saves) > 1:
            raise OSError("No space left on device")
        return np.lib.format.write_array(f, np.asanyarray(array))

    monkeypatch.setattr(replay.np, "save", failing_save)
    with pytest.raises(OSError):
        buffer.save(path, step=20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replay.npy.gz"]
    assert replay.saved_step(path) == 10                 # the earlier save is intact


def test_damaged_replay_is_one_error_and_leaves_the_buffer_as_it_was(tmp_path):
    path = tmp_path / "replay.npy.gz"
    buffer = replay.EpisodeReplay(capacity=4, sequence_length=SEQUENCE_LENGTH)
    fill(buffer, [5, 6, 7])
    buffer.save(str(path), step=10)
    whole = path.read_bytes()
    path.write_bytes(whole[:len(whole) // 2])            # cut short (an interrupted copy)
    held = replay.EpisodeReplay(capacity=4, sequence_length=SEQUENCE_LENGTH)
    fill(held, [2, 3])
    with pytest.raises(common.ConfigError, match=r"replay .*replay.npy.gz cannot be read \(.*"
                                               r"delete it to resume"):
        held.load(str(path))
    assert (held.num_episodes, held.num_steps) == (2, 5)
    for damaged in (whole[:len(whole) // 2], b"not a gzip file"):
        path.write_bytes(damaged)
        with pytest.raises(common.ConfigError, match="cannot be read"):
            replay.saved_step(str(path))
