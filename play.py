"""Atari episodes for the agents: environment seeds by purpose, games side by side,
and whole episodes played by a greedy or a uniformly random policy (the paper's
evaluation protocol and the periodic evaluations play them; the training loop acts
through make_envs).

Seeds. Each purpose draws its environment seeds from its own stream (env_seeds): the
training environments, the periodic evaluations that select a checkpoint, the
protocol's episodes (which also score the floors, so that they are measured the same
way) and the random policy's actions; no two purposes share a seed, whatever the
training and evaluation seeds. Without sticky actions an evaluation episode's start is
fixed by its no-op count (1..30), so different seeds can still start alike: start_keys
says which, and play_distinct plays each distinct start once.
"""
import functools
import hashlib
import itertools

import gymnasium as gym
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from atari_env import make_env


# Seed purposes (env_seeds). PROTOCOL_SEEDS keeps the value the protocol has always used,
# so that its episodes, and the scores recorded with them, stay the same.
TRAIN_SEEDS, PROTOCOL_SEEDS, RANDOM_POLICY, SELECTION_SEEDS = 0, 1, 2, 3


def env_seeds(seed, count, purpose, *stream):
    """`count` distinct environment seeds for (seed, purpose, stream...), e.g. training
    envs of worker w from step s, or evaluation episodes: no two purposes share one."""
    state = np.random.SeedSequence([seed, purpose, *stream]).generate_state(count)
    return [int(s) for s in state]


def make_envs(env, mode, seeds, noise_type, eval_time_limit, async_envs,
              repeat_action_probability=0.0):
    """atari_env.make_env games side by side, one per seed (the agent's preprocessing).

    SAME_STEP autoreset: a step that ends an episode returns the next episode's first
    frame, so every returned frame is one to act on.
    """
    make = [functools.partial(make_env, env, mode, seed, noise_type,
                              eval_time_limit=eval_time_limit,
                              repeat_action_probability=repeat_action_probability)
            for seed in seeds]
    vector_env = gym.vector.AsyncVectorEnv if async_envs else gym.vector.SyncVectorEnv
    return vector_env(make, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def play_returns(policy, env, noise_type, seeds, eval_time_limit, async_envs,
                 repeat_action_probability=0.0):
    """Raw returns [len(seeds)] of one eval-mode episode per seed (whole games, unclipped
    rewards, at most eval_time_limit steps), played side by side; policy(frames
    [N, 84, 84, 3], playing [N] bool) -> actions [N], those of the games still playing
    used (greedy_policy, random_policy)."""
    envs = make_envs(env, "eval", seeds, noise_type, eval_time_limit, async_envs,
                     repeat_action_probability)
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


def start_keys(env, seeds, noise_type, eval_time_limit, repeat_action_probability=0.0):
    """One key per seed for the eval-mode episode it starts: seeds with equal keys play the
    same episode under a deterministic policy. Without distractors and sticky actions the
    emulator is deterministic and an episode is fixed by its start, the console RAM and
    the frame after the reset (its no-ops, FIRE); with either, every seed draws its own
    bars or repeated actions, and its episode is its own."""
    if noise_type != "none" or repeat_action_probability > 0:
        return [f"seed {seed}" for seed in seeds]
    keys = []
    for seed in seeds:
        game = make_env(env, "eval", seed, noise_type, eval_time_limit=eval_time_limit)
        frame, info = game.reset()  # as make_envs' first reset: the seed was given at make
        keys.append(hashlib.sha256(info["ram"].tobytes() + frame.tobytes()).hexdigest()[:16])
        game.close()
    return keys


def play_distinct(policy_for, env, noise_type, seeds, eval_time_limit, async_envs,
                  repeat_action_probability=0.0):
    """play_returns of a deterministic policy (greedy_policy) with each distinct start
    (start_keys) played once and its return given to every seed that starts alike: the
    same returns as playing every seed, in less time. policy_for(count) -> policy for
    `count` games. Returns (returns [len(seeds)], keys [len(seeds)])."""
    keys = start_keys(env, seeds, noise_type, eval_time_limit, repeat_action_probability)
    first = {}  # key -> index among the distinct starts
    for seed, key in zip(seeds, keys):
        first.setdefault(key, (len(first), seed))
    distinct_seeds = [seed for _, seed in first.values()]
    returns = play_returns(policy_for(len(distinct_seeds)), env, noise_type, distinct_seeds,
                           eval_time_limit, async_envs, repeat_action_probability)
    return returns[[first[key][0] for key in keys]], keys


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


def action_count(env):
    game = make_env(env, "eval")
    game.close()
    return int(game.action_space.n)
