"""The tables of tables.py on hand-made numbers and folder trees, checked by hand."""
import sys

import numpy as np

import artifacts
import run_folders
import tables
from test_artifacts import make_run


def test_drawing_a_table_starts_no_tensorflow():
    import subprocess
    code = ("import sys, tables, stats, artifacts; "
            "print(sorted(m for m in ('tensorflow', 'sonnet', 'matplotlib') if m in sys.modules))")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=tables.__file__.rsplit("/", 1)[0]).stdout
    assert printed.strip() == "[]"


# ---------------------------------------------------------------- viz.ipynb's tables


def evaluation(root, kp_type, encoder, env, run_id, returns, noise_type="none"):
    """A hand-made `agent_train.py evaluate` output: returns [seeds, policies, episodes]."""
    make_run(root, noise_type, kp_type, encoder, env, "evaluate", run_id,
             files={"evaluation.json": {"returns": returns}})


def evaluations(root):
    return artifacts.find_runs(str(root), run_folders.AGENT_LEVELS, "evaluation.json",
                               inside=("evaluate",))


def test_score_table_reports_the_median_seed_with_its_pooled_std(tmp_path):
    returns = [[[10, 20], [30, 30]],     # seed 1: policy means 15, 30 -> 22.5; variances 25, 0
               [[0, 0], [4, 8]],         # seed 2: means 0, 6 -> 3; variances 0, 4
               [[100, 100], [50, 70]]]   # seed 3: means 100, 60 -> 80; variances 0, 100
    # The median seed is seed 1: 22.5, pooled std sqrt((25 + 0) / 2) = 3.54.
    evaluation(tmp_path, "permakey", "cnn", "mspacman", 1, [[[0.0]]])  # older: not shown
    evaluation(tmp_path, "permakey", "cnn", "mspacman", 2, returns)
    evaluation(tmp_path, "transporter", "gnn", "seaquest", 1, [[[5.0, 7.0]]])
    evaluation(tmp_path, "permakey", "cnn", "pong", 1, [[[1.0, 1.0]], [[3.0, 3.0]]])
    [table] = tables.score_tables(evaluations(tmp_path))
    assert table.columns == ["agent", "mspacman", "seaquest", "pong"]  # Table 1's games first
    assert table.rows == [["PKey-CNN", "22.5 ± 3.5", "-", "1.0 ± 0.0"],
                          ["PKey-GNN", "-", "-", "-"],
                          ["Transporter", "-", "-", "-"],
                          ["Transporter-GNN", "-", "6.0 ± 1.0", "-"]]
    assert "PKey-CNN mspacman: 3 seeds x 2 policies x 2 episodes" in str(table)


def test_score_tables_one_per_noise_type(tmp_path):
    for noise_type in ("none", "both"):
        evaluation(tmp_path, "permakey", "gnn", "battlezone", 1, [[[2.0]]], noise_type)
    found = tables.score_tables(evaluations(tmp_path))
    assert ([table.title.split(":")[0] for table in found]
            == ["scores, noise both", "scores, noise none"])
    assert [table.rows[1] for table in found] == [["PKey-GNN", "2.0 ± 0.0"]] * 2
    assert tables.score_tables([]) == []


def test_keypoint_quality_table_lists_each_run_and_method(tmp_path):
    measured = {"env": "mspacman", "noise_type": "both", "radius": 4.0, "num_frames": 16, "rows": {
        "PermaKey": {"precision": 0.75, "recall": 0.5, "on_distractor": 0.125,
                     "attraction": 0.5, "robustness": 0.9375},
        "random": {"precision": 0.1, "recall": float("nan"), "on_distractor": 0.2}}}
    make_run(tmp_path, "both", "mspacman", 7, 1, files={"config.json": {},
                                                        "evaluate/keypoint_metrics.json": measured})
    make_run(tmp_path, "both", "mspacman", 7, 2, files={"config.json": {}})  # not measured
    with_metrics, without = artifacts.find_runs(str(tmp_path), run_folders.KEYPOINT_LEVELS,
                                                "config.json")
    [table] = tables.keypoint_quality_tables([with_metrics, without])
    assert table.rows == [
        ["both/mspacman/7/1", "PermaKey", "0.750", "0.500", "0.125", "0.500", "0.938", "4"],
        ["both/mspacman/7/1", "random", "0.100", "-", "0.200", "-", "-", "4"]]
    assert tables.keypoint_quality_tables([without]) == []


# ---------------------------------------------------------------- figure2 and games


def test_figure2_table_ratios_by_hand():
    rows = {"none": {"PermaKey": {"precision": 0.6, "recall": 0.7, "spread": 20.0},
                     "random": {"precision": 0.07, "recall": 0.2}},
            "both": {"PermaKey": {"precision": 0.54, "recall": 0.6, "spread": 18.0,
                                  "on_distractor": 0.1, "attraction": 0.35},
                     "random": {"precision": 0.07, "recall": 0.2, "on_distractor": 0.29,
                                "attraction": 1.0}}}
    results = {noise: {"rows": r, "runs": {"permakey": (f"exp/{noise}", 480, 11.0)}}
               for noise, r in rows.items()}
    table = tables.figure2_table(results, {"permakey": "PermaKey"}, "mspacman", 30, "CPU X",
                                 "2026-12-04")
    lines = [line for line in table.splitlines() if line.startswith("| PermaKey")]
    assert lines[0].split(" | ")[-3:] == ["-", "480", "11.0 |"]       # clean: no robustness
    assert lines[1].split(" | ")[-3:] == ["0.90", "480", "11.0 |"]    # 0.54 / 0.6
    assert "CPU X" in table and "BUDGET=30" in table


def test_games_table_by_hand():
    results = {"seaquest": {
        "num_keypoints": 10,
        "rows": {"PermaKey": {"precision": 0.76, "recall": 0.75, "spread": 20.04},
                 "random": {"precision": 0.07, "recall": float("nan")}},
        "runs": {"permakey": ("exp/permakey/none/seaquest/10/1", 480, 11.04)}}}
    table = tables.games_table(results, {"permakey": "PermaKey", "transporter": "Transporter"},
                               11, "CPU X", "2026-12-04")
    rows = [line for line in table.splitlines() if line.startswith("| seaquest")]
    assert rows == ["| seaquest | 10 | PermaKey | 0.760 | 0.750 | 20.0 | 480 | 11.0 |",
                    "| seaquest | 10 | random | 0.070 | - | - | - | - |"]
    assert "games with envs=seaquest budget=11" in table and "CPU X" in table


# ---------------------------------------------------------------- table1


def record(part, agent, seed, score, step, checkpoint="aaa", method="permakey"):
    return {"part": part, "agent": agent, "seed": seed, "run": f"runs/{agent}/{score}",
            "step": step, "returns": [[score - 1, score + 1]] * 2, "score": float(score),
            "seconds": 600.0, "evaluations": [{"step": step, "distinct_starts": 2}],
            "keypoint_method": method, "keypoint_checkpoint": checkpoint, "machine": "CPU X"}


def floor(seed, score):
    """A floor: a PKey-GNN run's policy at the end of its warm-up (step 5)."""
    return dict(record("floors", "PKey-GNN", seed, score, 5), policy_at=5, seconds=None)


def table1_records():
    """Measured in another order than the table's: PKey-GNN 500, 700, 600 (seed 1 first),
    Control-GNN 300 each, Transporter-GNN 400, 800, 600, the floor 200 each, random 250."""
    records = [record("agents", "PKey-GNN", seed, score, step) for seed, score, step in
               ((1, 700, 20), (0, 500, 10), (2, 600, 30))]
    records += [record("agents", "Control-GNN", seed, 300, 10 * (seed + 1), "bbb")
                for seed in range(3)]
    records += [record("agents", "Transporter-GNN", seed, score, 10, "ccc", "transporter")
                for seed, score in enumerate((400, 800, 600))]
    records += [floor(seed, 200) for seed in range(3)]
    records.append({"part": "random", "agent": "random policy", "seed": [0, 1, 2],
                    "returns": [[[250, 250], [250, 250], [250, 250]]] * 2, "machine": "CPU X"})
    return records


SEEDS = {"PKey-GNN": 3, "Transporter-GNN": 3, "Control-GNN": 3}


def rows_of(table):
    return {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in table.splitlines()
            if line.startswith("| ")}


def test_table1_results_group_records_by_part_and_agent_in_seed_order():
    old = dict(record("floors", "PKey-GNN", 0, 100, 5), num_iters=5, warmup=5)
    results = tables.table1_results(table1_records() + [old])
    assert [r["score"] for r in results["agents"]["PKey-GNN"]] == [500, 700, 600]
    assert list(results["floors"]) == ["PKey-GNN"] and len(results["floors"]["PKey-GNN"]) == 3
    assert results["old_floors"] == {"PKey-GNN": [old]}  # no policy_at: the old definition
    assert np.shape(results["random"]) == (2, 3, 2)
    assert results["random_record"]["seed"] == [0, 1, 2]
    assert tables.table1_results([])["random"] is None


def test_table1_table_by_hand():
    table = tables.table1_table(table1_records(), "mspacman", 1000, SEEDS, 5,
                                {"permakey": "kp", "transporter": "tp"}, "2026-12-04",
                                "table1_mspacman_runs.json")
    rows = rows_of(table)
    # protocol: both evaluation seeds have mean 600 over the three policies; no record
    # says on how many distinct starts and returns, none was scored with sticky actions
    assert rows["PKey-GNN"] == ["3/3", "600 +- 1", "-", "-", "-", "600 +- 100", "500, 700, 600",
                                "10, 20, 30", "10, 10, 10", "-, -, -", "aaa |"]
    assert rows["random policy"][:7] == ["3/3", "250 +- 0", "-", "-", "-", "250 +- 0",
                                         "250, 250, 250"]
    # the floor: no training of its own; its run at the step it scores
    assert rows["PKey-GNN after warm-up"][8] == "-, -, -"
    assert "`runs/PKey-GNN/200@5`" in table
    # Welch: PKey-GNN 500, 700, 600 (var 10000) against 300 x 3 (var 0): se = sqrt(10000/3)
    # = 57.735, df = 2 (the other arm has no spread), t_0.975,2 = 4.303: +- 248.4;
    # t = 5.196, p = 2 (1/2 - t / (2 sqrt(2 + t^2))) = 0.035. Smallest detectable: pooled
    # std sqrt(20000 / 4) = 70.71 x (2.776 + 0.941) x sqrt(2/3) = 215.
    assert rows["PKey-GNN - Control-GNN"] == ["300", "[52, 548]", "2.0", "0.035", "above",
                                             "215 |"]
    # against random (250 x 3): t = 6.062, p = 2 (1/2 - 6.062 / (2 sqrt(38.75))) = 0.026
    assert rows["PKey-GNN - random policy"][:5] == ["350", "[102, 598]", "2.0", "0.026", "above"]
    assert rows["PKey-GNN - PKey-GNN after warm-up"][:2] == ["400", "[152, 648]"]
    # 600 - 600, variances 10000 and 40000: se = sqrt(50000/3) = 129.1, df = (50000/3)^2 /
    # ((10000/3)^2/2 + (40000/3)^2/2) = 50/17 = 2.94, t_0.975,2.94 = 3.22 (between the
    # tables' 4.303 at 2 df and 3.182 at 3): +- 416, which holds 0
    assert rows["PKey-GNN - Transporter-GNN"][:5] == ["0", "[-416, 416]", "2.9", "1.000",
                                                      "not distinguishable"]
    assert not any(label.endswith(", sticky") for label in rows)
    # the agents' pooled std: sqrt((20000 + 0 + 80000) / 6) = 129.1; x 3.035 = 392
    assert ("Smallest difference of means this table detects with 3 seeds per agent (80% "
            "power, two-sided 5%): **392**") in table
    assert "s = 129 the pooled seed std of the 3 agents" in table
    assert "CPU X" in table and "make table1 GAME=mspacman SEEDS=3 STEPS=1000" in table
    assert "permakey `kp`, checkpoints aaa (6 runs), bbb (3 runs)" in table
    assert "transporter `tp`, checkpoints ccc (3 runs)" in table
    # rows in the agents' fixed order (AGENT_KINDS), not in the order measured
    assert list(rows)[1:6] == ["PKey-GNN", "Transporter-GNN", "Control-GNN",
                               "PKey-GNN after warm-up", "random policy"]
    assert "Rows whose runs read different keypoint models" not in table
    assert "old definition" not in table and "on the protocol's own episodes" not in table


def test_table1_table_gives_the_sticky_scores_and_what_each_score_rests_on():
    records = table1_records()
    for r in records:
        if r["part"] == "random":
            r.update(distinct_starts=4, distinct_returns=[1, 2, 1],
                     sticky_returns=[[[0, 100], [0, 100], [0, 100]]] * 2, sticky_distinct_starts=4,
                     sticky_distinct_returns=[2, 2, 2])
        else:  # every run 40 lower with sticky actions, its two returns 20 apart
            r.update(distinct_starts=3, distinct_returns=2, sticky_distinct_starts=4,
                     sticky_distinct_returns=2, sticky_score=r["score"] - 40,
                     sticky_returns=[[r["score"] - 50, r["score"] - 30]] * 2,
                     protocol_seconds=120.0, sticky_protocol_seconds=300.0)
    rows = rows_of(tables.table1_table(records, "mspacman", 1000, SEEDS, 5, {"permakey": "kp"},
                                       "2026-12-04", "table1_mspacman_runs.json"))
    # sticky: each evaluation seed's mean over the policies 560, pooled std 10
    assert rows["PKey-GNN"][1:5] == ["600 +- 1", "3/4 starts; 2, 2, 2 returns", "560 +- 10",
                                     "4/4 starts; 2, 2, 2 returns"]
    assert rows["PKey-GNN"][9] == "2.0/5.0, 2.0/5.0, 2.0/5.0"
    assert rows["random policy"][1:5] == ["250 +- 0", "4/4 starts; 1, 2, 1 returns", "50 +- 50",
                                          "4/4 starts; 2, 2, 2 returns"]
    # the differences again under sticky actions: 560 - 50 = 510; 560 - 260 = 300
    assert rows["PKey-GNN - random policy, sticky"][:2] == ["510", "[262, 758]"]
    assert rows["PKey-GNN - Control-GNN, sticky"][0] == "300"


def test_table1_table_marks_the_floors_of_the_old_definition():
    # a separate 5-step run whose epsilon fell within its warm-up: shown, marked, compared
    old = [dict(record("floors", "PKey-GNN", seed, 100, 5), num_iters=5, warmup=5)
           for seed in range(2)]
    table = tables.table1_table(table1_records() + old, "mspacman", 1000, SEEDS, 5,
                                {"permakey": "kp"}, "2026-12-04", "table1_mspacman_runs.json")
    rows = rows_of(table)
    assert rows["PKey-GNN, warm-up only †"][:2] == ["2/3", "100 +- 1"]
    assert rows["PKey-GNN - PKey-GNN, warm-up only †"][0] == "500"
    assert rows["PKey-GNN - PKey-GNN after warm-up"][0] == "400"
    assert list(rows)[4:6] == ["PKey-GNN after warm-up", "PKey-GNN, warm-up only †"]
    assert ("† A floor measured under the old definition, kept as recorded: a training of its "
            "own of 5 steps") in table
    assert "The *after warm-up* rows are the floors." in table
    alone = tables.table1_table([r for r in table1_records() if r["part"] != "floors"] + old,
                                "mspacman", 1000, SEEDS, 5, {"permakey": "kp"}, "2026-12-04",
                                "table1_mspacman_runs.json")
    assert "are not yet measured" in alone


def test_table1_table_says_when_a_row_mixes_keypoint_models_or_lost_episodes():
    records = table1_records()
    records[0]["keypoint_checkpoint"] = None        # PKey-GNN seed 1: not recorded
    del records[0]["returns"]                        # ... and its episodes lost
    records[3]["evaluations"] = [{"step": 10}]       # Control-GNN seed 0: chose on the
    table = tables.table1_table(records, "mspacman", 1000, SEEDS, 5, {"permakey": "kp"},
                                "2026-12-04", "table1_mspacman_runs.json")  # protocol's episodes
    rows = rows_of(table)
    assert rows["PKey-GNN"][1] == "-"                # no protocol score without all episodes
    assert rows["PKey-GNN"][5] == "600 +- 100"
    assert rows["PKey-GNN"][-1] == "mixed: aaa (2 runs), not recorded (1 run) |"
    assert rows["PKey-GNN after warm-up"][-1] == "aaa |"
    assert ("Rows whose runs read different keypoint models, or do not all record which: "
            "PKey-GNN.") in table
    assert ("Rows whose runs chose their policy on the protocol's own episodes (their periodic "
            "evaluations were made before selection had episodes of its own, or are not "
            "recorded): Control-GNN.") in table
    assert ("- PKey-GNN: `runs/PKey-GNN/500`, `runs/PKey-GNN/700` (lost, score only), "
            "`runs/PKey-GNN/600`") in table


def test_table1_table_with_one_seed_gives_no_interval():
    records = [r for r in table1_records() if r.get("seed") in (0, [0, 1, 2])]
    table = tables.table1_table(records, "mspacman", 1000, {"PKey-GNN": 1}, 5,
                                {"permakey": "kp"}, "2026-12-04", "table1_mspacman_runs.json")
    rows = rows_of(table)
    assert rows["PKey-GNN - Control-GNN"] == ["200", "-", "-", "-", "-", "- |"]
    assert "Smallest detectable difference: needs two or more seeds" in table
    assert rows["Control-GNN"][0] == "1/1"  # another agent: the most seeds asked


def test_table2_table_names_the_bars_and_each_agent_seed_count():
    table = tables.table1_table(table1_records(), "mspacman", 100000,
                                {"PKey-GNN": 5, "Transporter-GNN": 5, "Control-GNN": 3}, 5,
                                {"permakey": "kp"}, "2026-12-04", "table2_mspacman_runs.json",
                                noise_type="both")
    assert table.startswith("# Table 2 on a CPU: mspacman with distractor bars (noise both), "
                            "100000 environment steps, training seeds PKey-GNN 5, "
                            "Transporter-GNN 5, Control-GNN 3\n")
    assert "`make table2 GAME=mspacman TABLE2_SEEDS=5,5,3 STEPS=100000`" in table
    rows = rows_of(table)
    assert (rows["PKey-GNN"][0], rows["Control-GNN"][0]) == ("3/5", "3/3")
    assert "detects with 5 seeds per agent" in table
