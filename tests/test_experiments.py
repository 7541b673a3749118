"""make figure2 end to end on tiny data with a tiny budget, and its resume (experiments.py)."""
import json
import os

import experiments
import plots

TINY = ["num_frames=400", "num_eval_frames=150", "batch_size=4", "steps_per_epoch=3",
        "valid_batches=2", "metrics_frames=16", "valid_metrics_frames=16", "num_eval_batches=1"]


def figure2(tmp_path, data_dir):
    # One noise type (with bars) keeps this to two trainings; the clean reference and the
    # robustness ratio are checked in test_figure2_table_ratios_by_hand.
    return experiments.ex.run("figure2", config_updates={
        "num_keypoints": 3, "budget": 0.01, "noise_types": ["both"],
        "exp_root": str(tmp_path / "exp"), "out_dir": str(tmp_path / "docs"),
        "pkey_args": TINY + [f"data_dir={data_dir}"],
        "tp_args": TINY + [f"data_dir={data_dir}", "num_pairs=12"]}).result


def test_figure2_trains_compares_tabulates_and_continues(tmp_path, tiny_data_dir, capsys):
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
