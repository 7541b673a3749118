"""Atari environments, frame preprocessing, distractors, and keypoint datasets.

One preprocessing path serves both the keypoint datasets and the RL agent:
`make_env` builds a game with the NoFrameskip-v4 settings of the paper's agents and
yields 84 x 84 x 3 uint8 frames; `generate_dataset` plays that same env with a
random policy and stores its frames (and the console RAM, for measuring keypoints
against true object positions) in HDF5; `get_datasets` turns the files into
tf.data pipelines of float32 frames (PermaKey) or frame pairs (Transporter).

Command line (Sacred, like the training scripts):
    python preprocess.py generate with env=mspacman num_frames=100000
    python preprocess.py convert with env=mspacman npz_dir=PATH/TO/AUTHORS/DATA
"""
import functools
import glob
import os
import sys
from typing import NamedTuple

import gymnasium as gym
import h5py
import numpy as np
from sacred import Experiment
from tqdm import tqdm

from common import ConfigError, atomic_path, check_options, one_line_errors, quiet_experiment

class Game(NamedTuple):
    """What the code knows of one Atari game; one entry of GAMES."""
    ale_id: str  # the gym id is <ale_id>NoFrameskip-v4
    num_keypoints: int  # the paper's K for this game
    replay_capacity: int = 1000  # the agent's replay, in episodes (lives)
    aliases: tuple = ()  # other names `env` accepts
    rl_table: bool = False  # one of the paper's agent games (its Tables 1 and 2)


# Every script builds its named configs from this table (runs.add_game_configs): adding a
# game is one entry here, plus a RAM map in kpt_metrics.RAM_MAPS for keypoint metrics.
GAMES = {
    "mspacman": Game("MsPacman", 7, 1000, rl_table=True),
    "frostbite": Game("Frostbite", 20, 1200, aliases=("frosbite",), rl_table=True),
    "seaquest": Game("Seaquest", 10, 1000, rl_table=True),
    "battlezone": Game("BattleZone", 8, 500, rl_table=True),
    "space_invaders": Game("SpaceInvaders", 25),
    "enduro": Game("Enduro", 10),
    "montezuma_revenge": Game("MontezumaRevenge", 10),
}
NOISE_TYPES = ("none", "horizontal", "vertical", "both")
SPLITS = ("train", "valid", "test")
FRAME_SIZE = 84
BAR_WIDTH = 5
BAR_COLOUR = np.array([128, 0, 255], np.uint8)
EVAL_TIME_LIMIT = 4000
PAIR_WINDOW = 100  # Transporter pairs: t1 in [0, 49), t2 in [50, 99) of a 100-frame window
DATASET_VERSION = 1  # bump when the generated content changes, so old files are not reused


# ----------------------------------------------------------------------------
# Names and checks


def canonical_env(env):
    """Short game name as used in folders ('frosbite' -> 'frostbite'); ConfigError if unknown."""
    env = env_name(env)
    if env not in GAMES:
        raise ConfigError(f"unknown env {env!r}; accepted: {', '.join(GAMES)}")
    return env


def env_name(env):
    """The short name behind an alias ('frosbite' -> 'frostbite'); anything else unchanged."""
    return next((name for name, game in GAMES.items() if env in game.aliases), env)


def check_noise_type(noise_type):
    if noise_type not in NOISE_TYPES:
        raise ConfigError(f"unknown noise_type {noise_type!r}; accepted: {', '.join(NOISE_TYPES)}")
    return noise_type


def gym_id(env):
    return f"{GAMES[canonical_env(env)].ale_id}NoFrameskip-v4"


# ----------------------------------------------------------------------------
# Frames


def resize_frame(frame):
    """[210, 160, 3] screen -> [84, 84, 3], nearest neighbour with half-pixel centres.

    Nearest (not area) resizing keeps the sprites' exact colours, as the authors'
    frames did; the same function feeds the datasets and the agent.
    """
    h, w = frame.shape[:2]
    rows = ((np.arange(FRAME_SIZE) + 0.5) * h / FRAME_SIZE).astype(np.int64)
    cols = ((np.arange(FRAME_SIZE) + 0.5) * w / FRAME_SIZE).astype(np.int64)
    return frame[rows[:, None], cols[None, :]]


def add_distractors(frames, noise_type, rng):
    """Draw the paper's noisy-Atari distractor bars on uint8 frames [..., 84, 84, 3].

    Each frame gets its own bar positions: a full-height bar at a uniform x
    ("vertical"), a full-width bar at a uniform y ("horizontal"), or one of each.
    Returns a new array; the input is left untouched.
    """
    check_noise_type(noise_type)
    frames = np.array(frames, copy=True)
    if noise_type == "none":
        return frames
    flat = frames.reshape((-1,) + frames.shape[-3:])  # [N, 84, 84, 3], a view
    for frame in flat:
        if noise_type in ("vertical", "both"):
            x = rng.integers(0, frame.shape[1] - BAR_WIDTH + 1)
            frame[:, x:x + BAR_WIDTH] = BAR_COLOUR
        if noise_type in ("horizontal", "both"):
            y = rng.integers(0, frame.shape[0] - BAR_WIDTH + 1)
            frame[y:y + BAR_WIDTH, :] = BAR_COLOUR
    return frames


# ----------------------------------------------------------------------------
# Environment


class AtariFrames(gym.Wrapper):
    """No-op reset, frame skip with max-pool over the last two screens, 84 x 84 RGB.

    gymnasium's AtariPreprocessing does the same but resizes with area
    interpolation through OpenCV; we keep the authors' nearest-neighbour frames.
    info["ram"] holds the console RAM after the step (ground truth for keypoints).
    """

    def __init__(self, env, frame_skip=4, noop_max=30):
        super().__init__(env)
        self.frame_skip = frame_skip
        self.noop_max = noop_max
        self.observation_space = gym.spaces.Box(0, 255, (FRAME_SIZE, FRAME_SIZE, 3), np.uint8)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for _ in range(self.np_random.integers(1, self.noop_max + 1)):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset()
        return self._observe(obs, obs, info)

    def step(self, action):
        total_reward, screens = 0.0, []
        for _ in range(self.frame_skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total_reward += reward
            screens = (screens + [obs])[-2:]
            if terminated or truncated:
                break
        frame, info = self._observe(screens[0], screens[-1], info)
        return frame, total_reward, terminated, truncated, info

    def _observe(self, prev_screen, screen, info):
        info = dict(info, ram=self.env.unwrapped.ale.getRAM().copy())
        return resize_frame(np.maximum(prev_screen, screen)), info


class FireReset(gym.Wrapper):
    """Press FIRE after reset, for games that wait for it."""

    def reset(self, **kwargs):
        self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(1)
        if terminated or truncated:
            return self.env.reset(**kwargs)
        return obs, info


class LifeLossEnds(gym.Wrapper):
    """Training only: losing a life ends the episode, as in DQN.

    As in DQN, the game itself goes on: the next reset continues it with a no-op
    and only restarts the console once the game is really over.
    """

    def __init__(self, env):
        super().__init__(env)
        self.lives, self.game_over = 0, True

    def reset(self, **kwargs):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives, self.game_over = self.env.unwrapped.ale.lives(), False
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        terminated = terminated or lives < self.lives
        self.lives = lives
        return obs, reward, terminated, truncated, info


def make_env(env, mode="train", seed=0, noise_type="none", frame_skip=4, noop_max=30,
             eval_time_limit=EVAL_TIME_LIMIT):
    """A preprocessed Atari game yielding uint8 [84, 84, 3] frames.

    mode "train": a lost life ends the episode and rewards are clipped to their sign.
    mode "eval": whole games, raw rewards, at most `eval_time_limit` agent steps.
    mode "data": whole games, raw rewards, no time limit (dataset generation).
    Distractor bars (`noise_type`) are drawn on every observation.
    """
    import ale_py
    gym.register_envs(ale_py)
    check_noise_type(noise_type)
    if mode not in ("train", "eval", "data"):
        raise ConfigError(f"unknown mode {mode!r}; accepted: train, eval, data")
    game = gym.make(gym_id(env), repeat_action_probability=0.0, max_episode_steps=None)
    game = AtariFrames(game, frame_skip=frame_skip, noop_max=noop_max)
    if mode == "train":
        game = LifeLossEnds(game)
    if "FIRE" in game.unwrapped.get_action_meanings():
        game = FireReset(game)
    if mode == "train":
        game = gym.wrappers.TransformReward(game, np.sign)
    if mode == "eval":
        game = gym.wrappers.TimeLimit(game, eval_time_limit)
    if noise_type != "none":
        rng = np.random.default_rng(seed + 1_000_003)
        game = gym.wrappers.TransformObservation(
            game, lambda frame: add_distractors(frame, noise_type, rng), game.observation_space)
    game.reset(seed=seed)
    game.action_space.seed(seed)
    return game


# ----------------------------------------------------------------------------
# Dataset generation: a random policy, one HDF5 file per split


DEFAULT_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
FIELDS = {  # name -> (per-frame shape, dtype)
    "frames": ((FRAME_SIZE, FRAME_SIZE, 3), np.uint8),
    "episode": ((), np.int32),
    "step": ((), np.int32),
    "action": ((), np.int32),
    "reward": ((), np.float32),
    "ram": ((128,), np.uint8),
}


def split_sizes(num_frames, num_eval_frames=None):
    """Frames per split: `num_frames` for train, a tenth of it (or as given) for valid and test."""
    num_eval = num_frames // 10 if num_eval_frames is None else num_eval_frames
    return {"train": num_frames, "valid": num_eval, "test": num_eval}


def split_path(data_dir, env, split):
    return os.path.join(data_dir, canonical_env(env), f"{split}.h5")


def play_random(env, num_frames, seed, episode_offset=0, desc=None):
    """Play `env` with a seeded uniform-random policy for exactly `num_frames` frames.

    Returns a dict of per-frame arrays (see FIELDS). The first frame of every
    episode is the reset frame; the action stored with a frame is the one taken
    after seeing it. The last episode is cut when the frame budget runs out.
    """
    game = make_env(env, mode="data", seed=seed)
    rng = np.random.default_rng(seed)
    out = {name: np.zeros((num_frames,) + shape, dtype) for name, (shape, dtype) in FIELDS.items()}
    frame, info = game.reset(seed=seed)
    episode, step = episode_offset, 0
    for i in tqdm(range(num_frames), desc=desc, unit="frame", leave=False):
        action = int(rng.integers(game.action_space.n))
        out["frames"][i], out["ram"][i] = frame, info["ram"]
        out["episode"][i], out["step"][i], out["action"][i] = episode, step, action
        frame, reward, terminated, truncated, info = game.step(action)
        out["reward"][i] = reward
        step += 1
        if terminated or truncated:
            frame, info = game.reset()
            episode, step = episode + 1, 0
    game.close()
    return out


def write_h5(path, arrays, attrs):
    """Write per-frame arrays atomically: to a temporary name, then rename.

    An interrupted write leaves only the temporary file, which nothing reads.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name, data in arrays.items():
            chunks = (min(64, len(data)),) + data.shape[1:] if len(data) else None
            f.create_dataset(name, data=data, chunks=chunks, compression="gzip",
                             compression_opts=4, shuffle=True)
        f.attrs.update(attrs)


def read_h5(path, fields=None):
    """Read a split file into memory: {field: array} plus its attrs.

    Raises ConfigError (one line) for a missing, corrupt or truncated file.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"missing data file {path}; generate it with "
                          f"`python preprocess.py generate with env=...`")
    try:
        with h5py.File(path, "r") as f:
            names = [n for n in (fields or FIELDS) if n in f]
            arrays = {name: f[name][()] for name in names}
            attrs = dict(f.attrs)
    except Exception as e:  # h5py raises OSError, KeyError or RuntimeError for damaged files
        raise ConfigError(f"corrupt or truncated data file {path} ({type(e).__name__}); "
                          f"delete it to regenerate") from None
    if "frames" not in arrays or arrays["frames"].shape[1:] != FIELDS["frames"][0]:
        raise ConfigError(f"data file {path} has no uint8 frames [N, 84, 84, 3]; "
                          f"delete it to regenerate")
    if any(len(a) != len(arrays["frames"]) for a in arrays.values()):
        raise ConfigError(f"data file {path} has fields of different lengths; "
                          f"delete it to regenerate")
    return arrays, attrs


def generation_attrs(env, split, num_frames, seed):
    return {"env": canonical_env(env), "split": split, "num_frames": num_frames, "seed": seed,
            "source": "random_policy", "version": DATASET_VERSION}


def file_attrs(path):
    """(attrs, None) of a readable split file, or (None, what is wrong with it)."""
    try:
        with h5py.File(path, "r") as f:
            if "frames" not in f:
                return None, "it has no frames"
            return dict(f.attrs), None
    except Exception as e:  # h5py raises OSError, KeyError or RuntimeError for damaged files
        return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'}"


def converted_here(data_dir, env):
    """True if any split file of `env` in `data_dir` holds converted authors' data."""
    for split in SPLITS:
        path = split_path(data_dir, env, split)
        attrs = file_attrs(path)[0] if os.path.isfile(path) else None
        if attrs and attrs.get("source") == "authors_npz":
            return True
    return False


def reusable(path, attrs):
    """Whether the split file at `path` can serve a dataset described by `attrs`.

    True for the same generated data or for data converted from the authors' files;
    False for a missing file, and for a damaged generated one after saying so in one
    line (it is then regenerated). A ConfigError (one line, nothing written) for a
    readable file of other data (size, seed, version): the user's data is never replaced
    silently; and for a damaged file beside converted authors' data.
    """
    if not os.path.isfile(path):
        return False
    have, damage = file_attrs(path)
    data_dir, env = os.path.dirname(os.path.dirname(path)), attrs["env"]
    if damage:
        if converted_here(data_dir, env):
            raise ConfigError(f"data file {path} is damaged ({damage}) and holds converted "
                              f"authors' data; re-convert: delete {os.path.dirname(path)} "
                              f"and run python preprocess.py convert with env={env} npz_dir=...")
        print(f"data file {path} is damaged ({damage}); generating it again", file=sys.stderr)
        return False
    if have.get("source") == "authors_npz":
        return True
    wanted = {k: attrs[k] for k in ("num_frames", "seed", "version")}
    found = {k: have.get(k) for k in wanted}
    if found != wanted:
        raise ConfigError(
            f"data file {path} holds other data ({describe_attrs(found)}) than this run asks for "
            f"({describe_attrs(wanted)}); keep both by giving another data_dir, or delete "
            f"{os.path.dirname(path)} to generate it again")
    return True


def describe_attrs(attrs):
    """'5000 frames, data_seed 0, version 1' from split-file attrs."""
    return f"{attrs['num_frames']} frames, data_seed {attrs['seed']}, version {attrs['version']}"


def check_data_dir(data_dir):
    """Make sure `data_dir` is (or can become) a writable folder."""
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise ConfigError(f"data_dir {data_dir} is a file; give a folder")
    try:
        os.makedirs(data_dir, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"data_dir {data_dir} cannot be created ({e.strerror})") from None
    if not os.access(data_dir, os.W_OK):
        raise ConfigError(f"data_dir {data_dir} is not writable; give a writable folder")


def generate_dataset(env, data_dir=DEFAULT_DATA_DIR, num_frames=100_000, num_eval_frames=None,
                     seed=0):
    """Write data_dir/<env>/{train,valid,test}.h5 unless identical files exist.

    Each split plays its own episodes (its own seed), so no episode crosses
    splits; episode ids are unique across the three files. Returns the paths.
    """
    env = canonical_env(env)
    check_data_dir(data_dir)
    os.makedirs(os.path.join(data_dir, env), exist_ok=True)
    sizes = split_sizes(num_frames, num_eval_frames)
    paths = {split: split_path(data_dir, env, split) for split in sizes}
    attrs = {split: generation_attrs(env, split, size, seed) for split, size in sizes.items()}
    # decide for all three files before writing any, so that a refusal leaves nothing changed
    missing = [split for split in sizes if not reusable(paths[split], attrs[split])]
    for index, (split, size) in enumerate(sizes.items()):
        if split not in missing:
            continue
        split_seed = seed * len(SPLITS) + index
        arrays = play_random(env, size, split_seed, episode_offset=index * 1_000_000,
                             desc=f"{env} {split}")
        write_h5(paths[split], arrays, attrs[split])
    return paths


# ----------------------------------------------------------------------------
# The authors' npz layout -> ours


def convert_npz(npz_dir, env, data_dir=DEFAULT_DATA_DIR):
    """Convert `npz_dir/{train,test}/<AleId>NoFrameskip-v4/*.npz` (key `frames`) to our files.

    Their frames are full screens (any size; 210 x 160 x 3 originally), uint8 or
    float in [0, 1]; they are resized nearest to 84 x 84. Their test folder is
    split by file into a validation half and a test half, as the authors did.
    RAM, actions and rewards are absent (stored as zeros; attrs say so).
    """
    env = canonical_env(env)
    check_data_dir(data_dir)
    files = {split: sorted(glob.glob(os.path.join(npz_dir, split, gym_id(env), "*.npz")))
             for split in ("train", "test")}
    for split, found in files.items():
        if not found:
            raise ConfigError(f"no npz files in {os.path.join(npz_dir, split, gym_id(env))}; "
                              f"expected the authors' layout "
                              f"<npz_dir>/{{train,test}}/{gym_id(env)}/*.npz")
    existing = [split_path(data_dir, env, split) for split in SPLITS
                if os.path.exists(split_path(data_dir, env, split))]
    if existing:
        raise ConfigError(f"{existing[0]} exists; converting would replace it: delete "
                          f"{os.path.dirname(existing[0])} first, or give another data_dir")
    half = (len(files["test"]) + 1) // 2
    groups = {"train": files["train"], "valid": files["test"][:half], "test": files["test"][half:]}
    os.makedirs(os.path.join(data_dir, env), exist_ok=True)
    episode = 0
    for split, group in groups.items():
        episodes = []
        for path in group:
            episodes.append(npz_episode(path, episode))
            episode += 1
        arrays = {name: np.concatenate([e[name] for e in episodes]) for name in FIELDS}
        write_h5(split_path(data_dir, env, split), arrays,
                 {"env": env, "split": split, "num_frames": len(arrays["frames"]),
                  "source": "authors_npz", "has_ram": False, "version": DATASET_VERSION})
    return {split: split_path(data_dir, env, split) for split in groups}


def npz_episode(path, episode):
    """One authors' episode file -> per-frame arrays in our layout (no RAM)."""
    try:
        frames = np.load(path)["frames"]
    except Exception as e:
        raise ConfigError(f"cannot read frames from {path} ({type(e).__name__})") from None
    if frames.dtype != np.uint8:
        frames = np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)
    frames = np.stack([resize_frame(f) for f in frames])  # [T, 84, 84, 3]
    n = len(frames)
    arrays = {name: np.zeros((n,) + shape, dtype) for name, (shape, dtype) in FIELDS.items()}
    arrays.update(frames=frames, episode=np.full(n, episode, np.int32),
                  step=np.arange(n, dtype=np.int32))
    return arrays


# ----------------------------------------------------------------------------
# Loading: tf.data pipelines of float32 frames in [0, 1]


def window_starts(episode, window=PAIR_WINDOW):
    """Indices s such that frames s .. s + window - 1 all belong to one episode."""
    episode = np.asarray(episode)
    if len(episode) < window:
        return np.zeros(0, np.int64)
    return np.flatnonzero(episode[:len(episode) - window + 1] == episode[window - 1:])


def sample_pairs(starts, count, rng, window=PAIR_WINDOW):
    """Frame-index pairs (t1, t2) of one episode: t1 in [0, 49), t2 in [50, 99) of a window."""
    s = starts[rng.integers(len(starts), size=count)]
    half = window // 2
    return s + rng.integers(0, half - 1, size=count), s + rng.integers(half, window - 1, size=count)


def frames_loader(frames, noise_type, seed):
    """A function (indices [B], key...) -> float32 frames [B, 84, 84, 3] in [0, 1]; the
    distractors are drawn from a generator seeded by (seed, *key), so a batch looks the same
    however often, and from wherever, its dataset is read."""

    def load(indices, *key):
        rng = np.random.default_rng((seed,) + tuple(int(k) for k in key))
        return add_distractors(frames[indices], noise_type, rng).astype(np.float32) / 255.0

    return load


def frame_dataset(frames, batch_size, noise_type, seed, epoch=None, start=0):
    """Single frames [B, 84, 84, 3] for PermaKey, from batch `start` on.

    epoch None: the frames in order (valid/test). An epoch number: that epoch's own
    permutation of the frames, seeded by (seed, epoch), so that a run resumed in the
    middle of an epoch reads the same batches as one that never stopped.
    """
    import tensorflow as tf
    load = frames_loader(frames, noise_type, seed)
    order = (np.arange(len(frames)) if epoch is None
             else np.random.default_rng((seed, epoch)).permutation(len(frames)))

    def gather(b):
        batch = tf.numpy_function(
            lambda b: load(order[b * batch_size:(b + 1) * batch_size], epoch or 0, b), [b],
            tf.float32)
        return tf.ensure_shape(batch, (batch_size,) + frames.shape[1:])

    return tf.data.Dataset.range(start, len(frames) // batch_size).map(gather).prefetch(2)


def spread_batches(dataset, num_batches):
    """`num_batches` batches of a finite, unshuffled frame dataset, their frames taken at
    even intervals across it rather than its first consecutive frames: the example
    figures then show different moments of the split's episodes."""
    batch_size = dataset.element_spec.shape[0]
    stride = max(int(dataset.cardinality()) // max(num_batches, 1), 1)         # in frames
    return dataset.unbatch().shard(stride, 0).batch(batch_size, drop_remainder=True).take(
        num_batches)


def pair_dataset(frames, episode, batch_size, noise_type, num_pairs, seed, epoch=None, start=0):
    """Frame pairs ([B, 84, 84, 3], [B, 84, 84, 3]) for Transporter (docs/DESIGN.md, "Data"), from
    batch `start` on.

    epoch None (valid/test): one fixed seeded set of pairs, so that losses compare across
    epochs. An epoch number (training): fresh pairs every epoch, each batch's drawn from
    (seed, epoch, batch), so that a resumed epoch reads the same pairs.
    """
    import tensorflow as tf
    starts = window_starts(episode)
    load = frames_loader(frames, noise_type, seed + 1)
    num_batches = num_pairs // batch_size
    fixed = (None if epoch is not None
             else sample_pairs(starts, num_batches * batch_size, np.random.default_rng(seed)))

    def load_pair(b):  # batch number -> two frame batches [B, 84, 84, 3]
        if fixed is None:
            t1, t2 = sample_pairs(starts, batch_size, np.random.default_rng((seed, epoch, b)))
        else:
            t1, t2 = (t[b * batch_size:(b + 1) * batch_size] for t in fixed)
        return load(t1, epoch or 0, b, 1), load(t2, epoch or 0, b, 2)

    def gather(b):
        pair = tf.numpy_function(load_pair, [b], (tf.float32, tf.float32))
        return tuple(tf.ensure_shape(x, (batch_size,) + frames.shape[1:]) for x in pair)

    return tf.data.Dataset.range(start, num_batches).map(gather).prefetch(2)


def get_datasets(env, kind="frames", data_dir=DEFAULT_DATA_DIR, batch_size=32, noise_type="none",
                 num_frames=100_000, num_eval_frames=None, num_pairs=100_000, seed=0, data_seed=0):
    """Keypoint-training data; generates missing files first.

    "valid" and "test" are tf.data datasets; "train" is a function (epoch, start=0) ->
    that epoch's tf.data dataset from batch `start` on (see frame_dataset). kind "frames":
    batches of single frames (PermaKey). kind "pairs": batches of
    frame pairs (Transporter); `num_pairs` per training epoch, and a tenth of it
    (at least one batch) for valid and test. `data_seed` seeds the generated games,
    `seed` the shuffling, pair sampling and distractors.
    """
    check_noise_type(noise_type)
    if kind not in ("frames", "pairs"):
        raise ConfigError(f"unknown dataset kind {kind!r}; accepted: frames, pairs")
    paths = generate_dataset(env, data_dir, num_frames, num_eval_frames, data_seed)
    datasets = {}
    for index, (split, path) in enumerate(paths.items()):
        arrays, _ = read_h5(path, ("frames", "episode"))
        frames, split_seed = arrays["frames"], seed * len(SPLITS) + index
        training = split == "train"
        if len(frames) < batch_size:
            raise ConfigError(f"{path} has {len(frames)} frames, fewer than one batch of "
                              f"{batch_size}; generate more (num_frames) or lower batch_size")
        if kind == "frames":
            args = (frames, batch_size, noise_type, split_seed)
            datasets[split] = (functools.partial(frame_dataset, *args) if training
                               else frame_dataset(*args))
            continue
        if len(window_starts(arrays["episode"])) == 0:
            raise ConfigError(f"{path} has no episode of {PAIR_WINDOW} frames for Transporter "
                              f"pairs; generate more frames (num_frames)")
        args = (frames, arrays["episode"], batch_size, noise_type,
                num_pairs if training else max(num_pairs // 10, batch_size), split_seed)
        datasets[split] = (functools.partial(pair_dataset, *args) if training
                           else pair_dataset(*args))
    return datasets


# ----------------------------------------------------------------------------
# Command line

ex = quiet_experiment(Experiment("preprocess", save_git_info=False))


@ex.config
def config():
    env = "mspacman"  # short game name (see GAMES)
    data_dir = DEFAULT_DATA_DIR  # files go to data_dir/<env>/{train,valid,test}.h5
    num_frames = 100_000  # training frames; valid and test get num_eval_frames each
    num_eval_frames = None  # None: num_frames // 10
    seed = 0
    npz_dir = None  # convert_npz: root of the authors' {train,test}/<AleId>NoFrameskip-v4/*.npz


# Numeric options, checked where a command reads its config (common.check_options).
# (`seed` is Sacred's own: it seeds the random generators before any command runs.)
OPTIONS = {"num_frames": "count", "num_eval_frames": "count or None"}


@ex.command
@one_line_errors
def generate(_config, env, data_dir, num_frames, num_eval_frames, seed):
    """Play `env` with a random policy and write the three split files."""
    check_options(_config, OPTIONS)
    for split, path in generate_dataset(env, data_dir, num_frames, num_eval_frames, seed).items():
        print(f"{split}: {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


@ex.command
@one_line_errors
def convert(_config, env, data_dir, npz_dir):
    """Convert the authors' npz episodes to our HDF5 files."""
    check_options(_config, OPTIONS)
    if not npz_dir:
        raise ConfigError("npz_dir is not set; give the folder holding the authors' train/ "
                          "and test/")
    for split, path in convert_npz(npz_dir, env, data_dir).items():
        print(f"{split}: {path}")


if __name__ == "__main__":
    ex.run_commandline()
