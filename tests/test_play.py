"""Episodes for the agents: seed streams that never meet, and each distinct start played
once with the same returns as playing every episode."""
import numpy as np
import pytest
import tensorflow as tf

import agent
import agent_runs
import keypoint_models
import play
from common import ConfigError

TRAINING_SEEDS = range(10)
EVAL_SEEDS = range(1, 6)


def test_no_two_purposes_share_an_environment_seed():
    """Training environments (from step 0 and after resumes), the periodic evaluations that
    select checkpoints, and the protocol's episodes (eval_seeds 1-5, 10 episodes each, as
    in the paper) draw disjoint environment seeds, whatever the training seed: so no
    (env seed, no-op count) pair is shared either."""
    purposes = {
        "training": {s for seed in TRAINING_SEEDS for step in (0, 10_000, 50_000)
                     for s in play.env_seeds(seed, 8, play.TRAIN_SEEDS, 0, step)},
        "selection": {s for seed in TRAINING_SEEDS
                      for s in play.env_seeds(seed, 10, play.SELECTION_SEEDS)},
        "protocol": {s for seed in EVAL_SEEDS
                     for s in play.env_seeds(seed, 10, play.PROTOCOL_SEEDS)},
    }
    assert len(purposes["selection"]) == 100 and len(purposes["protocol"]) == 50
    names = list(purposes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not purposes[a] & purposes[b], f"{a} and {b} share seeds"
    # the fault this fixes: training seed 1's selection episodes were eval seed 1's protocol
    assert set(play.env_seeds(1, 10, play.SELECTION_SEEDS)).isdisjoint(
        play.env_seeds(1, 10, play.PROTOCOL_SEEDS))


def test_start_keys_tell_equal_starts_apart_only_where_the_game_is_deterministic():
    seeds = play.env_seeds(1, 16, play.PROTOCOL_SEEDS)
    keys = play.start_keys("mspacman", seeds, "none", 100)
    assert len(set(keys)) < len(seeds)  # 16 episodes, at most 30 no-op counts: some alike
    # with bars or sticky actions every seed's episode is its own
    assert len(set(play.start_keys("mspacman", seeds, "both", 100))) == len(seeds)
    assert len(set(play.start_keys("mspacman", seeds, "none", 100, 0.25))) == len(seeds)


@pytest.fixture(scope="module")
def greedy(tiny_pkey_run):
    """policy_for(count): a greedy policy of an untrained GNN Q-network over the control's
    keypoints (fixed places on a PermaKey run's features: the frames still steer it, at a
    fraction of PermaKey's cost per frame, which would dominate the suite here)."""
    tf.random.set_seed(0)
    permakey = keypoint_models.load_agent_keypoints(
        "permakey", tiny_pkey_run[1], "best",
        {"env": "mspacman", "num_keypoints": 3, "noise_type": "none"})
    kp_model = keypoint_models.FixedKeypoints(permakey, 3)
    actor = agent.q_network(kp_model, "gnn", 1, 9)
    act = agent.make_act_fn(kp_model, actor, "gnn")
    return lambda count: play.greedy_policy(act, actor, count)


def test_playing_each_distinct_start_once_gives_every_episodes_return(greedy):
    seeds = play.env_seeds(1, 16, play.PROTOCOL_SEEDS)
    every = play.play_returns(greedy(len(seeds)), "mspacman", "none", seeds, 150, False)
    once, keys = play.play_distinct(greedy, "mspacman", "none", seeds, 150, False)
    assert len(set(keys)) < len(seeds)
    assert every.any()  # the policy scores: a return of 0 everywhere would prove nothing
    np.testing.assert_array_equal(once, every)  # bit for bit


def test_run_at_step_names_one_selected_checkpoint():
    assert agent_runs.run_and_step("rl_exp/a/1@10000") == ("rl_exp/a/1", 10000)
    assert agent_runs.run_and_step("rl_exp/a/1") == ("rl_exp/a/1", None)
    with pytest.raises(ConfigError, match="RUN@STEP"):
        agent_runs.run_and_step("rl_exp/a/1@best")
