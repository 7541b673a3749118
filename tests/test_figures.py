"""The pictures of figures.py on hand-made numbers and folder trees, and viz.ipynb run
headless (nbclient) on tiny artifacts: the tiny trained runs of conftest, a compare_kpts
output, untrained PermaKey runs for the ablations, and a hand-made rl_exp."""
import os
import shutil

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

import artifacts
import run_folders
import figures
from common import read_json, write_json
from test_artifacts import make_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------- keypoints on frames


def test_keypoint_colours_are_fixed_per_index():
    colours = figures.keypoint_colours(25)
    np.testing.assert_array_equal(colours[:20], figures.KEYPOINT_COLOURS)
    np.testing.assert_array_equal(colours[20:], figures.KEYPOINT_COLOURS[:5])
    drawn = []
    for seed in (0, 1):  # other frames, other positions, fewer keypoints: same colour per index
        rng = np.random.default_rng(seed)
        _, ax = plt.subplots()
        figures.show_keypoints(ax, rng.uniform(size=(84, 84, 3)),
                               rng.uniform(-1, 1, size=(7 - 3 * seed, 2)))
        drawn.append(ax.collections[0].get_facecolors()[:, :3])
    np.testing.assert_allclose(drawn[1], drawn[0][:4])
    assert len(np.unique(drawn[0], axis=0)) == 7


def test_keypoint_grid_puts_each_row_of_keypoints_on_the_frames(tmp_path):
    frames = np.zeros((3, 84, 84, 3))
    centres = np.array([[[-1.0, 1.0]], [[0.0, 0.0]], [[1.0, -1.0]]])  # one keypoint per frame
    fig = figures.keypoint_grid(frames, [("A", centres), ("B", -centres)],
                                [("map", np.zeros((3, 84, 84)))], column_titles=["a", "b", "c"])
    axes = np.array(fig.axes).reshape(4, 3)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["frame", "A", "B", "map"]
    assert [ax.get_title() for ax in axes[0]] == ["a", "b", "c"]
    np.testing.assert_allclose(axes[1, 0].collections[0].get_offsets(), [[83.0, 0.0]])  # (x, y)
    np.testing.assert_allclose(axes[2, 2].collections[0].get_offsets(), [[83.0, 0.0]])
    figures.save_figure(fig, str(tmp_path / "grid.png"))
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"
    assert os.listdir(tmp_path) == ["grid.png"]  # no temporary file left


def test_error_map_rows_name_each_lsp_layer():
    maps = np.arange(2 * 4 * 4 * 2).reshape(2, 4, 4, 2)
    rows = figures.error_map_rows(maps, [0, 2])
    assert [label for label, _ in rows] == ["error layer 0", "error layer 2"]
    np.testing.assert_array_equal(rows[1][1], maps[..., 1])


def test_episode_indices_are_consecutive_frames_of_the_first_long_enough_episode():
    episode = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 2])
    np.testing.assert_array_equal(figures.episode_indices(episode, 4), [4, 5, 6, 7])  # its middle
    np.testing.assert_array_equal(figures.episode_indices(episode, 3), [0, 1, 2])
    assert figures.episode_indices(episode, 7) is None


def test_ablation_groups_hold_runs_that_differ_in_one_value(tmp_path):
    for run_id, k, layers, noise_type in [(1, 7, [0, 1], "none"), (2, 7, [0, 1], "none"),
                                          (3, 7, [1], "none"), (1, 10, [0, 1], "none"),
                                          (4, 7, [0], "both")]:
        make_run(tmp_path, noise_type, "mspacman", k, run_id, files={"config.json": {
            "num_keypoints": k, "lsp_layers": layers, "noise_type": noise_type, "env": "mspacman"}})
    found = artifacts.find_runs(str(tmp_path), run_folders.KEYPOINT_LEVELS, "config.json")
    by_k = figures.ablation_groups(found, "num_keypoints")
    assert ([[(run.labels["num_keypoints"], run.id) for run in group] for group in by_k]
            == [[("7", 2), ("10", 1)]])
    by_layers = figures.ablation_groups(found, "lsp_layers")
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
    found = artifacts.find_runs(str(tmp_path), run_folders.KEYPOINT_LEVELS, "metrics.json")
    [fig] = figures.training_curves(found, "PermaKey")
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
    assert figures.training_curves([], "Transporter") == []


def test_agent_curves_carry_the_evaluation_means_coloured_by_agent_kind(tmp_path):
    def agent(kp_type, encoder, env, run_id, means):
        evaluations = [{"step": 1000 * (i + 1), "mean": m, "std": 1.0, "min": m, "max": m,
                        "returns": [m]} for i, m in enumerate(means)]
        make_run(tmp_path, "none", kp_type, encoder, env, run_id,
                 files={"evaluations.json": evaluations})

    agent("permakey", "cnn", "mspacman", 1, [10.0, 30.0])
    agent("transporter", "gnn", "mspacman", 1, [5.0])
    agent("permakey", "cnn", "seaquest", 2, [7.0, 8.0, 9.0])
    [fig] = figures.agent_curves(artifacts.find_runs(str(tmp_path), run_folders.AGENT_LEVELS,
                                                     "evaluations.json"))
    mspacman, seaquest = fig.axes
    assert mspacman.get_title() == "mspacman, noise none"
    pkey, tp = mspacman.lines
    assert (pkey.get_label(), tp.get_label()) == ("PKey-CNN #1", "Transporter-GNN #1")
    np.testing.assert_array_equal(pkey.get_xydata(), [[1000, 10.0], [2000, 30.0]])
    assert pkey.get_color() == seaquest.lines[0].get_color() != tp.get_color()
    np.testing.assert_array_equal(seaquest.lines[0].get_ydata(), [7.0, 8.0, 9.0])


def test_table1_curves_average_seeds_where_all_have_evaluated():
    def record(points):
        return {"evaluations": [{"step": s, "mean": m} for s, m in points], "score": 300.0}
    results = {"agents": {"PKey-GNN": [record([(10, 100), (20, 300)]), record([(10, 300)])],
                          "Control-GNN": [record([(10, 50)]), record([])]},
               "floors": {"PKey-GNN": [{"score": 200.0}] * 3}, "random": [[[250, 230]]]}
    fig = figures.table1_curves(results, "mspacman", 20)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["PKey-GNN (2 seeds)", "Control-GNN (1 seed of 2)",
                      "PKey-GNN after warm-up (3 seeds)", "random policy"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    # the thick line: only step 10 has both seeds' evaluations, mean (100 + 300) / 2
    assert list(lines["PKey-GNN (2 seeds)"].get_xydata().tolist()) == [[10, 200]]
    assert lines["random policy"].get_ydata()[0] == 240
    # the title keys only the floor lines drawn: no old floors here
    assert ax.get_title().endswith("(dotted: each run's policy at the end of its warm-up)")


# ---------------------------------------------------------------- viz.ipynb


def untrained_permakey_run(root, template_run, run_id, **changes):
    """An untrained PermaKey run folder (model.json, config.json, a best checkpoint) made
    from a trained run's spec with `changes`: a cheap second run for the ablations."""
    import tensorflow as tf

    import keypoint_models
    from run_folders import write_model_spec
    spec = dict(read_json(os.path.join(template_run, "model.json")), **changes)
    path = os.path.join(root, spec["noise_type"], spec["env"], str(spec["num_keypoints"]),
                        str(run_id))
    model = keypoint_models.build_keypoint_model(spec)
    model(tf.zeros([1, 84, 84, 3]), is_training=False)  # creates the variables
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                               os.path.join(path, "ckpt_best"), 1).save()
    write_model_spec(path, spec)
    write_json(os.path.join(path, "config.json"), spec)
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
    import pkey_train
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
