"""The leaf every module may import: the one-line error, quiet Sacred logging, and files
written whole or not at all. It imports nothing of this repository, nor TensorFlow."""
import contextlib
import functools
import json
import logging
import os
import sys


class ConfigError(ValueError):
    """Bad user input (config value, file, folder, diverged run). Printed as one line."""


def one_line_errors(fn):
    """Make a Sacred command print a ConfigError as `error: ...` and exit with status 2.

    SystemExit is not an Exception, so Sacred does not turn it into a traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2)

    return wrapper


# Sacred's config warnings for these keys are expected: `ckpt=15` replaces the default "best".
CHECKPOINT_KEYS = ("ckpt", "pkey_epoch", "tp_epoch", "vis_load")
# ... and for these: one value where the default is a tuple (`eval_seeds=1`, `lsp_layers=0`).
LIST_KEYS = ("eval_seeds", "lsp_layers", "patch_sizes")


class QuietConfigWarnings:
    """A logging filter for Sacred's config warnings that are expected: the docstring of a
    named config, `ckpt=15` replacing the default "best" (CHECKPOINT_KEYS), one value for
    a tuple (LIST_KEYS), and a whole number for a float (`learning_rate=1`)."""

    def filter(self, record):
        message = record.getMessage()
        if message.startswith("Added new config entry") and '"__doc__"' in message:
            return False
        if not message.startswith("Changed type of config entry"):
            return True
        expected = ([f'"{key}" from str to int' for key in CHECKPOINT_KEYS]
                    + [f'"{key}" from tuple to int' for key in LIST_KEYS] + ["from float to int"])
        return not any(change in message for change in expected)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (_is_int(value) or isinstance(value, float)) and value == value \
        and abs(value) != float("inf")


# What a numeric option may hold: a test and the words of the one-line error.
OPTION_KINDS = {
    "count": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "count or None": (lambda v: v is None or (_is_int(v) and v >= 1), "an integer >= 1 or None"),
    "index": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "index or None": (lambda v: v is None or (_is_int(v) and v >= 0), "an integer >= 0 or None"),
    "positive": (lambda v: _is_number(v) and v > 0, "a positive number"),
    "positive or None": (lambda v: v is None or (_is_number(v) and v > 0),
                         "a positive number or None"),
    "non-negative": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "fraction": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "rate": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "epochs to keep": (lambda v: _is_int(v) and v >= -1, "an integer >= 0, or -1 for all"),
}


def check_options(config, kinds):
    """ConfigError (one line) naming the first option of `kinds` ({name: OPTION_KINDS
    key}) whose value in `config` is not of its kind. Called where a command reads its
    config, before any work."""
    for name, kind in kinds.items():
        accepts, words = OPTION_KINDS[kind]
        if name in config and not accepts(config[name]):
            raise ConfigError(f"{name}={config[name]!r}: expected {words}")


def quiet_experiment(ex):
    """Give a Sacred experiment its usual console logger, without the expected config
    warnings (QuietConfigWarnings)."""
    logger = logging.getLogger()  # Sacred's default: the root logger, "LEVEL - name - message"
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s - %(name)s - %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    if not any(isinstance(f, QuietConfigWarnings) for f in logger.filters):
        logger.addFilter(QuietConfigWarnings())
    ex.logger = logger
    return ex


def read_json(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary name to write; rename it to `path` only if the block succeeds.

    An interrupted or failed write leaves neither a partial `path` nor the temporary.
    """
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, data):
    """Write JSON atomically; numpy scalars are written as plain numbers."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=numpy_scalar)


def numpy_scalar(value):
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def folder_size(path):
    """Bytes in the files under `path`."""
    return sum(os.path.getsize(os.path.join(folder, name))
               for folder, _, names in os.walk(path) for name in names)


def save_npz(path, arrays):
    """np.savez_compressed, atomically."""
    import numpy as np
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def as_list(value):
    """A config list given as 1,2 (a tuple for Sacred), "a,b" (a string), one value or None."""
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def counts_per(value, count, option, per):
    """A config giving a whole number >= 1 for each of `count` things, as one number for
    all or one per thing (1,2,3): the list of `count` numbers; a ConfigError naming
    `option` and what there is one of (`per`) otherwise."""
    counts = as_list(value)
    if len(counts) == 1:
        counts = counts * count
    if len(counts) != count or not all(_is_int(n) and n >= 1 for n in counts):
        raise ConfigError(f"{option}={','.join(map(str, as_list(value)))}: expected a whole "
                          f"number >= 1, or one per {per} ({count})")
    return counts
