"""Vision networks: PermaKey (VAE + local spatial prediction + PointNet) and Transporter.

Architecture facts follow SPEC.md sections 2 and 3. Images are NHWC float32 in [0, 1];
keypoint centres are (y, x) in [-1, 1], y growing downward. All modules are Sonnet 2
and run eagerly or inside `tf.function`.
"""
import tensorflow as tf


def _axis_expectation(feature_map, axis):
    """Expected coordinate in [-1, 1] along `axis` (1 = y, 2 = x) of a [B, H, W, K] map."""
    other_axis = 3 - axis
    profile = tf.reduce_mean(feature_map, axis=other_axis)      # [B, N, K]
    weights = tf.nn.softmax(profile, axis=1)                     # [B, N, K]
    size = tf.shape(feature_map)[axis]
    grid = tf.linspace(-1.0, 1.0, size)                          # [N]
    return tf.einsum("bnk,n->bk", weights, grid)                 # [B, K]


def keypoint_centres(feature_map):
    """Keypoint centres (y, x) in [-1, 1] from a [B, H, W, K] feature map.

    Per axis: average the map over the other axis, softmax along the axis and take the
    expectation of a linspace(-1, 1) grid under it (a differentiable arg-max).
    """
    feature_map = tf.convert_to_tensor(feature_map, tf.float32)
    y = _axis_expectation(feature_map, axis=1)
    x = _axis_expectation(feature_map, axis=2)
    return tf.stack([y, x], axis=-1)                             # [B, K, 2]


def gaussian_heatmaps(centres, height, width, std):
    """Isotropic Gaussian bumps exp(-|p - mu|^2 / std^2) on a linspace(-1, 1) grid.

    centres: [B, K, 2] (y, x). Returns [B, height, width, K]. Rendering from the centres
    lets each user pick its own resolution (PointNet grid, encoder feature grid, ...).
    """
    centres = tf.convert_to_tensor(centres, tf.float32)
    mu_y = centres[:, tf.newaxis, tf.newaxis, :, 0]              # [B, 1, 1, K]
    mu_x = centres[:, tf.newaxis, tf.newaxis, :, 1]              # [B, 1, 1, K]
    ys = tf.linspace(-1.0, 1.0, height)[:, tf.newaxis, tf.newaxis]  # [H, 1, 1]
    xs = tf.linspace(-1.0, 1.0, width)[tf.newaxis, :, tf.newaxis]   # [1, W, 1]
    squared_distance = tf.square(ys - mu_y) + tf.square(xs - mu_x)  # [B, H, W, K]
    return tf.exp(-squared_distance / (std * std))
