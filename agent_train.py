r"""Keypoint-based RL agents on Atari (the paper's Tables 1-3): recurrent double Q-learning on
the keypoints of a frozen, pre-trained PermaKey or Transporter model.

    python agent_train.py with mspacman kp_type="permakey" vis_ckpt_fname=RUN vis_load=best
    python agent_train.py with mspacman kp_type="transporter" kpt_encoder_type="gnn" \
        vis_ckpt_fname=RUN vis_load=5
    python agent_train.py with mspacman kp_type="permakey" \
        resume_dir=rl_exp/none/permakey/cnn/mspacman/1
    python agent_train.py evaluate with mspacman kp_type="permakey" load_ckpts=A,B,C \
        eval_seeds=1,2,3,4,5
    python agent_train.py with mspacman kp_type="permakey" vis_ckpt_fname=RUN gpu=0,1   # two GPUs
    TF_CONFIG='{"cluster": ..., "task": ...}' python agent_train.py with ...          # one per host

Runs live in rl_exp/<noise_type>/<kp_type>/<kpt_encoder_type>/<env>/<run id>/: Sacred's
files, model.json (what the agent checkpoints hold, and which keypoint run they read),
tb/ (TensorBoard), evaluations.json and evaluations.csv (periodic greedy evaluations,
each with the authors' selection rule's verdict), ckpt/ (the resumable checkpoints:
online and target Q-networks, optimizer, step counters), ckpt_selected/ (the
checkpoints the rule kept: the policies `evaluate` scores) and time.json (wall and CPU
seconds of the training, over its resumes).

Reading order: config; devices; the frozen keypoint model and the agent's inputs; the
Q-networks; acting in several environments at once; greedy evaluation; the training
loop; the `evaluate` command (the paper's protocol).

Speed: the keypoint model's expensive part (PermaKey's local spatial prediction and
PointNet, or Transporter's keypointer) runs once per frame, while acting; the replay
keeps each frame's keypoint centres [K, 2] beside the uint8 frame. An update recomputes
only the encoder features (42 x 42 x C) of the replayed frames, on each replica's device.
"""
import contextlib
import csv
import dataclasses
import functools
import glob
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Callable, Optional

import runs  # first: TensorFlow then starts without its start-up chatter (runs.import_tensorflow)
import gymnasium as gym
import numpy as np
import tensorflow as tf
from sacred import Experiment
from tqdm import tqdm

import agent
import bench
import layers
import plots
import preprocess
import replay
import rl_loss
import vision_modules
from runs import ConfigError, check_options, one_line_errors

ex = runs.quiet_experiment(Experiment("keypoint_agent", save_git_info=False))
EXP_ROOT = "rl_exp"
# Keypoints the agent reads: a PermaKey or Transporter run's, or ("fixed", the control)
# K places fixed on the screen over a PermaKey run's encoder features (FixedKeypoints).
KP_TYPES = ("permakey", "transporter", "fixed")
# The keypoint model kind each kp_type loads (its run's model.json "kind").
KEYPOINT_KINDS = {"permakey": "permakey", "transporter": "transporter", "fixed": "permakey"}
RANDOM = "random"  # evaluate load_ckpts=random: the uniformly random policy, the protocol's floor


# --------------------------------------------------------------------------------------
# Config


@ex.config
def config():
    env = "mspacman"  # short game name; `with <game>` sets the paper's values (preprocess.GAMES)
    num_keypoints = 7
    replay_capacity = 1000  # episodes (lives) kept in the replay
    kp_type = "permakey"  # permakey | transporter | fixed (the control, KP_TYPES)
    kpt_encoder_type = "cnn"  # cnn | gnn
    mp_num_steps = 1  # gnn: message-passing steps
    vis_ckpt_fname = None  # the keypoint run folder (permakey_exp/... or transporter_exp/...)
    vis_load = "best"  # its checkpoint: best | last | an epoch number
    noise_type = "none"  # none | horizontal | vertical | both
    num_iters = 400_000  # environment steps (per worker when several hosts train)
    warmup_steps = 10_000  # environment steps before the first update (again after a resume)
    update_every = 4  # environment steps per update
    batch_size = 16  # sequences per update, split across replicas
    learning_rate = 1e-4
    window_size = 8  # steps per sequence that carry a loss
    n_step = 3
    gamma = 0.99
    tau = 0.005  # soft target update rate
    max_grad_norm = 10.0
    epsilon_start = 1.0  # linear to epsilon_end over num_iters
    epsilon_end = 0.1
    num_envs = 8  # environments acted in at once (one batched forward pass)
    async_envs = False  # True: one process per environment (AsyncVectorEnv)
    eval_every = 10_000  # environment steps between evaluations (and checkpoints)
    eval_episodes = 10  # greedy episodes per periodic evaluation
    eval_time_limit = preprocess.EVAL_TIME_LIMIT  # agent steps per evaluation episode
    log_every = 1_000  # environment steps between training scalars
    ckpt_keep = 3  # agent checkpoints kept
    save_every_mins = 10  # also save this often (single-host runs) and on SIGTERM / SIGINT
    seed = 0
    gpu = None  # GPU ids to train on data-parallel, e.g. 0,1 (MirroredStrategy)
    devices = None  # TF device names instead of gpu ids, e.g. "/cpu:0,/cpu:1" (tests)
    resume_dir = None  # a run folder to continue from its last checkpoint
    exp_root = EXP_ROOT
    load_ckpts = None  # evaluate: agent run folders, one selected step per run, or random
    precision = "auto"  # auto | float32 | bf16: keypoint model and encoder compute in bfloat16
    save_replay = True  # keep the replay with each checkpoint (replay.npy.gz), for resume
    eval_seeds = (1, 2, 3, 4, 5)  # evaluate
    num_eval_episodes = 10  # evaluate: greedy episodes per seed and policy


runs.add_game_configs(ex, ("env", "num_keypoints", "replay_capacity"))


def as_list(value):
    """A config list given as 1,2 (a tuple for Sacred), "a,b" (a string), one value or None."""
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


@ex.capture
def agent_spec(env, kp_type, kpt_encoder_type, num_keypoints, noise_type, mp_num_steps):
    """What an agent checkpoint depends on; resume and evaluate check it (model.json)."""
    if kp_type not in KP_TYPES:
        raise ConfigError(f"kp_type={kp_type!r}: expected one of {', '.join(KP_TYPES)}")
    agent.keypoint_encoder_kind(kpt_encoder_type)  # ConfigError if unknown
    return {"kind": "keypoint_agent", "env": preprocess.canonical_env(env), "kp_type": kp_type,
            "kpt_encoder_type": kpt_encoder_type, "num_keypoints": num_keypoints,
            "noise_type": preprocess.check_noise_type(noise_type), "mp_num_steps": mp_num_steps}


# Numeric options, checked where a command reads its config (common.check_options).
OPTIONS = {
    "num_keypoints": "count", "replay_capacity": "count", "mp_num_steps": "count",
    "num_iters": "count", "warmup_steps": "index", "update_every": "count", "batch_size": "count",
    "learning_rate": "positive", "window_size": "count", "n_step": "count", "gamma": "fraction",
    "tau": "rate", "max_grad_norm": "positive", "epsilon_start": "fraction",
    "epsilon_end": "fraction", "num_envs": "count", "eval_every": "count",
    "eval_episodes": "count", "eval_time_limit": "count", "log_every": "count",
    "ckpt_keep": "count", "save_every_mins": "non-negative",
    "num_eval_episodes": "count",
}


# --------------------------------------------------------------------------------------
# Devices: one device, several GPUs of one host, or several hosts (TF_CONFIG)


def cluster_task():
    """(worker index, number of workers) from TF_CONFIG; (0, 1) without it.

    Worker 0 is the chief: the "chief" task if the cluster names one, else worker 0,
    as in TensorFlow.
    """
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        cluster = tf_config.get("cluster", {})
        tasks = [(job, index) for job in ("chief", "worker")
                 for index in range(len(cluster.get(job, [])))]
        if len(tasks) <= 1:
            return 0, 1
        task = tf_config["task"]
        return tasks.index((task["type"], task["index"])), len(tasks)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError("TF_CONFIG is not a cluster description with this process's task: "
                          '{"cluster": {"worker": ["host:port", ...]}, '
                          '"task": {"type": "worker", "index": I}}') from None


def is_chief_process():
    """True unless TF_CONFIG makes this process a non-chief worker (bad TF_CONFIG: True,
    so that the error is reported by the command)."""
    try:
        return cluster_task()[0] == 0
    except ConfigError:
        return True


def checked_gpu_ids(gpu):
    """Integer ids from the `gpu` config; ConfigError naming any that do not exist."""
    ids = as_list(gpu)
    num_gpus = len(tf.config.list_physical_devices("GPU"))
    missing = [i for i in ids if not (str(i).isdigit() and int(i) < num_gpus)]
    if missing:
        here = f"GPU ids 0..{num_gpus - 1}" if num_gpus else "no GPU"
        raise ConfigError(f"gpu ids {', '.join(map(str, missing))} do not exist; "
                          f"this machine has {here}")
    return [int(i) for i in ids]


def checked_devices(devices):
    """TF device names from the `devices` config; ConfigError naming any that do not
    exist and listing those that do."""
    present = {(d.device_type, int(d.name.rsplit(":", 1)[1])): d.name
               for d in tf.config.list_logical_devices()}

    def exists(name):
        try:
            spec = tf.DeviceSpec.from_string(name)
        except ValueError:
            return False
        return (str(spec.device_type).upper(), spec.device_index) in present

    names = as_list(devices)
    missing = [name for name in names if not exists(str(name))]
    if missing:
        raise ConfigError(f"devices {', '.join(map(str, missing))} do not exist; devices here: "
                          f"{', '.join(present.values())}")
    return names


def make_strategy(gpu, devices, num_workers):
    """The tf.distribute strategy for this process.

    Several workers (TF_CONFIG): MultiWorkerMirroredStrategy, each worker over its
    `gpu` ids (default: all its GPUs). One host: MirroredStrategy over the `gpu` ids or
    the `devices`; neither: TensorFlow's default device (GPU 0 if there is one). Call it
    before any other TensorFlow op: collective ops are configured at start-up.
    """
    if num_workers > 1:
        if devices is not None:
            raise ConfigError("devices= names one host's devices; with TF_CONFIG give gpu= ids")
        if gpu is not None:
            gpus = tf.config.list_physical_devices("GPU")
            tf.config.set_visible_devices([gpus[i] for i in checked_gpu_ids(gpu)], "GPU")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices is not None:
        names = checked_devices(devices)
    else:
        names = [f"/gpu:{i}" for i in checked_gpu_ids(gpu)]
    return tf.distribute.MirroredStrategy(names) if names else tf.distribute.get_strategy()


# --------------------------------------------------------------------------------------
# The frozen keypoint model and the agent's inputs


def load_keypoint_model(strategy, kp_type, vis_ckpt_fname, vis_load, env, num_keypoints,
                        noise_type):
    """The pre-trained keypoint model, checked against the config (one line if it differs).

    Its variables are created under the strategy (mirrored on every replica's device,
    restored from the checkpoint as they appear) by one eager call (docs/DESIGN.md,
    "Notes on the stack").
    """
    if not vis_ckpt_fname:
        raise ConfigError("vis_ckpt_fname is not set; give the keypoint run folder "
                          "(permakey_exp/... or transporter_exp/...)")
    expected = {"kind": KEYPOINT_KINDS[kp_type], "env": preprocess.canonical_env(env),
                "num_keypoints": num_keypoints, "noise_type": noise_type}
    with strategy.scope():
        model, _ = runs.load_keypoint_model(vis_ckpt_fname, vis_load, expected)
        if kp_type == "fixed":
            model = FixedKeypoints(model, num_keypoints)
        observe(model, tf.zeros([1, 84, 84, 3], tf.uint8))
    return model


def fixed_places(num_keypoints):
    """K places spread over the screen, (y, x) in [-1, 1] [K, 2]: the centres of the cells
    of a grid of ceil(sqrt(K)) columns and ceil(K / columns) rows, row by row, the first
    K (K = 7: a 3 x 3 grid at -2/3, 0, 2/3 less its last two cells)."""
    columns = int(np.ceil(np.sqrt(num_keypoints)))
    rows = int(np.ceil(num_keypoints / columns))
    ys = (np.arange(rows) + 0.5) / rows * 2 - 1
    xs = (np.arange(columns) + 0.5) / columns * 2 - 1
    return np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)[:num_keypoints]


class FixedKeypoints:
    """The control agent's keypoint model: a PermaKey run's encoder features, with the
    keypoints at fixed_places whatever the frame. What an agent reaches with it is what
    the encoder features alone give, without keypoints that carry information."""

    def __init__(self, permakey, num_keypoints):
        self.permakey = permakey
        self.places = tf.constant(fixed_places(num_keypoints), tf.float32)  # [K, 2]

    def keypoints_and_features(self, images, is_training=False):
        """Centres [B, K, 2] (the fixed places), no heatmaps, PermaKey's features."""
        features = image_features(self.permakey, images)
        centres = tf.tile(self.places[tf.newaxis], [tf.shape(images)[0], 1, 1])
        return centres, None, features


def observe(kp_model, frames):
    """The whole frozen keypoint model, while acting: uint8 frames [N, 84, 84, 3] ->
    centres [N, K, 2] and encoder features [N, 42, 42, C]."""
    images = tf.cast(frames, tf.float32) / 255.0
    if isinstance(kp_model, (vision_modules.PermaKey, FixedKeypoints)):
        centres, _, features = kp_model.keypoints_and_features(images, is_training=False)
    else:
        centres, _, features = kp_model.keypoints(images, is_training=False)
    return centres, features


def encoder_features(kp_model, frames):
    """Only the cheap part of `observe`, for replayed frames whose centres were kept:
    uint8 [N, 84, 84, 3] -> encoder features [N, 42, 42, C] (PermaKey: the last LSP
    layer's activations; Transporter: its encoder's output), float32."""
    return image_features(kp_model, tf.cast(frames, tf.float32) / 255.0)


def image_features(kp_model, images):
    """encoder_features of images [N, 84, 84, 3] in [0, 1]."""
    if isinstance(kp_model, FixedKeypoints):
        kp_model = kp_model.permakey
    if isinstance(kp_model, vision_modules.PermaKey):
        _, _, activations = kp_model.encoder(images, is_training=False)
        features = activations[kp_model.lsp_layers[-1]]
    else:
        features = kp_model.encoder(images, is_training=False)[-1]
    return tf.cast(features, tf.float32)


def make_prepare(kp_model, kpt_encoder_type, cached_keypoints=True):
    """Replay windows -> the loss batch of rl_loss, run on each replica's shard.

    The inputs are rebuilt from the stored frames and centres: the same inputs the
    agent acted on (a test checks this), without re-running the keypoint model. With
    `cached_keypoints=False` the stored centres are ignored and the whole frozen model
    runs again on the frames (same inputs, far slower with PermaKey: `make bench`
    compares the two).
    """
    to_inputs = agent.KEYPOINT_ENCODERS[kpt_encoder_type].inputs

    def prepare(windows):
        batch_size, length = windows["frames"].shape[:2]                 # [b, T, 84, 84, 3]
        frames = agent.merge_batch_time(windows["frames"])               # [b*T, 84, 84, 3]
        if cached_keypoints:
            centres = agent.merge_batch_time(windows["centres"])         # [b*T, K, 2]
            features = encoder_features(kp_model, frames)
        else:
            centres, features = observe(kp_model, frames)
        inputs = to_inputs(features, centres)                            # [b*T, ...]
        inputs = tf.nest.map_structure(
            lambda x: tf.reshape(x, [batch_size, length] + x.shape[1:].as_list()), inputs)
        return dict(inputs=inputs, **{key: windows[key]
                                      for key in ("actions", "rewards", "dones", "mask")})

    return prepare


# --------------------------------------------------------------------------------------
# Q-networks


def q_network(kp_model, kpt_encoder_type, mp_num_steps, num_actions):
    """A recurrent Q-network over the keypoint encoder, its variables created (one eager
    call on the keypoint model's output for a blank frame; docs/DESIGN.md, "Notes on the stack")."""
    kind = agent.keypoint_encoder_kind(kpt_encoder_type)
    centres, features = observe(kp_model, tf.zeros([1, 84, 84, 3], tf.uint8))
    example = tf.nest.map_structure(lambda x: x[:, tf.newaxis],            # [1, 1, ...]
                                    kind.inputs(features, centres))
    encoder = kind.build(mp_num_steps)
    network = agent.RecurrentQNetwork(encoder, num_actions)
    agent.create_variables(network, example)
    return network


def build_q_networks(strategy, *network_args):
    """Online and target Q-networks (under the strategy), a plain actor copy, and
    `sync_actor()`, which copies the online network into the actor.

    The target and the actor start as copies of the online network. Acting and
    evaluation read the actor, synced after updates: under several hosts, reading the
    online network's replica-local batch-norm statistics is a collective that every
    worker must join, which acting (own pace) and evaluation (chief only) cannot.
    """
    with strategy.scope():
        online, target = q_network(*network_args), q_network(*network_args)
        rl_loss.soft_update(target.trainable_variables, online.trainable_variables, 1.0)
    actor = q_network(*network_args)

    @tf.function
    def sync_actor():
        """All online variables (weights and batch-norm statistics) into the actor."""
        for actor_variable, online_variable in zip(actor.variables, online.variables,
                                                   strict=True):
            actor_variable.assign(online_variable)

    sync_actor()
    return online, target, actor, sync_actor


def make_act_fn(kp_model, actor, kpt_encoder_type, precision="float32"):
    """One batched forward pass of keypoint model and actor Q-network for all envs,
    computed in `precision` (layers.precision)."""
    to_inputs = agent.KEYPOINT_ENCODERS[kpt_encoder_type].inputs

    @tf.function
    def act(frames, state):
        """uint8 frames [N, 84, 84, 3], LSTM state -> Q [N, A], next state, centres [N, K, 2]."""
        with layers.precision(precision):
            centres, features = observe(kp_model, frames)
            q_values, state = actor(to_inputs(features, centres), state, is_training=False)
        return q_values, state, centres

    return act


def zero_where(state, done):
    """Restart the LSTM state of the environments whose episode ended: done [N] bool."""
    keep = tf.constant(1.0 - done.astype(np.float32))[:, tf.newaxis]      # [N, 1]
    return tf.nest.map_structure(lambda s: s * keep, state)


# --------------------------------------------------------------------------------------
# Environments and greedy evaluation


TRAIN_SEEDS, EVAL_SEEDS, RANDOM_POLICY = 0, 1, 2  # seed purposes (env_seeds)


def env_seeds(seed, count, purpose, *stream):
    """`count` distinct environment seeds for (seed, purpose, stream...), e.g. training
    envs of worker w from step s, or evaluation episodes: no two purposes share one."""
    state = np.random.SeedSequence([seed, purpose, *stream]).generate_state(count)
    return [int(s) for s in state]


def make_envs(env, mode, seeds, noise_type, eval_time_limit, async_envs):
    """preprocess.make_env games side by side, one per seed (the agent's preprocessing).

    SAME_STEP autoreset: a step that ends an episode returns the next episode's first
    frame, so every returned frame is one to act on.
    """
    make = [functools.partial(preprocess.make_env, env, mode, seed, noise_type,
                              eval_time_limit=eval_time_limit) for seed in seeds]
    vector_env = gym.vector.AsyncVectorEnv if async_envs else gym.vector.SyncVectorEnv
    return vector_env(make, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def play_returns(policy, env, noise_type, seeds, eval_time_limit, async_envs):
    """Raw returns [len(seeds)] of one eval-mode episode per seed (whole games, unclipped
    rewards, at most eval_time_limit steps), played side by side; policy(frames
    [N, 84, 84, 3], playing [N] bool) -> actions [N], those of the games still playing
    used (greedy_policy, random_policy)."""
    envs = make_envs(env, "eval", seeds, noise_type, eval_time_limit, async_envs)
    frames, _ = envs.reset()
    returns, playing = np.zeros(len(seeds)), np.ones(len(seeds), bool)
    progress = tqdm(total=len(seeds), unit="episode", desc="evaluation", mininterval=10,
                    leave=False)
    for step in itertools.count(1):
        frames, rewards, terminated, truncated, _ = envs.step(policy(frames, playing))
        returns += rewards * playing
        ended = playing & (terminated | truncated)
        playing &= ~ended
        progress.update(int(ended.sum()))
        progress.set_postfix(step=step, refresh=False)
        if not playing.any():
            break
    progress.close()
    envs.close()
    return returns


# Greedy play computes only the games still playing, their count rounded up to a multiple
# of this (a few traced batch sizes): the longest episode no longer sets the cost of all.
PLAYING_BUCKET = 8


def greedy_policy(act, actor, count):
    """The greedy policy of a Q-network in `count` games at once: one batched forward pass
    per step over the games still playing; it carries their recurrent state."""
    state = actor.initial_state(count)

    def choose(frames, playing):
        nonlocal state
        rows = np.flatnonzero(playing)
        live = len(rows)
        size = min(count, -(-live // PLAYING_BUCKET) * PLAYING_BUCKET)
        rows = np.concatenate([rows, np.full(size - live, rows[0])])  # filler: a playing game
        q_values, rows_state, _ = act(frames[rows], tf.nest.map_structure(
            lambda s: tf.gather(s, rows), state))
        index = rows[:live, np.newaxis]
        state = tf.nest.map_structure(
            lambda s, new: tf.tensor_scatter_nd_update(s, index, new[:live]), state, rows_state)
        actions = np.zeros(count, np.int64)
        actions[rows[:live]] = np.argmax(q_values[:live], axis=-1)
        return actions
    return choose


def random_policy(num_actions, seed):
    """A uniformly random policy (the floor of the evaluation protocol)."""
    rng = np.random.default_rng([RANDOM_POLICY, seed])
    return lambda frames, playing: rng.integers(num_actions, size=len(frames))


# --------------------------------------------------------------------------------------
# Logging: Sacred metrics, TensorBoard, evaluations.json / .csv (chief only)


# The authors' checkpoint rule (their agent_train.py): after a periodic evaluation, keep
# the policy when its mean return is at least this share of the best mean so far; that
# mean then becomes the best (even when a little below it).
SELECT_SHARE = 0.95


def select_policy(mean, best):
    """(kept, best after, why) of the authors' rule for one evaluation's mean, given the
    best mean so far (None before the first evaluation)."""
    if best is None:
        return True, mean, "first evaluation"
    if mean >= SELECT_SHARE * best:
        return True, mean, f"mean {mean:.1f} >= {SELECT_SHARE} x best {best:.1f}"
    return False, best, f"mean {mean:.1f} < {SELECT_SHARE} x best {best:.1f}"


class Metrics:
    """Scalars to Sacred and TensorBoard; periodic evaluations also to JSON and CSV in the
    run folder, each with the selection rule's verdict (select_policy). Silent without a
    run folder (non-chief workers)."""

    def __init__(self, _run, run_dir, env_step):
        self._run, self._run_dir = _run, run_dir
        self._writer = run_dir and tf.summary.create_file_writer(os.path.join(run_dir, "tb"))
        # A resumed run continues from its checkpoint: drop scalars and evaluations logged
        # after it (the checkpoint at a step is saved after all of that step's logging).
        if run_dir:
            runs.drop_metrics_after(run_dir, env_step)
        logged = runs.read_json(self._path("json"), default=[]) if run_dir else []
        self.evaluations = [e for e in logged if e["step"] <= env_step]
        self.best = self.evaluations[-1].get("best") if self.evaluations else None

    def _path(self, suffix):
        return os.path.join(self._run_dir, f"evaluations.{suffix}")

    def scalars(self, prefix, values, step):
        if not self._run_dir:
            return
        with self._writer.as_default(step=step):
            for name, value in values.items():
                self._run.log_scalar(f"{prefix}.{name}", float(value), step)
                tf.summary.scalar(f"{prefix}/{name}", value)
        self._writer.flush()

    def evaluation(self, step, returns):
        """Log one periodic evaluation; returns its stats, "selected" among them."""
        stats = {"mean": float(np.mean(returns)), "std": float(np.std(returns)),
                 "min": float(np.min(returns)), "max": float(np.max(returns))}
        self.scalars("eval", stats, step)
        selected, self.best, why = select_policy(stats["mean"], self.best)
        stats.update(selected=selected, best=self.best, why=why)
        if not self._run_dir:
            return stats
        self.evaluations.append(dict(step=step, **stats, returns=[float(r) for r in returns]))
        runs.write_json(self._path("json"), self.evaluations)
        with runs.atomic_path(self._path("csv")) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "mean", "std", "min", "max", "episodes", "selected"])
            for e in self.evaluations:
                writer.writerow([e["step"], e["mean"], e["std"], e["min"], e["max"],
                                 len(e["returns"]), int(e.get("selected", False))])
        return stats


class TrainingClock:
    """Wall and CPU (process) seconds of a run's training, summed over its resumes, and
    the CPUs it ran on: <run>/time.json, written at each checkpoint. Work lost to a kill
    after the last checkpoint is not counted (its steps are counted again when redone)."""

    def __init__(self, run_dir):
        self.path = run_dir and os.path.join(run_dir, "time.json")
        saved = runs.read_json(self.path, default={}) if self.path else {}
        self.seconds = saved.get("seconds", 0.0)
        self.cpu_seconds = saved.get("cpu_seconds", 0.0)
        self.cpus = sorted(set(saved.get("cpus", [])) | {bench.machine()["cpu"]})
        self.started, self.cpu_started = time.time(), time.process_time()

    def save(self, env_step):
        if not self.path:
            return
        runs.write_json(self.path, {
            "step": env_step, "seconds": self.seconds + time.time() - self.started,
            "cpu_seconds": self.cpu_seconds + time.process_time() - self.cpu_started,
            "cpus": self.cpus})


# --------------------------------------------------------------------------------------
# Training


def agent_run_folder(command, config):
    """rl_exp/<noise>/<kp_type>/<encoder>/<env>/<new id> for training, the run folder
    itself when resuming, .../<env>/evaluate/<new id> for the evaluate command."""
    env = preprocess.env_name(config["env"])
    base = os.path.join(config["exp_root"], str(config["noise_type"]), str(config["kp_type"]),
                        str(config["kpt_encoder_type"]), str(env))
    if command == "evaluate":
        return os.path.join(base, "evaluate"), False
    if config.get("resume_dir"):
        return config["resume_dir"], True
    return base, False


if is_chief_process():  # other workers of a multi-host run write no run folder
    ex.observers.append(runs.RunFolderObserver(agent_run_folder))


def checkpoint_managers(checkpoint, run_dir, resume_dir, ckpt_keep):
    """(save, restore) CheckpointManagers of the agent checkpoint, `<run>/ckpt/`.

    Every worker of a multi-host run must save (saving reads distributed variables
    collectively); the non-chief ones write to a temporary folder, deleted at the end.
    All restore from the resumed run's folder (a filesystem shared by the hosts).
    """
    save_dir = os.path.join(run_dir, "ckpt") if run_dir else tempfile.mkdtemp(prefix="agent_ckpt_")
    save = tf.train.CheckpointManager(checkpoint, save_dir, ckpt_keep)
    restore = save
    if resume_dir and not run_dir:
        restore = tf.train.CheckpointManager(checkpoint, os.path.join(resume_dir, "ckpt"), None)
    return save, restore


SELECTED_DIR = "ckpt_selected"  # the policies the selection rule kept, apart from ckpt/


def keep_selected(checkpoint, run_dir):
    """Copy a saved checkpoint (its path prefix, ckpt/ckpt-<step>) into <run>/ckpt_selected/.

    A copy of the files, not a second save: on a cluster only the chief evaluates, and a
    save would need every worker."""
    folder = os.path.join(run_dir, SELECTED_DIR)
    os.makedirs(folder, exist_ok=True)
    for path in glob.glob(checkpoint + ".*"):
        shutil.copy2(path, os.path.join(folder, os.path.basename(path)))


def selected_steps(run_dir):
    """Steps of a run's selected checkpoints, in order."""
    found = glob.glob(os.path.join(run_dir, SELECTED_DIR, "ckpt-*.index"))
    return sorted(int(os.path.basename(path)[len("ckpt-"):-len(".index")]) for path in found)


def policy_checkpoint(run_dir, step=None):
    """(checkpoint path, step, how chosen) of an agent run's policy for evaluation: the
    selected checkpoint at `step`, by default the last one selected; a run without
    selected checkpoints (made before the rule) gives its last checkpoint."""
    steps = selected_steps(run_dir)
    if step is not None:
        if step not in steps:
            raise ConfigError(f"agent run {run_dir} has no selected checkpoint at step {step}; "
                              f"selected: {', '.join(map(str, steps)) or 'none'}")
        return os.path.join(run_dir, SELECTED_DIR, f"ckpt-{step}"), step, "selected (given)"
    if steps:
        return os.path.join(run_dir, SELECTED_DIR, f"ckpt-{steps[-1]}"), steps[-1], "selected"
    last = tf.train.latest_checkpoint(os.path.join(run_dir, "ckpt"))
    if last is None:
        raise ConfigError(f"agent run {run_dir} has no checkpoint in ckpt/")
    return last, int(last.rsplit("-", 1)[1]), "last (no selected checkpoint)"


def game_runs(game_dir):
    """The numbered agent run folders of one experiment folder
    (<exp_root>/<noise>/<kp_type>/<encoder>/<env>), in order."""
    found = [d for d in glob.glob(os.path.join(game_dir, "*")) if os.path.basename(d).isdigit()]
    return sorted(found, key=lambda d: int(os.path.basename(d)))


def resolve_policies(load_ckpts, game_dir):
    """[(run folder, checkpoint, step, how chosen)] for evaluate's load_ckpts: run folders
    (each its last selected checkpoint), or the authors' form, one selected step per run
    of the experiment folder `game_dir` in run order (load_ckpts=30000,80000,50000)."""
    given = as_list(load_ckpts)
    if given and all(isinstance(g, int) and not isinstance(g, bool) for g in given):
        folders = game_runs(game_dir)
        if len(folders) != len(given):
            raise ConfigError(f"load_ckpts={','.join(map(str, given))} gives {len(given)} "
                              f"steps for the {len(folders)} runs in {game_dir}; give one "
                              f"step per run, or run folders")
        return [(run, *policy_checkpoint(run, step)) for run, step in zip(folders, given)]
    return [(str(run), *policy_checkpoint(str(run))) for run in given]


def recorded_keypoint_run(run_dir, vis_ckpt_fname, vis_load):
    """The keypoint run an agent run was trained on, or the given one if it names the
    same (default: the recorded one); ConfigError if it names another."""
    spec = runs.read_json(os.path.join(run_dir, "model.json"), default={})
    recorded, recorded_load = spec.get("vis_ckpt_fname"), spec.get("vis_load")
    if not vis_ckpt_fname:
        return recorded, recorded_load
    moved = recorded is None or not os.path.isdir(recorded)  # then trust the given one
    same_run = moved or os.path.realpath(vis_ckpt_fname) == os.path.realpath(recorded)
    same_load = recorded_load is None or str(vis_load) == str(recorded_load)
    if not (same_run and same_load):
        raise ConfigError(f"agent run {run_dir} was trained on keypoint run {recorded} "
                          f"(vis_load={recorded_load}), not {vis_ckpt_fname} (vis_load={vis_load})")
    return vis_ckpt_fname, vis_load


def action_count(env):
    game = preprocess.make_env(env, "eval")
    game.close()
    return int(game.action_space.n)


def store_steps(buffer, frames, actions, rewards, terminated, truncated, centres):
    """Add one step of every environment to the replay, each env its own stream.

    An episode cut by a time limit (truncated, not terminated) is dropped rather than
    stored with a terminal `done` it never had.
    """
    for i in range(len(frames)):
        if truncated[i] and not terminated[i]:
            buffer.drop_episode(stream=i)
        else:
            buffer.add(frames[i], actions[i], rewards[i], terminated[i], stream=i,
                       centres=centres[i])


@dataclasses.dataclass
class Learner:
    """What the training loop acts and learns with, built by `set_up`."""
    strategy: tf.distribute.Strategy
    worker: int                    # this process's index among num_workers
    num_workers: int               # processes (hosts) of a cluster; 1 on one host
    actor: agent.RecurrentQNetwork  # the acting copy of the online Q-network
    act: Callable                  # (frames [N, 84, 84, 3], state) -> Q [N, A], state, centres
    sync_actor: Callable           # online network -> actor
    update: Callable               # distributed replay batch -> loss
    counters: dict                 # env_step, updates: tf.Variables in the checkpoint
    manager: tf.train.CheckpointManager
    run_dir: Optional[str]         # None on non-chief workers
    buffer: replay.EpisodeReplay
    replay_path: Optional[str]     # None: the replay is not saved
    replay_restored: bool          # the buffer holds the replay saved with the checkpoint

    def save(self, env_step, updates):
        """Checkpoint the agent at `env_step` after `updates` updates, and the replay
        (first: a checkpoint never points past the replay saved with it)."""
        self.counters["env_step"].assign(env_step)
        self.counters["updates"].assign(updates)
        if self.replay_path:
            self.buffer.save(self.replay_path, env_step)
        self.manager.save(checkpoint_number=env_step)


REPLAY_FILE = "replay.npy.gz"


@ex.capture
def set_up(_run, env, noise_type, kp_type, kpt_encoder_type, mp_num_steps, vis_ckpt_fname,
           vis_load, num_keypoints, replay_capacity, batch_size, learning_rate, window_size,
           n_step, gamma, tau, max_grad_norm, ckpt_keep, seed, gpu, devices, resume_dir,
           precision, save_replay):
    """Devices, the frozen keypoint model, the Q-networks and their update, the checkpoint
    and the replay; resuming, all restored from resume_dir (the replay if it was saved
    at the checkpoint's step)."""
    worker, num_workers = cluster_task()
    strategy = make_strategy(gpu, devices, num_workers)
    tf.random.set_seed(seed)  # initial weights (the workers of a cluster start from the chief's)
    spec = agent_spec()
    if batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"batch_size={batch_size} is not divisible by the "
                          f"{strategy.num_replicas_in_sync} replicas")
    precision = runs.resolve_precision(precision)
    if resume_dir:
        runs.check_model_spec(resume_dir, spec)
        vis_ckpt_fname, vis_load = recorded_keypoint_run(resume_dir, vis_ckpt_fname, vis_load)
    kp_model = load_keypoint_model(strategy, kp_type, vis_ckpt_fname, vis_load, env,
                                   num_keypoints, noise_type)
    online, target, actor, sync_actor = build_q_networks(strategy, kp_model, kpt_encoder_type,
                                                         mp_num_steps, action_count(env))
    with strategy.scope():
        optimizer = rl_loss.make_optimizer(learning_rate, online.trainable_variables)
    config = rl_loss.LearnerConfig(window_size, n_step, gamma, tau, max_grad_norm)
    update = tf.function(rl_loss.make_update_fn(
        online, target, optimizer, config, strategy,
        prepare=make_prepare(kp_model, kpt_encoder_type), precision=precision))

    counters = {"env_step": tf.Variable(0, dtype=tf.int64),
                "updates": tf.Variable(0, dtype=tf.int64)}
    checkpoint = tf.train.Checkpoint(online=online, target=target, optimizer=optimizer, **counters)
    run_dir = runs.run_dir_of(_run)  # None on non-chief workers
    manager, restore = checkpoint_managers(checkpoint, run_dir, resume_dir, ckpt_keep)
    if resume_dir:
        if not restore.latest_checkpoint:
            raise ConfigError(f"run folder {resume_dir} has no agent checkpoint in ckpt/")
        checkpoint.restore(restore.latest_checkpoint).assert_existing_objects_matched()
        sync_actor()
    if run_dir:
        runs.write_model_spec(run_dir, dict(spec, vis_ckpt_fname=os.path.abspath(vis_ckpt_fname),
                                            vis_load=vis_load))
    start_step = int(counters["env_step"])
    # Own sampling seeds per worker, new ones after a resume.
    buffer = replay.EpisodeReplay(replay_capacity, config.sequence_length,
                                  seed=[seed, worker, start_step])
    # A single process keeps its replay with the checkpoint (a cluster's workers each
    # have their own and refill them after a resume).
    replay_path = None
    if save_replay and num_workers == 1 and run_dir:
        replay_path = os.path.join(run_dir, REPLAY_FILE)
    replay_restored = bool(resume_dir and replay_path
                           and restore_replay(buffer, replay_path, start_step))
    if resume_dir:
        print(f"resumed from {restore.latest_checkpoint} at step {start_step}; "
              + (f"the replay too ({buffer.num_episodes} episodes)" if replay_restored else
                 "the replay restarts empty and refills before updates resume"))
    return Learner(strategy=strategy, num_workers=num_workers, worker=worker, actor=actor,
                   act=make_act_fn(kp_model, actor, kpt_encoder_type, precision),
                   sync_actor=sync_actor, update=update, counters=counters,
                   manager=manager, run_dir=run_dir, buffer=buffer, replay_path=replay_path,
                   replay_restored=replay_restored)


def restore_replay(buffer, path, step):
    """Fill `buffer` from the replay saved at `path` if it was saved at `step`; True if so."""
    if not os.path.exists(path):
        return False
    saved_step = replay.saved_step(path)
    if saved_step != step:   # a save interrupted between the replay and the checkpoint
        print(f"{path} was saved at step {saved_step}, the checkpoint at step {step}: "
              f"not used")
        return False
    buffer.load(path)
    return True


@ex.main
@one_line_errors
def train(_run, _config, env, noise_type, num_iters, warmup_steps, update_every, batch_size,
          epsilon_start, epsilon_end, num_envs, async_envs, eval_every, eval_episodes,
          eval_time_limit, log_every, save_every_mins, seed, replay_capacity):
    """Train a keypoint agent: act in num_envs games at once, learn from replayed windows,
    evaluate greedily and checkpoint every eval_every steps (and at the end); a single-host
    run also checkpoints every save_every_mins and, stopping, on SIGTERM or SIGINT."""
    check_options(_config, OPTIONS)
    learner = set_up(_run)
    run_dir, buffer = learner.run_dir, learner.buffer
    start_step, updates = int(learner.counters["env_step"]), int(learner.counters["updates"])
    env_step = start_step
    # One update per update_every steps from step warmup_steps on. A resumed run whose
    # replay was not kept waits another warm-up and adds its updates to the count.
    if learner.replay_restored or start_step == 0:
        first_update, earlier_updates = warmup_steps, 0
    else:
        first_update, earlier_updates = start_step + warmup_steps, updates
    next_eval = (start_step // eval_every + 1) * eval_every
    metrics, clock = Metrics(_run, run_dir, start_step), TrainingClock(run_dir)
    rng = np.random.default_rng([seed, learner.worker, start_step])
    envs = make_envs(env, "train", env_seeds(seed, num_envs, TRAIN_SEEDS, learner.worker,
                                             start_step), noise_type, eval_time_limit, async_envs)
    frames, _ = envs.reset()                                               # [N, 84, 84, 3]
    state = learner.actor.initial_state(num_envs)
    episode_returns, finished_returns, losses = np.zeros(num_envs), [], []
    progress = tqdm(total=num_iters, initial=start_step, unit="step", mininterval=2,
                    disable=run_dir is None)
    log_step, log_time, last_save = start_step, time.time(), time.time()
    waited = False  # acted past the warm-up because no episode had ended
    # a single-host run saves on SIGTERM / SIGINT and stops (a cluster keeps the default)
    with runs.StopSignals() if learner.num_workers == 1 else contextlib.nullcontext() as stop:
        while env_step < num_iters:
            epsilon = agent.epsilon_at(env_step, num_iters, epsilon_start, epsilon_end)
            q_values, state, centres = learner.act(frames, state)               # [N, A], [N, K, 2]
            actions = [agent.epsilon_greedy(q, epsilon, rng) for q in q_values.numpy()]
            next_frames, rewards, terminated, truncated, _ = envs.step(actions)
            store_steps(buffer, frames, actions, rewards, terminated, truncated, centres.numpy())
            ended = terminated | truncated
            episode_returns += rewards
            finished_returns += list(episode_returns[ended])
            episode_returns[ended] = 0.0
            state = zero_where(state, ended)
            frames = next_frames
            env_step += num_envs
            progress.update(num_envs)

            updates_due = earlier_updates + max(0, (env_step - first_update) // update_every + 1)
            if updates_due > updates and buffer.num_episodes == 0:
                # The warm-up ended before any episode did: act on until one has, and count
                # the updates from then.
                if not waited:
                    print(f"no episode has ended in the {warmup_steps} warm-up steps; acting on "
                          f"until one has, then updating")
                first_update, updates_due, waited = env_step + num_envs, updates, True
            if updates_due > updates:
                for _ in range(updates_due - updates):
                    batch = buffer.sample(batch_size)                          # [B, T, ...] numpy
                    losses.append(float(learner.update(
                        rl_loss.distribute_batch(learner.strategy, batch))))
                updates = updates_due
                learner.sync_actor()

            if env_step - log_step >= log_every or env_step >= num_iters:
                scalars = {"epsilon": epsilon, "updates": updates,
                           "steps_per_second": (env_step - log_step) / (time.time() - log_time)}
                if losses:
                    scalars["loss"] = np.mean(losses)
                if finished_returns:  # per life, clipped rewards
                    scalars["episode_return"] = np.mean(finished_returns)
                metrics.scalars("train", scalars, env_step)
                losses, finished_returns, log_step, log_time = [], [], env_step, time.time()

            due = env_step >= next_eval or env_step >= num_iters
            if due and run_dir:
                returns = play_returns(greedy_policy(learner.act, learner.actor, eval_episodes),
                                       env, noise_type, env_seeds(seed, eval_episodes, EVAL_SEEDS),
                                       eval_time_limit, async_envs)
                stats = metrics.evaluation(env_step, returns)
                progress.write(f"step {env_step}: eval return {stats['mean']:.1f} "
                               f"+- {stats['std']:.1f} ({eval_episodes} episodes); "
                               f"{'selected' if stats['selected'] else 'not selected'}: "
                               f"{stats['why']}")
            timed = stop and (stop.received or time.time() - last_save >= 60 * save_every_mins)
            if due or timed:
                runs.flush_metrics(_run)  # metrics.json is never behind a checkpoint
                learner.save(env_step, updates)
                clock.save(env_step)
                last_save = time.time()
                next_eval = (env_step // eval_every + 1) * eval_every
            if due and run_dir and stats["selected"]:
                keep_selected(learner.manager.latest_checkpoint, run_dir)
            if stop and stop.received:
                progress.close()
                envs.close()
                print(f"{stop.received}: stopped at step {env_step}, saved in "
                      f"{learner.manager.latest_checkpoint}; resume with:\n"
                      f"  {runs.resume_command(_run, run_dir)}")
                raise runs.Stopped()

    progress.close()
    envs.close()
    if run_dir:
        print(f"run folder: {run_dir}")
    else:
        shutil.rmtree(learner.manager.directory, ignore_errors=True)
    return metrics.evaluations[-1]["mean"] if metrics.evaluations else None


# --------------------------------------------------------------------------------------
# The evaluate command: the paper's protocol


def format_table(seeds, policies, summary):
    """The per-seed table and the summary line."""
    lines = ["policies: " + ", ".join(f"P{p + 1}={path}" for p, path in enumerate(policies)),
             f"{'seed':>6} " + " ".join(f"{f'P{p + 1}':>9}" for p in range(len(policies)))
             + f" {'mean':>9} {'pooled std':>10}"]
    for s, seed in enumerate(seeds):
        lines.append(f"{seed:>6} " + " ".join(f"{m:9.1f}" for m in summary["policy_means"][s])
                     + f" {summary['seed_means'][s]:9.1f} {summary['pooled_stds'][s]:10.1f}")
    m = summary["median_index"]
    lines.append(f"median over seeds: {summary['seed_means'][m]:.1f} +- "
                 f"{summary['pooled_stds'][m]:.1f} (seed {seeds[m]})")
    return "\n".join(lines)


def agent_policies(given, spec, game_dir, vis_ckpt_fname, vis_load):
    """[(run folder, checkpoint, step, how chosen)] and [(keypoint run, its checkpoint)]
    of evaluate's agent policies (resolve_policies), each run checked against `spec`."""
    for policy in given:
        if isinstance(policy, str):
            runs.check_model_spec(policy, spec)
    resolved = resolve_policies(given, game_dir)
    for run in {run for run, *_ in resolved}:
        runs.check_model_spec(run, spec)
    for p, (run, _, step, how) in enumerate(resolved):
        print(f"P{p + 1}: {run} at step {step} ({how})")
    policies = [run for run, *_ in resolved]
    return resolved, keypoint_runs_per_policy(policies, vis_ckpt_fname, vis_load)


def keypoint_runs_per_policy(policies, vis_ckpt_fname, vis_load):
    """(keypoint run, checkpoint) for each policy: vis_ckpt_fname names one run for all,
    one per policy, or none (each policy's recorded run)."""
    given = as_list(vis_ckpt_fname)
    if len(given) not in (0, 1, len(policies)):
        raise ConfigError(f"vis_ckpt_fname names {len(given)} keypoint runs for {len(policies)} "
                          f"policies (load_ckpts); give one, one per policy, or none")
    given = given * len(policies) if len(given) == 1 else given or [None] * len(policies)
    return [tuple(recorded_keypoint_run(policy, run, vis_load))
            for policy, run in zip(policies, given)]


@ex.command
@one_line_errors
def evaluate(_run, _config, env, noise_type, kp_type, kpt_encoder_type, mp_num_steps,
             num_keypoints, vis_ckpt_fname, vis_load, load_ckpts, eval_seeds, num_eval_episodes,
             eval_time_limit, async_envs, precision, exp_root):
    """The paper's protocol: num_eval_episodes greedy eval-mode episodes per eval seed and
    trained policy (load_ckpts: run folders, each its last selected checkpoint, or one
    selected step per run of this game's experiment folder; or `random` once per uniformly
    random policy, the floor); per seed the mean of the policy means and the pooled std;
    the median over seeds."""
    check_options(_config, OPTIONS)
    spec = agent_spec()
    seeds = as_list(eval_seeds)
    if not as_list(load_ckpts):
        raise ConfigError("load_ckpts is not set; give the agent run folders (load_ckpts=A,B,C) "
                          "or one selected step per run (load_ckpts=30000,80000,50000)")
    if not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"eval_seeds={eval_seeds!r}: expected integers >= 0, e.g. 1,2,3,4,5")
    given = as_list(load_ckpts)
    num_actions = action_count(env)
    episode_seeds = [s for seed in seeds for s in env_seeds(seed, num_eval_episodes, EVAL_SEEDS)]
    returns = np.zeros([len(seeds), len(given), num_eval_episodes])       # [S, P, E]
    if RANDOM in given:
        if set(given) != {RANDOM}:
            raise ConfigError(f"load_ckpts={','.join(map(str, given))} mixes {RANDOM} with "
                              f"agent runs; evaluate the random policy alone "
                              f"(load_ckpts={RANDOM},{RANDOM},{RANDOM}: three of them)")
        resolved = [(RANDOM, None, None, f"uniformly random, policy seed {p}")
                    for p in range(len(given))]
        keypoint_runs = [[None, None]] * len(given)
        for p, (_, _, _, how) in enumerate(resolved):
            print(f"P{p + 1}: {how}")
            returns[:, p] = play_returns(random_policy(num_actions, p), env, noise_type,
                                         episode_seeds, eval_time_limit, async_envs
                                         ).reshape(len(seeds), -1)
    else:
        resolved, keypoint_runs = agent_policies(given, spec, os.path.join(
            exp_root, str(noise_type), str(kp_type), str(kpt_encoder_type),
            preprocess.env_name(env)), vis_ckpt_fname, vis_load)
        precision = runs.resolve_precision(precision)
        kp_models = {run: load_keypoint_model(tf.distribute.get_strategy(), kp_type, *run, env,
                                              num_keypoints, noise_type)
                     for run in set(keypoint_runs)}  # each distinct keypoint checkpoint once
        for p, ((_, checkpoint, _, _), keypoint_run) in enumerate(zip(resolved, keypoint_runs)):
            kp_model = kp_models[keypoint_run]
            actor = q_network(kp_model, kpt_encoder_type, mp_num_steps, num_actions)
            tf.train.Checkpoint(online=actor).restore(checkpoint) \
                .assert_existing_objects_matched().expect_partial()
            act = make_act_fn(kp_model, actor, kpt_encoder_type, precision)
            # every seed's episodes side by side: one batched forward pass per step
            print(f"policy {p + 1}/{len(resolved)}: {len(episode_seeds)} episodes at once")
            returns[:, p] = play_returns(greedy_policy(act, actor, len(episode_seeds)), env,
                                         noise_type, episode_seeds, eval_time_limit, async_envs
                                         ).reshape(len(seeds), -1)
    policies = [run for run, *_ in resolved]

    summary = plots.protocol_summary(returns)
    print(format_table(seeds, policies, summary))
    out_dir = runs.run_dir_of(_run) or "."
    m = summary["median_index"]
    result = {"policies": [p if p == RANDOM else os.path.abspath(p) for p in policies],
              "eval_seeds": seeds,
              "policy_steps": [step for _, _, step, _ in resolved],
              "policy_choice": [how for _, _, _, how in resolved],
              "keypoint_runs": [[run and os.path.abspath(run), load]
                                for run, load in keypoint_runs],
              "returns": returns.tolist(), "policy_means": summary["policy_means"].tolist(),
              "seed_means": summary["seed_means"].tolist(),
              "pooled_stds": summary["pooled_stds"].tolist(),
              "median": float(summary["seed_means"][m]),
              "median_std": float(summary["pooled_stds"][m]),
              "median_seed": seeds[m]}
    runs.write_json(os.path.join(out_dir, "evaluation.json"), result)
    print(f"evaluation: {os.path.join(out_dir, 'evaluation.json')}")
    return result


def main(argv):
    runs.run_commandline(ex, argv)


if __name__ == "__main__":
    main(sys.argv)
