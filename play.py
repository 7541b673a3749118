"""Atari episodes for the agents: environment seeds by purpose, games side by side,
and whole episodes played by a greedy or a uniformly random policy (the paper's
evaluation protocol plays them; the training loop acts through make_envs)."""
import functools
import itertools

import gymnasium as gym
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from atari_env import make_env


TRAIN_SEEDS, EVAL_SEEDS, RANDOM_POLICY = 0, 1, 2  # seed purposes (env_seeds)


def env_seeds(seed, count, purpose, *stream):
    """`count` distinct environment seeds for (seed, purpose, stream...), e.g. training
    envs of worker w from step s, or evaluation episodes: no two purposes share one."""
    state = np.random.SeedSequence([seed, purpose, *stream]).generate_state(count)
    return [int(s) for s in state]


def make_envs(env, mode, seeds, noise_type, eval_time_limit, async_envs):
    """atari_env.make_env games side by side, one per seed (the agent's preprocessing).

    SAME_STEP autoreset: a step that ends an episode returns the next episode's first
    frame, so every returned frame is one to act on.
    """
    make = [functools.partial(make_env, env, mode, seed, noise_type,
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


def action_count(env):
    game = make_env(env, "eval")
    game.close()
    return int(game.action_space.n)
