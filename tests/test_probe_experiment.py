"""make probes (experiments.py probes) on tiny keypoint runs: one record per
representation, skipped by a second call (also where no run folder is left), features
read from their cache when a result is measured again, a table whose numbers are those
results', the keypoint runs of each seed in their own folder, and bad input as one
line."""
import os
import re
import shutil

import pytest

import experiments
import runner
import probe_runs
import probes

# A tiny probe split and two epochs of probes: seconds, not the protocol.
TINY_PROBES = {"probe_games": "mspacman", "probe_seeds": 1, "probe_frames": 96,
               "probe_eval_frames": 48, "probe_protocol": {"epochs": 2, "batch_size": 16}}


@pytest.fixture
def keypoint_runs(tmp_path, tiny_pkey_run, tiny_transporter_run):
    """Copies of the tiny runs (the probes write their feature caches inside a run)."""
    return {method: shutil.copytree(run, tmp_path / "runs" / method)
            for method, (_, run) in (("permakey", tiny_pkey_run),
                                     ("transporter", tiny_transporter_run))}


def fake_training(calls, runs):
    """runner.train_keypoints that records its call and returns a made run."""
    def train(method, noise_type, recipe, env, num_keypoints, train_args, exp_root):
        calls.append((method, noise_type, recipe, env, num_keypoints, train_args, exp_root))
        return str(runs[method])
    return train


def run_probes(tmp_path, **updates):
    return experiments.ex.run("probes", config_updates=dict(
        TINY_PROBES, **{"exp_root": str(tmp_path / "exp"), "out_dir": str(tmp_path / "docs"),
                        "probe_data_dir": str(tmp_path / "probe_data"), **updates})).result


def table_row(table, label):
    """The cells of the MsPacman row of `label`."""
    rows = [line for line in table.splitlines() if line.startswith(f"| MsPacman | {label} |")]
    assert len(rows) == 1, (label, table)
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_probes_measure_every_representation_once_and_tabulate_them(tmp_path, keypoint_runs,
                                                                    monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(runner, "train_keypoints", fake_training(calls, keypoint_runs))
    run_probes(tmp_path)
    # the keypoint runs of seed 0 are table1's: its recipes and root, the game's K, clean
    assert [call[:5] for call in calls] == [("permakey", "none", "quick", "mspacman", 7),
                                           ("transporter", "none", "quick", "mspacman", 7)]
    assert {call[6] for call in calls} == {str(tmp_path / "exp" / "keypoints")}
    assert [call[5] for call in calls] == [runner.TABLE1_KEYPOINT_ARGS["permakey"],
                                           runner.TABLE1_KEYPOINT_ARGS["transporter"]]

    store = runner.RecordStore(str(tmp_path / "docs" / "probes_runs.json"))
    records = store.read()
    assert sorted(r["representation"] for r in records) == sorted(
        probe_runs.PROBE_REPRESENTATIONS)
    results = {r["representation"]: r for r in records}
    for name, (_, model, representation) in probe_runs.PROBE_REPRESENTATIONS.items():
        result = results[name]
        assert (result["representation"], result["model"], result["features"]) == (
            name, model, representation)
        assert result["frames"] == {"train": 96, "valid": 48, "test": 48}
        assert result["settings"]["protocol"]["epochs"] == 2
        assert result["probe_seconds"] > 0 and result["extract_seconds"] > 0
        assert result["variables"] and 0 <= result["across_categories_avg"] <= 1
    # K = 3 keypoints: positions are 2K numbers; keypoints+features K (2 + C)
    assert results["permakey_positions"]["feature_size"] == 6
    assert results["transporter_positions"]["feature_size"] == 6
    assert results["permakey"]["feature_size"] % 3 == 0 and results["permakey"][
        "feature_size"] > 6
    # the control and the random weights read PermaKey's architecture: the same size
    assert results["control"]["feature_size"] == results["permakey"]["feature_size"]
    assert results["random"]["feature_size"] == results["permakey"]["feature_size"]
    # one extraction per model: both representations of a model share its seconds
    assert results["permakey"]["extract_seconds"] == results["permakey_positions"][
        "extract_seconds"]
    # the model keys name what was extracted: a checkpoint, the control over it, a seed
    digest = results["permakey"]["model_key"].split("-")[1]
    assert results["control"]["model_key"] == f"fixed-permakey-{digest}"
    assert results["random"]["model_key"].startswith("random0-")

    table = (tmp_path / "docs" / "probes_table.md").read_text()
    for name, (label, _, _) in probe_runs.PROBE_REPRESENTATIONS.items():
        cells = table_row(table, label)
        result = results[name]
        assert cells[2] == "1 of 3"  # one seed of MsPacman's planned three
        assert cells[8] == f"**{result['across_categories_avg']:.2f}**"
        for column, category in enumerate(probe_runs.PROBE_CATEGORY_NAMES, start=3):
            value = result["categories"].get(category)
            assert cells[column] == ("—" if value is None else f"{value:.2f}")
        assert cells[9] == str(result["feature_size"])
        assert cells[10] == f"{result['extract_seconds'] / 60:.1f}"
    majority = results["permakey"]["majority"]["across_categories_avg"]
    assert table_row(table, "majority label (chance)")[8] == f"{majority:.2f}"
    assert table_row(table, "AtariARI ST-DIM (published; 210x160 gray)")[8] == "0.72"
    assert "96 training, 48 validation and 48 test frames" in table
    capsys.readouterr()

    # A second call measures nothing and needs no keypoint run, even on a machine that
    # has none of the run folders (another exp_root): the records are enough.
    def refuse(*args, **kwargs):
        raise AssertionError("nothing should be trained or extracted")
    written = (tmp_path / "docs" / "probes_runs.json").read_text()
    monkeypatch.setattr(runner, "train_keypoints", refuse)
    monkeypatch.setattr(probes, "extract", refuse)
    run_probes(tmp_path, exp_root=str(tmp_path / "elsewhere"))
    assert "probes mspacman seed 0: every representation measured, skipped" in \
        capsys.readouterr().out
    assert (tmp_path / "docs" / "probes_runs.json").read_text() == written
    assert (tmp_path / "docs" / "probes_table.md").read_text() == table
    assert not os.path.exists(tmp_path / "elsewhere")

    # A lost record is measured again from the cached features: no extraction.
    kept = [r for r in records if r["representation"] != "control"]
    os.remove(store.path)
    for record in kept:
        store.add(record)
    calls.clear()
    monkeypatch.setattr(runner, "train_keypoints", fake_training(calls, keypoint_runs))
    run_probes(tmp_path)
    printed = capsys.readouterr().out
    assert "PermaKey: measured, skipped" in printed and printed.count("training the probes") == 1
    again = store.find({"representation": "control"})
    assert len(store.read()) == len(records)
    assert again["model_key"] == results["control"]["model_key"]
    assert again["extract_seconds"] == results["control"]["extract_seconds"]  # the cache's


def test_each_keypoint_seed_has_its_own_runs(monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "train_keypoints",
                        fake_training(calls, {"permakey": "p", "transporter": "t"}))
    recipes = {"permakey": "quick", "transporter": "quick"}
    none = {"permakey": [], "transporter": []}
    probe_runs.probe_keypoint_runs("seaquest", 0, "root", recipes, none)
    probe_runs.probe_keypoint_runs("seaquest", 2, "root", recipes, none)
    probe_runs.probe_keypoint_runs("seaquest", 0, "root", recipes,
                                    dict(none, permakey=["batch_size=4"]))
    args = runner.TABLE1_KEYPOINT_ARGS
    assert calls[0] == ("permakey", "none", "quick", "seaquest", 10, args["permakey"],
                        os.path.join("root", "keypoints"))
    assert calls[3] == ("transporter", "none", "quick", "seaquest", 10,
                        [*args["transporter"], "seed=2"], os.path.join("root", "keypoints_seed2"))
    assert calls[4][5] == [*args["permakey"], "batch_size=4"]
    assert re.fullmatch(r"root/keypoints_[0-9a-f]{8}", calls[4][6])  # not table1's runs


def fake_result(game, seed, name, overall, agent, minutes=1.0):
    label, model, representation = probe_runs.PROBE_REPRESENTATIONS[name]
    return {"game": game, "seed": seed, "representation": name, "model": model,
            "features": representation, "across_categories_avg": overall,
            "categories": {"agent_localization": agent}, "feature_size": 10,
            "extract_seconds": 60 * minutes, "probe_seconds": 30.0,
            "majority": {"across_categories_avg": 0.1, "categories": {"agent_localization": 0.2}},
            "variables": {"player_x": {}}, "dropped": {"num_lives": 0.1},
            "frames": {"train": 10, "valid": 5, "test": 5},
            "settings": {"probe_data": {"train": 10, "eval": 5, "data_seed": 1},
                         "precision": "bf16"}, "machine": "CPU X"}


def test_the_table_gives_mean_and_std_over_seeds_and_which_gaps_exceed_them():
    results = [fake_result("seaquest", 0, "permakey", 0.5, 0.4),
               fake_result("seaquest", 1, "permakey", 0.7, 0.6),
               fake_result("seaquest", 0, "random", 0.2, 0.1),
               fake_result("seaquest", 1, "random", 0.3, 0.1),
               fake_result("seaquest", 0, "transporter", 0.6, 0.5),
               fake_result("seaquest", 1, "transporter", 0.5, 0.5)]
    table = probe_runs.probes_table(results, "2026-12-07")
    permakey = [c.strip() for c in next(line for line in table.splitlines() if line.startswith(
        "| Seaquest | PermaKey |")).strip("|").split("|")]
    # mean 0.6, sample std sqrt(((0.1)^2 + (0.1)^2) / 1) = 0.141
    assert permakey[2] == "2 of 3" and permakey[8] == "**0.60 ± 0.14**"
    assert permakey[4] == "0.50 ± 0.14"  # agent localization
    assert permakey[3] == "—"  # no small-object variable
    assert "| Seaquest | AtariARI ST-DIM (published; 210x160 gray) | — |" in table
    # PermaKey - random = 0.35 > max(0.14, 0.07); PermaKey - Transporter = 0.05 < 0.14
    # Welch: error sqrt(0.02/2 + 0.005/2) = 0.112 on 1.47 df, so even the gap that exceeds
    # the std has an interval that holds 0: half-width t_.975,1.47 (6.19) * 0.112 = 0.692
    assert "PermaKey minus PermaKey, random weights: +0.35 (exceeds the larger std (0.14); " \
        "Welch 95% interval [-0.342, +1.042]: not distinguishable)" in table
    assert "PermaKey minus Transporter: +0.05 (within the larger std (0.14); Welch 95% " \
        "interval [-0.642, +0.742]: not distinguishable)" in table
    # pooled std sqrt((0.02 + 0.005 + 0.005) / 3) = 0.1; (t_.975,2 + t_.8,2) * 0.1 * 1
    # = (4.303 + 1.061) * 0.1 = 0.54
    assert "the smallest difference 2 seeds per representation detect (80% power, " \
        "two-sided 5%, pooled seed std 0.100): 0.54." in table
    # minutes: 3 models x 2 seeds x 1 min of extraction + 6 probes x 0.5 min
    assert "Compute: 9.0 minutes over 2 seed(s)" in table
    assert "Machine: CPU X." in table
    assert "not measured yet: MsPacman seeds 0, 1, 2; Seaquest seed 2; Frostbite seed 0; " \
        "BattleZone seed 0." in table


def test_a_gap_is_above_only_where_its_welch_interval_excludes_zero():
    results = [fake_result("mspacman", seed, name, value + 0.01 * seed, 0.3)
               for seed in range(3) for name, value in (("permakey", 0.5), ("control", 0.3))]
    table = probe_runs.probes_table(results, "2026-12-07")
    # 0.20 +- t_.975,4 * sqrt(2 * 1e-4 / 3) = 0.20 +- 2.7764 * 0.008165 = [0.177, 0.223]
    assert "PermaKey minus Control: fixed places, PermaKey features: +0.20 (exceeds the " \
        "larger std (0.01); Welch 95% interval [+0.177, +0.223]: above)." in table
    # 3.035 * 0.01 (stats.detectable_difference's docstring)
    assert "3 seeds per representation detect (80% power, two-sided 5%, pooled seed std " \
        "0.010): 0.03." in table


@pytest.mark.parametrize("updates, message", [
    ({"probe_games": "pong"}, "unknown env 'pong'"),
    ({"probe_games": "space_invaders"}, "probe_games: space_invaders has no AtariARI RAM"),
    ({"probe_seeds": 0}, "probe_seeds=0: expected a whole number >= 1, or one per game"),
    ({"probe_games": "mspacman,seaquest", "probe_seeds": [1, 2, 3]}, "one per game (2)"),
    ({"probe_frames": 0}, "probe_frames=0: expected an integer >= 1"),
    ({"probe_protocol": {"lr": 1e-3, "momentum": 0.9}}, "unknown settings ['momentum']"),
])
def test_bad_input_is_one_line_before_any_work(tmp_path, one_line_error, updates, message):
    config = {"exp_root": str(tmp_path / "exp"), "out_dir": str(tmp_path / "docs"), **updates}
    assert message in one_line_error(experiments.ex, "probes", config)
    assert not os.path.exists(tmp_path / "exp") and not os.path.exists(tmp_path / "docs")


def test_malformed_records_stop_the_call_in_one_line_before_any_work(tmp_path, one_line_error):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "probes_runs.json").write_text('{"game": "mspacman"}\n')  # an object, not a list
    config = dict(TINY_PROBES, exp_root=str(tmp_path / "exp"), out_dir=str(docs),
                  probe_data_dir=str(tmp_path / "probe_data"))
    message = one_line_error(experiments.ex, "probes", config)
    assert "probes_runs.json: expected a JSON list of run records (not a list of objects)" \
        in message
    assert (docs / "probes_runs.json").read_text() == '{"game": "mspacman"}\n'  # untouched
    assert sorted(os.listdir(docs)) == ["probes_runs.json"]
    assert not os.path.exists(tmp_path / "exp") and not os.path.exists(tmp_path / "probe_data")
