"""Tests for vision_modules: keypoint helpers, PermaKey and Transporter networks."""
import numpy as np
import pytest
import tensorflow as tf

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
