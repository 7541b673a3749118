"""The Atari environment of the datasets and the agents: the paper's NoFrameskip-v4 game,
84 x 84 x 3 uint8 frames, and distractor bars (the paper's Figure 2)."""
import gymnasium as gym
import numpy as np

from common import ConfigError
from games import check_noise_type, gym_id


FRAME_SIZE = 84


BAR_WIDTH = 5


BAR_COLOUR = np.array([128, 0, 255], np.uint8)


EVAL_TIME_LIMIT = 4000


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
             eval_time_limit=EVAL_TIME_LIMIT, repeat_action_probability=0.0):
    """A preprocessed Atari game yielding uint8 [84, 84, 3] frames.

    mode "train": a lost life ends the episode and rewards are clipped to their sign.
    mode "eval": whole games, raw rewards, at most `eval_time_limit` agent steps.
    mode "data": whole games, raw rewards, no time limit (dataset generation).
    Distractor bars (`noise_type`) are drawn on every observation.
    repeat_action_probability: the ALE's sticky actions (0: the paper's NoFrameskip-v4
    games; 0.25: the v5 default after Machado et al. 2018), drawn from the seed.
    """
    import ale_py
    gym.register_envs(ale_py)
    check_noise_type(noise_type)
    if mode not in ("train", "eval", "data"):
        raise ConfigError(f"unknown mode {mode!r}; accepted: train, eval, data")
    if not 0 <= repeat_action_probability < 1:
        raise ConfigError(f"repeat_action_probability={repeat_action_probability!r}: "
                          f"expected a number in [0, 1)")
    game = gym.make(gym_id(env), repeat_action_probability=repeat_action_probability,
                    max_episode_steps=None)
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
