"""Figures and tables of plots.py on hand-made numbers and folder trees, and viz.ipynb run
headless (nbclient) on tiny artifacts: the tiny trained runs of conftest, a compare_kpts
output, untrained PermaKey runs for the ablations, and a hand-made rl_exp."""
import json
import os
import shutil

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest
import tensorflow as tf
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

import pkey_train
import plots
import runs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f)


def make_run(root, *parts, files=None):
    """A run folder root/parts.../ holding the given {relative path: JSON or text} files."""
    path = os.path.join(root, *map(str, parts))
    os.makedirs(path, exist_ok=True)
    for name, content in (files or {}).items():
        if isinstance(content, str):
            os.makedirs(os.path.dirname(os.path.join(path, name)), exist_ok=True)
            with open(os.path.join(path, name), "w") as f:
                f.write(content)
        else:
            write_json(os.path.join(path, name), content)
    return path


# ---------------------------------------------------------------- keypoints on frames


def test_keypoint_colours_are_fixed_per_index():
    colours = plots.keypoint_colours(25)
    np.testing.assert_array_equal(colours[:20], plots.KEYPOINT_COLOURS)
    np.testing.assert_array_equal(colours[20:], plots.KEYPOINT_COLOURS[:5])
    drawn = []
    for seed in (0, 1):  # other frames, other positions, fewer keypoints: same colour per index
        rng = np.random.default_rng(seed)
        _, ax = plt.subplots()
        plots.show_keypoints(ax, rng.uniform(size=(84, 84, 3)),
                             rng.uniform(-1, 1, size=(7 - 3 * seed, 2)))
        drawn.append(ax.collections[0].get_facecolors()[:, :3])
    np.testing.assert_allclose(drawn[1], drawn[0][:4])
    assert len(np.unique(drawn[0], axis=0)) == 7


def test_keypoint_grid_puts_each_row_of_keypoints_on_the_frames():
    frames = np.zeros((3, 84, 84, 3))
    centres = np.array([[[-1.0, 1.0]], [[0.0, 0.0]], [[1.0, -1.0]]])  # one keypoint per frame
    fig = plots.keypoint_grid(frames, [("A", centres), ("B", -centres)],
                              [("map", np.zeros((3, 84, 84)))], column_titles=["a", "b", "c"])
    axes = np.array(fig.axes).reshape(4, 3)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["frame", "A", "B", "map"]
    assert [ax.get_title() for ax in axes[0]] == ["a", "b", "c"]
    np.testing.assert_allclose(axes[1, 0].collections[0].get_offsets(), [[83.0, 0.0]])  # (x, y)
    np.testing.assert_allclose(axes[2, 2].collections[0].get_offsets(), [[83.0, 0.0]])


def test_episode_indices_are_consecutive_frames_of_the_first_long_enough_episode():
    episode = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 2])
    np.testing.assert_array_equal(plots.episode_indices(episode, 4), [4, 5, 6, 7])  # its middle
    np.testing.assert_array_equal(plots.episode_indices(episode, 3), [0, 1, 2])
    assert plots.episode_indices(episode, 7) is None


# ---------------------------------------------------------------- finding runs


def test_find_runs_finds_numbered_run_folders_with_the_marker(tmp_path):
    best = {"ckpt_best/checkpoint": "x"}
    for parts in [("none", "mspacman", 10, 1), ("none", "mspacman", 7, 2),
                  ("none", "mspacman", 7, 1), ("both", "seaquest", 10, 3)]:
        make_run(tmp_path, *parts, files=best)
    make_run(tmp_path, "none", "mspacman", 7, 3)                          # no checkpoint yet
    make_run(tmp_path, "none", "mspacman", 7, "_sources", files=best)     # Sacred's, not a run
    make_run(tmp_path, "none", "mspacman", files=best)                    # too shallow
    found = plots.find_runs(str(tmp_path), plots.KEYPOINT_LEVELS,
                            os.path.join("ckpt_best", "checkpoint"))
    assert [run.name for run in found] == ["both/seaquest/10/3", "none/mspacman/7/1",
                                           "none/mspacman/7/2", "none/mspacman/10/1"]
    assert found[1].labels == {"noise_type": "none", "env": "mspacman", "num_keypoints": "7"}
    assert found[1].path == str(tmp_path / "none" / "mspacman" / "7" / "1")
    latest = plots.latest_per_group(found, plots.KEYPOINT_LEVELS)
    assert [run.name for run in latest] == ["both/seaquest/10/3", "none/mspacman/7/2",
                                            "none/mspacman/10/1"]
    assert plots.find_runs(str(tmp_path / "missing"), plots.KEYPOINT_LEVELS, "config.json") == []


def test_find_artifacts_tells_agent_runs_from_their_evaluations(tmp_path):
    rl = tmp_path / "rl_exp"
    make_run(rl, "none", "permakey", "cnn", "mspacman", 1, files={"evaluations.json": []})
    make_run(rl, "none", "permakey", "cnn", "mspacman", "evaluate", 1,
             files={"evaluation.json": {}})
    found = plots.find_artifacts(*(str(tmp_path / name) for name in
                                   ("permakey_exp", "transporter_exp", "compare_kpts", "rl_exp",
                                    "data")))
    assert [run.name for run in found.agents] == ["none/permakey/cnn/mspacman/1"]
    [evaluated] = found.agent_evaluations
    assert evaluated.name == "none/permakey/cnn/mspacman/evaluate/1"
    assert evaluated.labels["env"] == "mspacman" and evaluated.id == 1
    lines = plots.describe_artifacts(found).splitlines()
    assert lines[0] == (f"no PermaKey runs under {tmp_path}/permakey_exp/ — make one with "
                        f"`python pkey_train.py with quick`")
    assert lines[3] == f"1 RL agent runs under {tmp_path}/rl_exp/: none/permakey/cnn/mspacman/1"
    assert lines[-1].startswith(f"no test split under {tmp_path}/data/")


def test_ablation_groups_hold_runs_that_differ_in_one_value(tmp_path):
    for run_id, k, layers, noise_type in [(1, 7, [0, 1], "none"), (2, 7, [0, 1], "none"),
                                          (3, 7, [1], "none"), (1, 10, [0, 1], "none"),
                                          (4, 7, [0], "both")]:
        make_run(tmp_path, noise_type, "mspacman", k, run_id, files={"config.json": {
            "num_keypoints": k, "lsp_layers": layers, "noise_type": noise_type, "env": "mspacman"}})
    found = plots.find_runs(str(tmp_path), plots.KEYPOINT_LEVELS, "config.json")
    by_k = plots.ablation_groups(found, "num_keypoints")
    assert ([[(run.labels["num_keypoints"], run.id) for run in group] for group in by_k]
            == [[("7", 2), ("10", 1)]])
    by_layers = plots.ablation_groups(found, "lsp_layers")
    assert [[run.config["lsp_layers"] for run in group] for group in by_layers] == [[[0, 1], [1]]]
    assert [run.id for run in by_layers[0]] == [2, 3]


# ---------------------------------------------------------------- curves


def test_training_curves_carry_the_logged_values(tmp_path):
    metrics = {"train.lsp": {"steps": [10, 20, 30], "values": [3.0, 2.0, 1.5]},
               "valid.lsp": {"steps": [30], "values": [1.7]},
               "train.pnet": {"steps": [10, 20, 30], "values": [0.5, 0.4, 0.3]},
               "test.lsp": {"steps": [0], "values": [9.0]}}  # a test loss is no curve
    make_run(tmp_path, "none", "mspacman", 7, 1, files={"metrics.json": metrics})
    make_run(tmp_path, "none", "mspacman", 7, 2, files={"metrics.json": {
        "train.lsp": {"steps": [10], "values": [5.0]}}})
    found = plots.find_runs(str(tmp_path), plots.KEYPOINT_LEVELS, "metrics.json")
    [fig] = plots.training_curves(found, "PermaKey")
    lsp, pnet = fig.axes
    assert (lsp.get_title(), pnet.get_title()) == ("lsp", "pnet")
    lines = {line.get_label(): line for line in lsp.lines}
    assert sorted(lines) == ["none/mspacman/7/1 train", "none/mspacman/7/1 valid",
                             "none/mspacman/7/2 train"]
    np.testing.assert_array_equal(lines["none/mspacman/7/1 train"].get_xydata(),
                                  [[10, 3.0], [20, 2.0], [30, 1.5]])
    np.testing.assert_array_equal(lines["none/mspacman/7/1 valid"].get_xydata(), [[30, 1.7]])
    assert (lines["none/mspacman/7/1 train"].get_color()
            != lines["none/mspacman/7/2 train"].get_color())
    np.testing.assert_array_equal(pnet.lines[0].get_ydata(), [0.5, 0.4, 0.3])
    assert plots.training_curves([], "Transporter") == []


def test_agent_curves_carry_the_evaluation_means_coloured_by_agent_kind(tmp_path):
    def agent(kp_type, encoder, env, run_id, means):
        evaluations = [{"step": 1000 * (i + 1), "mean": m, "std": 1.0, "min": m, "max": m,
                        "returns": [m]} for i, m in enumerate(means)]
        make_run(tmp_path, "none", kp_type, encoder, env, run_id,
                 files={"evaluations.json": evaluations})

    agent("permakey", "cnn", "mspacman", 1, [10.0, 30.0])
    agent("transporter", "gnn", "mspacman", 1, [5.0])
    agent("permakey", "cnn", "seaquest", 2, [7.0, 8.0, 9.0])
    [fig] = plots.agent_curves(plots.find_runs(str(tmp_path), plots.AGENT_LEVELS,
                                               "evaluations.json"))
    mspacman, seaquest = fig.axes
    assert mspacman.get_title() == "mspacman, noise none"
    pkey, tp = mspacman.lines
    assert (pkey.get_label(), tp.get_label()) == ("PKey-CNN #1", "Transporter-GNN #1")
    np.testing.assert_array_equal(pkey.get_xydata(), [[1000, 10.0], [2000, 30.0]])
    assert pkey.get_color() == seaquest.lines[0].get_color() != tp.get_color()
    np.testing.assert_array_equal(seaquest.lines[0].get_ydata(), [7.0, 8.0, 9.0])


# ---------------------------------------------------------------- tables


def evaluation(root, kp_type, encoder, env, run_id, returns, noise_type="none"):
    """A hand-made `agent_train.py evaluate` output: returns [seeds, policies, episodes]."""
    make_run(root, noise_type, kp_type, encoder, env, "evaluate", run_id,
             files={"evaluation.json": {"returns": returns}})


def evaluations(root):
    return plots.find_runs(str(root), plots.AGENT_LEVELS, "evaluation.json", inside=("evaluate",))


def test_score_table_reports_the_median_seed_with_its_pooled_std(tmp_path):
    returns = [[[10, 20], [30, 30]],     # seed 1: policy means 15, 30 -> 22.5; variances 25, 0
               [[0, 0], [4, 8]],         # seed 2: means 0, 6 -> 3; variances 0, 4
               [[100, 100], [50, 70]]]   # seed 3: means 100, 60 -> 80; variances 0, 100
    # The median seed is seed 1: 22.5, pooled std sqrt((25 + 0) / 2) = 3.54.
    evaluation(tmp_path, "permakey", "cnn", "mspacman", 1, [[[0.0]]])  # older: not shown
    evaluation(tmp_path, "permakey", "cnn", "mspacman", 2, returns)
    evaluation(tmp_path, "transporter", "gnn", "seaquest", 1, [[[5.0, 7.0]]])
    evaluation(tmp_path, "permakey", "cnn", "pong", 1, [[[1.0, 1.0]], [[3.0, 3.0]]])
    [table] = plots.score_tables(evaluations(tmp_path))
    assert table.columns == ["agent", "mspacman", "seaquest", "pong"]  # Table 1's games first
    assert table.rows == [["PKey-CNN", "22.5 ± 3.5", "-", "1.0 ± 0.0"],
                          ["PKey-GNN", "-", "-", "-"],
                          ["Transporter", "-", "-", "-"],
                          ["Transporter-GNN", "-", "6.0 ± 1.0", "-"]]
    assert "PKey-CNN mspacman: 3 seeds x 2 policies x 2 episodes" in str(table)


def test_score_tables_one_per_noise_type(tmp_path):
    for noise_type in ("none", "both"):
        evaluation(tmp_path, "permakey", "gnn", "battlezone", 1, [[[2.0]]], noise_type)
    tables = plots.score_tables(evaluations(tmp_path))
    assert ([table.title.split(":")[0] for table in tables]
            == ["scores, noise both", "scores, noise none"])
    assert [table.rows[1] for table in tables] == [["PKey-GNN", "2.0 ± 0.0"]] * 2
    assert plots.score_tables([]) == []


def test_keypoint_quality_table_lists_each_run_and_method(tmp_path):
    measured = {"env": "mspacman", "noise_type": "both", "radius": 4.0, "num_frames": 16, "rows": {
        "PermaKey": {"precision": 0.75, "recall": 0.5, "on_distractor": 0.125,
                     "attraction": 0.5, "robustness": 0.9375},
        "random": {"precision": 0.1, "recall": float("nan"), "on_distractor": 0.2}}}
    make_run(tmp_path, "both", "mspacman", 7, 1, files={"config.json": {},
                                                        "evaluate/keypoint_metrics.json": measured})
    make_run(tmp_path, "both", "mspacman", 7, 2, files={"config.json": {}})  # not measured
    with_metrics, without = plots.find_runs(str(tmp_path), plots.KEYPOINT_LEVELS, "config.json")
    [table] = plots.keypoint_quality_tables([with_metrics, without])
    assert table.rows == [
        ["both/mspacman/7/1", "PermaKey", "0.750", "0.500", "0.125", "0.500", "0.938", "4"],
        ["both/mspacman/7/1", "random", "0.100", "-", "0.200", "-", "-", "4"]]
    assert plots.keypoint_quality_tables([without]) == []


# ---------------------------------------------------------------- viz.ipynb


def untrained_permakey_run(root, template_run, run_id, **changes):
    """An untrained PermaKey run folder (model.json, config.json, a best checkpoint) made
    from a trained run's spec with `changes`: a cheap second run for the ablations."""
    spec = dict(runs.read_json(os.path.join(template_run, "model.json")), **changes)
    path = os.path.join(root, spec["noise_type"], spec["env"], str(spec["num_keypoints"]),
                        str(run_id))
    model = runs.build_keypoint_model(spec)
    model(tf.zeros([1, 84, 84, 3]), is_training=False)  # creates the variables
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                               os.path.join(path, "ckpt_best"), 1).save()
    runs.write_model_spec(path, spec)
    runs.write_json(os.path.join(path, "config.json"), spec)
    return path


def hand_made_rl_exp(root):
    """Agent runs (evaluations.json) and evaluate outputs (evaluation.json) laid out as
    agent_train.py writes them."""
    for kp_type, encoder, run_id, means in (("permakey", "cnn", 1, [120.0, 260.0]),
                                            ("transporter", "gnn", 1, [90.0, 150.0])):
        evaluations = [{"step": 20_000 * (i + 1), "mean": m, "std": 30.0, "min": m - 40,
                        "max": m + 40, "returns": [m - 30, m + 30]} for i, m in enumerate(means)]
        make_run(root, "none", kp_type, encoder, "mspacman", run_id, files={
            "config.json": {"kp_type": kp_type, "kpt_encoder_type": encoder},
            "evaluations.json": evaluations})
        returns = (np.arange(3 * 2 * 4).reshape(3, 2, 4) * 10.0 + means[-1]).tolist()
        make_run(root, "none", kp_type, encoder, "mspacman", "evaluate", 1,
                 files={"evaluation.json": {"returns": returns, "eval_seeds": [1, 2, 3]}})


@pytest.fixture(scope="module")
def viz_artifacts(tmp_path_factory, tiny_pkey_run, tiny_transporter_run, tiny_data_dir):
    """Folders for viz.ipynb: the tiny trained runs (linked), two untrained PermaKey runs
    that differ from the tiny one in K and in LSP layers, a compare_kpts output of the
    tiny runs (and the same arrays under noise "both", for the noisy section: their
    frames have no bars), and a hand-made rl_exp."""
    root = tmp_path_factory.mktemp("viz")
    pkey_config, pkey_dir = tiny_pkey_run
    trained = root / "permakey_exp" / "none" / "mspacman" / "3" / "1"
    trained.parent.mkdir(parents=True)
    trained.symlink_to(pkey_dir)
    untrained_permakey_run(str(root / "permakey_exp"), pkey_dir, 1, num_keypoints=4)
    untrained_permakey_run(str(root / "permakey_exp"), pkey_dir, 2, lsp_layers=[1], patch_sizes=[2])
    compare = pkey_train.ex.run("compare_kpts", config_updates=dict(
        pkey_config, pkey_fname=pkey_dir, tp_fname=tiny_transporter_run[1], num_eval_batches=1,
        save_base_dir=str(root / "compare_kpts"), seed=123)).observers[0].dir
    shutil.copytree(compare, root / "compare_kpts" / "both" / "mspacman" / "3" / "1")
    hand_made_rl_exp(root / "rl_exp")
    return {"VIZ_PERMAKEY_EXP": root / "permakey_exp",
            "VIZ_TRANSPORTER_EXP": tiny_transporter_run[0]["exp_root"],
            "VIZ_COMPARE_KPTS": root / "compare_kpts", "VIZ_RL_EXP": root / "rl_exp",
            "VIZ_DATA_DIR": tiny_data_dir}


@pytest.fixture(scope="module")
def kernels_dir(tmp_path_factory):
    """A Jupyter data folder whose python3 kernel runs this interpreter (the venv's), for
    JUPYTER_PATH: it comes before the user's folders, so that a python3 kernel of another
    interpreter installed there cannot shadow it."""
    root = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(root / "kernels" / "python3")
    return root


def execute_notebook(monkeypatch, kernels_dir, folders):
    """Run viz.ipynb top to bottom in a fresh kernel of this interpreter, reading `folders`
    (environment variables, inherited by the kernel). Returns {cell id: outputs}."""
    monkeypatch.setenv("JUPYTER_PATH", str(kernels_dir))
    for name, value in folders.items():
        monkeypatch.setenv(name, str(value))
    notebook = nbformat.read(os.path.join(REPO, "viz.ipynb"), as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": REPO}}).execute()
    return {cell.id: cell.outputs for cell in notebook.cells if cell.cell_type == "code"}


def images(outputs):
    return [o for o in outputs if "image/png" in o.get("data", {})]


def text(outputs):
    return "".join(o.get("text", "") for o in outputs if o.output_type == "stream")


FIGURES = {"figure2-clean": 1, "figure2-noisy": 1, "error-maps": 1, "episode": 1,
           "ablation-keypoints": 1, "ablation-layers": 1, "training-curves": 2, "rl-curves": 1}


def test_notebook_runs_on_tiny_artifacts_and_draws_every_section(viz_artifacts, kernels_dir,
                                                                 monkeypatch):
    outputs = execute_notebook(monkeypatch, kernels_dir, viz_artifacts)
    assert "3 PermaKey runs under" in text(outputs["folders"])
    assert "test splits in" in text(outputs["folders"])
    assert {cell: len(images(outputs[cell])) for cell in FIGURES} == FIGURES
    table = text(outputs["rl-table"])
    assert "PKey-CNN" in table and "Transporter-GNN" in table and "±" in table
    quality = text(outputs["keypoint-quality"])
    assert "PermaKey" in quality and "Transporter" in quality and "random" in quality


def test_notebook_on_empty_folders_says_what_is_missing_and_draws_nothing(tmp_path, kernels_dir,
                                                                          monkeypatch):
    folders = {name: tmp_path / folder for name, folder in (
        ("VIZ_PERMAKEY_EXP", "permakey_exp"), ("VIZ_TRANSPORTER_EXP", "transporter_exp"),
        ("VIZ_COMPARE_KPTS", "compare_kpts"), ("VIZ_RL_EXP", "rl_exp"), ("VIZ_DATA_DIR", "data"))}
    outputs = execute_notebook(monkeypatch, kernels_dir, folders)
    first = text(outputs["folders"])
    assert (f"no PermaKey runs under {tmp_path}/permakey_exp/ — make one with "
            f"`python pkey_train.py with quick`") in first
    assert f"no RL evaluations under {tmp_path}/rl_exp/" in first
    assert not any(images(cell_outputs) for cell_outputs in outputs.values())
    assert "no compare_kpts outputs without distractors" in text(outputs["figure2-clean"])


def test_protocol_summary_pools_stds_and_takes_the_median_seed():
    returns = np.array([[[1.0, 3.0], [5.0, 5.0]],                 # seed 1: means 2, 5
                        [[0.0, 0.0], [2.0, 6.0]],                 # seed 2: means 0, 4
                        [[9.0, 9.0], [9.0, 11.0]],                # seed 3: means 9, 10
                        [[4.0, 4.0], [4.0, 4.0]]])                # seed 4: means 4, 4
    summary = plots.protocol_summary(returns)
    np.testing.assert_allclose(summary["seed_means"], [3.5, 2.0, 9.5, 4.0])
    np.testing.assert_allclose(summary["pooled_stds"], np.sqrt([0.5, 2.0, 0.5, 0.0]))
    assert summary["median_index"] == 0   # even count: the lower middle seed (3.5, not 4.0)
