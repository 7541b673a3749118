"""Episodic sequence replay for the recurrent agent (docs/DESIGN.md, "The keypoint agent").

Whole episodes (one per life in training) are stored, counted and evicted as units.
Sampled windows of `sequence_length` steps (window_size + n_step + 1) never cross an
episode boundary.
"""
import collections
import contextlib
import gzip
import json

import numpy as np

from common import ConfigError, atomic_path

# gzip's fastest level: Atari frames compress well even so (size and time of a full
# MsPacman replay: README, "Keypoint-based RL agents").
SAVE_COMPRESSLEVEL = 1

class EpisodeReplay:
    """Whole episodes, the oldest evicted first; windows sampled inside one episode.

    Steps arrive one at a time through `add`; an episode becomes sampleable when its
    last step (done=True) arrives. Several environments can feed one replay: each
    passes its own `stream` id, and each stream builds its own current episode. A step
    holds the uint8 frame acted on, the action taken, the reward received and whether
    that transition ended the episode, plus optional per-frame extras named by the
    caller (e.g. keypoint centres [K, 2] computed while acting, so the frozen keypoint
    model is not re-run on replay).

    Sampling: a window's first step is drawn uniformly among all stored steps, and the
    window holds the following `sequence_length` steps of that episode. A window that
    reaches the episode's end is padded after it: padded steps have zero frame and
    extras, action 0, reward 0, done 1 and mask 0. Padding rather than excluding such
    windows keeps every step trainable: the loss covers only a window's first steps,
    so without padding an episode's last steps (including the terminal transition, the
    only place a done stops the bootstrap) would never carry a loss, and episodes
    shorter than a window would never be used. Padding never leaks into a target:
    the done before it ends the n-step return.
    """

    def __init__(self, capacity, sequence_length, seed=None):
        """capacity: episodes kept; sequence_length: steps per sampled window."""
        for name, value in (("capacity", capacity), ("sequence_length", sequence_length)):
            if not (isinstance(value, (int, np.integer)) and value >= 1):
                raise ConfigError(f"replay {name}={value!r}: expected an integer >= 1")
        self.sequence_length = sequence_length
        self._episodes = collections.deque(maxlen=capacity)
        self._current = collections.defaultdict(lambda: collections.defaultdict(list))
        self._field_specs = None       # {name: (shape, dtype)}, fixed by the first step
        self._rng = np.random.default_rng(seed)

    @property
    def num_episodes(self):
        """Complete episodes stored."""
        return len(self._episodes)

    @property
    def num_steps(self):
        """Steps in the complete episodes stored."""
        return sum(len(episode["actions"]) for episode in self._episodes)

    def add(self, frame, action, reward, done, stream=0, **extras):
        """Append one step to `stream`'s current episode; `done` closes the episode."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            raise ValueError(f"frames are stored as uint8, got {frame.dtype}")
        step = {"frames": frame, "actions": np.asarray(action, np.int32),
                "rewards": np.asarray(reward, np.float32),
                "dones": np.asarray(done, np.float32)}
        step.update({name: np.asarray(value) for name, value in extras.items()})
        self._check_fields(step)
        current = self._current[stream]
        for name, value in step.items():
            current[name].append(value)
        if done:
            self._episodes.append({name: np.stack(values) for name, values in current.items()})
            del self._current[stream]

    def drop_episode(self, stream=0):
        """Forget `stream`'s unfinished episode (e.g. cut by a time limit).

        A cut episode has no terminal step, and its last steps lack the frames their
        n-step targets would bootstrap from; storing it with done=True would teach
        that the cut was a real end.
        """
        self._current.pop(stream, None)

    def save(self, path, step):
        """Write the complete episodes to `path` (gzip-compressed), whole or not at all.

        The unfinished episodes are left out: a resumed run restarts its environments.
        `step` (the run's environment step) is stored with them, for `load` to check.
        Format: one gzip stream of .npy arrays, a JSON header first, then every field
        of every episode in the header's order.
        """
        names = sorted(self._field_specs or {})
        header = {"step": int(step), "sequence_length": self.sequence_length,
                  "fields": names, "lengths": [len(e["actions"]) for e in self._episodes]}
        with atomic_path(path) as tmp, gzip.open(tmp, "wb", SAVE_COMPRESSLEVEL) as f:
            np.save(f, np.array(json.dumps(header)))
            for episode in self._episodes:
                for name in names:
                    np.save(f, episode[name], allow_pickle=False)

    def load(self, path):
        """Replace the stored episodes with those `save` wrote to `path`; returns the step
        saved with them. The newest `capacity` episodes are kept. A file that cannot be
        read whole leaves the stored episodes as they were."""
        with _reading(path) as f:
            header = _read_header(f)
            if header["sequence_length"] != self.sequence_length:
                raise ConfigError(f"replay {path} holds windows of {header['sequence_length']} "
                                  f"steps, not {self.sequence_length} (window_size or n_step "
                                  f"changed)")
            episodes = [{name: np.load(f, allow_pickle=False) for name in header["fields"]}
                        for _ in header["lengths"]]
        self._episodes.clear()
        self._episodes.extend(episodes)
        self._current.clear()
        self._field_specs = ({name: (value.shape[1:], value.dtype)
                              for name, value in self._episodes[0].items()}
                             if self._episodes else None)
        return header["step"]

    def _check_fields(self, step):
        """Every step must carry the same fields, shapes and dtypes as the first one."""
        specs = {name: (value.shape, value.dtype) for name, value in step.items()}
        if self._field_specs is None:
            self._field_specs = specs
        elif specs != self._field_specs:
            raise ValueError(f"step fields {specs} differ from the first step's "
                             f"{self._field_specs}")

    def sample(self, batch_size):
        """Windows [batch_size, sequence_length, ...] as a dict of numpy arrays.

        Keys: "frames" (uint8), "actions", "rewards", "dones", each extra, and "mask"
        (float32, 1 on real steps, 0 on padding).
        """
        if not self._episodes:
            raise ValueError("the replay holds no complete episode yet")
        lengths = np.array([len(episode["actions"]) for episode in self._episodes])
        first_steps = np.cumsum(lengths) - lengths             # global index of step 0
        starts = self._rng.integers(lengths.sum(), size=batch_size)
        episode_ids = np.searchsorted(first_steps, starts, side="right") - 1
        offsets = starts - first_steps[episode_ids]

        windows = self._padding(batch_size)
        for row, (episode_id, offset) in enumerate(zip(episode_ids, offsets)):
            episode = self._episodes[episode_id]
            stop = min(offset + self.sequence_length, lengths[episode_id])
            for name, values in episode.items():
                windows[name][row, :stop - offset] = values[offset:stop]
            windows["mask"][row, :stop - offset] = 1.0
        return windows

    def _padding(self, batch_size):
        """All-padding windows: zeros everywhere but dones = 1 (mask = 0)."""
        shape = (batch_size, self.sequence_length)
        windows = {name: np.zeros(shape + step_shape, dtype)
                   for name, (step_shape, dtype) in self._field_specs.items()}
        windows["dones"][:] = 1.0
        windows["mask"] = np.zeros(shape, np.float32)
        return windows


def _read_header(f):
    return json.loads(str(np.load(f, allow_pickle=False)))


@contextlib.contextmanager
def _reading(path):
    """gzip.open(path) whose read errors (a truncated or damaged file) are one ConfigError."""
    try:
        with gzip.open(path, "rb") as f:
            yield f
    except ConfigError:
        raise
    except (OSError, EOFError, ValueError, KeyError) as error:
        raise ConfigError(f"replay {path} cannot be read ({type(error).__name__}: {error}); "
                          f"delete it to resume with a new warm-up") from None


def saved_step(path):
    """The environment step `EpisodeReplay.save` stored in `path` (reads only its header)."""
    with _reading(path) as f:
        return _read_header(f)["step"]
