"""Every numeric option of the five scripts is refused, when bad, before any work: one
line naming the value and what is accepted, exit status 2, no run folder, no data."""
import pytest

import agent_train
import common
import experiments
import pkey_train
import preprocess
import transporter_train

# (script, command, option, bad value, what the line says is accepted)
BAD_VALUES = [
    (preprocess, "generate", "num_frames", -3, "an integer >= 1"),
    (preprocess, "generate", "num_eval_frames", 0, "an integer >= 1 or None"),
    (preprocess, "generate", "num_eval_frames", 2.5, "an integer >= 1 or None"),
    (pkey_train, "train", "batch_size", 0, "an integer >= 1"),
    (pkey_train, "train", "batch_size", 2.5, "an integer >= 1"),
    (pkey_train, "train", "batch_size", True, "an integer >= 1"),
    (pkey_train, "train", "num_frames", -3, "an integer >= 1"),
    (pkey_train, "train", "learning_rate", -1, "a positive number"),
    (pkey_train, "train", "learning_rate", "fast", "a positive number"),
    (pkey_train, "train", "learning_rate", float("nan"), "a positive number"),
    (pkey_train, "train", "epochs", 0, "an integer >= 1"),
    (pkey_train, "train", "steps_per_epoch", 0, "an integer >= 1 or None"),
    (pkey_train, "train", "gauss_std", 0, "a positive number"),
    (pkey_train, "train", "latent_dim_size", 0, "an integer >= 1"),
    (pkey_train, "train", "decay_rate", -0.5, "a number >= 0"),
    (pkey_train, "train", "keep_epochs", -2, "an integer >= 0, or -1 for all"),
    (pkey_train, "train", "max_minutes", 0, "a positive number or None"),
    (pkey_train, "train", "metrics_radius", -1, "a number >= 0"),
    (pkey_train, "train", "valid_metrics_frames", -1, "an integer >= 0"),
    (pkey_train, "evaluate", "metrics_frames", 0, "an integer >= 1"),
    (pkey_train, "compare_kpts", "num_eval_batches", 0, "an integer >= 1"),
    (transporter_train, "train", "num_pairs", 0, "an integer >= 1"),
    (transporter_train, "train", "readout_scale", 0, "a positive number"),
    (transporter_train, "train", "batch_size", 0, "an integer >= 1"),
    (transporter_train, "evaluate", "num_eval_batches", -1, "an integer >= 1"),
    (agent_train, "train", "num_iters", 0, "an integer >= 1"),
    (agent_train, "train", "warmup_steps", -1, "an integer >= 0"),
    (agent_train, "train", "gamma", 1.5, "a number in [0, 1]"),
    (agent_train, "train", "tau", 0, "a number in (0, 1]"),
    (agent_train, "train", "epsilon_end", 2, "a number in [0, 1]"),
    (agent_train, "train", "learning_rate", 0, "a positive number"),
    (agent_train, "train", "eval_time_limit", 0, "an integer >= 1"),
    (agent_train, "train", "replay_capacity", 0, "an integer >= 1"),
    (agent_train, "evaluate", "num_eval_episodes", 0, "an integer >= 1"),
    (experiments, "figure2", "budget", 0, "a positive number"),
    (experiments, "figure2", "num_keypoints", 0, "an integer >= 1"),
    (experiments, "games", "budget", -1, "a positive number"),
    (experiments, "table1", "seeds", 0, "a whole number >= 1, or one per agent (3)"),
    (experiments, "table1", "warmup", 0, "an integer >= 1"),
    (experiments, "table1", "num_eval_episodes", -1, "an integer >= 1"),
]


@pytest.mark.parametrize("script, command, option, value, accepted", BAD_VALUES,
                         ids=[f"{s.__name__}-{c}-{o}={v!r}" for s, c, o, v, _ in BAD_VALUES])
def test_bad_value_is_refused_before_any_work(script, command, option, value, accepted,
                                              tmp_path, one_line_error):
    places = {"data_dir": str(tmp_path / "data"), "exp_root": str(tmp_path),
              "out_dir": str(tmp_path / "docs"), "run_dir": str(tmp_path / "run"),
              "save_base_dir": str(tmp_path)}  # where the script would write, were it to
    keys = {key for scope in script.ex.configurations for key in scope()}
    config = dict({key: path for key, path in places.items() if key in keys}, **{option: value})
    line = one_line_error(script.ex, command, config)
    assert line == f"error: {option}={value!r}: expected {accepted}"
    assert list(tmp_path.iterdir()) == []


def test_every_numeric_default_passes_its_own_check():
    for script in (pkey_train, transporter_train, agent_train, preprocess, experiments):
        defaults = {key: value for scope in script.ex.configurations
                    for key, value in scope().items()}
        common.check_options(defaults, script.OPTIONS)
        assert set(script.OPTIONS) <= set(defaults), script.__name__


def test_counts_per_gives_one_count_per_thing():
    assert common.counts_per(3, 2, "seeds", "agent") == [3, 3]
    assert common.counts_per((5, 5, 3), 3, "seeds", "agent") == [5, 5, 3]
    for bad in ((5, 5), 0, (1, True, 2), (1, 2.5, 1)):
        with pytest.raises(common.ConfigError, match=r"expected a whole number >= 1, or one "
                                                     r"per agent \(3\)"):
            common.counts_per(bad, 3, "seeds", "agent")
