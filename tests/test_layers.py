"""Tests for layers: computation in a chosen precision, the fused batch norm and the
neighbour matmul, each against the plain Sonnet / TensorFlow form it replaces."""
import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

import common
import layers


# --------------------------------------------------------------------------------------
# Precision.

def test_precision_context_sets_and_restores_the_compute_dtype():
    assert layers.current_dtype() == tf.float32
    with layers.precision("bf16"):
        assert layers.current_dtype() == tf.bfloat16
        with layers.precision("float32"):
            assert layers.current_dtype() == tf.float32
        assert layers.current_dtype() == tf.bfloat16
    assert layers.current_dtype() == tf.float32
    with pytest.raises(ZeroDivisionError), layers.precision("bf16"):
        1 / 0
    assert layers.current_dtype() == tf.float32          # restored after an error too


def test_unknown_precision_is_a_one_line_config_error():
    expected = r"^precision='fp16': expected one of float32, bf16$"
    with pytest.raises(common.ConfigError, match=expected), layers.precision("fp16"):
        pass


@pytest.mark.parametrize("make_layer, plain, shape", [
    (lambda: layers.Linear(6), snt.Linear, (5, 7)),
    (lambda: layers.Conv2D(4, 3, stride=2), snt.Conv2D, (2, 8, 8, 3)),
    (lambda: layers.Conv2D(4, 3, padding="VALID", with_bias=False), snt.Conv2D, (2, 8, 8, 3)),
    (lambda: layers.Conv2DTranspose(4, 3, stride=2), snt.Conv2DTranspose, (2, 4, 4, 3)),
])
def test_layers_in_bf16_match_float32_with_float32_variables(make_layer, plain, shape):
    layer = make_layer()
    assert isinstance(layer, plain)                      # Sonnet's variables and layout
    x = tf.random.stateless_normal(shape, seed=[5, 5])
    with layers.precision("bf16"):
        low = layer(x)                                   # creates the variables
    assert low.dtype == tf.bfloat16
    assert all(v.dtype == tf.float32 for v in layer.variables)
    if hasattr(layer, "b"):
        layer.b.assign(tf.range(layer.b.shape[0], dtype=tf.float32))   # a bias that shows
        with layers.precision("bf16"):
            low = layer(x)
    reference = plain.__call__(layer, x)                 # Sonnet's own float32 call
    assert layer(x).dtype == tf.float32
    np.testing.assert_allclose(layer(x), reference, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tf.cast(low, tf.float32), reference, rtol=0.05, atol=0.05)


# --------------------------------------------------------------------------------------
# Batch norm.

@pytest.mark.parametrize("shape", [(64, 5), (4, 3, 3, 5)])
def test_batch_norm_matches_sonnet_and_restores_its_checkpoints(shape, tmp_path):
    ours = layers.BatchNorm()
    sonnets = snt.BatchNorm(create_scale=True, create_offset=True,
                            decay_rate=layers.BN_DECAY)
    batches = [tf.random.stateless_normal(shape, seed=[i, 0]) * (i + 1) + i for i in range(3)]
    for x in batches:                                     # training: batch statistics
        np.testing.assert_allclose(ours(x, is_training=True),
                                   sonnets(x, is_training=True), rtol=1e-4, atol=1e-4)
    for name in ("moving_mean", "moving_variance"):
        theirs = getattr(sonnets, name).value
        assert getattr(ours, name).value.shape == theirs.shape
        np.testing.assert_allclose(getattr(ours, name).value, theirs, rtol=1e-5)
    for kwargs in ({"is_training": False}, {"is_training": False, "test_local_stats": True}):
        np.testing.assert_allclose(ours(batches[0], **kwargs), sonnets(batches[0], **kwargs),
                                   rtol=1e-4, atol=1e-4)
    sonnets.scale.assign(tf.range(5, dtype=tf.float32))
    path = tf.train.Checkpoint(bn=sonnets).save(str(tmp_path / "ckpt"))
    restored = layers.BatchNorm()
    restored(batches[0], is_training=False)               # create the variables
    tf.train.Checkpoint(bn=restored).restore(path).assert_consumed()
    np.testing.assert_allclose(restored(batches[1], is_training=False),
                               sonnets(batches[1], is_training=False), rtol=1e-4, atol=1e-4)


def test_batch_norm_in_bf16_keeps_float32_statistics():
    bn = layers.BatchNorm()
    x = tf.random.stateless_normal([64, 6], seed=[3, 3]) * 3.0 + 2.0
    out = bn(tf.cast(x, tf.bfloat16), is_training=True)
    assert out.dtype == tf.bfloat16
    assert all(v.dtype in (tf.float32, tf.int64) for v in bn.variables)
    np.testing.assert_allclose(bn.moving_mean.value[0], tf.reduce_mean(x, 0), rtol=0.02)
    np.testing.assert_allclose(tf.reduce_mean(tf.cast(out, tf.float32), 0), 0.0, atol=0.02)


# --------------------------------------------------------------------------------------
# The neighbour matmul.

def test_neighbour_matmul_gradients_equal_the_plain_ops():
    cells = tf.random.stateless_normal([2, 4, 5, 3], seed=[2, 2])
    weight = tf.random.stateless_normal([24, 6], seed=[3, 3])
    upstream = tf.random.stateless_normal([40, 6], seed=[4, 4])
    results = []
    for matmul in (layers.neighbour_matmul,
                   lambda c, w: tf.matmul(
                       tf.reshape(layers.neighbour_cells(c), [-1, 24]), w)):
        with tf.GradientTape() as tape:
            tape.watch([cells, weight])
            outputs = matmul(cells, weight)
        results.append([outputs, *tape.gradient(outputs, [cells, weight], upstream)])
    for ours, plain in zip(*results):
        np.testing.assert_allclose(ours, plain, rtol=1e-5, atol=1e-5)
