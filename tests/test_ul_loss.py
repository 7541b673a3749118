"""Tests for ul_loss: PermaKey's separate objectives, the Transporter transport and loss."""
import numpy as np
import pytest
import tensorflow as tf

import common
import layers
import ul_loss
import vision_modules


def _images(batch, size, seed=0):
    return tf.random.stateless_uniform([batch, size, size, 3], seed=[seed, 7])


# --------------------------------------------------------------------------------------
# PermaKey.

def test_permakey_losses_keys_and_total():
    model = vision_modules.PermaKey(3, image_size=16)
    losses, outputs = ul_loss.permakey_losses(model, _images(2, 16), is_training=True)
    assert set(losses) == {"recon", "kl", "vae", "lsp", "pnet", "total"}
    assert all(loss.shape == () for loss in losses.values())
    np.testing.assert_allclose(losses["vae"], losses["recon"] + losses["kl"], rtol=1e-6)
    np.testing.assert_allclose(
        losses["total"], losses["vae"] + losses["lsp"] + losses["pnet"], rtol=1e-6)
    assert outputs["centres"].shape == (2, 3, 2)


def test_each_parameter_group_is_trained_only_by_its_own_loss():
    model = vision_modules.PermaKey(3, image_size=16)
    with tf.GradientTape(persistent=True) as tape:
        losses, _ = ul_loss.permakey_losses(model, _images(4, 16), is_training=True)
    groups = {"vae": model.vae_variables, "lsp": model.lsp_variables,
              "pnet": model.pnet_variables}
    for loss_name in groups:
        for group_name, group_variables in groups.items():
            grads = tape.gradient(losses[loss_name], group_variables)
            if group_name == loss_name:
                assert all(g is not None for g in grads), loss_name
                assert sum(float(tf.reduce_sum(tf.abs(g))) for g in grads) > 0.0
            else:
                assert all(g is None for g in grads), (loss_name, group_name)
    for part in ("recon", "kl"):                              # the two VAE terms
        assert all(g is None for g in tape.gradient(
            losses[part], model.lsp_variables + model.pnet_variables))
    for group_name, variables in groups.items():
        total_grads = tape.gradient(losses["total"], variables)
        own_grads = tape.gradient(losses[group_name], variables)
        for total_grad, own_grad in zip(total_grads, own_grads):
            np.testing.assert_allclose(total_grad, own_grad, rtol=1e-5, atol=1e-7)


def test_reconstruction_loss_is_mean_squared_error_over_twice_the_variance():
    images = np.zeros([2, 2, 2, 3], np.float32)
    recon = np.zeros_like(images)
    recon[0, 0, 0, 0] = 1.0                                   # one error of 1 in 24 values
    loss = ul_loss.gaussian_reconstruction_loss(images, recon)
    assert float(loss) == pytest.approx(1.0 / 24 / 0.2)


def test_kl_is_summed_over_latent_dims_and_averaged_over_batch():
    mean = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
    scale = np.array([[1.0, 1.0], [1.0, 2.0]], np.float32)
    # KL per dim = (mu^2 + s^2 - 1) / 2 - log s: rows 0 and 0.5 + (1.5 - log 2).
    expected = (0.0 + 0.5 + 1.5 - np.log(2.0)) / 2
    assert float(ul_loss.kl_to_standard_normal(mean, scale)) == pytest.approx(expected)


def test_lsp_loss_sums_per_layer_mean_squared_errors():
    predictions = [np.ones([1, 2, 2, 4], np.float32), np.zeros([1, 1, 1, 8], np.float32)]
    targets = [np.zeros([1, 2, 2, 4], np.float32), np.full([1, 1, 1, 8], 2.0, np.float32)]
    assert float(ul_loss.lsp_loss(predictions, targets)) == pytest.approx(1.0 + 4.0)


def test_pnet_loss_sums_heatmaps_resizes_nearest_and_averages_over_error_channels():
    heatmaps = np.zeros([1, 2, 2, 2], np.float32)
    heatmaps[0, 0, 0] = [0.5, 0.5]                            # sum 1 in the top-left cell
    error_maps = np.zeros([1, 4, 4, 2], np.float32)
    error_maps[0, :2, :2, 0] = 1.0                            # channel 0 matches exactly
    # Channel 1 is all zero: 4 of its 16 pixels differ by 1. Mean over both channels.
    loss = ul_loss.pnet_loss(heatmaps, error_maps)
    assert float(loss) == pytest.approx((0.0 + 4.0 / 16) / 2)


def test_amplitude_pnet_loss_hand_computed():
    # 2 x 2 grid, 4 x 4 error maps (cells of 2 x 2), two layers averaged: target [[1, 0], [0, 0]].
    error_maps = np.zeros([1, 4, 4, 2], np.float32)
    error_maps[0, :2, :2] = 1.0
    heatmaps = np.zeros([1, 2, 2, 2], np.float32)
    heatmaps[0, 0, 0, 0], heatmaps[0, 1, 0, 0] = 1.0, 0.5   # keypoint 0: amplitude 1 / 1.5
    heatmaps[0, 0, 0, 1] = 0.25                             # keypoint 1: amplitude 0.25 / 0.25
    # recon = max(2/3 * h0, 1 * h1) = [[2/3, 0], [1/3, 0]]
    expected = ((2 / 3 - 1) ** 2 + (1 / 3) ** 2) / 4
    assert float(ul_loss.amplitude_pnet_loss(heatmaps, error_maps)) == pytest.approx(expected)


def test_amplitude_loss_rewards_a_keypoint_on_a_blob_where_the_paper_loss_rewards_hiding():
    # A sprite-sized (3 x 3 px) bright blob on a dim background, as in the error maps of
    # Atari frames; one keypoint of the paper's width (std 0.12) on the blob, on the
    # background, or outside the frame.
    error_maps = np.full([1, 84, 84, 1], 0.1, np.float32)
    error_maps[0, 40:43, 20:23] = 1.0
    blob = (41 / 83 * 2 - 1, 21 / 83 * 2 - 1)
    places = {"blob": blob, "background": (0.5, 0.5), "hidden": (5.0, 5.0)}
    heatmaps = {name: vision_modules.gaussian_heatmaps(tf.constant([[place]]), 21, 21, 0.12)
                for name, place in places.items()}
    paper = {name: float(ul_loss.pnet_loss(h, error_maps)) for name, h in heatmaps.items()}
    amplitude = {name: float(ul_loss.amplitude_pnet_loss(h, error_maps))
                 for name, h in heatmaps.items()}
    assert paper["hidden"] < paper["blob"] < paper["background"]
    assert amplitude["blob"] < amplitude["background"] < amplitude["hidden"]


# --------------------------------------------------------------------------------------
# Transport.

def _sequential_transport(features_a, features_b, heatmaps_a, heatmaps_b):
    """Kulkarni et al.'s transport literally: one keypoint at a time on the C-channel features."""
    features = features_a
    for k in range(heatmaps_a.shape[-1]):
        h_a, h_b = heatmaps_a[..., k:k + 1], heatmaps_b[..., k:k + 1]
        features = features * (1 - h_a) * (1 - h_b) + h_b * features_b
    return features


def _random_transport_inputs(seed=0):
    rng = np.random.default_rng(seed)
    features_a, features_b = rng.normal(size=[2, 2, 5, 6, 3]).astype(np.float32)
    heatmaps_a, heatmaps_b = rng.uniform(size=[2, 2, 5, 6, 4]).astype(np.float32)
    return features_a, features_b, heatmaps_a, heatmaps_b


def test_transport_with_zero_heatmaps_returns_the_source_features():
    features_a, features_b, _, _ = _random_transport_inputs()
    zeros = np.zeros([2, 5, 6, 4], np.float32)
    np.testing.assert_array_equal(
        ul_loss.transport(features_a, features_b, zeros, zeros), features_a)


def test_transport_takes_target_features_under_a_target_keypoint():
    features_a, features_b, _, _ = _random_transport_inputs()
    heatmaps_a = np.zeros([2, 5, 6, 4], np.float32)
    heatmaps_b = np.zeros_like(heatmaps_a)
    heatmaps_b[:, 1, 2, 1] = 1.0                              # keypoint 1 of b at (1, 2)
    heatmaps_a[:, 3, 4, 2] = 1.0                              # keypoint 2 of a at (3, 4)
    out = ul_loss.transport(features_a, features_b, heatmaps_a, heatmaps_b).numpy()
    np.testing.assert_array_equal(out[:, 1, 2], features_b[:, 1, 2])
    np.testing.assert_array_equal(out[:, 3, 4], 0.0)         # a's object removed
    untouched = np.ones([5, 6], bool)
    untouched[1, 2] = untouched[3, 4] = False
    np.testing.assert_array_equal(out[:, untouched], features_a[:, untouched])


def test_transport_equals_the_sequential_definition():
    inputs = _random_transport_inputs(seed=3)
    np.testing.assert_allclose(ul_loss.transport(*inputs), _sequential_transport(*inputs),
                               rtol=1e-5, atol=1e-6)


def test_transport_stops_gradients_into_the_source_only():
    inputs = [tf.constant(x) for x in _random_transport_inputs(seed=1)]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        total = tf.reduce_sum(ul_loss.transport(*inputs))
    grads = tape.gradient(total, inputs)
    assert grads[0] is None and grads[2] is None              # source features, heatmaps
    assert grads[1] is not None and grads[3] is not None


# --------------------------------------------------------------------------------------
# Transporter loss.

def test_transporter_loss_is_recon_mse_and_ignores_the_source_branch():
    model = vision_modules.Transporter(num_keypoints=2, image_size=16)
    frame_a, frame_b = _images(2, 16, seed=0), _images(2, 16, seed=1)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([frame_a, frame_b])
        losses, outputs = ul_loss.transporter_losses(model, frame_a, frame_b, True)
    assert set(losses) == {"recon", "total"}
    expected = np.mean((outputs["recon"].numpy() - frame_b.numpy()) ** 2)
    assert float(losses["total"]) == pytest.approx(expected, rel=1e-5)
    assert tape.gradient(losses["total"], frame_a) is None
    assert tape.gradient(losses["total"], frame_b) is not None
    grads = tape.gradient(losses["total"], model.trainable_variables)
    assert all(g is not None for g in grads)


# --------------------------------------------------------------------------------------
# bf16 precision: the same losses and gradient directions as float32.

# Stated tolerances for layers.precision("bf16") (bfloat16 keeps 8 significant bits, ~0.4% per
# value): every loss within 1% of float32 on the same batch and weights, and every
# parameter group's gradient pointing the same way (cosine similarity > 0.97). Measured
# here: losses within 0.3%, cosines 0.987 (Transporter) to 0.9995 (PermaKey VAE).
BF16_LOSS_RTOL = 1e-2
BF16_GRADIENT_COSINE = 0.97


def _losses_and_gradients(loss_fn, variables, precision):
    with tf.GradientTape() as tape, layers.precision(precision):
        losses = loss_fn()
    flat = [tf.reshape(g, [-1]) for g in tape.gradient(losses["total"], variables)
            if g is not None]
    return {k: float(v) for k, v in losses.items()}, tf.concat(flat, 0)


def _assert_bf16_close(loss_fn, groups):
    for variables in groups:
        (ref, ref_grad), (low, low_grad) = (_losses_and_gradients(loss_fn, variables, p)
                                            for p in ("float32", "bf16"))
        for name in ref:
            assert low[name] == pytest.approx(ref[name], rel=BF16_LOSS_RTOL), name
        cosine = tf.reduce_sum(ref_grad * low_grad) / (tf.norm(ref_grad) * tf.norm(low_grad))
        assert float(cosine) > BF16_GRADIENT_COSINE


def test_permakey_bf16_losses_and_gradients_are_close_to_float32():
    model = vision_modules.PermaKey(4, image_size=32)
    images = _images(8, 32)
    model(images, is_training=True)

    def losses():
        model.noise.reset_from_seed(3)              # the same latent sample z in both
        return ul_loss.permakey_losses(model, images, True)[0]

    _assert_bf16_close(losses, [model.vae_variables, model.lsp_variables, model.pnet_variables])


def test_transporter_bf16_loss_and_gradients_are_close_to_float32():
    model = vision_modules.Transporter(num_keypoints=3, image_size=32)
    frame_a, frame_b = _images(8, 32, seed=0), _images(8, 32, seed=1)
    model(frame_a, frame_b, is_training=True)
    _assert_bf16_close(lambda: ul_loss.transporter_losses(model, frame_a, frame_b, True)[0],
                       [model.trainable_variables])


def test_training_scripts_compile_bf16_steps_with_float32_losses():
    import fit
    images = _images(4, 16)
    permakey = vision_modules.PermaKey(3, image_size=16)
    transporter = vision_modules.Transporter(num_keypoints=2, image_size=16)
    for steps, model, batch in ((fit.permakey_steps, permakey, images),
                                (fit.transporter_steps, transporter, (images, images[::-1]))):
        train_step, eval_step = steps(model, tf.keras.optimizers.Adam(1e-3), "bf16")
        for losses in (train_step(batch), eval_step(batch)):
            assert all(v.dtype == tf.float32 and np.isfinite(v) for v in losses.values())
        assert all(v.dtype in (tf.float32, tf.int64) for v in model.variables)
        with pytest.raises(common.ConfigError, match="precision='fp16'"):
            steps(model, None, "fp16")
