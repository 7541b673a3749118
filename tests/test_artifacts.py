"""Finding the run folders viz.ipynb draws from (artifacts.py), on hand-made folder trees."""
import json
import os

import artifacts
import run_folders


def make_run(root, *parts, files=None):
    """A run folder root/parts.../ holding the given {relative path: JSON or text} files."""
    path = os.path.join(root, *map(str, parts))
    os.makedirs(path, exist_ok=True)
    for name, content in (files or {}).items():
        target = os.path.join(path, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
    return path


def test_find_runs_finds_numbered_run_folders_with_the_marker(tmp_path):
    best = {"ckpt_best/checkpoint": "x"}
    for parts in [("none", "mspacman", 10, 1), ("none", "mspacman", 7, 2),
                  ("none", "mspacman", 7, 1), ("both", "seaquest", 10, 3)]:
        make_run(tmp_path, *parts, files=best)
    make_run(tmp_path, "none", "mspacman", 7, 3)                          # no checkpoint yet
    make_run(tmp_path, "none", "mspacman", 7, "_sources", files=best)     # Sacred's, not a run
    make_run(tmp_path, "none", "mspacman", files=best)                    # too shallow
    found = artifacts.find_runs(str(tmp_path), run_folders.KEYPOINT_LEVELS,
                                os.path.join("ckpt_best", "checkpoint"))
    assert [run.name for run in found] == ["both/seaquest/10/3", "none/mspacman/7/1",
                                           "none/mspacman/7/2", "none/mspacman/10/1"]
    assert found[1].labels == {"noise_type": "none", "env": "mspacman", "num_keypoints": "7"}
    assert found[1].path == str(tmp_path / "none" / "mspacman" / "7" / "1")
    latest = run_folders.latest_per_group(found, run_folders.KEYPOINT_LEVELS)
    assert [run.name for run in latest] == ["both/seaquest/10/3", "none/mspacman/7/2",
                                            "none/mspacman/10/1"]
    assert artifacts.find_runs(str(tmp_path / "missing"), run_folders.KEYPOINT_LEVELS,
                               "config.json") == []


def test_find_artifacts_tells_agent_runs_from_their_evaluations(tmp_path):
    rl = tmp_path / "rl_exp"
    make_run(rl, "none", "permakey", "cnn", "mspacman", 1, files={"evaluations.json": []})
    make_run(rl, "none", "permakey", "cnn", "mspacman", "evaluate", 1,
             files={"evaluation.json": {}})
    found = artifacts.find_artifacts(*(str(tmp_path / name) for name in
                                       ("permakey_exp", "transporter_exp", "compare_kpts",
                                        "rl_exp", "data")))
    assert [run.name for run in found.agents] == ["none/permakey/cnn/mspacman/1"]
    [evaluated] = found.agent_evaluations
    assert evaluated.name == "none/permakey/cnn/mspacman/evaluate/1"
    assert evaluated.labels["env"] == "mspacman" and evaluated.id == 1
    lines = artifacts.describe_artifacts(found).splitlines()
    assert lines[0] == (f"no PermaKey runs under {tmp_path}/permakey_exp/ — make one with "
                        f"`python pkey_train.py with quick`")
    assert lines[3] == f"1 RL agent runs under {tmp_path}/rl_exp/: none/permakey/cnn/mspacman/1"
    assert lines[-1].startswith(f"no test split under {tmp_path}/data/")


def test_a_run_reads_its_config_and_files(tmp_path):
    path = make_run(tmp_path, "none", "mspacman", 7, 4,
                    files={"config.json": {"lsp_layers": [0, 1]}, "evaluate/x.json": [1]})
    [run] = artifacts.find_runs(str(tmp_path), run_folders.KEYPOINT_LEVELS, "config.json")
    assert (run.path, run.id) == (path, 4)
    assert run.config == {"lsp_layers": [0, 1]}
    assert run.read(os.path.join("evaluate", "x.json")) == [1]
    assert run.read("missing.json", "default") == "default"
