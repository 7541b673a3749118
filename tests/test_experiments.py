"""make figure2 end to end on tiny data with a tiny budget, and its resume (experiments.py)."""
import dataclasses
import importlib
import json
import os
import shutil

import numpy as np
import pytest

import experiments
import runner
import agent_tables
import run_folders
from common import ConfigError

TINY = ["num_frames=400", "num_eval_frames=150", "batch_size=4", "steps_per_epoch=3",
        "valid_batches=2", "metrics_frames=16", "valid_metrics_frames=16", "num_eval_batches=1"]


# conftest.SMALL_PERMAKEY on the command line
SMALL_PERMAKEY = ["lsp_layers=(0,)", "patch_sizes=(2,)", "latent_dim_size=4"]


def run_in_process(script, args):
    """runner.run_script without a new process (the same command line, through
    Sacred's command-line parser): seconds instead of a TensorFlow start per call."""
    module = importlib.import_module(script[:-len(".py")])
    print(" ".join(["python", script, *args]), flush=True)
    try:
        run_folders.run_commandline(module.ex, [script, *args])
    except SystemExit as exit_info:
        if exit_info.code:
            raise ConfigError(f"{script} stopped with exit status {exit_info.code}")


def test_run_script_runs_a_script_in_its_own_process_and_says_when_it_failed(capsys):
    with pytest.raises(ConfigError, match="agent_train.py stopped with exit status 2"):
        runner.run_script("agent_train.py", ["with", "nosuchgame"])
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
    monkeypatch.setattr(runner, "run_script", run_in_process)
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


# --------------------------------------------------------------------------------------
# make table1


def test_table1_plan_is_one_measurement_per_run_in_order():
    kinds = agent_tables.agent_kinds(["transporter-gnn", "PKey-GNN"])
    assert kinds == [("Transporter-GNN", "transporter", "gnn"), ("PKey-GNN", "permakey", "gnn")]
    plan = agent_tables.table1_plan(kinds, [2, 1], steps=500)
    # each floor right after the agent run whose checkpoint it scores
    assert [(m.part, m.agent, m.seed, m.num_iters) for m in plan] == [
        ("random", "random policy", [0, 1], None),
        ("agents", "Transporter-GNN", 0, 500), ("floors", "Transporter-GNN", 0, 500),
        ("agents", "PKey-GNN", 0, 500), ("floors", "PKey-GNN", 0, 500),
        ("agents", "Transporter-GNN", 1, 500), ("floors", "Transporter-GNN", 1, 500)]
    assert [m.method for m in plan[:3]] == [None, "transporter", "transporter"]
    assert plan[2].agent_run == plan[1]
    control = agent_tables.table1_plan(agent_tables.agent_kinds(["Control-GNN"]), [1], 500,
                                      random=False)
    assert [m.method for m in control] == ["permakey", "permakey"]  # PermaKey's features


def test_seeds_are_one_count_for_all_agents_or_one_per_agent():
    kinds = agent_tables.agent_kinds(["PKey-GNN", "Transporter-GNN", "Control-GNN"])
    assert agent_tables.seed_counts(3, kinds) == [3, 3, 3]
    assert agent_tables.seed_counts((5, 5, 3), kinds) == [5, 5, 3]
    for bad in ((5, 3), 0, "3", (5, 5, 0)):
        with pytest.raises(ConfigError, match="expected a whole number >= 1, or one per agent "
                                              r"\(3\)"):
            agent_tables.seed_counts(bad, kinds)


def setup(tmp_path, **changes):
    values = dict(env="mspacman", num_keypoints=7, warmup=100,
                  protocol={"eval_seeds": [1, 2], "num_eval_episodes": 2}, agent_args=(),
                  sources={"permakey": "quick max_minutes=1000", "transporter": "run /kp"},
                  exp_root=str(tmp_path))
    return agent_tables.Table1Setup(**dict(values, **changes))


def test_each_measurement_has_a_folder_of_its_own_named_by_its_options(tmp_path):
    first = agent_tables.Measurement("agents", "PKey-GNN", 0, 500, "permakey", "gnn")
    folder = setup(tmp_path).folder(first)
    assert os.path.dirname(folder) == str(tmp_path / "agents" / "PKey-GNN")
    assert os.path.basename(folder).startswith("seed0_500steps_")
    assert setup(tmp_path).agent_dir(first) == os.path.join(folder, "none", "permakey", "gnn",
                                                            "mspacman")
    others = [setup(tmp_path).folder(dataclasses.replace(first, seed=1)),
              setup(tmp_path, warmup=200).folder(first),
              setup(tmp_path, agent_args=("batch_size=4",)).folder(first),
              setup(tmp_path, sources={"permakey": "run /other"}).folder(first),
              setup(tmp_path, protocol={"eval_seeds": [1], "num_eval_episodes": 2}).folder(first)]
    assert len({folder, *others}) == 6
    # the key a record is found by: the fields of the records kept beside the table
    assert setup(tmp_path).key(first) == {
        "part": "agents", "agent": "PKey-GNN", "seed": 0, "num_iters": 500, "warmup": 100,
        "protocol": {"eval_seeds": [1, 2], "num_eval_episodes": 2}, "agent_args": [],
        "keypoints": "quick max_minutes=1000"}
    # a floor scores the agent run at the end of its warm-up: keyed by that step, so that
    # it never matches a floor of the old definition (a training of num_iters = warm-up)
    floor = dataclasses.replace(first, part="floors")
    assert setup(tmp_path).key(floor) == dict(setup(tmp_path).key(first), part="floors",
                                              policy_at=100)
    assert setup(tmp_path).old_floor_key(floor) == dict(setup(tmp_path).key(first),
                                                        part="floors", num_iters=100)
    assert os.path.dirname(setup(tmp_path).folder(floor)) == str(tmp_path / "floors" / "PKey-GNN")
    # the sticky-action protocol evaluates into a folder of its own, inside the measurement's
    assert setup(tmp_path).agent_dir(first, sticky=True) == os.path.join(
        folder, "sticky", "none", "permakey", "gnn", "mspacman")
    assert f"exp_root={folder}/sticky" in setup(tmp_path).args(first, sticky=True)
    assert "noise_type=both" in setup(tmp_path, noise_type="both").args(first)
    random = agent_tables.Measurement("random", "random policy", [0, 1, 2])
    assert setup(tmp_path).key(random)["keypoints"] is None
    assert setup(tmp_path).key(random)["warmup"] is None
    assert os.path.basename(setup(tmp_path).folder(random)).startswith("seeds3_")


def test_a_floor_needs_its_agent_run_checkpoint_at_the_end_of_the_warmup(tmp_path):
    run = tmp_path / "run"
    os.makedirs(run / "ckpt_selected")
    (run / "ckpt_selected" / "ckpt-200.index").write_text("")  # eval_every=200, warm-up 100
    floor = agent_tables.Measurement("floors", "PKey-GNN", 0, 500, "permakey", "gnn")
    with pytest.raises(ConfigError, match=r"PKey-GNN after warm-up seed 0: agent run .*run kept "
                                          r"no checkpoint at step 100, the end of its warm-up"):
        agent_tables.measure(setup(tmp_path), floor, None, str(run))


def test_a_floor_scores_only_the_run_its_agent_record_names(tmp_path):
    # an old record may name a folder a later run of another seed reused, or one that is gone
    run = tmp_path / "agents" / "1"
    os.makedirs(run)
    (run / "config.json").write_text('{"seed": 2, "num_iters": 500}')
    record = {"run": str(run)}
    agent = agent_tables.Measurement("agents", "PKey-GNN", 2, 500, "permakey", "gnn")
    assert agent_tables.run_of(record, agent) == str(run)
    assert agent_tables.run_of(record, dataclasses.replace(agent, seed=0)) is None
    assert agent_tables.run_of({"run": str(tmp_path / "gone")}, agent) is None
    assert agent_tables.run_of({}, agent) is None


def test_the_latest_run_of_a_measurement_folder_is_its_last_numbered_one_with_the_marker(
        tmp_path):
    for run_id in (1, 2, 10):
        os.makedirs(tmp_path / str(run_id))
    os.makedirs(tmp_path / "_sources")
    os.makedirs(tmp_path / "2" / "ckpt")
    assert runner.latest_run(str(tmp_path), "ckpt") == str(tmp_path / "2")
    os.makedirs(tmp_path / "10" / "ckpt")
    assert runner.latest_run(str(tmp_path), "ckpt") == str(tmp_path / "10")
    assert runner.latest_run(str(tmp_path / "missing"), "ckpt") is None


def test_a_record_store_adds_one_line_per_record_and_finds_by_key(tmp_path):
    store = runner.RecordStore(str(tmp_path / "docs" / "table1_x_runs.json"))
    assert store.read() == [] and store.find({"agent": "a"}) is None
    store.add({"agent": "a", "seed": 0, "score": np.float64(1.5)})
    store.add({"agent": "a", "seed": 1, "score": 2.0})
    assert store.find({"agent": "a", "seed": 1})["score"] == 2.0
    assert store.find({"agent": "a", "seed": 2}) is None
    lines = (tmp_path / "docs" / "table1_x_runs.json").read_text().splitlines()
    assert lines == ["[", '{"agent": "a", "score": 1.5, "seed": 0},',
                     '{"agent": "a", "score": 2.0, "seed": 1}', "]"]


# Transporter's keypointer acts ~40x cheaper than PermaKey's, so the tiny table trains
# Transporter-GNN agents; a random policy ends a MsPacman life in ~110-190 steps, so a
# 200-step warm-up in one environment stores an episode (test_agent_train.SMOKE). The
# first periodic evaluation comes at the warm-up's end: the floor's checkpoint.
TINY_AGENTS = ["num_envs=1", "batch_size=2", "window_size=2", "replay_capacity=10",
               "eval_every=200", "eval_episodes=2", "eval_time_limit=10", "log_every=50",
               "epsilon_end=1.0"]


def table1(tmp_path, tp_run, **updates):
    config = dict({"agents": "Transporter-GNN", "seeds": 1, "steps": 260, "warmup": 200,
                   "num_keypoints": 3, "tp_run": tp_run, "agent_args": TINY_AGENTS,
                   "eval_seeds": [1, 2], "num_eval_episodes": 2,
                   "exp_root": str(tmp_path / "exp"), "out_dir": str(tmp_path / "docs")},
                  **updates)
    return experiments.ex.run("table1", config_updates=config).result


def evaluation_json(folder):
    """The evaluation.json of the one evaluate run in `folder`."""
    [run] = run_folders.numbered_runs(os.path.join(folder, "evaluate"))
    return json.load(open(os.path.join(run, "evaluation.json")))


def test_table1_trains_agents_floors_tabulates_and_continues(tmp_path, tiny_transporter_run,
                                                            monkeypatch, capsys):
    monkeypatch.setattr(runner, "run_script", run_in_process)
    results = table1(tmp_path, tiny_transporter_run[1])
    printed = capsys.readouterr().out
    # one random policy per training seed, scored deterministic and with sticky actions
    assert printed.count("load_ckpts=random repeat_action_probability=") == 2
    random = np.asarray(results["random"])
    assert random.shape == (2, 1, 2)  # [eval seeds, one random policy per seed, episodes]
    [agent] = results["agents"]["Transporter-GNN"]
    [floor] = results["floors"]["Transporter-GNN"]
    config = json.load(open(os.path.join(agent["run"], "config.json")))
    assert (config["seed"], config["num_iters"], config["warmup_steps"]) == (0, 260, 200)
    assert config["kpt_encoder_type"] == "gnn"
    evaluations = json.load(open(os.path.join(agent["run"], "evaluations.json")))
    assert agent["step"] == [e["step"] for e in evaluations if e["selected"]][-1]
    assert agent["seconds"] > 0 and agent["cpus"] and "policy_at" not in agent
    # the run is the one numbered folder of the measurement's own folder
    assert agent["run"].startswith(str(tmp_path / "exp" / "agents" / "Transporter-GNN"
                                       / "seed0_260steps_"))
    assert agent["run"].endswith(os.path.join("none", "transporter", "gnn", "mspacman", "1"))
    # the floor is no training: the protocol scores the agent run's checkpoint at step 200
    assert floor["run"] == agent["run"] and floor["step"] == floor["policy_at"] == 200
    assert floor["num_iters"] == 260 and floor["seconds"] is None
    assert f"load_ckpts={os.path.abspath(agent['run'])}@200 " in printed
    the_setup = agent_tables.Table1Setup(
        "mspacman", 3, 200, {"eval_seeds": [1, 2], "num_eval_episodes": 2}, tuple(TINY_AGENTS),
        {"permakey": "quick max_minutes=1000",
         "transporter": "run " + os.path.realpath(tiny_transporter_run[1])},
        str(tmp_path / "exp"))
    floor_m = agent_tables.Measurement("floors", "Transporter-GNN", 0, 260, "transporter", "gnn")
    for sticky, prefix, probability in ((False, "", 0.0), (True, "sticky_", 0.25)):
        evaluation = evaluation_json(the_setup.agent_dir(floor_m, sticky))
        assert evaluation["policy_steps"] == [200]
        assert evaluation["repeat_action_probability"] == probability
        assert floor[prefix + "returns"] == [row[0] for row in evaluation["returns"]]
        assert floor[prefix + "distinct_starts"] == evaluation["distinct_starts"]
        assert floor[prefix + "distinct_returns"] == evaluation["distinct_returns"][0]
    for record in (agent, floor):
        assert np.shape(record["returns"]) == np.shape(record["sticky_returns"]) == (2, 2)
        assert record["score"] == pytest.approx(np.mean(record["returns"]))
        assert record["sticky_score"] == pytest.approx(np.mean(record["sticky_returns"]))
        assert 1 <= record["distinct_starts"] <= 4 and record["sticky_distinct_starts"] == 4
        assert record["protocol_seconds"] > 0 and record["sticky_protocol_seconds"] > 0
        # every record names the keypoint checkpoint its agent read
        assert record["keypoint_checkpoint"] == run_folders.checkpoint_digest(
            tiny_transporter_run[1])
        assert record["keypoint_method"] == "transporter"
    docs = tmp_path / "docs"
    # a budget other than Atari-100k's gets its own files, never replacing that table
    assert sorted(os.listdir(docs)) == ["table1_mspacman_260steps.md",
                                        "table1_mspacman_260steps_curves.png",
                                        "table1_mspacman_260steps_runs.json"]
    records_path = docs / "table1_mspacman_260steps_runs.json"
    records = json.loads(records_path.read_text())
    assert [(r["part"], r["agent"], r["seed"]) for r in records] == [
        ("random", "random policy", [0]), ("agents", "Transporter-GNN", 0),
        ("floors", "Transporter-GNN", 0)]
    assert records[1]["score"] == agent["score"]
    table = (docs / "table1_mspacman_260steps.md").read_text()
    for row in ("| Transporter-GNN | 1/1 |", "| Transporter-GNN after warm-up | 1/1 |",
                "| random policy | 1/1 |", "| Transporter-GNN - random policy |",
                "| Transporter-GNN - Transporter-GNN after warm-up |",
                "| Transporter-GNN - Transporter-GNN after warm-up, sticky |"):
        assert table.count(row) == 1, row

    # A second call skips every finished run and measurement; an interrupted run (here:
    # one whose Sacred record says it stopped, and so has no record beside the table)
    # resumes in its own folder, and its floor is scored from the evaluations kept.
    interrupted = agent["run"]
    record = os.path.join(interrupted, "run.json")
    stopped = json.load(open(record))
    stopped["status"] = "INTERRUPTED"
    json.dump(stopped, open(record, "w"))
    records_path.write_text(json.dumps(records[:1]))
    again = table1(tmp_path, tiny_transporter_run[1])
    printed = capsys.readouterr().out
    assert printed.count(": recorded in") == 1 and f"resume_dir={interrupted}" in printed
    assert "evaluate" not in printed  # the protocol scores were kept
    assert again["agents"]["Transporter-GNN"][0]["run"] == interrupted
    for part in ("agents", "floors"):
        assert again[part]["Transporter-GNN"][0]["score"] == \
            results[part]["Transporter-GNN"][0]["score"]
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


def fake_agent_train(calls):
    """runner.run_script for agent_train.py without training or playing: a training
    makes a finished run folder whose selected checkpoints are at the warm-up's end and
    at num_iters; an evaluation writes the evaluation.json evaluate would, with returns
    base + 4 x (eval seed index) + 2 x (episode), base = selected step / 1000 + 10 x the
    run's seed (+ 50 with sticky actions; 7 for the random policies)."""
    def run_script(script, args):
        assert script == "agent_train.py"
        calls.append(args)
        config = dict(arg.split("=", 1) for arg in args if "=" in arg)
        folder = os.path.join(config["exp_root"], config["noise_type"], config["kp_type"],
                              config["kpt_encoder_type"], "mspacman")
        if args[0] != "evaluate":
            run = os.path.join(folder, "1")
            for step in (config["warmup_steps"], config["num_iters"]):
                os.makedirs(os.path.join(run, "ckpt_selected"), exist_ok=True)
                open(os.path.join(run, "ckpt_selected", f"ckpt-{step}.index"), "w").close()
            os.makedirs(os.path.join(run, "ckpt"))
            for name, value in (("run.json", {"command": "train", "status": "COMPLETED"}),
                                ("config.json", {"seed": int(config["seed"]),
                                                 "num_iters": int(config["num_iters"])}),
                                ("time.json", {"seconds": 1200.0, "cpus": [0, 1]}),
                                ("evaluations.json", [{"step": 10000, "mean": 5.0,
                                                       "distinct_starts": 4}])):
                json.dump(value, open(os.path.join(run, name), "w"))
            return
        sticky = float(config["repeat_action_probability"])
        policies, returns = [], []
        for policy in config["load_ckpts"].split(","):
            run, _, step = policy.partition("@")
            if run == "random":
                base, step = 7, None
            else:
                step = int(step or 100000)
                base = step // 1000 + 10 * json.load(open(os.path.join(run, "config.json")))["seed"]
            policies.append((run, step))
            base += 50 if sticky else 0
            returns.append([[base + 4 * i + 2 * e for e in range(2)] for i in range(2)])
        out = os.path.join(folder, "evaluate", str(len(run_folders.numbered_runs(
            os.path.join(folder, "evaluate"))) + 1))
        os.makedirs(out)
        json.dump({"command": "evaluate", "status": "COMPLETED",
                   "start_time": "2026-12-08T10:00:00", "stop_time": "2026-12-08T10:03:00"},
                  open(os.path.join(out, "run.json"), "w"))
        json.dump({"policies": [run for run, _ in policies], "policy_steps": [
            step for _, step in policies], "eval_seeds": [1, 2],
            "returns": np.transpose(returns, (1, 0, 2)).tolist(),               # [S, P, E]
            "repeat_action_probability": sticky, "distinct_starts": 4 if sticky else 3,
            "distinct_returns": [2] * len(policies),
            "keypoint_models": [{"run": "kp", "load": "best", "digest": "abc",
                                 "precision": 0.5}] * len(policies)},
            open(os.path.join(out, "evaluation.json"), "w"))
    return run_script


def test_table2_scores_floors_at_the_warmup_with_sticky_actions_into_its_own_files(
        tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(runner, "run_script", fake_agent_train(calls))
    monkeypatch.setattr(runner, "machine_name", lambda: "CPU X")
    kp_runs = {name: tmp_path / name for name in ("pkey", "tp")}
    for folder in kp_runs.values():
        folder.mkdir()
    protocol = {"eval_seeds": [1, 2], "num_eval_episodes": 2}
    docs = tmp_path / "docs"
    # a floor of the old definition, recorded: a training of num_iters = the warm-up
    the_setup = agent_tables.Table1Setup(
        "mspacman", 7, 10000, protocol, (), {
            "permakey": "run " + os.path.realpath(kp_runs["pkey"]),
            "transporter": "run " + os.path.realpath(kp_runs["tp"])},
        str(tmp_path / "exp"), "both")
    floor = agent_tables.Measurement("floors", "Transporter-GNN", 0, 100000, "transporter",
                                    "gnn")
    old = dict(the_setup.old_floor_key(floor), run="old/1", step=10000, score=3.0,
               returns=[[2.0, 4.0], [2.0, 4.0]], seconds=60.0)
    runner.RecordStore(str(docs / "table2_mspacman_runs.json")).add(old)
    results = experiments.ex.run("table1", config_updates={
        "noise_type": "both", "agents": "Transporter-GNN,Control-GNN", "seeds": (2, 1),
        "pkey_run": str(kp_runs["pkey"]), "tp_run": str(kp_runs["tp"]),
        "eval_seeds": [1, 2], "num_eval_episodes": 2, "exp_root": str(tmp_path / "exp"),
        "out_dir": str(docs)}).result
    capsys.readouterr()
    assert all("noise_type=both" in args for args in calls)
    trainings = [args for args in calls if args[0] != "evaluate"]
    assert [(a[-1], a[4]) for a in trainings] == [
        ("seed=0", "kp_type=transporter"), ("seed=0", "kp_type=fixed"),
        ("seed=1", "kp_type=transporter")]
    # every measurement is scored twice, each protocol into its own folder; a floor
    # scores its agent run's checkpoint at the warm-up's end, right after that run
    evaluations = [dict(a.split("=", 1) for a in args if "=" in a) for args in calls
                   if args[0] == "evaluate"]
    assert [e["repeat_action_probability"] for e in evaluations] == ["0.0", "0.25"] * 7
    assert all(e["exp_root"].endswith(os.sep + "sticky") for e in evaluations[1::2])
    [agent0, agent1] = results["agents"]["Transporter-GNN"]
    assert calls.index(trainings[0]) < calls.index(trainings[1])
    assert [e["load_ckpts"] for e in evaluations[2:6]] == [
        os.path.abspath(agent0["run"])] * 2 + [os.path.abspath(agent0["run"]) + "@10000"] * 2
    assert sorted(os.listdir(docs)) == ["table2_mspacman.md", "table2_mspacman_curves.png",
                                        "table2_mspacman_runs.json"]
    # returns base + (0, 2 | 4, 6): seed score base + 3, each eval seed's mean base + 1
    # and base + 5 (the lower middle: base + 1), pooled std 1
    assert (agent0["score"], agent1["score"], agent0["sticky_score"]) == (103, 113, 153)
    [floor0, floor1] = results["floors"]["Transporter-GNN"]
    assert (floor0["score"], floor1["sticky_score"], floor0["step"]) == (13, 73, 10000)
    assert results["old_floors"]["Transporter-GNN"] == [old]
    table = (docs / "table2_mspacman.md").read_text()
    assert table.startswith("# Table 2 on a CPU: mspacman with distractor bars (noise both), "
                            "100000 environment steps, training seeds Transporter-GNN 2, "
                            "Control-GNN 1\n")
    assert "`make table2 GAME=mspacman TABLE2_SEEDS=2,1 STEPS=100000`" in table
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in table.splitlines()
            if line.startswith("| ")}
    # two runs of bases 100 and 110: each eval seed's mean 106 and 110, pooled std 1
    assert rows["Transporter-GNN"][:8] == [
        "2/2", "106 +- 1", "3/4 starts; 2, 2 returns", "156 +- 1", "4/4 starts; 2, 2 returns",
        "108 +- 7", "103, 113", "100000, 100000"]
    assert rows["Transporter-GNN"][8:] == ["20, 20", "3.0/3.0, 3.0/3.0", "abc |"]
    assert rows["Transporter-GNN after warm-up"][:3] == ["2/2", "16 +- 1",
                                                         "3/4 starts; 2, 2 returns"]
    assert rows["Transporter-GNN after warm-up"][7:9] == ["10000, 10000", "-, -"]
    assert rows["Control-GNN"][:2] == ["1/1", "101 +- 1"]
    assert rows["Transporter-GNN, warm-up only †"][:3] == ["1/2", "3 +- 1", "-"]
    assert rows["random policy"][:4] == ["2/2", "8 +- 1", "3/4 starts; 2, 2 returns", "58 +- 1"]
    # the differences under both protocols: 100 + 3 - (10 + 3) = 90 for either seed
    assert rows["Transporter-GNN - Transporter-GNN after warm-up"][0] == "90"
    assert rows["Transporter-GNN - Transporter-GNN after warm-up, sticky"][0] == "90"
    assert rows["Transporter-GNN - Transporter-GNN, warm-up only †"][0] == "105"
    assert "Transporter-GNN, warm-up only †, sticky" not in table  # not measured sticky
    assert "† A floor measured under the old definition" in table
    assert "`old/1` (lost, score only)" not in table and "`old/1`" in table
    assert f"`{agent0['run']}@10000`" in table
    assert "precision 0.50" in table


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
