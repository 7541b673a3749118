"""Unsupervised losses of the keypoint models: PermaKey (VAE + LSP + PointNet) and Transporter.

Each `*_losses(model, ...)` runs the model once and returns (losses, outputs): a dict of
scalar losses including "total", the one to differentiate, and the model's outputs.
"""
import tensorflow as tf

# The model owns the transport step (it is part of Transporter's forward pass); it is
# re-exported here because the authors' ul_loss.py:transporter_loss holds it with the loss.
from vision_modules import transport  # noqa: F401

# Fixed variance of the Gaussian likelihood p(x | z) (authors' ul_loss.py:pkey_loss).
RECON_VARIANCE = 0.1


def mean_squared_error(predictions, targets):
    """Mean over every element (batch included)."""
    return tf.reduce_mean(tf.square(predictions - targets))


def gaussian_reconstruction_loss(images, recon):
    """Mean over pixels of squared error / (2 * variance), averaged over the batch."""
    return mean_squared_error(recon, images) / (2.0 * RECON_VARIANCE)


def kl_to_standard_normal(mean, scale):
    """KL(N(mean, scale^2) || N(0, I)), summed over latent dims, averaged over the batch."""
    kl = 0.5 * (tf.square(mean) + tf.square(scale) - 1.0) - tf.math.log(scale)
    return tf.reduce_mean(tf.reduce_sum(kl, axis=-1))


def lsp_loss(predictions, targets):
    """Local spatial prediction loss: mean squared error per layer, summed over layers."""
    return tf.add_n([mean_squared_error(p, t) for p, t in zip(predictions, targets)])


def pnet_loss(heatmaps, error_maps):
    """Summed keypoint heatmaps vs the error maps.

    heatmaps [B, h, w, K] on the PointNet grid; error_maps [B, S, S, L]. The K heatmaps
    are summed to one channel and resized (nearest) to S x S. With several LSP layers
    (L > 1) that single channel is compared with every error channel and the squared
    errors averaged (broadcast), i.e. the mean of the per-channel MSEs: the keypoints
    are asked to cover what is unpredictable in any layer, each layer weighted equally.
    """
    summed = tf.reduce_sum(heatmaps, axis=-1, keepdims=True)        # [B, h, w, 1]
    summed = tf.image.resize(summed, tf.shape(error_maps)[1:3], method="nearest")
    return mean_squared_error(summed, error_maps)                   # broadcast over L


def amplitude_pnet_loss(heatmaps, error_maps):
    """Keypoints that each reconstruct the error they cover, vs the error maps.

    heatmaps [B, h, w, K] on the PointNet grid; error_maps [B, S, S, L] are averaged over
    the layers and over S/h x S/h cells to the target [B, h, w]. Each heatmap is scaled
    by the target's heatmap-weighted mean under it, and overlapping heatmaps combine by
    their maximum. The paper's summed unit-height heatmaps (pnet_loss) make a keypoint
    on background cost more than it gains, so the loss falls when keypoints leave the
    frame: hiding scores better than sitting on the error peaks. Here a keypoint can only
    lower the loss, most on a blob. A deviation from the paper (docs/keypoint_learning.md).
    """
    cell = error_maps.shape[1] // heatmaps.shape[1]
    target = tf.reduce_mean(tf.nn.avg_pool2d(error_maps, cell, cell, "VALID"), -1)  # [B, h, w]
    amplitude = (tf.reduce_sum(heatmaps * target[..., tf.newaxis], [1, 2])
                 / (tf.reduce_sum(heatmaps, [1, 2]) + 1e-6))                    # [B, K]
    recon = tf.reduce_max(heatmaps * amplitude[:, tf.newaxis, tf.newaxis], -1)   # [B, h, w]
    return mean_squared_error(recon, target)


# The PointNet's objective: the paper's, or the amplitude one (a deviation).
PNET_LOSSES = {"paper": pnet_loss, "amplitude": amplitude_pnet_loss}


def permakey_losses(model, images, is_training, pnet_objective="paper"):
    """PermaKey losses on images [B, S, S, 3] in [0, 1].

    The losses are float32 in either precision (layers.precision); `pnet_objective`
    names the PointNet's loss in PNET_LOSSES.

    "total" = vae + lsp + pnet. The model stops gradients between its parts (encoder
    activations -> LSP, error maps -> PointNet), so the gradient of "total" w.r.t. each
    parameter group (model.vae_variables, lsp_variables, pnet_variables) is the
    gradient of that group's own loss: one Adam over all variables is three Adams.
    """
    outputs = model(images, is_training)
    recon = gaussian_reconstruction_loss(images, outputs["recon"])
    kl = kl_to_standard_normal(outputs["z_mean"], outputs["z_scale"])
    losses = {
        "recon": recon,
        "kl": kl,
        "vae": recon + kl,
        "lsp": lsp_loss(outputs["lsp_predictions"], outputs["lsp_targets"]),
        "pnet": PNET_LOSSES[pnet_objective](outputs["heatmaps"], outputs["error_maps"]),
    }
    losses["total"] = losses["vae"] + losses["lsp"] + losses["pnet"]
    return losses, outputs


def transporter_losses(model, frame_a, frame_b, is_training):
    """Transporter loss: mean squared error of the transported reconstruction to frame b.

    The authors also put an L2 kernel regulariser on the convs; it is not included here.
    The loss is float32 in either precision (layers.precision).
    """
    outputs = model(frame_a, frame_b, is_training)
    recon = mean_squared_error(outputs["recon"], frame_b)
    return {"recon": recon, "total": recon}, outputs
