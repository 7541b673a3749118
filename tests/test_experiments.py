"""make figure2 end to end on tiny data with a tiny budget, and its resume (experiments.py)."""
import importlib
import json
import os
import shutil

import numpy as np
import pytest

import experiments
import plots
import runs
from common import ConfigError

TINY = ["num_frames=400", "num_eval_frames=150", "batch_size=4", "steps_per_epoch=3",
        "valid_batches=2", "metrics_frames=16", "valid_metrics_frames=16", "num_eval_batches=1"]


# conftest.SMALL_PERMAKEY on the command line
SMALL_PERMAKEY = ["lsp_layers=(0,)", "patch_sizes=(2,)", "latent_dim_size=4"]


def run_in_process(script, args):
    """experiments.run_script without a new process (the same command line, through
    Sacred's command-line parser): seconds instead of a TensorFlow start per call."""
    module = importlib.import_module(script[:-len(".py")])
    print(" ".join(["python", script, *args]), flush=True)
    try:
        runs.run_commandline(module.ex, [script, *args])
    except SystemExit as exit_info:
        if exit_info.code:
            raise ConfigError(f"{script} stopped with exit status {exit_info.code}")


def test_run_script_runs_a_script_in_its_own_process_and_says_when_it_failed(capsys):
    with pytest.raises(ConfigError, match="agent_train.py stopped with exit status 2"):
        experiments.run_script("agent_train.py", ["with", "nosuchgame"])
    assert capsys.readouterr().out.startswith("python agent_train.py with nosuchgame")


def figure2(tmp_path, data_dir):
    # One noise type (with bars) keeps this to two trainings; the clean reference and the
    # robustness ratio are checked in test_figure2_table_ratios_by_hand.
    return experiments.ex.run("figure2", config_updates={
        "num_keypoints": 3, "budget": 0.01, "noise_types": ["both"],
        "exp_root": str(tmp_path / "exp"), "out_dir": str(tmp_path / "docs"),
        "pkey_args": TINY + SMALL_PERMAKEY + [f"data_dir={data_dir}"],
        "tp_args": TINY + [f"data_dir={data_dir}", "num_pairs=12"]}).result


def test_figure2_trains_compares_tabulates_and_continues(tmp_path, tiny_data_dir, monkeypatch,
                                                         capsys):
    monkeypatch.setattr(experiments, "run_script", run_in_process)
    results = figure2(tmp_path, tiny_data_dir)
    printed = capsys.readouterr().out
    rows = results["both"]["rows"]
    assert set(rows) == {"PermaKey", "Transporter", "random"}
    assert {"attraction", "robustness", "precision_clean", "spread"} <= set(rows["PermaKey"])
    for method, (run_dir, steps, minutes) in results["both"]["runs"].items():
        assert run_dir.startswith(str(tmp_path / "exp" / method / "both"))
        assert steps >= 1 and minutes > 0
    docs = tmp_path / "docs"
    assert sorted(os.listdir(docs)) == ["figure2_both_cpu.png", "figure2_table.md"]
    table = (docs / "figure2_table.md").read_text()
    assert table.count("| PermaKey | both |") == 1 and table.count("| random | both |") == 1
    assert "python pkey_train.py with quick" in printed and "max_minutes=0.01" in printed

    # A second call skips the finished run and the comparison; an interrupted run (here:
    # one whose record says it stopped) is resumed in its own folder, not restarted.
    noisy_tp = results["both"]["runs"]["transporter"][0]
    record = os.path.join(noisy_tp, "run.json")
    with open(record) as f:
        stopped = json.load(f)
    stopped["status"] = "INTERRUPTED"
    with open(record, "w") as f:
        json.dump(stopped, f)
    again = figure2(tmp_path, tiny_data_dir)
    printed = capsys.readouterr().out
    assert printed.count("finished in") == 1 and "compare_kpts" not in printed
    assert f"resume_dir={noisy_tp}" in printed
    assert again["both"]["runs"]["transporter"][0] == noisy_tp
    assert again["both"]["compare"] == results["both"]["compare"]


def test_figure2_refuses_a_bad_budget_before_any_training(tmp_path, one_line_error):
    line = one_line_error(experiments.ex, "figure2", {"budget": 0, "exp_root": str(tmp_path)})
    assert line == "error: budget=0: expected a positive number"
    assert not os.listdir(tmp_path)


def test_figure2_table_ratios_by_hand():
    rows = {"none": {"PermaKey": {"precision": 0.6, "recall": 0.7, "spread": 20.0},
                     "random": {"precision": 0.07, "recall": 0.2}},
            "both": {"PermaKey": {"precision": 0.54, "recall": 0.6, "spread": 18.0,
                                  "on_distractor": 0.1, "attraction": 0.35},
                     "random": {"precision": 0.07, "recall": 0.2, "on_distractor": 0.29,
                                "attraction": 1.0}}}
    results = {noise: {"rows": r, "runs": {"permakey": (f"exp/{noise}", 480, 11.0)}}
               for noise, r in rows.items()}
    table = plots.figure2_table(results, {"permakey": "PermaKey"}, "mspacman", 30, "CPU X",
                                "2026-12-04")
    lines = [line for line in table.splitlines() if line.startswith("| PermaKey")]
    assert lines[0].split(" | ")[-3:] == ["-", "480", "11.0 |"]       # clean: no robustness
    assert lines[1].split(" | ")[-3:] == ["0.90", "480", "11.0 |"]    # 0.54 / 0.6
    assert "CPU X" in table and "BUDGET=30" in table


# --------------------------------------------------------------------------------------
# make games


def test_games_trains_each_game_with_its_k_and_writes_a_table_and_pictures(tmp_path,
                                                                          monkeypatch):
    # train_and_compare itself is figure2's (tested above, end to end): here, what games
    # asks of it for each game, and what it makes of the answers.
    calls = []

    def fake_train_and_compare(env, num_keypoints, noise_type, budget, *args):
        calls.append((env, num_keypoints, noise_type, budget))
        folder = tmp_path / "exp" / env
        folder.mkdir(parents=True)
        (folder / "compare_0.png").write_bytes(b"png of " + env.encode())
        return {"compare": str(folder), "rows": {"PermaKey": {"precision": 0.7, "recall": 0.6},
                                                 "random": {"precision": 0.1, "recall": 0.2}},
                "runs": {"permakey": (str(folder / "1"), 480, 11.0)}}

    monkeypatch.setattr(experiments, "train_and_compare", fake_train_and_compare)
    results = experiments.ex.run("games", config_updates={
        "envs": "battlezone,frosbite", "budget": 11, "out_dir": str(tmp_path / "docs")}).result
    assert calls == [("battlezone", 8, "none", 11), ("frostbite", 20, "none", 11)]
    assert results["battlezone"]["num_keypoints"] == 8
    docs = tmp_path / "docs"
    assert sorted(os.listdir(docs)) == ["games_battlezone.png", "games_frostbite.png",
                                        "games_table.md"]
    assert (docs / "games_frostbite.png").read_bytes() == b"png of frostbite"
    table = (docs / "games_table.md").read_text()
    assert table.count("| battlezone | 8 | ") == 2 and table.count("| frostbite | 20 | ") == 2


def test_a_quick_battlezone_training_resolves_the_paper_k(capsys):
    import pkey_train
    pkey_train.ex.run_commandline(["pkey_train.py", "print_config", "with", "quick",
                                   "battlezone"])
    printed = capsys.readouterr().out
    assert "num_keypoints = 8" in printed and "env = 'battlezone'" in printed


def test_games_refuses_an_unknown_game_before_any_training(tmp_path, one_line_error):
    line = one_line_error(experiments.ex, "games", {"envs": "mspacman,pong",
                                                    "exp_root": str(tmp_path)})
    assert line.startswith("error: unknown env 'pong'; accepted: mspacman")
    line = one_line_error(experiments.ex, "games", {"envs": [], "exp_root": str(tmp_path)})
    assert line == "error: envs=[]: expected one or more games"
    assert not os.listdir(tmp_path)


def test_games_table_by_hand():
    results = {"seaquest": {
        "num_keypoints": 10,
        "rows": {"PermaKey": {"precision": 0.76, "recall": 0.75, "spread": 20.04},
                 "random": {"precision": 0.07, "recall": float("nan")}},
        "runs": {"permakey": ("exp/permakey/none/seaquest/10/1", 480, 11.04)}}}
    table = plots.games_table(results, {"permakey": "PermaKey", "transporter": "Transporter"},
                              11, "CPU X", "2026-12-04")
    rows = [line for line in table.splitlines() if line.startswith("| seaquest")]
    assert rows == ["| seaquest | 10 | PermaKey | 0.760 | 0.750 | 20.0 | 480 | 11.0 |",
                    "| seaquest | 10 | random | 0.070 | - | - | - | - |"]
    assert "games with envs=seaquest budget=11" in table and "CPU X" in table


# --------------------------------------------------------------------------------------
# make table1


def test_agent_runs_are_matched_by_seed_steps_keypoints_and_agent_args(tmp_path):
    keypoints = str(tmp_path / "kp")
    recorded = [{"seed": 0, "num_iters": 260, "batch_size": 2, "eval_seeds": [1, 2]},
                {"seed": 0, "num_iters": 260, "batch_size": 4, "eval_seeds": [1]},
                {"seed": 1, "num_iters": 260, "batch_size": 2, "eval_seeds": [1, 2]}]
    for number, config in enumerate(recorded, 1):
        os.makedirs(tmp_path / "game" / str(number))
        with open(tmp_path / "game" / str(number) / "config.json", "w") as f:
            json.dump(dict(config, vis_ckpt_fname=keypoints), f)

    def found(*agent_args, seed=0):
        runs_found = experiments.agent_runs(str(tmp_path / "game"), seed, 260, keypoints,
                                            agent_args)
        return [int(os.path.basename(d)) for d in runs_found]

    assert found() == [1, 2]
    assert found("batch_size=2") == [1] and found("batch_size=4", "eval_seeds=1") == [2]
    assert found("eval_seeds=1,2", "mspacman") == [1] and found("batch_size=2", seed=1) == [3]
    assert found("batch_size=8") == [] and found("epsilon_end=1.0") == []


# Transporter's keypointer acts ~40x cheaper than PermaKey's, so the tiny table trains
# Transporter-GNN agents; a random policy ends a MsPacman life in ~110-190 steps, so a
# 200-step warm-up in one environment stores an episode (test_agent_train.SMOKE).
TINY_AGENTS = ["num_envs=1", "batch_size=2", "window_size=2", "replay_capacity=10",
               "eval_every=100", "eval_episodes=2", "eval_time_limit=10", "log_every=50",
               "epsilon_end=1.0"]


def table1(tmp_path, tp_run, **updates):
    config = dict({"agents": "Transporter-GNN", "seeds": 1, "steps": 260, "warmup": 200,
                   "num_keypoints": 3, "tp_run": tp_run, "agent_args": TINY_AGENTS,
                   "eval_seeds": [1, 2], "num_eval_episodes": 2,
                   "exp_root": str(tmp_path / "exp"), "out_dir": str(tmp_path / "docs")},
                  **updates)
    return experiments.ex.run("table1", config_updates=config).result


def test_table1_trains_floors_agents_tabulates_and_continues(tmp_path, tiny_transporter_run,
                                                            monkeypatch, capsys):
    monkeypatch.setattr(experiments, "run_script", run_in_process)
    results = table1(tmp_path, tiny_transporter_run[1])
    printed = capsys.readouterr().out
    assert "load_ckpts=random\n" in printed  # one random policy per training seed
    random = np.asarray(results["random"])
    assert random.shape == (2, 1, 2)  # [eval seeds, one random policy per seed, episodes]
    for part, num_iters in (("floors", 200), ("agents", 260)):
        records = results[part]["Transporter-GNN"]
        assert len(records) == 1
        for seed, record in enumerate(records):
            config = json.load(open(os.path.join(record["run"], "config.json")))
            assert (config["seed"], config["num_iters"]) == (seed, num_iters)
            assert config["kpt_encoder_type"] == "gnn"
            evaluations = json.load(open(os.path.join(record["run"], "evaluations.json")))
            assert record["step"] == [e["step"] for e in evaluations if e["selected"]][-1]
            assert np.shape(record["returns"]) == (2, 2)
            assert record["score"] == pytest.approx(np.mean(record["returns"]))
            assert record["seconds"] > 0 and record["cpus"]
    docs = tmp_path / "docs"
    # a budget other than Atari-100k's gets its own files, never replacing that table
    assert sorted(os.listdir(docs)) == ["table1_mspacman_260steps.md",
                                        "table1_mspacman_260steps_curves.png",
                                        "table1_mspacman_260steps_runs.json"]
    records_path = docs / "table1_mspacman_260steps_runs.json"
    records = json.loads(records_path.read_text())
    assert [(r["part"], r["agent"], r["seed"]) for r in records] == [
        ("random", "random policy", [0]), ("floors", "Transporter-GNN", 0),
        ("agents", "Transporter-GNN", 0)]
    assert records[2]["keypoint_checkpoint"] == records[1]["keypoint_checkpoint"]
    assert records[2]["score"] == results["agents"]["Transporter-GNN"][0]["score"]
    table = (docs / "table1_mspacman_260steps.md").read_text()
    for row in ("| Transporter-GNN | 1/1 |", "| Transporter-GNN, warm-up only | 1/1 |",
                "| random policy | 1/1 |", "| Transporter-GNN - random policy |",
                "| Transporter-GNN - Transporter-GNN, warm-up only |"):
        assert table.count(row) == 1, row

    # A second call skips every finished run and measurement; an interrupted run (here:
    # one whose Sacred record says it stopped, and so has no record beside the table)
    # resumes in its own folder.
    interrupted = results["agents"]["Transporter-GNN"][0]["run"]
    record = os.path.join(interrupted, "run.json")
    stopped = json.load(open(record))
    stopped["status"] = "INTERRUPTED"
    json.dump(stopped, open(record, "w"))
    records_path.write_text(json.dumps(records[:2]))
    again = table1(tmp_path, tiny_transporter_run[1])
    printed = capsys.readouterr().out
    assert printed.count(": recorded in") == 2 and f"resume_dir={interrupted}" in printed
    assert "evaluate" not in printed  # the protocol scores were kept
    assert again["agents"]["Transporter-GNN"][0]["run"] == interrupted
    assert again["agents"]["Transporter-GNN"][0]["score"] == \
        results["agents"]["Transporter-GNN"][0]["score"]
    table = (docs / "table1_mspacman_260steps.md").read_text()

    # On a machine without the run folders, the records beside the table make it again
    # and nothing is trained or measured.
    shutil.rmtree(tmp_path / "exp")
    third = table1(tmp_path, tiny_transporter_run[1])
    printed = capsys.readouterr().out
    assert printed.count(": recorded in") == 3 and "python " not in printed
    assert third == again and (docs / "table1_mspacman_260steps.md").read_text() == table

    # only_recorded: the table of what is recorded, without training what is not
    fourth = table1(tmp_path, tiny_transporter_run[1], seeds=2, only_recorded=True)
    printed = capsys.readouterr().out
    assert printed.count("not recorded, left out") == 3 and "python " not in printed
    assert fourth["random"] is None  # recorded for one training seed, not for two
    assert fourth["agents"] == third["agents"] and fourth["floors"] == third["floors"]
    table = (docs / "table1_mspacman_260steps.md").read_text()
    assert "| Transporter-GNN | 1/2 |" in table and "| random policy |" not in table

    # a call for another agent (here: not recorded, so left out) keeps the recorded
    # agents in the game's table
    fifth = table1(tmp_path, tiny_transporter_run[1], agents="Transporter", only_recorded=True)
    printed = capsys.readouterr().out
    assert "also in the table, as recorded (not trained by this call): Transporter-GNN" \
        in printed and printed.count("not recorded, left out") == 2
    assert fifth["agents"] == third["agents"] and fifth["floors"] == third["floors"]
    table = (docs / "table1_mspacman_260steps.md").read_text()
    assert "| Transporter-GNN | 1/1 |" in table and "| Transporter |" not in table


def test_table1_refuses_bad_agents_and_budgets_before_any_training(tmp_path, one_line_error):
    line = one_line_error(experiments.ex, "table1", {"agents": "PKey-GNN,Nope",
                                                      "exp_root": str(tmp_path)})
    assert line.startswith("error: agents=PKey-GNN,Nope: expected distinct names among PKey-CNN")
    line = one_line_error(experiments.ex, "table1", {"warmup": 500, "steps": 400,
                                                      "exp_root": str(tmp_path)})
    assert line == "error: warmup=500: expected fewer than steps=400"
    assert not os.listdir(tmp_path)
    # the records beside the table are read before anything else, never replaced
    docs = tmp_path / "docs"
    os.makedirs(docs)
    (docs / "table1_mspacman_runs.json").write_text('[{"agent": "PKey-GNN"')
    line = one_line_error(experiments.ex, "table1", {"exp_root": str(tmp_path / "exp"),
                                                      "out_dir": str(docs)})
    assert line.startswith(f"error: {docs}/table1_mspacman_runs.json: expected a JSON list of "
                           "run records (Expecting")
    assert line.endswith("mend it or move it away")
    assert sorted(os.listdir(tmp_path)) == ["docs"] and os.listdir(docs) == [
        "table1_mspacman_runs.json"]
    (docs / "table1_mspacman_runs.json").write_text("[]")
    line = one_line_error(experiments.ex, "table1", {"only_recorded": True,
                                                      "exp_root": str(tmp_path / "exp"),
                                                      "out_dir": str(docs)})
    assert line == ("error: only_recorded=True: no runs recorded in "
                    f"{docs}/table1_mspacman_runs.json")
    assert os.listdir(docs) == ["table1_mspacman_runs.json"]


def test_bootstrap_difference_by_hand():
    assert plots.bootstrap_difference([1, 1, 1], [0, 0, 0]) == (1.0, (1.0, 1.0))
    assert plots.bootstrap_difference([3, 5], [1]) == (3.0, None)  # one seed: no interval
    # a resample of [0, 2, 4] is all 0s (or all 4s) with probability 1/27 > 2.5%
    assert plots.bootstrap_difference([0, 2, 4], [0, 0, 0]) == (2.0, (0.0, 4.0))


def test_table1_table_by_hand():
    def record(score, step):
        return {"run": f"runs/{score}", "step": step, "returns": [[score - 1, score + 1]] * 2,
                "score": float(score), "seconds": 600.0, "evaluations": []}
    results = {"agents": {"Control-GNN": [record(300, 10), record(300, 20), record(300, 30)],
                          "PKey-GNN": [record(500, 10), record(700, 20), record(600, 30)]},
               "floors": {"PKey-GNN": [record(200, 5), record(200, 5), record(200, 5)]},
               "random": [[[250, 250], [250, 250], [250, 250]]] * 2}
    table = plots.table1_table(results, "mspacman", 1000, 3, 5, {"permakey": "kp"}, "CPU X",
                               "2026-12-04", "table1_mspacman_runs.json")
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in table.splitlines()
            if line.startswith("| ")}
    # protocol: both evaluation seeds have mean 600 over the three policies
    assert rows["PKey-GNN"][:5] == ["3/3", "600 +- 1", "600 +- 100", "500, 700, 600",
                                    "10, 20, 30"]
    assert rows["random policy"][:4] == ["3/3", "250 +- 0", "250 +- 0", "250, 250, 250"]
    assert rows["PKey-GNN - Control-GNN"][0] == "300"
    assert rows["PKey-GNN - Control-GNN"][2].startswith("yes")  # every resample > 0
    assert rows["PKey-GNN - random policy"][0] == "350"
    assert rows["PKey-GNN - PKey-GNN, warm-up only"][0] == "400"
    assert "CPU X" in table and "SEEDS=3" in table
    # rows in the agents' fixed order (plots.AGENT_KINDS), not in the order measured
    assert list(rows)[1:5] == ["PKey-GNN", "Control-GNN", "PKey-GNN, warm-up only",
                               "random policy"]

    # a run recorded with its score only (its episodes lost) leaves the row's protocol
    # score out, and nothing else
    del results["agents"]["PKey-GNN"][1]["returns"]
    table = plots.table1_table(results, "mspacman", 1000, 3, 5, {"permakey": "kp"}, "CPU X",
                               "2026-12-04", "table1_mspacman_runs.json")
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in table.splitlines()
            if line.startswith("| ")}
    assert rows["PKey-GNN"][:4] == ["3/3", "-", "600 +- 100", "500, 700, 600"]
    assert "- PKey-GNN: `runs/500`, `runs/700` (lost, score only), `runs/600`" in table
    assert rows["PKey-GNN - Control-GNN"][0] == "300"


def test_table1_curves_average_seeds_where_all_have_evaluated():
    def record(points):
        return {"evaluations": [{"step": s, "mean": m} for s, m in points], "score": 300.0}
    results = {"agents": {"PKey-GNN": [record([(10, 100), (20, 300)]), record([(10, 300)])],
                          "Control-GNN": [record([(10, 50)]), record([])]},
               "floors": {"PKey-GNN": [{"score": 200.0}] * 3}, "random": [[[250, 230]]]}
    fig = plots.table1_curves(results, "mspacman", 20)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["PKey-GNN (2 seeds)", "Control-GNN (1 seed of 2)",
                      "PKey-GNN after warm-up (3 seeds)", "random policy"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    # the thick line: only step 10 has both seeds' evaluations, mean (100 + 300) / 2
    assert list(lines["PKey-GNN (2 seeds)"].get_xydata().tolist()) == [[10, 200]]
    assert lines["random policy"].get_ydata()[0] == 240
    plots.plt.close(fig)
