"""The keypoint datasets: random-policy games written to HDF5 (frames and the console RAM
of each step, for measuring keypoints against true object positions), and the tf.data
pipelines that read them: float32 frames (PermaKey) or frame pairs (Transporter).

The frames come from atari_env.make_env, the same preprocessing as the agent's.
"""
import functools
import glob
import os
import sys

import h5py
import numpy as np
from tqdm import tqdm

from atari_env import FRAME_SIZE, add_distractors, make_env, resize_frame
from common import ConfigError, atomic_path
from games import canonical_env, check_noise_type, gym_id


SPLITS = ("train", "valid", "test")
PAIR_WINDOW = 100  # Transporter pairs: t1 in [0, 49), t2 in [50, 99) of a 100-frame window
DATASET_VERSION = 1  # bump when the generated content changes, so old files are not reused


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
