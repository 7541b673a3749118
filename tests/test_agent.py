"""Agent networks: encoder inputs and shapes, GNN equivariance, recurrence, exploration schedule."""
import numpy as np
import pytest
import tensorflow as tf

import common
import agent

N, K, C, GRID, A = 3, 5, 8, 42, 4


def gnn_frame_inputs(seed, batch=N):
    rng = np.random.default_rng(seed)
    node_features = tf.constant(rng.normal(size=[batch, K, C]), tf.float32)
    centres = tf.constant(rng.uniform(-1, 1, size=[batch, K, 2]), tf.float32)
    return node_features, centres


def test_encoder_and_q_network_output_shapes():
    cnn = agent.make_keypoint_encoder("cnn")
    assert cnn(tf.zeros([N, GRID, GRID, C]), is_training=True).shape == (N, 128)
    gnn = agent.make_keypoint_encoder("gnn", mp_num_steps=2)
    inputs = gnn_frame_inputs(0)
    assert gnn.node_outputs(*inputs, is_training=True).shape == (N, K, 64)
    assert gnn(inputs, is_training=True).shape == (N, 128)

    network = agent.RecurrentQNetwork(agent.make_keypoint_encoder("gnn"), A)
    sequences = tf.nest.map_structure(lambda x: tf.stack([x, x], axis=1), inputs)
    assert network.unroll(sequences, is_training=True).shape == (N, 2, A)
    q_values, state = network(inputs, network.initial_state(N), is_training=False)
    assert q_values.shape == (N, A)
    assert state.hidden.shape == state.cell.shape == (N, 128)


@pytest.mark.parametrize("is_training", [True, False])
def test_gnn_message_passing_is_permutation_equivariant(is_training):
    gnn = agent.GNNKeypointEncoder(mp_num_steps=2)
    gnn.node_outputs(*gnn_frame_inputs(2), is_training=True)   # moving statistics
    node_features, centres = gnn_frame_inputs(1)
    outputs = gnn.node_outputs(node_features, centres, is_training)          # [N, K, 64]
    permutation = [3, 0, 4, 2, 1]
    permuted = gnn.node_outputs(tf.gather(node_features, permutation, axis=1),
                                tf.gather(centres, permutation, axis=1), is_training)
    # Permuting changes the order in which messages are summed: float32 rounding of
    # ~2e-5 on outputs of order 1 was seen; a non-equivariant layer differs by ~0.1.
    np.testing.assert_allclose(permuted, tf.gather(outputs, permutation, axis=1),
                               rtol=1e-4, atol=1e-4)
    # Not trivially equivariant: node 0's output depends on the other keypoints.
    moved = tf.tensor_scatter_nd_update(centres, [[0, 4]], [[0.9, -0.9]])
    changed = gnn.node_outputs(node_features, moved, is_training)
    assert np.abs(changed[0, 0] - outputs[0, 0]).max() > 1e-3


def test_unroll_equals_stepping_from_a_zero_state():
    network = agent.RecurrentQNetwork(agent.GNNKeypointEncoder(), A)
    steps = [gnn_frame_inputs(seed) for seed in range(4)]
    sequences = tf.nest.map_structure(lambda *xs: tf.stack(xs, axis=1), *steps)
    agent.create_variables(network, sequences)
    unrolled = network.unroll(sequences, is_training=False)                 # [N, 4, A]
    state = network.initial_state(N)
    for t, inputs in enumerate(steps):
        q_values, state = network(inputs, state, is_training=False)
        np.testing.assert_allclose(unrolled[:, t], q_values, atol=1e-5)
    # The LSTM carries memory: the same frame gives other Q-values later on.
    assert np.abs(unrolled[:, 0] - network.unroll(tf.nest.map_structure(
        lambda x: x[:, ::-1], sequences), is_training=False)[:, 3]).max() > 1e-4


def test_batch_norm_statistics_are_replica_local_and_read_as_their_mean():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        network = agent.RecurrentQNetwork(agent.CNNKeypointEncoder(), A)
        agent.create_variables(network, tf.zeros([1, 1, 6, 6, C]))
    before = network.unroll(tf.ones([1, 1, 6, 6, C]), is_training=False)
    assert np.abs(before).max() < 100          # unit variances before any update
    shards = strategy.experimental_distribute_values_from_function(
        lambda context: tf.fill([2, 1, 6, 6, C], float(context.replica_id_in_sync_group)))
    strategy.run(lambda x: network.unroll(x, is_training=True), args=(shards,))
    statistics = [v for v in network.variables if v.name.endswith("moving_mean/average:0")]
    assert statistics
    for variable in statistics:
        local = [value.numpy() for value in variable.values]
        assert np.abs(local[0] - local[1]).max() > 1e-3
        np.testing.assert_allclose(variable.numpy(), (local[0] + local[1]) / 2, atol=1e-6)


def test_bad_encoder_config_is_a_config_error():
    with pytest.raises(common.ConfigError, match="kpt_encoder_type='transformer'"):
        agent.make_keypoint_encoder("transformer")
    with pytest.raises(common.ConfigError, match="mp_num_steps=0"):
        agent.make_keypoint_encoder("gnn", mp_num_steps=0)


def test_epsilon_decays_linearly_from_one_to_a_tenth_over_training():
    assert agent.epsilon_at(0, 400_000) == 1.0
    assert agent.epsilon_at(100_000, 400_000) == pytest.approx(0.775)
    assert agent.epsilon_at(400_000, 400_000) == pytest.approx(0.1)
    assert agent.epsilon_at(500_000, 400_000) == pytest.approx(0.1)


def test_epsilon_greedy_acts_greedily_at_zero_and_uniformly_at_one():
    rng = np.random.default_rng(0)
    q_values = np.array([0.1, 0.7, 0.3])
    assert {agent.epsilon_greedy(q_values, 0.0, rng) for _ in range(50)} == {1}
    counts = np.bincount([agent.epsilon_greedy(q_values, 1.0, rng) for _ in range(3000)],
                         minlength=3)
    assert np.abs(counts - 1000).max() < 5 * np.sqrt(1000 * 2 / 3)


# --------------------------------------------------------------------------------------
# Keypoint inputs, on a 5 x 5 grid (cells at -1, -0.5, 0, 0.5, 1) with std 0.5: a
# Gaussian is exp(-1) = 0.37 one cell away, exp(-2) = 0.14 one diagonal away, so each
# keypoint's own mask is a plus sign; cell (2, 2) lies diagonally to both keypoints and
# only their sum (0.27) passes the 0.2 threshold.

CENTRES = [[[-0.5, -0.5], [0.5, 0.5]]]                        # cells (1, 1) and (3, 3)


def tiny_features():
    values = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)   # value = 5 row + col
    return tf.constant(np.concatenate([values, np.ones_like(values)], axis=-1))


def test_cnn_inputs_keep_the_features_under_the_summed_heatmaps():
    masked = agent.cnn_inputs(tiny_features(), tf.constant(CENTRES), std=0.5)
    kept = {(1, 1), (0, 1), (2, 1), (1, 0), (1, 2),
            (3, 3), (2, 3), (4, 3), (3, 2), (3, 4), (2, 2)}
    expected = np.zeros([1, 5, 5, 2], np.float32)
    for row, col in kept:
        expected[0, row, col] = [5 * row + col, 1.0]
    np.testing.assert_array_equal(masked, expected)


def test_gnn_inputs_average_the_features_under_each_keypoints_own_heatmap():
    centres = tf.constant([[[-0.5, -0.5], [0.5, 0.5], [5.0, 5.0]]])   # last: off grid
    nodes, positions = agent.gnn_inputs(tiny_features(), centres, std=0.5)
    expected = [[(6 + 1 + 11 + 5 + 7) / 5, 1.0],
                [(18 + 13 + 23 + 17 + 19) / 5, 1.0],
                [0.0, 0.0]]                                   # empty mask
    np.testing.assert_allclose(nodes[0], expected, rtol=1e-6)
    np.testing.assert_array_equal(positions, centres)
