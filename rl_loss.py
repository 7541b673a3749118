"""Recurrent double Q-learning for the keypoint agent (docs/DESIGN.md, "The keypoint agent").

Two parts (the Q-network's inputs are built with its encoder, in agent.py):
  2. n-step double-Q targets and the recurrent TD loss over sampled windows;
  3. the learner step (Adam, global-norm clipping, soft target update), which runs
     eagerly, inside `tf.function` and under a tf.distribute strategy.

A training batch is a dict of [B, T, ...] tensors, T >= window_size + n_step:
  "inputs":  the Q-network's inputs (a nest, e.g. `agent.cnn_inputs` of every frame);
  "actions": int32, "rewards": float32, "dones": float32 (1 where the step's
             transition ended the episode, and on padding), "mask": float32 (1 on real
             steps, 0 on padding past the episode end), as `replay.EpisodeReplay` gives.
"""
import dataclasses

import numpy as np
import tensorflow as tf

import layers
from common import ConfigError

# --------------------------------------------------------------------------------------
# 2. Targets and loss.

def double_q_values(q_select, q_evaluate):
    """Q_evaluate(s, argmax_a Q_select(s, a)): [..., A], [..., A] -> [...]."""
    best_actions = tf.argmax(q_select, axis=-1, output_type=tf.int32)
    return tf.gather(q_evaluate, best_actions, batch_dims=len(best_actions.shape))


def n_step_double_q_targets(rewards, dones, q_online, q_target, n_step, gamma):
    """Textbook n-step double-Q targets for steps t = 0 .. T - n_step - 1.

        G_t = sum_{i<n} gamma^i r_{t+i}
              + gamma^n (1 - done) Q_target(s_{t+n}, argmax_a Q_online(s_{t+n}, a))

    `dones[t] = 1` means the transition taken at step t ended the episode: its reward
    r_t counts, and nothing after it does. So the sum stops at the first done inside
    the window and `(1 - done)` = prod_{i<n} (1 - dones[t+i]) drops the bootstrap:
    no value is ever taken from past a terminal step.

    rewards, dones: [B, T]; q_online, q_target: [B, T, A]. Returns [B, T - n_step].
    """
    num_targets = rewards.shape[1] - n_step
    returns = tf.zeros_like(rewards[:, :num_targets])                  # [B, T - n]
    alive = tf.ones_like(returns)                                      # no done yet
    for i in range(n_step):
        returns += alive * gamma ** i * rewards[:, i:i + num_targets]
        alive *= 1.0 - dones[:, i:i + num_targets]
    bootstrap = double_q_values(q_online[:, n_step:], q_target[:, n_step:])  # [B, T - n]
    return returns + alive * gamma ** n_step * bootstrap


def huber(x, delta=1.0):
    """0.5 x^2 for |x| <= delta, delta (|x| - delta / 2) beyond: linear tails."""
    abs_x = tf.abs(x)
    return tf.where(abs_x <= delta, 0.5 * tf.square(x), delta * (abs_x - 0.5 * delta))


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """Recurrent double Q-learning hyperparameters of the paper's agents."""
    window_size: int = 8        # steps per sequence that carry a loss
    n_step: int = 3
    gamma: float = 0.99
    tau: float = 0.005          # soft target update rate, after every update
    max_grad_norm: float = 10.0

    @property
    def sequence_length(self):
        """Steps to sample per window: window_size + n_step + 1, as the authors sampled.

        The targets of the window_size loss steps need window_size + n_step steps; the
        authors' one extra step is sampled but not used by the loss.
        """
        return self.window_size + self.n_step + 1


def recurrent_double_q_loss(online, target, batch, config):
    """Huber TD loss on the first `window_size` steps of each sequence.

    Both networks unroll every sequence from a zero LSTM state. The online network
    (training mode) gives Q(s_t, a_t) and selects the bootstrap action; the target
    network evaluates it, normalising with the batch's statistics without touching its
    own moving averages (the target's batch-norm statistics are never read).

    Huber (delta 1) rather than squared error, as in DQN: with sign-clipped rewards
    most TD errors are below 1, where it is 0.5 x squared error, and its linear tails
    bound the gradient of the large errors of early training and stale windows.

    Returns this replica's share of the mean over all sequences and loss steps of all
    replicas (`tf.nn.compute_average_loss`), padded steps counting as zero, so that
    summing the replicas' gradients gives the full batch's gradient.
    """
    num_steps = batch["rewards"].shape[1]
    if num_steps < config.window_size + config.n_step:
        raise ValueError(f"sequences of {num_steps} steps are too short for window_size "
                         f"{config.window_size} + n_step {config.n_step}")
    window = slice(0, config.window_size)
    q_online = online.unroll(batch["inputs"], is_training=True)          # [B, T, A]
    q_target = target.unroll(batch["inputs"], is_training=False,
                             test_local_stats=True)                      # [B, T, A]
    targets = n_step_double_q_targets(batch["rewards"], batch["dones"], q_online,
                                      q_target, config.n_step, config.gamma)
    q_taken = tf.gather(q_online, batch["actions"], batch_dims=2)        # [B, T]
    td_errors = tf.stop_gradient(targets[:, window]) - q_taken[:, window]  # [B, W]
    step_losses = huber(td_errors) * batch["mask"][:, window]            # [B, W]
    return tf.nn.compute_average_loss(tf.reduce_mean(step_losses, axis=1))


# --------------------------------------------------------------------------------------
# 3. The learner step.

def soft_update(target_variables, online_variables, tau):
    """target <- (1 - tau) target + tau online, pairwise; tau = 1 copies."""
    for target_variable, online_variable in zip(target_variables, online_variables,
                                                strict=True):
        target_variable.assign((1.0 - tau) * target_variable + tau * online_variable)


def clip_by_global_norm_across_replicas(gradients, max_norm):
    """Scale this replica's gradients so that their sum over replicas has global norm
    at most `max_norm`.

    A tf.keras optimizer's own clipping (global_clipnorm) acts on each replica's
    gradients before it sums them, which is not the full batch's norm; so clipping is
    done here, on the norm of the sum (one extra all-reduce), and the optimizer then
    sums the scaled gradients. Without a strategy the "sum" is the gradients.
    """
    summed = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, gradients)
    norm = tf.linalg.global_norm(summed)
    scale = max_norm / tf.maximum(norm, max_norm)
    return [gradient * scale for gradient in gradients]


def make_optimizer(learning_rate=1e-4, variables=()):
    """Adam, lr 1e-4, as the paper's agents. Create it under `strategy.scope()` if any.

    Given the `variables` it will update, its slots are created now: a `tf.function`
    whose first trace creates variables is traced twice.
    """
    optimizer = tf.keras.optimizers.Adam(learning_rate)
    if variables:
        optimizer.build(list(variables))
    return optimizer


def make_update_fn(online, target, optimizer, config=LearnerConfig(), strategy=None,
                   prepare=None, precision="float32"):
    """A learner step `update(batch) -> mean loss`, to call eagerly or in tf.function.

    `batch` comes from `distribute_batch` (split across the strategy's replicas). If
    given, `prepare(shard) -> batch` runs first on each replica's shard, on its device:
    it turns what the replay stores (e.g. uint8 frames and keypoint centres) into the
    loss batch above (e.g. keypoint-masked features), so only the compact stored form
    is split and copied across devices. Each replica computes the loss on its shard; the
    gradients are summed across replicas, clipped to global norm `config.max_grad_norm`
    and applied by `optimizer` (a tf.keras optimizer, created under the strategy's
    scope: Sonnet's optimizers refuse MirroredStrategy: docs/DESIGN.md, "Notes on the
    stack"); then the target network moves towards the online one by `config.tau`. The
    online and target networks need their variables already (`agent.create_variables`);
    the optimizer's are created here, eagerly, because a traced step under a strategy
    cannot create them. Start the target network as a copy of the online one with
    `soft_update(..., tau=1.0)`. `prepare` and the loss compute in `precision`
    (layers.precision); the gradients, clipping and variables are float32.
    """
    strategy = strategy or tf.distribute.get_strategy()
    variables = online.trainable_variables
    if not variables:
        raise ValueError("the online network has no variables yet: call "
                         "agent.create_variables first")
    layers.compute_dtype(precision)  # a one-line ConfigError before tracing
    with strategy.scope():
        optimizer.build(variables)

    def replica_update(batch):
        with layers.precision(precision):
            if prepare is not None:
                batch = prepare(batch)
            with tf.GradientTape() as tape:
                loss = recurrent_double_q_loss(online, target, batch, config)
        gradients = tape.gradient(loss, variables)
        gradients = clip_by_global_norm_across_replicas(gradients, config.max_grad_norm)
        optimizer.apply_gradients(zip(gradients, variables))
        return loss

    def update(batch):
        losses = strategy.run(replica_update, args=(batch,))
        soft_update(target.trainable_variables, variables, config.tau)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    return update


def distribute_batch(strategy, batch):
    """Split a batch (nest of [B, ...] arrays) along B into one shard per replica."""
    num_replicas = strategy.num_replicas_in_sync
    batch_size = len(tf.nest.flatten(batch)[0])
    if batch_size % num_replicas:
        raise ConfigError(f"batch size {batch_size} is not divisible by the "
                               f"{num_replicas} replicas")

    def shard(context):
        replica = context.replica_id_in_sync_group
        return tf.nest.map_structure(
            lambda x: np.split(np.asarray(x), num_replicas)[replica], batch)

    return strategy.experimental_distribute_values_from_function(shard)
