"""The keypoint agent's networks: keypoint encoders, the recurrent Q-network over a frozen
keypoint model, acting with it, and exploration.

The paper's keypoint agents (docs/DESIGN.md, "The keypoint agent"). A Q-network is
`encoder -> LSTM(128) -> linear Q head`, with no frame stacking: the LSTM carries the
memory. Two keypoint encoders turn the frozen keypoint model's output into a 128-vector
per frame:
  "cnn": conv tower over the encoder features masked by the keypoint heatmaps;
  "gnn": graph network over one node per keypoint (graph_nets).
Each is registered in KEYPOINT_ENCODERS with the function that builds its inputs from
the keypoint model's features and centres; the scripts read only that table, so a new
encoder is one class, one input function and one entry here. The keypoint model is any
of keypoint_models' (PermaKey, Transporter, the fixed-place control): the agent reads it
through the calls they share.

Speed: the keypoint model's expensive part runs once per frame, while acting (observe);
the replay keeps each frame's centres [K, 2], and an update recomputes only the encoder
features of the replayed frames (make_prepare, encoder_features).

Every module takes the batch-norm mode as Sonnet does: `is_training` (batch statistics,
moving averages updated) and `test_local_stats` (batch statistics without updating
them when `is_training` is False).

Precision: the encoders' convolutions and matmuls are layers.py's, so inside
`layers.precision("bf16")` they compute in bfloat16; batch norms, the LSTM, the Q head
and every tensor passed between modules stay float32, as do all variables.
"""
import types
from typing import Callable, NamedTuple

import numpy as np
import sonnet as snt
import tensorflow as tf
from graph_nets import graphs, modules, utils_tf

import layers
import rl_loss
import vision_modules
from common import ConfigError

EMBEDDING_SIZE = 128
LSTM_UNITS = 128
POSITION_CODE_SIZE = 32
GRAPH_LATENT_SIZE = 32   # encoder and message-passing MLP width, and edge feature size
GRAPH_DECODER_SIZE = 64


class LayerBNReLU(snt.Module):
    """layer -> batch norm -> ReLU, the paper's hidden-layer pattern.

    The layer should have no bias: the batch-norm offset replaces it. The layer computes
    in the current precision; the batch norm and the output are float32.
    """

    def __init__(self, layer, name=None):
        super().__init__(name=name)
        self._layer = layer
        self._batch_norm = snt.BatchNorm(create_scale=True, create_offset=True)

    def __call__(self, inputs, is_training, test_local_stats=False):
        outputs = self._batch_norm(tf.cast(self._layer(inputs), tf.float32),
                                   is_training=is_training, test_local_stats=test_local_stats)
        return tf.nn.relu(outputs)


def dense_bn_relu(size):
    return LayerBNReLU(layers.Linear(size, with_bias=False))


class CNNKeypointEncoder(snt.Module):
    """Transporter/KeyQN-style encoder of keypoint-masked feature maps.

    Conv32 k3 s1 -> Conv32 k3 s1 -> Conv32 k3 s2 -> Conv32 k3 s1 (each BN + ReLU) ->
    flatten -> Dense(128) + ReLU. Input [N, 42, 42, C], output [N, 128].
    """

    def __init__(self, name=None):
        super().__init__(name=name)
        self._convs = [LayerBNReLU(layers.Conv2D(32, 3, stride=stride, with_bias=False))
                       for stride in (1, 1, 2, 1)]
        self._dense = layers.Linear(EMBEDDING_SIZE)

    def __call__(self, masked_features, is_training, test_local_stats=False):
        x = masked_features                                      # [N, 42, 42, C]
        for conv in self._convs:
            x = conv(x, is_training, test_local_stats)            # -> [N, 21, 21, 32]
        x = snt.Flatten()(x)                                     # [N, 21 * 21 * 32]
        return tf.cast(tf.nn.relu(self._dense(x)), tf.float32)   # [N, 128]


class GraphMLP(snt.Module):
    """Two Dense + BN + ReLU layers, the node/edge model inside a graph_nets block.

    graph_nets 1.1.0 calls its node and edge models with the features only, so the
    batch-norm mode reaches them through `bn_mode`, a namespace with `is_training` and
    `test_local_stats` that the owning encoder sets at the start of every call.
    """

    def __init__(self, width, bn_mode, name=None):
        super().__init__(name=name)
        self._layers = [dense_bn_relu(width) for _ in range(2)]
        self._bn_mode = bn_mode

    def __call__(self, inputs):
        x = inputs
        for layer in self._layers:
            x = layer(x, self._bn_mode.is_training, self._bn_mode.test_local_stats)
        return x


def fully_connected_graph(nodes):
    """GraphsTuple of N graphs of K nodes, all K * K edges (self-edges included).

    nodes: [N, K, D] with static N and K. Edge features are zeros of size 32.
    """
    num_graphs, num_nodes, node_size = nodes.shape
    graph = graphs.GraphsTuple(
        nodes=tf.reshape(nodes, [num_graphs * num_nodes, node_size]),
        edges=None, globals=None, receivers=None, senders=None,
        n_node=tf.fill([num_graphs], num_nodes),
        n_edge=tf.zeros([num_graphs], tf.int32))
    graph = utils_tf.fully_connect_graph_static(graph, exclude_self_edges=False)
    return graph.replace(edges=tf.zeros([num_graphs * num_nodes ** 2, GRAPH_LATENT_SIZE]))


class GNNKeypointEncoder(snt.Module):
    """Graph network over keypoints (graph_nets), the paper's PKey-GNN encoder.

    Node k = [mean encoder feature inside keypoint k's mask, positional code of (y, x)],
    code = Dense(64) + BN + ReLU -> Dense(32). Fully connected graph with self-edges.
    GraphIndependent encoder (width 32) -> `mp_num_steps` InteractionNetwork steps
    (width 32, summed messages, separate weights per step) -> GraphIndependent node
    decoder (width 64) -> flatten the K node outputs -> Dense(128) -> Dense(128), each
    with BN + ReLU.
    Inputs (node_features [N, K, C], centres [N, K, 2]), output [N, 128].
    """

    def __init__(self, mp_num_steps=1, name=None):
        super().__init__(name=name)
        self._bn_mode = types.SimpleNamespace(is_training=False, test_local_stats=False)

        def mlp(width):
            return lambda: GraphMLP(width, self._bn_mode)

        self._position_hidden = dense_bn_relu(64)
        self._position_code = layers.Linear(POSITION_CODE_SIZE)
        self._graph_encoder = modules.GraphIndependent(
            edge_model_fn=mlp(GRAPH_LATENT_SIZE), node_model_fn=mlp(GRAPH_LATENT_SIZE))
        self._message_passing = [
            modules.InteractionNetwork(edge_model_fn=mlp(GRAPH_LATENT_SIZE),
                                       node_model_fn=mlp(GRAPH_LATENT_SIZE))
            for _ in range(mp_num_steps)]
        self._graph_decoder = modules.GraphIndependent(
            node_model_fn=mlp(GRAPH_DECODER_SIZE))
        self._readout = [dense_bn_relu(EMBEDDING_SIZE) for _ in range(2)]

    def node_outputs(self, node_features, centres, is_training, test_local_stats=False):
        """Decoded node features [N, K, 64], one row per keypoint, in input order.

        Everything up to here is permutation-equivariant in the keypoints.
        """
        self._bn_mode.is_training = is_training
        self._bn_mode.test_local_stats = test_local_stats
        code = self._position_hidden(centres, is_training, test_local_stats)  # [N, K, 64]
        code = tf.cast(self._position_code(code), tf.float32)                # [N, K, 32]
        graph = fully_connected_graph(tf.concat([node_features, code], axis=-1))
        graph = self._graph_encoder(graph)
        for step in self._message_passing:
            graph = step(graph)
        graph = self._graph_decoder(graph)                                  # nodes [N*K, 64]
        num_graphs, num_nodes = centres.shape[:2]
        return tf.reshape(graph.nodes, [num_graphs, num_nodes, GRAPH_DECODER_SIZE])

    def __call__(self, inputs, is_training, test_local_stats=False):
        node_features, centres = inputs                      # [N, K, C], [N, K, 2]
        nodes = self.node_outputs(node_features, centres, is_training, test_local_stats)
        x = snt.Flatten()(nodes)                             # [N, K * 64]
        for layer in self._readout:
            x = layer(x, is_training, test_local_stats)      # [N, 128]
        return x


# --------------------------------------------------------------------------------------
# Encoder inputs: the keypoint model's features [N, H, W, C] (42 x 42) and centres
# [N, K, 2], with heatmaps rendered from the centres on the features' grid.

HEATMAP_STD = 0.15
MASK_THRESHOLD = 0.2


def keypoint_heatmaps(features, centres, std):
    """Gaussian heatmaps [N, H, W, K] of the centres [N, K, 2] on the features' grid."""
    height, width = features.shape[1:3]
    return vision_modules.gaussian_heatmaps(centres, height, width, std)


def cnn_inputs(features, centres, std=HEATMAP_STD, threshold=MASK_THRESHOLD):
    """Features [N, H, W, C] kept where the summed heatmaps exceed `threshold`, else 0."""
    heatmaps = keypoint_heatmaps(features, centres, std)                 # [N, H, W, K]
    summed = tf.reduce_sum(heatmaps, axis=-1, keepdims=True)             # [N, H, W, 1]
    return features * tf.cast(summed > threshold, features.dtype)        # [N, H, W, C]


def gnn_inputs(features, centres, std=HEATMAP_STD, threshold=MASK_THRESHOLD):
    """(node features [N, K, C], centres [N, K, 2]) for the GNN encoder.

    Node k's feature is the mean of `features` [N, H, W, C] over the cells where
    heatmap k exceeds `threshold` (0 if there are none).
    """
    heatmaps = keypoint_heatmaps(features, centres, std)                 # [N, H, W, K]
    masks = tf.cast(heatmaps > threshold, features.dtype)                # [N, H, W, K]
    sums = tf.einsum("nhwc,nhwk->nkc", features, masks)                  # [N, K, C]
    counts = tf.reduce_sum(masks, axis=[1, 2])[:, :, tf.newaxis]         # [N, K, 1]
    return tf.math.divide_no_nan(sums, counts), centres


def gnn_encoder(mp_num_steps):
    if not (isinstance(mp_num_steps, int) and mp_num_steps >= 1):
        raise ConfigError(f"mp_num_steps={mp_num_steps!r}: expected an integer >= 1")
    return GNNKeypointEncoder(mp_num_steps)


class KeypointEncoderKind(NamedTuple):
    build: Callable  # mp_num_steps -> encoder module, inputs [N, ...] -> [N, 128]
    inputs: Callable  # (features [N, H, W, C], centres [N, K, 2]) -> the encoder's inputs


# The `kpt_encoder_type` config values.
KEYPOINT_ENCODERS = {
    "cnn": KeypointEncoderKind(lambda mp_num_steps: CNNKeypointEncoder(), cnn_inputs),
    "gnn": KeypointEncoderKind(gnn_encoder, gnn_inputs),
}


def keypoint_encoder_kind(kpt_encoder_type):
    """The KEYPOINT_ENCODERS entry of a config value; ConfigError if there is none."""
    if kpt_encoder_type not in KEYPOINT_ENCODERS:
        raise ConfigError(f"kpt_encoder_type={kpt_encoder_type!r}: expected one of "
                          f"{', '.join(KEYPOINT_ENCODERS)}")
    return KEYPOINT_ENCODERS[kpt_encoder_type]


def make_keypoint_encoder(kpt_encoder_type, mp_num_steps=1):
    """The encoder named by the `kpt_encoder_type` config value ("cnn" or "gnn")."""
    return keypoint_encoder_kind(kpt_encoder_type).build(mp_num_steps)


def merge_batch_time(x):
    """[B, T, ...] -> [B * T, ...], keeping static shapes."""
    return tf.reshape(x, [-1] + x.shape[2:].as_list())


class RecurrentQNetwork(snt.Module):
    """encoder -> LSTM(128) -> linear Q head, for one step or along sequences.

    `encoder(inputs, is_training, test_local_stats)` maps a nest of [N, ...] tensors to
    [N, D]; the keypoint encoders above, or anything with that signature.
    """

    def __init__(self, encoder, num_actions, name=None):
        super().__init__(name=name)
        self._encoder = encoder
        self._lstm = snt.LSTM(LSTM_UNITS)
        self._q_head = snt.Linear(num_actions)

    def initial_state(self, batch_size):
        """Zero LSTM state for `batch_size` sequences."""
        return self._lstm.initial_state(batch_size)

    def __call__(self, inputs, state, is_training, test_local_stats=False):
        """One step, for acting: inputs nest [B, ...] -> (Q [B, A], next LSTM state)."""
        embedding = self._encoder(inputs, is_training, test_local_stats)   # [B, D]
        output, state = self._lstm(embedding, state)                        # [B, 128]
        return self._q_head(output), state

    def unroll(self, inputs, is_training, test_local_stats=False):
        """Q-values along sequences from a zero LSTM state: nest [B, T, ...] -> [B, T, A].

        All B * T frames go through the encoder as one batch (one set of batch-norm
        statistics), then the LSTM runs over T.
        """
        inputs = tf.nest.map_structure(tf.convert_to_tensor, inputs)
        batch_size, length = tf.nest.flatten(inputs)[0].shape[:2]
        frames = tf.nest.map_structure(merge_batch_time, inputs)            # [B*T, ...]
        embeddings = self._encoder(frames, is_training, test_local_stats)   # [B*T, D]
        embeddings = tf.reshape(embeddings, [batch_size, length, -1])       # [B, T, D]
        outputs, _ = snt.static_unroll(
            self._lstm, tf.transpose(embeddings, [1, 0, 2]),                # [T, B, D]
            self.initial_state(batch_size))                                 # [T, B, 128]
        return self._q_head(tf.transpose(outputs, [1, 0, 2]))               # [B, T, A]


def replica_local_statistics(next_creator, **kwargs):
    """Variable creator making the non-trainable (batch-norm statistics) variables
    replica-local, synchronised on read as the mean over replicas."""
    if kwargs.get("trainable") is False:
        kwargs["synchronization"] = tf.VariableSynchronization.ON_READ
        kwargs["aggregation"] = tf.VariableAggregation.MEAN
    return next_creator(**kwargs)


def create_variables(network, example_inputs):
    """Create the network's variables with one eager call on `example_inputs` [B, T, ...].

    Call it before any `tf.function` traces a step, under `strategy.scope()` when a
    tf.distribute strategy is used (docs/DESIGN.md, "Notes on the stack"). The
    batch-norm moving statistics are made replica-local: each replica updates them from
    its own shard, and reads outside the replicas (acting, checkpoints) see the mean
    over replicas. With Sonnet's defaults they would be mirrored variables that each
    replica silently overwrites with its own shard's statistics.
    """
    with tf.variable_creator_scope(replica_local_statistics):
        network.unroll(example_inputs, is_training=False)
    start_moving_variances_at_one(network)


def start_moving_variances_at_one(network):
    """Report a moving variance of 1 until the first training update.

    Sonnet's moving averages start at 0, so before any update a batch norm in
    inference mode (acting during warm-up) divides by sqrt(eps) and a few layers give
    outputs around 1e30. The first update replaces the value entirely (the averages
    are debiased), so this changes nothing afterwards.
    """
    for module in network.submodules:
        if isinstance(module, snt.BatchNorm):
            average = module.moving_variance.average
            average.assign(tf.ones_like(average))


def epsilon_at(step, total_steps, start=1.0, end=0.1):
    """Linear exploration schedule: `start` at step 0, `end` from `total_steps` on."""
    fraction = min(step / total_steps, 1.0)
    return start + fraction * (end - start)


def epsilon_greedy(q_values, epsilon, rng):
    """A uniformly random action with probability epsilon, else argmax of q_values [A]."""
    if rng.random() < epsilon:
        return int(rng.integers(len(q_values)))
    return int(np.argmax(q_values))


# --------------------------------------------------------------------------------------
# The frozen keypoint model's output as the agent reads it (keypoint_models' interface)


def observe(kp_model, frames):
    """The whole frozen keypoint model, while acting: uint8 frames [N, 84, 84, 3] ->
    centres [N, K, 2] and encoder features [N, 42, 42, C]."""
    images = tf.cast(frames, tf.float32) / 255.0
    centres, _, features = kp_model.keypoints_and_features(images, is_training=False)
    return centres, features


def encoder_features(kp_model, frames):
    """Only the cheap part of `observe`, for replayed frames whose centres were kept:
    uint8 [N, 84, 84, 3] -> encoder features [N, 42, 42, C] (PermaKey: the last LSP
    layer's activations; Transporter: its encoder's output), float32."""
    return kp_model.features(tf.cast(frames, tf.float32) / 255.0, is_training=False)


def make_prepare(kp_model, kpt_encoder_type, cached_keypoints=True):
    """Replay windows -> the loss batch of rl_loss, run on each replica's shard.

    The inputs are rebuilt from the stored frames and centres: the same inputs the
    agent acted on (a test checks this), without re-running the keypoint model. With
    `cached_keypoints=False` the stored centres are ignored and the whole frozen model
    runs again on the frames (same inputs, far slower with PermaKey: `make bench`
    compares the two).
    """
    to_inputs = KEYPOINT_ENCODERS[kpt_encoder_type].inputs

    def prepare(windows):
        batch_size, length = windows["frames"].shape[:2]                 # [b, T, 84, 84, 3]
        frames = merge_batch_time(windows["frames"])               # [b*T, 84, 84, 3]
        if cached_keypoints:
            centres = merge_batch_time(windows["centres"])         # [b*T, K, 2]
            features = encoder_features(kp_model, frames)
        else:
            centres, features = observe(kp_model, frames)
        inputs = to_inputs(features, centres)                            # [b*T, ...]
        inputs = tf.nest.map_structure(
            lambda x: tf.reshape(x, [batch_size, length] + x.shape[1:].as_list()), inputs)
        return dict(inputs=inputs, **{key: windows[key]
                                      for key in ("actions", "rewards", "dones", "mask")})

    return prepare


# --------------------------------------------------------------------------------------
# Q-networks over a keypoint model, and acting


def q_network(kp_model, kpt_encoder_type, mp_num_steps, num_actions):
    """A recurrent Q-network over the keypoint encoder, its variables created (one eager
    call on the keypoint model's output for a blank frame; docs/DESIGN.md, "Notes on the stack")."""
    kind = keypoint_encoder_kind(kpt_encoder_type)
    centres, features = observe(kp_model, tf.zeros([1, 84, 84, 3], tf.uint8))
    example = tf.nest.map_structure(lambda x: x[:, tf.newaxis],            # [1, 1, ...]
                                    kind.inputs(features, centres))
    encoder = kind.build(mp_num_steps)
    network = RecurrentQNetwork(encoder, num_actions)
    create_variables(network, example)
    return network


def build_q_networks(strategy, *network_args):
    """Online and target Q-networks (under the strategy), a plain actor copy, and
    `sync_actor()`, which copies the online network into the actor.

    The target and the actor start as copies of the online network. Acting and
    evaluation read the actor, synced after updates: under several hosts, reading the
    online network's replica-local batch-norm statistics is a collective that every
    worker must join, which acting (own pace) and evaluation (chief only) cannot.
    """
    with strategy.scope():
        online, target = q_network(*network_args), q_network(*network_args)
        rl_loss.soft_update(target.trainable_variables, online.trainable_variables, 1.0)
    actor = q_network(*network_args)

    @tf.function
    def sync_actor():
        """All online variables (weights and batch-norm statistics) into the actor."""
        for actor_variable, online_variable in zip(actor.variables, online.variables,
                                                   strict=True):
            actor_variable.assign(online_variable)

    sync_actor()
    return online, target, actor, sync_actor


def make_act_fn(kp_model, actor, kpt_encoder_type, precision="float32"):
    """One batched forward pass of keypoint model and actor Q-network for all envs,
    computed in `precision` (layers.precision)."""
    to_inputs = KEYPOINT_ENCODERS[kpt_encoder_type].inputs

    @tf.function
    def act(frames, state):
        """uint8 frames [N, 84, 84, 3], LSTM state -> Q [N, A], next state, centres [N, K, 2]."""
        with layers.precision(precision):
            centres, features = observe(kp_model, frames)
            q_values, state = actor(to_inputs(features, centres), state, is_training=False)
        return q_values, state, centres

    return act


def zero_where(state, done):
    """Restart the LSTM state of the environments whose episode ended: done [N] bool."""
    keep = tf.constant(1.0 - done.astype(np.float32))[:, tf.newaxis]      # [N, 1]
    return tf.nest.map_structure(lambda s: s * keep, state)
