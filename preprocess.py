"""Generate (or convert) the keypoint datasets from the command line (Sacred, like the
training scripts; the work is datasets.py's):

    python preprocess.py generate with env=mspacman num_frames=100000
    python preprocess.py convert with env=mspacman npz_dir=PATH/TO/AUTHORS/DATA
"""
import os

from sacred import Experiment

from common import ConfigError, check_options, one_line_errors, quiet_experiment
from datasets import DEFAULT_DATA_DIR, convert_npz, generate_dataset

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
