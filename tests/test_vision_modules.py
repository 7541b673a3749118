"""Tests for vision_modules: keypoint helpers, PermaKey and Transporter networks."""
import numpy as np
import pytest
import sonnet as snt
import tensorflow as tf

import common
import layers
import vision_modules


def test_keypoint_centres_of_a_sharp_peak_is_its_grid_position():
    height, width = 9, 5
    feature_map = np.zeros([2, height, width, 2], np.float32)
    feature_map[0, 2, 4, 0] = 1e3   # y = linspace[2] = -0.5, x = linspace[4] = 1
    feature_map[0, 8, 0, 1] = 1e3   # y = 1, x = -1
    feature_map[1, 4, 2, 0] = 1e3   # the centre (0, 0)
    feature_map[1, 0, 1, 1] = 1e3   # y = -1, x = -0.5
    centres = vision_modules.keypoint_centres(feature_map)
    assert centres.shape == (2, 2, 2)
    expected = [[[-0.5, 1.0], [1.0, -1.0]], [[0.0, 0.0], [-1.0, -0.5]]]
    np.testing.assert_allclose(centres, expected, atol=1e-4)


def test_keypoint_centres_of_a_flat_map_is_the_image_centre():
    centres = vision_modules.keypoint_centres(tf.zeros([1, 6, 4, 3]))
    np.testing.assert_allclose(centres, np.zeros([1, 3, 2]), atol=1e-6)


def test_keypoint_centres_hand_computed_soft_expectation():
    # One-hot (value 1) at row 0 of a 2 x 2 map: the y profile averages over x to
    # (0.5, 0), softmax -> (e^.5, 1) / (e^.5 + 1); expectation of (-1, 1).
    feature_map = np.zeros([1, 2, 2, 1], np.float32)
    feature_map[0, 0, 1, 0] = 1.0
    p = np.exp(0.5) / (np.exp(0.5) + 1.0)
    expected_y = -p + (1.0 - p)
    expected_x = -(1.0 - p) + p
    centres = vision_modules.keypoint_centres(feature_map)
    np.testing.assert_allclose(centres[0, 0], [expected_y, expected_x], rtol=1e-5)


def _two_blob_maps(strong, weak=4.0, background=-20.0):
    """Two alike 9 x 9 maps [1, 9, 9, 2] (grid step 0.25) with a `strong` blob at (4, 7)
    and a `weak` one at (1, 1); returns them and the blobs' grid positions [2, 2]."""
    size, blobs = 9, [(4, 7), (1, 1)]
    feature_map = np.full([1, size, size, 2], background, np.float32)
    for (y, x), strength in zip(blobs, (strong, weak)):
        feature_map[0, y, x] = strength
    return feature_map, np.array(blobs) * 0.25 - 1.0


def test_sequential_readout_gives_each_keypoint_its_own_blob():
    # Both maps respond to the same two blobs, of strengths 12 and 4 (background -20). The
    # per-axis readout gives both keypoints the same place; the sequential one gives
    # keypoint 1 the stronger blob and keypoint 2, that place closed, the other. Closing
    # multiplies the first place's weight by 1 - heatmap_1 there (small, not zero, as
    # keypoint 1 sits near but not on the blob's centre): keypoint 2 keeps 1-2% of it.
    feature_map, on_grid = _two_blob_maps(strong=12.0)
    per_axis = vision_modules.keypoint_centres(feature_map).numpy()[0]
    np.testing.assert_allclose(per_axis[0], per_axis[1])
    sequential = vision_modules.sequential_keypoint_centres(feature_map, std=0.25).numpy()[0]
    np.testing.assert_allclose(sequential[0], on_grid[0], atol=1e-3)
    np.testing.assert_allclose(sequential[1], on_grid[1], atol=3e-2)


def test_strict_closure_takes_no_place_twice_however_strong():
    # Both maps respond to a blob of strength 40 and one of 4 (background -20). The soft
    # closure lowers the strong blob by at most log(1e-6) = -13.8: still far above the
    # weak one, so both keypoints share it. The strict closure lowers it by the map's
    # range (60) to the background's level: keypoint 2 takes the weak blob.
    feature_map, on_grid = _two_blob_maps(strong=40.0)
    soft = vision_modules.sequential_keypoint_centres(feature_map, std=0.25).numpy()[0]
    np.testing.assert_allclose(soft, [on_grid[0], on_grid[0]], atol=1e-3)
    strict = vision_modules.sequential_keypoint_centres(feature_map, std=0.25,
                                                        strict=True).numpy()[0]
    np.testing.assert_allclose(strict, on_grid, atol=1e-3)
    # the Keypointer's "sequential_strict" readout is this readout of its scaled maps
    keypointer = vision_modules.Keypointer(((4, 3, 1),), 2, 0.25, "sequential_strict",
                                           readout_scale=3.0)
    maps = tf.random.stateless_normal([2, 9, 9, 3], seed=[5, 6])
    scaled = keypointer.to_keypoint_maps(keypointer.conv_stack(maps, False)[-1]) * 3.0
    centres, _ = keypointer(maps, is_training=False)
    np.testing.assert_allclose(centres, vision_modules.sequential_keypoint_centres(
        scaled, 0.25, strict=True), atol=1e-4)


def test_scaled_axis_readout_is_the_per_axis_readout_of_the_scaled_maps():
    maps = tf.random.stateless_normal([2, 6, 6, 3], seed=[3, 4])
    keypointer = vision_modules.Keypointer(((4, 3, 1),), 3, 0.1, "scaled_axis", readout_scale=7.0)
    features = keypointer.conv_stack(maps, is_training=False)[-1]
    # the scale as the module holds it (exp of its log): 7.0 to float32 rounding
    scaled = keypointer.to_keypoint_maps(features) * tf.exp(keypointer.log_scale)
    centres, _ = keypointer(maps, is_training=False)
    np.testing.assert_allclose(centres, vision_modules.keypoint_centres(scaled), atol=1e-6)
    assert float(tf.exp(keypointer.log_scale)) == pytest.approx(7.0)  # learned: a variable
    assert keypointer.log_scale in keypointer.trainable_variables
    # the paper's readout has no scale
    assert not hasattr(vision_modules.Keypointer(((4, 3, 1),), 3, 0.1, "axis"), "log_scale")


def test_centring_over_frames_removes_what_every_frame_shows():
    # Maps of 16 frames: a strong static ridge (the same in every frame: a maze wall, a
    # border) plus a weaker blob that moves. The per-axis readout of the raw maps sits
    # on the ridge; of the centred maps, it follows the blob.
    rng = np.random.default_rng(0)
    size, frames = 12, 16
    maps = np.zeros([frames, size, size, 1], np.float32)
    maps[:, :, 2] = 30.0                                              # static column x = 2
    places = rng.integers(5, 11, size=(frames, 2))
    for n, (y, x) in enumerate(places):
        maps[n, y, x] = 60.0                                          # the moving blob
    centring = vision_modules.CentreOverFrames(decay_rate=0.5)
    centred = centring(tf.constant(maps), is_training=True).numpy()
    np.testing.assert_allclose(centred.mean(axis=0), 0.0, atol=1e-5)
    on_grid = places / (size - 1) * 2 - 1
    raw_x = vision_modules.keypoint_centres(maps).numpy()[:, 0, 1]
    centred_xy = vision_modules.keypoint_centres(centred).numpy()[:, 0]
    assert np.abs(raw_x - on_grid[:, 1]).mean() > 0.5                # held by the ridge
    assert np.abs(centred_xy - on_grid).max() < 0.2                   # on the blob
    # inference subtracts the moving average of the training means (debiased)
    for _ in range(20):
        centring(tf.constant(maps), is_training=True)
    np.testing.assert_allclose(centring(tf.constant(maps[:1]), is_training=False),
                               maps[:1] - maps.mean(axis=0, keepdims=True), atol=1e-4)


def test_keypointer_rejects_an_unknown_readout():
    with pytest.raises(common.ConfigError, match="pnet_readout='grid': expected one of axis, "
                                               "scaled_axis, sequential, sequential_strict"):
        vision_modules.PermaKey(3, pnet_readout="grid")


def test_gaussian_heatmap_peaks_at_centre_with_width_std():
    std = 0.25
    size = 9                         # grid step 0.25 == std
    centres = tf.constant([[[0.0, 0.0], [-0.5, 0.75]]])   # [1, 2, 2]
    heatmaps = vision_modules.gaussian_heatmaps(centres, size, size, std).numpy()
    assert heatmaps.shape == (1, size, size, 2)
    assert heatmaps[0, 4, 4, 0] == pytest.approx(1.0)
    assert heatmaps[0, 4, 5, 0] == pytest.approx(np.exp(-1.0), rel=1e-5)
    assert heatmaps[0, 3, 4, 0] == pytest.approx(np.exp(-1.0), rel=1e-5)
    assert heatmaps[0, 5, 5, 0] == pytest.approx(np.exp(-2.0), rel=1e-5)
    peak = np.unravel_index(np.argmax(heatmaps[0, :, :, 1]), (size, size))
    assert peak == (2, 7)


def test_gaussian_heatmaps_non_square_grid():
    heatmaps = vision_modules.gaussian_heatmaps(tf.zeros([3, 4, 2]), 5, 7, 0.1)
    assert heatmaps.shape == (3, 5, 7, 4)
    assert np.argmax(heatmaps[0, :, :, 0].numpy().ravel()) == 2 * 7 + 3


def test_keypoint_helpers_run_inside_tf_function():
    @tf.function
    def centres_then_heatmaps(feature_map):
        centres = vision_modules.keypoint_centres(feature_map)
        return vision_modules.gaussian_heatmaps(centres, 21, 21, 0.12)

    out = centres_then_heatmaps(tf.random.normal([2, 21, 21, 5]))
    assert out.shape == (2, 21, 21, 5)


# --------------------------------------------------------------------------------------
# Conv towers.

@pytest.mark.parametrize("resample, expected_side", [
    ("down", 2), ("nearest", 32), ("bilinear", 32), ("transpose", 32)])
def test_conv_stack_resamples_by_the_strides(resample, expected_side):
    stack = vision_modules.ConvStack(((4, 3, 2), (5, 3, 1), (6, 3, 2)), resample=resample,
                                     final_activation=tf.nn.sigmoid)
    outputs = stack(tf.random.uniform([2, 8, 8, 3]), is_training=True)
    assert [o.shape[-1] for o in outputs] == [4, 5, 6]
    assert outputs[-1].shape[1:3] == (expected_side, expected_side)
    assert np.all(outputs[0].numpy() >= 0.0)                  # hidden: ReLU
    last = outputs[-1].numpy()
    assert np.all((last > 0.0) & (last < 1.0))                # final: sigmoid


def test_conv_stack_rejects_unknown_resample():
    with pytest.raises(ValueError, match="resample"):
        vision_modules.ConvStack(((4, 3, 1),), resample="pool")


# --------------------------------------------------------------------------------------
# PermaKey.

def _images(batch, size, seed=0):
    return tf.random.stateless_uniform([batch, size, size, 3], seed=[seed, 1])


@pytest.mark.parametrize("decoder_type", ["conv", "deconv"])
def test_permakey_output_shapes_at_84(decoder_type):
    model = vision_modules.PermaKey(num_keypoints=5, decoder_type=decoder_type)
    out = model(_images(2, 84), is_training=True)
    assert out["recon"].shape == (2, 84, 84, 3)
    assert out["z_mean"].shape == out["z_scale"].shape == (2, 32)
    assert [a.shape[1:] for a in out["activations"]] == [
        (84, 84, 32), (42, 42, 64), (21, 21, 64), (21, 21, 128)]
    assert out["features"].shape == (2, 42, 42, 64)
    assert [m.shape for m in out["raw_error_maps"]] == [(2, 42, 42, 1), (2, 21, 21, 1)]
    assert [p.shape for p in out["lsp_predictions"]] == [(2, 42, 42, 128), (2, 21, 21, 256)]
    assert [t.shape for t in out["lsp_targets"]] == [(2, 42, 42, 128), (2, 21, 21, 256)]
    assert out["error_maps"].shape == (2, 84, 84, 2)
    assert out["centres"].shape == (2, 5, 2)
    assert out["heatmaps"].shape == (2, 21, 21, 5)
    recon = out["recon"].numpy()
    assert np.all((recon >= 0.0) & (recon <= 1.0))
    assert np.all(out["z_scale"].numpy() > 0.0)


def test_permakey_error_maps_are_min_max_normalised_per_image_and_channel():
    model = vision_modules.PermaKey(3, lsp_layers=(0, 1, 2), patch_sizes=(2, 2, 2),
                                    image_size=16)
    error_maps = model(_images(3, 16), is_training=True)["error_maps"].numpy()
    assert error_maps.shape == (3, 16, 16, 3)
    np.testing.assert_allclose(error_maps.min(axis=(1, 2)), 0.0, atol=1e-6)
    np.testing.assert_allclose(error_maps.max(axis=(1, 2)), 1.0, atol=1e-6)


def test_min_max_normalise_maps_constant_channel_to_zero():
    maps = np.ones([2, 4, 4, 2], np.float32)
    maps[0, 1, 2, 1] = 3.0
    normalised = vision_modules.min_max_normalise(maps).numpy()
    assert np.all(np.isfinite(normalised))
    assert np.all(normalised[..., 0] == 0.0) and np.all(normalised[1] == 0.0)
    assert normalised[0, 1, 2, 1] == 1.0 and normalised[0, 0, 0, 1] == 0.0


def test_stack_error_maps_resizes_each_cell_map_nearest():
    fine = np.zeros([1, 4, 4, 1], np.float32)
    fine[0, 1, 2, 0] = 2.0                                    # -> pixels [2:4, 4:6]
    coarse = np.zeros([1, 2, 2, 1], np.float32)
    coarse[0, 1, 0, 0] = 5.0                                  # -> pixels [4:8, 0:4]
    stacked = vision_modules.stack_error_maps([fine, coarse], 8).numpy()
    expected = np.zeros([1, 8, 8, 2], np.float32)
    expected[0, 2:4, 4:6, 0] = 1.0
    expected[0, 4:8, 0:4, 1] = 1.0
    np.testing.assert_array_equal(stacked, expected)


def test_cell_error_map_is_mse_over_the_cell_divided_by_its_mean():
    target = np.full([1, 1, 2, 4], 2.0, np.float32)
    prediction = target.copy()
    prediction[0, 0, 1] = [0.0, 2.0, 2.0, 4.0]                # squared errors 4, 0, 0, 4
    error = vision_modules.cell_error_map(prediction, target).numpy()
    np.testing.assert_allclose(error[0, 0, :, 0], [0.0, 2.0 / 2.001], rtol=1e-6)


def test_permakey_keypoints_match_call_at_inference_and_under_tf_function():
    model = vision_modules.PermaKey(4, image_size=16)
    images = _images(2, 16)
    model(images, is_training=True)                           # fills BN moving averages
    out = model(images, is_training=False)
    centres, heatmaps = tf.function(model.keypoints)(images)
    np.testing.assert_allclose(centres, out["centres"], atol=1e-5)
    np.testing.assert_allclose(heatmaps, out["heatmaps"], atol=1e-5)
    assert heatmaps.shape == (2, 4, 4, 4)
    _, _, features = model.keypoints_and_features(images)
    np.testing.assert_allclose(features, out["activations"][1], atol=1e-5)


def test_permakey_variable_groups_partition_the_trainable_variables():
    model = vision_modules.PermaKey(3, image_size=16)
    model(_images(2, 16), is_training=True)
    groups = [model.vae_variables, model.lsp_variables, model.pnet_variables]
    refs = [{v.ref() for v in group} for group in groups]
    assert all(refs) and sum(len(r) for r in refs) == len(set.union(*refs))
    assert set.union(*refs) == {v.ref() for v in model.trainable_variables}


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_keypoints=0), "num_keypoints=0"),
    (dict(num_keypoints=3, lsp_layers=(0, 4), patch_sizes=(2, 2)), r"lsp_layers=\(0, 4\)"),
    (dict(num_keypoints=3, lsp_layers=(-1,), patch_sizes=(2,)), r"lsp_layers=\(-1,\)"),
    (dict(num_keypoints=3, lsp_layers=(), patch_sizes=()), r"lsp_layers=\(\)"),
    (dict(num_keypoints=3, lsp_layers=(0, 1), patch_sizes=(2,)), r"patch_sizes=\(2,\)"),
    (dict(num_keypoints=3, lsp_layers=(2,), patch_sizes=(2,)), "21x21"),
    (dict(num_keypoints=3, lsp_layers=(0,), patch_sizes=(0,)), "patch_sizes: 0"),
    (dict(num_keypoints=3, decoder_type="upsample"), "decoder_type='upsample'"),
    (dict(num_keypoints=3, image_size=30), "image_size=30"),
])
def test_permakey_bad_config_raises_one_line_config_error(kwargs, match):
    with pytest.raises(common.ConfigError, match=match) as error:
        vision_modules.PermaKey(**kwargs)
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------------------------
# Local spatial prediction.

NEIGHBOURS = [(dy, dx) for dy in range(3) for dx in range(3) if (dy, dx) != (1, 1)]


def lsp_patch_reference(lsp, activation, is_training):
    """LSP the plain way: gather each cell's 8 neighbour cells from the map zero padded by
    p, apply the first layer as a Dense on their concatenation, then the module's
    remaining layers.

    The Dense weight for neighbour (dy, dx) is the module's kernel tap [dy, dx]
    (equivalently the p x p block (dy, dx) of the 3p x 3p pixel kernel). Returns
    (prediction, target) like the module.
    """
    p = lsp.patch_size
    activation = np.asarray(activation)
    batch, height, width, _ = activation.shape
    padded = np.pad(activation, [(0, 0), (p, p), (p, p), (0, 0)])
    kernel = lsp.neighbour_kernel.numpy()                     # [3, 3, ppC, 8ppC]
    dense = np.concatenate([kernel[dy, dx] for dy, dx in NEIGHBOURS])  # [8ppC, 8ppC]

    def cell(i, j):                                           # padded-grid cell -> [B, ppC]
        return padded[:, i * p:(i + 1) * p, j * p:(j + 1) * p].reshape(batch, -1)

    rows, targets = [], []
    for i in range(height // p):
        for j in range(width // p):
            rows.append(np.concatenate([cell(i + dy, j + dx) for dy, dx in NEIGHBOURS], -1))
            targets.append(cell(i + 1, j + 1))
    grid = [batch, height // p, width // p, -1]
    features = (np.stack(rows, 1) @ dense).reshape(grid)
    prediction = lsp.predict_from_neighbour_features(tf.constant(features), is_training)
    return prediction, np.stack(targets, 1).reshape(grid)


@pytest.mark.parametrize("patch_size, channels, side", [(2, 3, 8), (3, 2, 9), (1, 4, 5)])
@pytest.mark.parametrize("is_training", [True, False])
def test_fused_lsp_equals_patch_reference(patch_size, channels, side, is_training):
    lsp = vision_modules.LocalSpatialPredictor(patch_size, channels)
    activation = tf.random.stateless_normal([3, side, side, channels], seed=[4, 2])
    if not is_training:
        lsp(activation, is_training=True)                     # non-trivial moving averages
    prediction, target = lsp(activation, is_training)
    ref_prediction, ref_target = lsp_patch_reference(lsp, activation, is_training)
    cells = side // patch_size
    assert prediction.shape == (3, cells, cells, patch_size ** 2 * channels)
    np.testing.assert_allclose(target, ref_target, rtol=1e-6)
    np.testing.assert_allclose(prediction, ref_prediction, rtol=1e-4, atol=1e-4)


def test_lsp_first_layer_sees_the_8_neighbours_but_not_the_cell_itself():
    lsp = vision_modules.LocalSpatialPredictor(2, 2)
    activation = tf.random.stateless_normal([1, 8, 8, 2], seed=[0, 3])
    with tf.GradientTape() as tape:
        tape.watch(activation)
        cells = vision_modules.space_to_cells(activation, 2)  # [1, 4, 4, 8]
        features = lsp.neighbour_features(cells)[0, 1, 1]     # cell (1, 1) = pixels 2:4
    influence = np.abs(tape.gradient(features, activation).numpy()[0]).sum(-1)
    seen = np.zeros([8, 8], bool)
    seen[0:6, 0:6] = True                                     # the 3 x 3 cell block
    seen[2:4, 2:4] = False                                    # minus the cell itself
    np.testing.assert_array_equal(influence > 0.0, seen)


def _maps_with_one_odd_cell(rng, batch, cells, p, odd_cells):
    """Constant maps (random level) with one p x p cell raised by a random amount."""
    side = cells * p
    levels = rng.uniform(0.5, 1.5, [batch, 1, 1, 1])
    maps = np.broadcast_to(levels, [batch, side, side, 1]).copy()
    for b, (i, j) in enumerate(odd_cells):
        maps[b, i * p:(i + 1) * p, j * p:(j + 1) * p] += rng.uniform(1.0, 2.0)
    return maps.astype(np.float32)


def test_trained_lsp_gives_the_unpredictable_cell_the_largest_error():
    # The odd cell's raise is random, so it cannot be predicted from its neighbours;
    # every other cell equals the map's level, which its neighbours reveal. A mask that
    # leaked the centre cell would let the predictor copy it and fail this test.
    p, cells, batch = 2, 4, 32
    rng = np.random.default_rng(0)
    tf.random.set_seed(0)
    lsp = vision_modules.LocalSpatialPredictor(p, 1)
    optimizer = snt.optimizers.Adam(1e-3)

    @tf.function
    def train_step(maps):
        with tf.GradientTape() as tape:
            prediction, target = lsp(maps, is_training=True)
            loss = tf.reduce_mean(tf.square(prediction - target))
        optimizer.apply(tape.gradient(loss, lsp.trainable_variables),
                        lsp.trainable_variables)
        return loss

    for _ in range(300):
        odd = rng.integers(0, cells, [batch, 2])
        train_step(_maps_with_one_odd_cell(rng, batch, cells, p, odd))

    test_odd = [(i, j) for i in range(cells) for j in range(cells)]
    maps = _maps_with_one_odd_cell(rng, len(test_odd), cells, p, test_odd)
    error = vision_modules.cell_error_map(*lsp(maps, is_training=True)).numpy()[..., 0]
    argmax = [np.unravel_index(np.argmax(e), e.shape) for e in error]
    assert argmax == test_odd


@pytest.mark.parametrize("patch_size, channels, side", [(2, 3, 8), (1, 4, 5)])
def test_bf16_lsp_is_close_to_the_float32_patch_reference(patch_size, channels, side):
    lsp = vision_modules.LocalSpatialPredictor(patch_size, channels)
    activation = tf.random.stateless_normal([3, side, side, channels], seed=[4, 2])
    with layers.precision("bf16"):
        prediction, target = lsp(activation, is_training=True)
    ref_prediction, ref_target = lsp_patch_reference(lsp, activation, is_training=True)
    assert prediction.dtype == target.dtype == tf.float32
    assert all(v.dtype in (tf.float32, tf.int64) for v in lsp.variables)
    # bfloat16 keeps 8 significant bits: ~0.4% per value, more through 4 layers.
    np.testing.assert_allclose(target, ref_target, rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(prediction, ref_prediction, rtol=0.1, atol=0.1)


def test_lsp_kernel_centre_tap_is_never_used():
    lsp = vision_modules.LocalSpatialPredictor(2, 3)
    activation = tf.random.stateless_normal([2, 8, 8, 3], seed=[1, 1])
    with tf.GradientTape() as tape:
        prediction, target = lsp(activation, is_training=True)
        loss = tf.reduce_mean(tf.square(prediction - target))
    gradient = tape.gradient(loss, lsp.neighbour_kernel).numpy()   # [3, 3, ppC, 8ppC]
    assert np.all(gradient[1, 1] == 0.0)
    assert np.all(np.abs(gradient[[0, 2]]).sum(axis=(1, 2, 3)) > 0.0)


# --------------------------------------------------------------------------------------
# Precision (layers.precision).

@pytest.mark.parametrize("make_model", [
    lambda: vision_modules.PermaKey(3, image_size=16),
    lambda: vision_modules.Transporter(num_keypoints=2, image_size=16)])
def test_bf16_call_returns_float32_and_creates_float32_variables(make_model):
    model = make_model()                                   # first call in bf16
    frames = [_images(2, 16, seed=i) for i in range(1 if hasattr(model, "lsp_mlps") else 2)]
    with layers.precision("bf16"):
        out = model(*frames, is_training=True)
    assert all(v.dtype in (tf.float32, tf.int64) for v in model.variables)
    assert all(x.dtype == tf.float32 for x in tf.nest.flatten(out))


# --------------------------------------------------------------------------------------
# Transporter.

def test_transporter_output_and_keypoint_shapes():
    model = vision_modules.Transporter(num_keypoints=4)
    out = model(_images(2, 84, seed=0), _images(2, 84, seed=1), is_training=True)
    assert out["recon"].shape == (2, 84, 84, 3)
    for frame in "ab":
        assert out[f"centres_{frame}"].shape == (2, 4, 2)
        assert out[f"heatmaps_{frame}"].shape == (2, 42, 42, 4)
        assert out[f"features_{frame}"].shape == (2, 42, 42, 32)
    centres, heatmaps, features = model.keypoints_and_features(_images(3, 84))
    assert (centres.shape, heatmaps.shape, features.shape) == (
        (3, 4, 2), (3, 42, 42, 4), (3, 42, 42, 32))
    # the calls every keypoint model answers give the same, each its part
    alone = model.keypoints(_images(3, 84)) + (model.features(_images(3, 84)),)
    for part, whole in zip(alone, (centres, heatmaps, features)):
        np.testing.assert_array_equal(part, whole)


def test_transporter_decoder_heads():
    # "bn_sigmoid" (the authors'): pixels in (0, 1); "conv" (DeepMind's): a plain
    # convolution with bias after the last hidden layer, unbounded.
    frames = _images(2, 16, seed=0), _images(2, 16, seed=1)
    sigmoid = vision_modules.Transporter(2, image_size=16)
    recon = sigmoid(*frames, is_training=True)["recon"].numpy()
    assert 0.0 < recon.min() and recon.max() < 1.0 and sigmoid.decoder_out is None
    assert len(sigmoid.decoder.norms) == len(vision_modules.TRANSPORTER_DECODER_LAYERS)
    conv = vision_modules.Transporter(2, image_size=16, decoder_head="conv")
    recon = conv(*frames, is_training=True)["recon"]
    assert recon.shape == (2, 16, 16, 3)
    assert len(conv.decoder.norms) == len(vision_modules.TRANSPORTER_DECODER_LAYERS) - 1
    assert conv.decoder_out.b.shape == (3,)
    # the head is the last layer: its output is an affine function of the decoder's
    conv.decoder_out.b.assign([5.0, 5.0, 5.0])
    shifted = conv(*frames, is_training=True)["recon"]
    np.testing.assert_allclose(shifted - recon, 5.0, atol=1e-4)


def test_models_keep_static_shapes_inside_tf_function():
    # Downstream code (agent masks, flatten -> Dense) needs static spatial shapes even
    # with an unknown batch size.
    permakey = vision_modules.PermaKey(3, image_size=16)
    transporter = vision_modules.Transporter(num_keypoints=2, image_size=16)
    images = _images(2, 16)
    permakey(images, is_training=True)
    transporter(images, images, is_training=True)
    static_shapes = {}

    @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3])])
    def keypoints(frames):
        centres, heatmaps, features = permakey.keypoints_and_features(frames)
        pk_recon = permakey(frames, is_training=True)["recon"]
        out = transporter(frames, frames, is_training=True)
        static_shapes.update(pk_centres=centres.shape, pk_heatmaps=heatmaps.shape,
                             pk_features=features.shape, pk_recon=pk_recon.shape,
                             tp_recon=out["recon"].shape,
                             tp_heatmaps=out["heatmaps_b"].shape)
        return out["recon"]

    assert keypoints(images).shape == (2, 16, 16, 3)
    assert static_shapes == dict(
        pk_centres=(None, 3, 2), pk_heatmaps=(None, 4, 4, 3), pk_features=(None, 8, 8, 64),
        pk_recon=(None, 16, 16, 3), tp_recon=(None, 16, 16, 3), tp_heatmaps=(None, 8, 8, 2))


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_keypoints=0), "num_keypoints=0"),
    (dict(num_keypoints=2, image_size=15), "image_size=15"),
    (dict(num_keypoints=2, decoder_head="linear"),
     "decoder_head='linear': expected one of bn_sigmoid, conv"),
    (dict(num_keypoints=2, keypoint_readout="grid"),
     "keypoint_readout='grid': expected one of axis, scaled_axis, sequential, sequential_strict"),
    (dict(num_keypoints=2, keypoint_readout="scaled_axis", readout_scale=0),
     "readout_scale=0: expected a positive number")])
def test_transporter_bad_config_raises_config_error(kwargs, match):
    with pytest.raises(common.ConfigError, match=match):
        vision_modules.Transporter(**kwargs)
