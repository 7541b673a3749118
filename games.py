"""The game registry: every Atari game the code knows, its names, the paper's K, and the
named configs (`with seaquest`) every script builds from it."""
from typing import NamedTuple

from common import ConfigError


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


def add_game_configs(ex, keys=("env", "num_keypoints")):
    """One named config per game of GAMES and per alias (`with seaquest`),
    setting `keys` of env, num_keypoints (the paper's K) and replay_capacity."""
    for name, game in GAMES.items():
        values = {"env": name, "num_keypoints": game.num_keypoints,
                  "replay_capacity": game.replay_capacity}
        for config_name in (name, *game.aliases):
            ex.add_named_config(config_name, {key: values[key] for key in keys})
