"""Keypoint agent experiment: replayed inputs, a smoke run with resume and evaluate, two
replicas, the evaluation protocol, and one-line errors for bad input.

The tiny keypoint runs come from conftest (shared with the keypoint-training tests).
PermaKey's local spatial prediction costs ~11 GFLOPs per frame (~0.13 s on this CPU),
so the PermaKey smoke run acts in one environment for 300 steps; the two-replica run
uses the ~40x cheaper Transporter.
"""
import itertools
import json
import os
import shutil
import signal

import numpy as np
import pytest
import tensorflow as tf

import agent_runs
import atari_env
import common
import keypoint_models
import play
import run_folders
import agent
import agent_train
import layers
import replay
import rl_loss

# A random policy (epsilon stays 1) ends a MsPacman life in ~110-190 steps, so a warm-up
# of 220 steps in one environment stores an episode to sample from.
SMOKE = {"num_keypoints": 3, "num_iters": 300, "warmup_steps": 220, "num_envs": 1,
         "epsilon_end": 1.0, "batch_size": 2, "window_size": 2, "replay_capacity": 10,
         "eval_every": 150, "eval_episodes": 2, "eval_time_limit": 10, "log_every": 50}


def agent_config(tmp_root, keypoint_run, kp_type="permakey", **updates):
    return dict(SMOKE, kp_type=kp_type, vis_ckpt_fname=keypoint_run,
                exp_root=str(tmp_root), **updates)


# --------------------------------------------------------------------------------------
# The inputs rebuilt from a replayed frame and its kept centres are those acted on.


def mspacman_frames(count):
    game = atari_env.make_env("mspacman", "train", seed=3)
    frames = [game.reset(seed=3)[0]]
    for _ in range(count - 1):
        frames.append(game.step(game.action_space.sample())[0])
    return np.stack(frames)                                           # [count, 84, 84, 3]


@pytest.mark.parametrize("kp_type", ["permakey", "transporter"])
def test_replayed_inputs_equal_the_inputs_acted_on(kp_type, tiny_pkey_run, tiny_transporter_run):
    run = {"permakey": tiny_pkey_run, "transporter": tiny_transporter_run}[kp_type][1]
    kp_model = agent_train.load_frozen_keypoints(tf.distribute.get_strategy(), kp_type, run, "best",
                                               "mspacman", 3, "none")
    frames = mspacman_frames(10)
    centres, features = agent.observe(kp_model, frames)        # the whole model, acting
    buffer = replay.EpisodeReplay(capacity=1, sequence_length=6, seed=0)
    for step, frame in enumerate(frames):  # the action records the step, to find it again
        buffer.add(frame, step, 0.0, step == len(frames) - 1, centres=centres[step].numpy())
    windows = buffer.sample(8)
    real = windows["mask"] == 1
    steps = windows["actions"][real]
    for (encoder, kind), cached in itertools.product(agent.KEYPOINT_ENCODERS.items(),
                                                     [True, False]):
        acted_on = kind.inputs(features, centres)
        prepare = agent.make_prepare(kp_model, encoder, cached_keypoints=cached)
        replayed = prepare(tf.nest.map_structure(tf.constant, windows))["inputs"]
        for kept, rebuilt in zip(tf.nest.flatten(acted_on), tf.nest.flatten(replayed)):
            np.testing.assert_allclose(rebuilt.numpy()[real], kept.numpy()[steps],
                                       rtol=1e-5, atol=1e-5)
    assert np.abs(tf.nest.flatten(acted_on)[0]).max() > 0              # not all masked away


# --------------------------------------------------------------------------------------
# bf16: Q-values, loss and greedy actions against float32 on the same weights and frames.

# Stated tolerances: Q-values within 5% of the largest |Q| of the batch, the loss within
# 5%, and the greedy action the same on at least 90% of the states. The keypoint
# model's centres are taken from float32 here: the tiny, barely trained keypoint run's
# error maps are nearly flat, so its centres follow rounding noise (a trained model's
# moved by at most 3 px in bf16, README "Keypoint-based RL agents").
BF16_Q_ATOL_SHARE, BF16_LOSS_RTOL, BF16_ACTION_AGREEMENT = 0.05, 0.05, 0.9


@pytest.mark.parametrize("encoder", ["cnn", "gnn"])
def test_bf16_agent_is_close_to_float32(encoder, tiny_pkey_run):
    kp_model = agent_train.load_frozen_keypoints(tf.distribute.get_strategy(), "permakey",
                                               tiny_pkey_run[1], "best", "mspacman", 3, "none")
    frames = mspacman_frames(96)                                     # [96, 84, 84, 3]
    network = agent.q_network(kp_model, encoder, 1, 9)
    config = rl_loss.LearnerConfig(window_size=4, n_step=2)
    buffer = replay.EpisodeReplay(1, config.sequence_length, seed=0)
    centres, features = agent.observe(kp_model, frames)       # float32
    for step, frame in enumerate(frames):
        buffer.add(frame, step % 9, float(step % 2), step == len(frames) - 1,
                   centres=centres[step].numpy())
    windows = tf.nest.map_structure(tf.constant, buffer.sample(8))
    prepare = agent.make_prepare(kp_model, encoder)
    inputs = agent.KEYPOINT_ENCODERS[encoder].inputs(features, centres)
    q_values, losses = {}, {}
    for precision in ("float32", "bf16"):
        with layers.precision(precision):
            q, _ = network(inputs, network.initial_state(len(frames)), is_training=False)
        q_values[precision] = q.numpy()
    for precision in ("float32", "bf16"):  # training mode: moves the batch-norm averages
        with layers.precision(precision):
            losses[precision] = float(rl_loss.recurrent_double_q_loss(   # features in bf16
                network, network, prepare(windows), config))
    reference, low = q_values["float32"], q_values["bf16"]
    assert low.dtype == np.float32
    np.testing.assert_allclose(low, reference, atol=BF16_Q_ATOL_SHARE * np.abs(reference).max())
    assert losses["bf16"] == pytest.approx(losses["float32"], rel=BF16_LOSS_RTOL)
    agreement = np.mean(low.argmax(-1) == reference.argmax(-1))
    print(f"{encoder}: Q max |diff| {np.abs(low - reference).max():.2e} of max |Q| "
          f"{np.abs(reference).max():.2e}; loss {losses['bf16']:.5f} vs "
          f"{losses['float32']:.5f}; greedy actions agree on {agreement:.1%} of 96 states")
    assert agreement >= BF16_ACTION_AGREEMENT


# --------------------------------------------------------------------------------------
# Smoke run, resume, evaluate.


@pytest.fixture(scope="module")
def agent_run(tmp_path_factory, tiny_pkey_run):
    """A 300-step PermaKey-CNN run: (config, run folder)."""
    config = agent_config(tmp_path_factory.mktemp("rl_exp"), tiny_pkey_run[1])
    run = agent_train.ex.run(config_updates=config)
    return config, run.observers[0].dir


def read_json(run_dir, name):
    with open(os.path.join(run_dir, name)) as f:
        return json.load(f)


def checkpoint_counters(run_dir):
    path = tf.train.latest_checkpoint(os.path.join(run_dir, "ckpt"))
    reader = tf.train.load_checkpoint(path)
    return {name: int(reader.get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE"))
            for name in ("env_step", "updates")}


def test_smoke_run_writes_checkpoints_and_evaluations(agent_run):
    config, run_dir = agent_run
    assert run_dir.endswith(os.path.join("none", "permakey", "cnn", "mspacman", "1"))
    spec = read_json(run_dir, "model.json")
    assert spec["kind"] == "keypoint_agent" and spec["num_keypoints"] == 3
    assert spec["vis_ckpt_fname"] == os.path.abspath(config["vis_ckpt_fname"])
    # one update every 4 steps from the end of the warm-up: steps 220, 224, ..., 300
    assert checkpoint_counters(run_dir) == {"env_step": 300, "updates": 21}
    evaluations = read_json(run_dir, "evaluations.json")
    assert [e["step"] for e in evaluations] == [150, 300]
    assert all(len(e["returns"]) == 2 for e in evaluations)
    with open(os.path.join(run_dir, "evaluations.csv")) as f:
        assert f.readline().strip() == "step,mean,std,min,max,episodes,selected"
        assert len(f.readlines()) == 2
    metrics = read_json(run_dir, "metrics.json")
    assert {"eval.mean", "train.loss", "train.epsilon"} <= set(metrics)
    assert np.isfinite(metrics["train.loss"]["values"][-1])
    assert os.listdir(os.path.join(run_dir, "tb"))


def test_resume_continues_with_the_saved_replay(agent_run, capsys):
    config, run_dir = agent_run
    saved = replay.EpisodeReplay(10, 2 + 3 + 1)
    assert saved.load(os.path.join(run_dir, agent_train.REPLAY_FILE)) == 300
    assert saved.num_episodes >= 1
    # as if killed after logging an evaluation at step 310, before its checkpoint
    metrics = read_json(run_dir, "metrics.json")
    for key, value in (("steps", 310), ("values", 1.0), ("timestamps", "2026-12-05T12:00:00")):
        metrics["eval.mean"][key].append(value)
    common.write_json(os.path.join(run_dir, "metrics.json"), metrics)
    agent_train.ex.run(config_updates=dict(config, num_iters=320, resume_dir=run_dir))
    assert f"the replay too ({saved.num_episodes} episodes)" in capsys.readouterr().out
    # no second warm-up: updates at steps 304, ..., 320 as in an uninterrupted run
    assert checkpoint_counters(run_dir) == {"env_step": 320, "updates": 26}
    assert [e["step"] for e in read_json(run_dir, "evaluations.json")] == [150, 300, 320]
    assert read_json(run_dir, "metrics.json")["eval.mean"]["steps"] == [150, 300, 320]
    assert replay.saved_step(os.path.join(run_dir, agent_train.REPLAY_FILE)) == 320


def test_resume_without_a_saved_replay_warms_up_again(tmp_path, tiny_transporter_run):
    config = agent_config(tmp_path, tiny_transporter_run[1], "transporter", save_replay=False)
    run_dir = agent_train.ex.run(config_updates=config).observers[0].dir
    assert not os.path.exists(os.path.join(run_dir, agent_train.REPLAY_FILE))
    agent_train.ex.run(config_updates=dict(config, num_iters=320, resume_dir=run_dir))
    # the replay restarts empty and refills for 220 steps: no update before step 520
    assert checkpoint_counters(run_dir) == {"env_step": 320, "updates": 21}


def test_a_warm_up_shorter_than_an_episode_acts_on_until_one_has_ended(tmp_path,
                                                                     tiny_transporter_run,
                                                                     capsys):
    # A MsPacman life takes ~110-190 random steps: none has ended after 20.
    config = agent_config(tmp_path, tiny_transporter_run[1], "transporter", warmup_steps=20,
                          eval_every=1000)
    run_dir = agent_train.ex.run(config_updates=config).observers[0].dir
    assert ("no episode has ended in the 20 warm-up steps; acting on until one has, then "
            "updating") in capsys.readouterr().out
    # updates every 4 steps from the end of the first episode, not from step 20
    assert 1 <= checkpoint_counters(run_dir)["updates"] <= (300 - 110) // 4 + 1


# --------------------------------------------------------------------------------------
# The authors' checkpoint protocol: selection rule, selected checkpoints, load_ckpts.


def test_selection_rule_on_a_hand_made_sequence_of_means():
    best, kept = None, []
    for mean in (100, 90, 96, 200, 180, 195, 185.25):
        selected, best, why = agent_runs.select_policy(mean, best)
        kept.append((selected, best))
    # 90 < 0.95 x 100; 96 >= 95 becomes the best though below 100; 180 < 190; 195 >= 190;
    # 185.25 = 0.95 x 195 exactly: kept
    assert kept == [(True, 100), (False, 100), (True, 96), (True, 200), (False, 200),
                    (True, 195), (True, 185.25)]
    assert why == "mean 185.2 >= 0.95 x best 195.0"


def test_smoke_run_keeps_the_selected_checkpoints_apart(agent_run):
    _, run_dir = agent_run
    evaluations = read_json(run_dir, "evaluations.json")
    assert evaluations[0]["selected"] and evaluations[0]["why"] == "first evaluation"
    selected = [e["step"] for e in evaluations if e["selected"]]
    assert agent_runs.selected_steps(run_dir) == selected
    best = None
    for e in evaluations:  # the recorded verdicts follow the rule
        assert (e["selected"], e["best"]) == agent_runs.select_policy(e["mean"], best)[:2]
        best = e["best"]
    with open(os.path.join(run_dir, "evaluations.csv")) as f:
        assert f.readline().strip().endswith(",episodes,selected")


def test_load_ckpts_run_folders_and_the_authors_step_form(agent_run, tmp_path):
    config, run_dir = agent_run
    game_dir = os.path.dirname(run_dir)
    last = agent_runs.selected_steps(run_dir)[-1]
    [(run, checkpoint, step, how)] = agent_runs.resolve_policies(run_dir, game_dir)
    assert (run, step, how) == (run_dir, last, "selected")
    assert checkpoint == os.path.join(run_dir, "ckpt_selected", f"ckpt-{last}")
    first = agent_runs.selected_steps(run_dir)[0]
    [(run, checkpoint, step, how)] = agent_runs.resolve_policies((first,), game_dir)
    assert (run, step, how) == (run_dir, first, "selected (given)")
    with pytest.raises(common.ConfigError, match="gives 2 steps for the 1 runs in"):
        agent_runs.resolve_policies((first, first), game_dir)
    with pytest.raises(common.ConfigError, match="no selected checkpoint at step 7; selected: "):
        agent_runs.resolve_policies((7,), game_dir)
    # a run made before the rule (no ckpt_selected/) is scored at its last checkpoint
    old = tmp_path / "old"
    shutil.copytree(run_dir, old, ignore=shutil.ignore_patterns("ckpt_selected", "replay*"))
    [(_, _, step, how)] = agent_runs.resolve_policies(str(old), game_dir)
    assert how == "last (no selected checkpoint)" and step == checkpoint_counters(old)["env_step"]


# --------------------------------------------------------------------------------------
# The control: keypoints at fixed places over PermaKey's features.


def test_fixed_places_by_hand():
    np.testing.assert_allclose(keypoint_models.fixed_places(4),
                               [[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    seven = keypoint_models.fixed_places(7)
    assert seven.shape == (7, 2) and len({tuple(p) for p in seven}) == 7
    np.testing.assert_allclose(seven[[0, 4, 6]], [[-2 / 3, -2 / 3], [0, 0], [2 / 3, -2 / 3]])


def test_control_keypoints_ignore_the_frame_and_keep_permakeys_features(tiny_pkey_run):
    strategy = tf.distribute.get_strategy()
    control = agent_train.load_frozen_keypoints(strategy, "fixed", tiny_pkey_run[1], "best",
                                              "mspacman", 3, "none")
    permakey = agent_train.load_frozen_keypoints(strategy, "permakey", tiny_pkey_run[1], "best",
                                               "mspacman", 3, "none")
    frames = mspacman_frames(6)
    centres, features = agent.observe(control, frames)
    np.testing.assert_array_equal(centres, np.repeat(keypoint_models.fixed_places(3)[None], 6, 0))
    _, permakey_features = agent.observe(permakey, frames)
    np.testing.assert_allclose(features, permakey_features, atol=1e-6)
    np.testing.assert_allclose(agent.encoder_features(control, frames), features,
                               atol=1e-6)
    # the control's spec is its own, its keypoint run a PermaKey one
    assert keypoint_models.KEYPOINT_KINDS["fixed"] == "permakey"


def test_greedy_play_computes_only_the_games_still_playing(tiny_transporter_run, monkeypatch):
    """Games that ended drop out of the forward pass (rounded up to PLAYING_BUCKET); those
    still playing get the actions and recurrent state of the full batch."""
    kp_model = agent_train.load_frozen_keypoints(tf.distribute.get_strategy(), "transporter",
                                               tiny_transporter_run[1], "best", "mspacman", 3,
                                               "none")
    actor = agent.q_network(kp_model, "gnn", 1, 9)
    act = agent.make_act_fn(kp_model, actor, "gnn")
    outputs = {"full": [], "part": []}

    def recorded(name):
        def act_and_record(frames, state):
            q_values, state, centres = act(frames, state)
            outputs[name].append(q_values.numpy())
            return q_values, state, centres
        return act_and_record
    monkeypatch.setattr(play, "PLAYING_BUCKET", 2)
    frames = np.repeat(mspacman_frames(4), 2, axis=0)[:7]                  # [7, 84, 84, 3]
    full, part = (play.greedy_policy(recorded(name), actor, 7) for name in outputs)
    playing = np.array([True, False, True, True, False, False, True])
    for step in range(3):
        expected = full(frames, np.ones(7, bool))
        chosen = part(frames, playing if step else np.ones(7, bool))
        np.testing.assert_array_equal(chosen[playing], expected[playing])
    # the 4 playing games (a multiple of 2) after the first step, with the Q-values (hence
    # the recurrent state) of the full batch
    assert [len(q) for q in outputs["part"]] == [7, 4, 4]
    for step in (1, 2):
        np.testing.assert_allclose(outputs["part"][step], outputs["full"][step][playing],
                                   rtol=1e-5, atol=1e-6)


def test_evaluate_prints_the_per_seed_table_and_writes_json(agent_run, capsys):
    config, run_dir = agent_run
    run = agent_train.ex.run("evaluate", config_updates=dict(
        config, load_ckpts=f"{run_dir},{run_dir}", eval_seeds=(1, 2), num_eval_episodes=2,
        eval_time_limit=5))
    out = capsys.readouterr().out
    assert "median over seeds" in out
    result = read_json(run.observers[0].dir, "evaluation.json")
    assert result["policy_steps"] == [agent_runs.selected_steps(run_dir)[-1]] * 2
    assert f"P1: {run_dir} at step {result['policy_steps'][0]} (selected)" in out
    returns = np.array(result["returns"])
    assert returns.shape == (2, 2, 2)                          # seeds, policies, episodes
    np.testing.assert_array_equal(returns[:, 0], returns[:, 1])  # same policy, same seeds
    assert result["median_seed"] in (1, 2)
    assert (result["median"]
            == result["seed_means"][result["eval_seeds"].index(result["median_seed"])])


# --------------------------------------------------------------------------------------
# Data-parallel over two logical CPUs (conftest).


def test_two_replica_run_trains(tmp_path, tiny_transporter_run, monkeypatch):
    # Collective keys restart with every MirroredStrategy; TensorFlow caches collective
    # instances by key, so a later strategy in this process reusing them for other
    # shapes fails. Own keys, as TensorFlow's tests do ("only set this in tests").
    monkeypatch.setattr(tf.distribute.MirroredStrategy, "_collective_key_base", 10_000)
    config = agent_config(tmp_path, tiny_transporter_run[1], "transporter",
                          kpt_encoder_type="gnn", devices="/cpu:0,/cpu:1", num_iters=240,
                          eval_every=1000)
    run = agent_train.ex.run(config_updates=config)
    run_dir = run.observers[0].dir
    assert checkpoint_counters(run_dir) == {"env_step": 240, "updates": 6}
    assert np.isfinite(read_json(run_dir, "metrics.json")["train.loss"]["values"]).all()


def test_sigterm_saves_the_agent_and_stops(tmp_path, tiny_transporter_run, monkeypatch, capsys):
    epsilon_at = agent_train.agent.epsilon_at

    def signalling(step, *args):  # SIGTERM while acting at step 40 of the warm-up
        if step == 40:
            os.kill(os.getpid(), signal.SIGTERM)
        return epsilon_at(step, *args)

    monkeypatch.setattr(agent_train.agent, "epsilon_at", signalling)
    config = agent_config(tmp_path, tiny_transporter_run[1], "transporter")
    with pytest.raises(run_folders.Stopped):
        agent_train.ex.run(config_updates=config)
    run_dir = os.path.join(tmp_path, "none", "transporter", "cnn", "mspacman", "1")
    assert checkpoint_counters(run_dir) == {"env_step": 41, "updates": 0}  # the step finished
    assert "SIGTERM: stopped at step 41" in capsys.readouterr().out
    assert read_json(run_dir, "run.json")["status"] == "INTERRUPTED"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


# --------------------------------------------------------------------------------------
# Bad input: one line each.


@pytest.mark.parametrize("update, message", [
    ({"vis_ckpt_fname": None}, "vis_ckpt_fname is not set"),
    ({"vis_ckpt_fname": "no/such/run"}, "run folder no/such/run does not exist"),
    ({"kp_type": "transporter"}, "was trained with kind='permakey', requested kind='transporter'"),
    ({"num_keypoints": 7}, "was trained with num_keypoints=3, requested num_keypoints=7"),
    ({"noise_type": "both"}, "was trained with noise_type='none', requested noise_type='both'"),
    ({"vis_load": 99}, "has no 99 checkpoint"),
    ({"env": "pong"}, "unknown env 'pong'"),
    ({"kp_type": "keynet"}, "kp_type='keynet': expected one of permakey, transporter"),
    ({"kpt_encoder_type": "mlp"}, "kpt_encoder_type='mlp': expected one of cnn, gnn"),
    ({"gpu": (0, 1)}, "gpu ids 0, 1 do not exist; this machine has no GPU"),
    ({"devices": "/cpu:0,/cpu:7"}, "devices /cpu:7 do not exist; devices here:"),
    ({"devices": "/cpu:0,/cpu:1", "batch_size": 3}, "batch_size=3 is not divisible by the 2"),
    ({"num_envs": 0}, "num_envs=0: expected an integer >= 1"),
])
def test_bad_training_input_is_one_line(tmp_path, tiny_pkey_run, one_line_error, update,
                                        message):
    config = dict(agent_config(tmp_path, tiny_pkey_run[1]), **update)
    line = one_line_error(agent_train.ex, "train", config)
    assert line.startswith("error: ") and message in line, line
    assert not (tmp_path / "none").exists()  # no run folder for a run that never started


def test_unknown_named_config_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        agent_train.main(["agent_train.py", "with", "pong", "kp_type=permakey"])
    assert exit_info.value.code == 2
    line = capsys.readouterr().err.strip()
    assert line == ("error: unknown named config 'pong'; named configs: mspacman, frostbite, "
                    "frosbite, seaquest, battlezone, space_invaders, enduro, montezuma_revenge")


def test_bad_evaluate_input_is_one_line(agent_run, tmp_path, one_line_error):
    config, run_dir = agent_run
    keypoint_run = config["vis_ckpt_fname"]
    no_checkpoint = tmp_path / "no_ckpt"
    no_checkpoint.mkdir()
    shutil.copy(os.path.join(run_dir, "model.json"), no_checkpoint)
    cases = [
        ({}, "load_ckpts is not set"),
        ({"load_ckpts": "no/such/run"}, "run folder no/such/run does not exist"),
        ({"load_ckpts": keypoint_run},
         "was trained with kind='permakey', requested kind='keypoint_agent'"),
        ({"load_ckpts": run_dir, "kpt_encoder_type": "gnn"}, "requested kpt_encoder_type='gnn'"),
        ({"load_ckpts": str(no_checkpoint)}, "has no checkpoint in ckpt/"),
        ({"load_ckpts": f"{run_dir},{run_dir},{run_dir}",
          "vis_ckpt_fname": f"{keypoint_run},{keypoint_run}"},
         "vis_ckpt_fname names 2 keypoint runs for 3 policies"),
        ({"load_ckpts": run_dir, "vis_ckpt_fname": str(tmp_path)}, "was trained on keypoint run"),
        ({"load_ckpts": run_dir, "eval_seeds": "a,b"}, "eval_seeds='a,b': expected integers"),
    ]
    written = evaluation_files(config["exp_root"])
    for update, message in cases:
        line = one_line_error(agent_train.ex, "evaluate",
                              dict(config, **{"load_ckpts": None, **update}))
        assert line.startswith("error: ") and message in line, (update, line)
    assert evaluation_files(config["exp_root"]) == written


def evaluation_files(root):
    return {os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names
            if name.startswith("evaluation.json")}


def test_replay_keeps_one_episode_per_environment_and_drops_cut_ones():
    buffer = replay.EpisodeReplay(capacity=5, sequence_length=4, seed=0)
    for step in range(3):  # two environments interleaved; env 1's episode is cut
        for stream in (0, 1):
            buffer.add(np.full([2], 10 * stream + step, np.uint8), step, 0.0,
                       stream == 0 and step == 2, stream=stream)
    buffer.drop_episode(stream=1)
    buffer.add(np.full([2], 99, np.uint8), 0, 0.0, True, stream=1)   # a new one-step episode
    assert buffer.num_episodes == 2 and buffer.num_steps == 4
    frames = buffer.sample(200)["frames"][:, 0, 0]
    assert set(frames) == {0, 1, 2, 99}
