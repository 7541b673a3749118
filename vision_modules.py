"""Vision networks: PermaKey (VAE + local spatial prediction + PointNet) and Transporter.

The architectures are the paper's (docs/DESIGN.md, "PermaKey" and "Transporter").
Images are NHWC float32 in [0, 1]; keypoint centres are (y, x) in [-1, 1], y growing
downward. All modules are Sonnet 2 and run eagerly or inside `tf.function`.

Their layers come from layers.py (fused batch norm, the neighbour matmul, computation in
bfloat16 inside `layers.precision("bf16")`); every output these modules return is
float32 in either precision.
"""
import sonnet as snt
import tensorflow as tf

import layers
from common import ConfigError


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


# --------------------------------------------------------------------------------------
# Conv towers.

def _upsample(inputs, factor, method):
    """Resize [B, H, W, C] by an integer factor with `method` ("nearest" or "bilinear").

    H and W must be static (they are throughout this project), so outputs keep static
    spatial shapes inside tf.function.
    """
    height, width = inputs.shape[1:3]
    return tf.image.resize(inputs, [height * factor, width * factor], method=method)


class ConvStack(snt.Module):
    """Layers of conv -> BN -> activation; returns every layer's output.

    The one conv-tower builder used by the VAE encoder and decoder, the PointNet and the
    Transporter networks. `layer_specs` holds (channels, kernel, stride) per layer; with
    `resample`:
      "down":                conv with that stride (encoders);
      "nearest", "bilinear": upsample by the stride with that method, then a stride-1
                             conv (decoders);
      "transpose":           transposed conv with that stride (the "deconv" decoder).
    Hidden layers use ReLU, the last layer `final_activation`. Convs carry no bias: the
    BN offset that follows makes it redundant (deviation from the authors' layers, same
    function class).
    """

    _RESAMPLE_MODES = ("down", "nearest", "bilinear", "transpose")

    def __init__(self, layer_specs, resample="down", final_activation=tf.nn.relu,
                 name=None):
        super().__init__(name=name)
        if resample not in self._RESAMPLE_MODES:
            raise ValueError(f"resample={resample!r}, expected one of {self._RESAMPLE_MODES}")
        self._resample = resample
        self._final_activation = final_activation
        self._strides = [stride for _, _, stride in layer_specs]
        conv_class = layers.Conv2DTranspose if resample == "transpose" else layers.Conv2D
        upsampling = resample in ("nearest", "bilinear")
        self.convs = [
            conv_class(channels, kernel, stride=1 if upsampling else stride,
                       with_bias=False, name=f"conv_{i}")
            for i, (channels, kernel, stride) in enumerate(layer_specs)]
        self.norms = [layers.BatchNorm(name=f"bn_{i}") for i in range(len(layer_specs))]

    def __call__(self, inputs, is_training):
        """Every layer's output, in the compute dtype (float32 unless bf16 is on)."""
        outputs = []
        net = inputs
        last = len(self.convs) - 1
        for i, (conv, norm, stride) in enumerate(zip(self.convs, self.norms, self._strides)):
            if stride > 1 and self._resample in ("nearest", "bilinear"):
                net = _upsample(net, stride, self._resample)
            net = norm(conv(net), is_training=is_training)
            net = self._final_activation(net) if i == last else tf.nn.relu(net)
            outputs.append(net)
        return outputs


def sequential_keypoint_centres(feature_map, std, strict=False):
    """Keypoint centres (y, x) in [-1, 1] from a [B, H, W, K] feature map, one after another.

    Keypoint k is the expectation of the grid under a 2-D softmax of map k where the
    places of keypoints 1..k-1 are closed (their heatmaps as gaussian_heatmaps, width
    `std`, with the earlier centres held constant; open_k = prod_{j<k} (1 - heatmap_j)):
      soft (strict=False): the softmax weights times open_k (each factor at least 1e-6):
        a place is closed the more firmly the nearer an earlier keypoint sits to its
        centre, and a much stronger place can still be shared;
      strict: map k lowered by its own range (max - min, held constant) times
        1 - open_k: the place an earlier keypoint sits on falls to the map's minimum, so
        no place is taken twice however strong it is.
    Where the per-axis readout (keypoint_centres) averages the places a map responds to,
    this one lets each keypoint take a different blob of maps that respond alike. A
    deviation from the paper (docs/keypoint_learning.md).
    """
    feature_map = tf.convert_to_tensor(feature_map, tf.float32)
    _, height, width, num_keypoints = feature_map.shape
    ys, xs = tf.meshgrid(tf.linspace(-1.0, 1.0, height), tf.linspace(-1.0, 1.0, width),
                         indexing="ij")
    grid = tf.reshape(tf.stack([ys, xs], -1), [height * width, 2])   # [HW, 2]
    logits = tf.reshape(feature_map, [-1, height * width, num_keypoints])
    log_open = tf.zeros_like(logits[..., 0])                         # [B, HW] log open_k
    centres = []
    for k in range(num_keypoints):
        logit = logits[..., k]                                       # [B, HW]
        if strict:
            span = tf.stop_gradient(tf.reduce_max(logit, -1, keepdims=True)
                                    - tf.reduce_min(logit, -1, keepdims=True))  # [B, 1]
            logit = logit - span * (1.0 - tf.exp(log_open))
        else:
            logit = logit + log_open
        weights = tf.nn.softmax(logit, axis=-1)                      # [B, HW]
        centres.append(weights @ grid)                               # [B, 2]
        heat = gaussian_heatmaps(tf.stop_gradient(centres[-1])[:, tf.newaxis], height, width, std)
        log_open += tf.math.log(tf.maximum(1.0 - tf.reshape(heat, [-1, height * width]), 1e-6))
    return tf.stack(centres, axis=1)                                 # [B, K, 2]


# How a Keypointer turns its K maps into centres: the paper's per-axis softmax, the same
# with a learned scale on the maps ("scaled_axis"), or the sequential 2-D readout (with a
# learned scale on the maps) with its soft or strict closure. The scales start at
# `readout_scale`.
KEYPOINT_READOUTS = ("axis", "scaled_axis", "sequential", "sequential_strict")


class CentreOverFrames(snt.Module):
    """Subtracts from maps [B, H, W, K] their mean over frames at every place and channel.

    In training the mean is the batch's (and a moving average of it is kept, decay
    layers.BN_DECAY); in inference, that moving average. Whatever a map shows alike in
    every frame (a static background, the screen's border) is removed, and what changes
    from frame to frame is left: a keypoint map centred this way cannot hold its
    keypoint on the static screen. A deviation from Kulkarni et al. 2019
    (docs/transporter_learning.md).
    """

    def __init__(self, decay_rate=layers.BN_DECAY, name=None):
        super().__init__(name=name)
        self.mean = snt.ExponentialMovingAverage(decay_rate, name="mean")

    @snt.once
    def _initialize(self, maps):
        self.mean.initialize(tf.zeros([1] + maps.shape[1:].as_list()))

    def __call__(self, maps, is_training):
        """maps [B, H, W, K] float32 -> the same, centred."""
        self._initialize(maps)
        if not is_training:
            return maps - self.mean.value
        mean = tf.reduce_mean(maps, axis=0, keepdims=True)          # [1, H, W, K]
        self.mean.update(mean)
        return maps - mean


class Keypointer(snt.Module):
    """Conv tower -> 1x1 conv to K maps -> keypoint centres and Gaussian heatmaps.

    PermaKey's PointNet (input: error maps) and Transporter's keypointer (input: frames)
    differ only in their tower. `readout` (KEYPOINT_READOUTS) picks how centres are read
    from the maps.
    """

    def __init__(self, layer_specs, num_keypoints, gauss_std, readout="axis", readout_scale=10.0,
                 centre_maps=False, name=None):
        super().__init__(name=name)
        _config_check(readout in KEYPOINT_READOUTS, f"pnet_readout={readout!r}: expected one "
                                                    f"of {', '.join(KEYPOINT_READOUTS)}")
        _config_check(isinstance(readout_scale, (int, float)) and readout_scale > 0,
                      f"readout_scale={readout_scale!r}: expected a positive number")
        self._gauss_std = gauss_std
        self._readout = readout
        self.conv_stack = ConvStack(layer_specs)
        self.to_keypoint_maps = layers.Conv2D(num_keypoints, 1, name="to_keypoint_maps")
        self.centring = CentreOverFrames(name="centring") if centre_maps else None
        if readout != "axis":
            self.log_scale = tf.Variable(tf.math.log(float(readout_scale)), name="log_scale")

    def __call__(self, inputs, is_training):
        """Returns centres [B, K, 2] and heatmaps [B, h, w, K] on the tower's output grid."""
        features = self.conv_stack(inputs, is_training)[-1]
        keypoint_maps = tf.cast(self.to_keypoint_maps(features), tf.float32)  # [B, h, w, K]
        if self.centring is not None:
            keypoint_maps = self.centring(keypoint_maps, is_training)
        if self._readout == "axis":
            centres = keypoint_centres(keypoint_maps)               # [B, K, 2]
        elif self._readout == "scaled_axis":
            centres = keypoint_centres(keypoint_maps * tf.exp(self.log_scale))  # [B, K, 2]
        else:
            centres = sequential_keypoint_centres(
                keypoint_maps * tf.exp(self.log_scale), self._gauss_std,
                strict=self._readout == "sequential_strict")        # [B, K, 2]
        grid = tf.shape(keypoint_maps)
        heatmaps = gaussian_heatmaps(centres, grid[1], grid[2], self._gauss_std)
        return centres, heatmaps


# --------------------------------------------------------------------------------------
# PermaKey: VAE, local spatial prediction (LSP), PointNet.

# (channels, kernel, stride). Maps for 84 x 84 input: 84x84x32, 42x42x64, 21x21x64,
# 21x21x128. The PointNet uses the same tower on the error maps.
PERMAKEY_ENCODER_LAYERS = ((32, 4, 1), (64, 3, 2), (64, 3, 2), (128, 3, 1))
# Strides here are nearest / transposed upsampling factors: 21 -> 42 -> 84.
PERMAKEY_DECODER_LAYERS = ((128, 3, 1), (64, 3, 2), (64, 3, 2), (32, 3, 1), (16, 4, 1),
                           (3, 4, 1))
DECODER_RESAMPLE = {"conv": "nearest", "deconv": "transpose"}


def encoder_map_sizes(image_size):
    """Side of each PermaKey encoder activation map ("same" padding: ceil per stride)."""
    sizes = []
    size = image_size
    for _, _, stride in PERMAKEY_ENCODER_LAYERS:
        size = -(-size // stride)
        sizes.append(size)
    return sizes


class VAEEncoder(snt.Module):
    """Images -> (mean, scale) of q(z | x) and the four conv activations."""

    def __init__(self, latent_dim_size, name=None):
        super().__init__(name=name)
        self.conv_stack = ConvStack(PERMAKEY_ENCODER_LAYERS)
        self.to_latent = layers.Linear(2 * latent_dim_size, name="to_latent")

    def __call__(self, images, is_training):
        """mean and scale float32; the activations in the compute dtype."""
        activations = self.conv_stack(images, is_training)
        flat = snt.flatten(activations[-1])                          # [B, 21*21*128]
        latent = tf.cast(self.to_latent(flat), tf.float32)
        mean, raw_scale = tf.split(latent, 2, axis=-1)               # [B, latent] each
        return mean, tf.nn.softplus(raw_scale), activations


def sample_latent(mean, scale, generator):
    """Reparameterised sample of N(mean, scale^2): gradients reach mean and scale.
    `generator` (a tf.random.Generator) draws the noise."""
    return mean + scale * generator.normal(tf.shape(mean))


class VAEDecoder(snt.Module):
    """Latent [B, latent] -> image [B, S, S, 3] in [0, 1] via a (S/4) x (S/4) x 1 grid."""

    def __init__(self, decoder_type, image_size, name=None):
        super().__init__(name=name)
        self._grid_size = image_size // 4
        self.to_grid = layers.Linear(self._grid_size ** 2, name="to_grid")
        self.conv_stack = ConvStack(PERMAKEY_DECODER_LAYERS,
                                    resample=DECODER_RESAMPLE[decoder_type],
                                    final_activation=tf.nn.sigmoid)

    def __call__(self, z, is_training):
        grid = tf.nn.relu(self.to_grid(z))                           # [B, S/4 * S/4]
        grid = tf.reshape(grid, [-1, self._grid_size, self._grid_size, 1])
        return tf.cast(self.conv_stack(grid, is_training)[-1], tf.float32)  # [B, S, S, 3]


def space_to_cells(maps, patch_size):
    """[B, H, W, C] -> [B, H/p, W/p, p*p*C]: each p x p cell flattened in (y, x, c) order."""
    if patch_size == 1:                           # tf.nn.space_to_depth needs p >= 2
        return maps
    return tf.nn.space_to_depth(maps, patch_size)


class LocalSpatialPredictor(snt.Module):
    """Predicts every p x p cell of an activation map from its 8 neighbouring cells.

    The authors' MLP is Dense(8ppC) -> Dense(512) -> Dense(256) (BN + ReLU each) ->
    linear Dense(ppC), applied to the 8 neighbour cells of each cell of the map zero
    padded by p (the authors' ul_loss.py:extract_neighbouring_patches; equivalently a
    3p x 3p kernel with its centre p x p masked out, stride p).

    Computation: the map becomes the cell map space_to_depth(A, p) [B, h, w, ppC] (also
    the prediction target); the first Dense is one matmul of every cell's 8 gathered
    neighbour cells with the [8ppC, 8ppC] kernel (layers.neighbour_matmul), the other
    layers act on its rows. The kernel variable keeps the layout of a 3 x 3 convolution
    on the cell map, [3, 3, ppC, 8ppC] (tap (dy, dx) = the weights of neighbour
    (dy, dx)); its centre tap is never read (no gradient, stays at its initial value).
    """

    def __init__(self, patch_size, channels, name=None):
        super().__init__(name=name)
        self.patch_size = patch_size
        self._cell_size = patch_size * patch_size * channels
        neighbours_size = 8 * self._cell_size
        # Truncated normal with stddev 1/sqrt(fan_in), Sonnet's default, with fan_in the
        # 8 neighbour cells. No bias: BN follows.
        init = snt.initializers.TruncatedNormal(stddev=neighbours_size ** -0.5)
        self.neighbour_kernel = tf.Variable(
            init([3, 3, self._cell_size, neighbours_size], tf.float32),
            name="neighbour_kernel")                               # [3, 3, ppC, 8ppC]
        self.neighbour_norm = layers.BatchNorm(name="neighbour_bn")
        self.hidden_layers = [layers.Linear(size, with_bias=False, name=f"hidden_{size}")
                              for size in (512, 256)]
        self.hidden_norms = [layers.BatchNorm(name=f"hidden_bn_{size}") for size in (512, 256)]
        self.prediction_layer = layers.Linear(self._cell_size, name="prediction")

    def neighbours_weight(self):
        """The first layer's [8ppC, 8ppC] weight: the kernel's 8 outer taps stacked in
        layers.NEIGHBOUR_OFFSETS order (the centre tap (1, 1) is index 4 of the 9)."""
        taps = tf.reshape(self.neighbour_kernel, [9, self._cell_size, -1])
        return tf.reshape(tf.concat([taps[:4], taps[5:]], axis=0), [8 * self._cell_size, -1])

    def neighbour_features(self, cells):
        """First layer (before BN): cell map [B, h, w, ppC] -> [B, h, w, 8ppC]."""
        height, width = cells.shape[1:3]
        features = layers.neighbour_matmul(cells, self.neighbours_weight())  # [B*h*w, 8ppC]
        return tf.reshape(features, [-1, height, width, features.shape[-1]])

    def predict_from_neighbour_features(self, features, is_training):
        """Rest of the MLP: [B, h, w, 8ppC] first-layer outputs -> [B, h, w, ppC] float32."""
        grid = tf.shape(features)[:3]
        net = tf.nn.relu(self.neighbour_norm(features, is_training=is_training))
        net = tf.reshape(net, [-1, net.shape[-1]])                  # [B*h*w, 8ppC]
        for layer, norm in zip(self.hidden_layers, self.hidden_norms):
            net = tf.nn.relu(norm(layer(net), is_training=is_training))
        prediction = tf.cast(self.prediction_layer(net), tf.float32)  # [B*h*w, ppC]
        return tf.reshape(prediction, tf.concat([grid, [self._cell_size]], axis=0))

    def __call__(self, activation, is_training):
        """activation [B, H, W, C] -> (prediction, target), both [B, H/p, W/p, ppC] float32."""
        cells = space_to_cells(activation, self.patch_size)        # the targets
        features = self.neighbour_features(cells)
        prediction = self.predict_from_neighbour_features(features, is_training)
        return prediction, tf.cast(cells, tf.float32)


def cell_error_map(prediction, target):
    """Per-cell predictability error [B, h, w, 1].

    Mean squared error over the cell's p*p*C values divided by (mean target value +
    1e-3): a cell that is hard to predict relative to how active it is scores high.
    """
    squared_error = tf.reduce_mean(tf.square(prediction - target), axis=-1, keepdims=True)
    return squared_error / (tf.reduce_mean(target, axis=-1, keepdims=True) + 1e-3)


def min_max_normalise(maps):
    """Scale each image's channel of [B, H, W, C] to [0, 1]; a constant channel -> 0."""
    low = tf.reduce_min(maps, axis=[1, 2], keepdims=True)
    high = tf.reduce_max(maps, axis=[1, 2], keepdims=True)
    return tf.math.divide_no_nan(maps - low, high - low)


def stack_error_maps(cell_maps, image_size):
    """Per-layer cell maps -> [B, S, S, L]: nearest resize to S x S, stack, normalise."""
    resized = [tf.image.resize(cell_map, [image_size, image_size], method="nearest")
               for cell_map in cell_maps]
    return min_max_normalise(tf.concat(resized, axis=-1))


def _config_check(ok, message):
    if not ok:
        raise ConfigError(message)


class PermaKey(snt.Module):
    """VAE encoder/decoder, one LocalSpatialPredictor per LSP layer, and a PointNet.

    The three parts have separate objectives (the paper's method section). The forward
    pass enforces it with tf.stop_gradient: the LSP predictors see the encoder
    activations as constants and the PointNet sees the error maps as constants, so any
    loss built from the outputs trains each part only through its own term.
    """

    def __init__(self, num_keypoints, lsp_layers=(0, 1), patch_sizes=(2, 2),
                 latent_dim_size=32, decoder_type="conv", gauss_std=0.12, pnet_readout="axis",
                 image_size=84, name=None):
        super().__init__(name=name)
        lsp_layers, patch_sizes = tuple(lsp_layers), tuple(patch_sizes)
        _config_check(isinstance(num_keypoints, int) and num_keypoints >= 1,
                      f"num_keypoints={num_keypoints!r}: expected an integer >= 1")
        _config_check(image_size % 4 == 0,
                      f"image_size={image_size!r}: expected a multiple of 4")
        _config_check(decoder_type in DECODER_RESAMPLE,
                      f"decoder_type={decoder_type!r}: expected one of "
                      f"{sorted(DECODER_RESAMPLE)}")
        num_layers = len(PERMAKEY_ENCODER_LAYERS)
        _config_check(len(lsp_layers) >= 1
                      and all(layer in range(num_layers) for layer in lsp_layers),
                      f"lsp_layers={lsp_layers}: expected one or more encoder layer "
                      f"indices in 0..{num_layers - 1}")
        _config_check(len(patch_sizes) == len(lsp_layers),
                      f"patch_sizes={patch_sizes}: expected one patch size per lsp layer "
                      f"({len(lsp_layers)} for lsp_layers={lsp_layers})")
        map_sizes = encoder_map_sizes(image_size)
        for layer, p in zip(lsp_layers, patch_sizes):
            _config_check(isinstance(p, int) and p >= 1 and map_sizes[layer] % p == 0,
                          f"patch_sizes: {p!r} for lsp layer {layer} must be a positive "
                          f"divisor of its {map_sizes[layer]}x{map_sizes[layer]} map")
        self._lsp_layers = lsp_layers
        self._image_size = image_size

        self.encoder = VAEEncoder(latent_dim_size)
        self.decoder = VAEDecoder(decoder_type, image_size)
        self.lsp_mlps = [
            LocalSpatialPredictor(p, PERMAKEY_ENCODER_LAYERS[layer][0], name=f"lsp_{layer}")
            for layer, p in zip(lsp_layers, patch_sizes)]
        self.pnet = Keypointer(PERMAKEY_ENCODER_LAYERS, num_keypoints, gauss_std,
                               pnet_readout, name="pnet")
        # The VAE's sampling noise: its state is saved with the model, so a resumed run
        # draws what an uninterrupted one would. Seeded from the global seed.
        self.noise = tf.random.Generator.from_seed(
            int(tf.random.uniform([], 0, 2 ** 31 - 1, tf.int64)))

    @property
    def lsp_layers(self):
        return self._lsp_layers

    @property
    def vae_variables(self):
        return self.encoder.trainable_variables + self.decoder.trainable_variables

    @property
    def lsp_variables(self):
        return sum((mlp.trainable_variables for mlp in self.lsp_mlps), ())

    @property
    def pnet_variables(self):
        return self.pnet.trainable_variables

    def _local_spatial_prediction(self, activations, is_training):
        """LSP on the chosen (gradient-stopped) activations, and the error maps (float32)."""
        predictions, targets, cell_maps = [], [], []
        for layer, mlp in zip(self._lsp_layers, self.lsp_mlps):
            prediction, target = mlp(tf.stop_gradient(activations[layer]), is_training)
            predictions.append(prediction)
            targets.append(target)
            cell_maps.append(cell_error_map(prediction, target))
        error_maps = stack_error_maps(cell_maps, self._image_size)   # [B, S, S, L]
        return predictions, targets, cell_maps, tf.stop_gradient(error_maps)

    def __call__(self, images, is_training):
        """images [B, S, S, 3] in [0, 1] -> dict of float32 outputs (see the keys below).

        is_training (Python bool) selects BN batch statistics and sampling z from
        q(z | x); at inference z is the posterior mean.
        """
        z_mean, z_scale, activations = self.encoder(images, is_training)
        z = sample_latent(z_mean, z_scale, self.noise) if is_training else z_mean
        recon = self.decoder(z, is_training)
        predictions, targets, cell_maps, error_maps = self._local_spatial_prediction(
            activations, is_training)
        centres, heatmaps = self.pnet(error_maps, is_training)
        activations = [tf.cast(activation, tf.float32) for activation in activations]
        return {
            "recon": recon,                          # [B, S, S, 3]
            "z_mean": z_mean,                        # [B, latent]
            "z_scale": z_scale,                      # [B, latent]
            "activations": activations,              # 4 maps, see PERMAKEY_ENCODER_LAYERS
            "features": activations[self._lsp_layers[-1]],  # last LSP layer, for the agent
            "lsp_predictions": predictions,          # per LSP layer [B, h, w, ppC]
            "lsp_targets": targets,                  # per LSP layer [B, h, w, ppC]
            "raw_error_maps": cell_maps,             # per LSP layer [B, h, w, 1]
            "error_maps": error_maps,                # [B, S, S, L], stopped, in [0, 1]
            "centres": centres,                      # [B, K, 2]
            "heatmaps": heatmaps,                    # [B, S/4, S/4, K] (PointNet grid)
        }

    def keypoints_and_features(self, images, is_training=False):
        """Centres [B, K, 2], heatmaps [B, S/4, S/4, K] on the PointNet grid, and the last
        LSP layer's features [B, S/2, S/2, C], float32 (one encoder pass, no decoder)."""
        _, _, activations = self.encoder(images, is_training)
        error_maps = self._local_spatial_prediction(activations, is_training)[-1]
        centres, heatmaps = self.pnet(error_maps, is_training)
        return centres, heatmaps, tf.cast(activations[self._lsp_layers[-1]], tf.float32)

    def keypoints(self, images, is_training=False):
        """Centres [B, K, 2] and heatmaps [B, S/4, S/4, K] on the PointNet grid."""
        centres, heatmaps, _ = self.keypoints_and_features(images, is_training)
        return centres, heatmaps

    def features(self, images, is_training=False):
        """The last LSP layer's encoder features [B, S/2, S/2, C], float32: what an agent
        reads beside the keypoints."""
        _, _, activations = self.encoder(images, is_training)
        return tf.cast(activations[self._lsp_layers[-1]], tf.float32)


# --------------------------------------------------------------------------------------
# Transporter (Kulkarni et al. 2019) as re-implemented in the paper.

# (channels, kernel, stride): 84x84x16, 84x84x16, 42x42x32, 42x42x32. Also the
# keypointer's backbone (its own copy).
TRANSPORTER_ENCODER_LAYERS = ((16, 3, 1), (16, 3, 1), (32, 3, 2), (32, 3, 1))
# The stride-2 layer is preceded by a 2x bilinear upsample: 42 -> 84.
TRANSPORTER_DECODER_LAYERS = ((128, 3, 1), (128, 3, 1), (64, 3, 2), (32, 3, 1), (3, 3, 1))


def transport(features_a, features_b, heatmaps_a, heatmaps_b):
    """Moves features at a's keypoints out and b's features at b's keypoints in.

    features [B, H, W, C], heatmaps [B, H, W, K]. Kulkarni et al. 2019's transport:
    starting from a's features, for each keypoint k in turn
        f <- f * (1 - h_a[k]) * (1 - h_b[k]) + h_b[k] * features_b.
    Gradients are stopped on a's features and heatmaps. Every step is linear in
    (features_a, features_b), so f = w_a * features_a + w_b * features_b; the loop runs
    on the single-channel weights w_a, w_b [B, H, W, 1] rather than on C-channel
    features, and the result is the same.
    """
    features_a = tf.stop_gradient(features_a)
    heatmaps_a = tf.stop_gradient(heatmaps_a)
    weight_a = tf.ones_like(heatmaps_a[..., :1])                    # [B, H, W, 1]
    weight_b = tf.zeros_like(weight_a)                              # [B, H, W, 1]
    for k in range(heatmaps_b.shape[-1]):
        h_a, h_b = heatmaps_a[..., k:k + 1], heatmaps_b[..., k:k + 1]
        keep = (1.0 - h_a) * (1.0 - h_b)
        weight_a = weight_a * keep
        weight_b = weight_b * keep + h_b
    return weight_a * features_a + weight_b * features_b            # [B, H, W, C]


# How Transporter's decoder makes pixels: "bn_sigmoid", the authors' re-implementation
# (conv -> batch norm -> sigmoid); "conv", DeepMind's reference (a plain conv with bias).
DECODER_HEADS = ("bn_sigmoid", "conv")


class Transporter(snt.Module):
    """Encoder features + keypointer; reconstructs frame b by transporting a's features.

    Args:
      num_keypoints: K.
      gauss_std: width of the keypoint Gaussians, in [-1, 1] frame units.
      image_size: side S of the square input frames.
      decoder_head: one of DECODER_HEADS, the decoder's last layer.
      keypoint_readout, readout_scale: the keypointer's readout (KEYPOINT_READOUTS) and
        the initial scale of its maps for the scaled ones.
      centre_maps: centre the keypoint maps over frames (CentreOverFrames).
    """

    def __init__(self, num_keypoints, gauss_std=0.1, image_size=84, decoder_head="bn_sigmoid",
                 keypoint_readout="axis", readout_scale=10.0, centre_maps=False, name=None):
        super().__init__(name=name)
        _config_check(isinstance(num_keypoints, int) and num_keypoints >= 1,
                      f"num_keypoints={num_keypoints!r}: expected an integer >= 1")
        _config_check(image_size % 2 == 0,
                      f"image_size={image_size!r}: expected an even number")
        _config_check(decoder_head in DECODER_HEADS, f"decoder_head={decoder_head!r}: expected "
                                                     f"one of {', '.join(DECODER_HEADS)}")
        _config_check(keypoint_readout in KEYPOINT_READOUTS,
                      f"keypoint_readout={keypoint_readout!r}: expected one of "
                      f"{', '.join(KEYPOINT_READOUTS)}")
        self.encoder = ConvStack(TRANSPORTER_ENCODER_LAYERS, name="encoder")
        self.keypointer = Keypointer(TRANSPORTER_ENCODER_LAYERS, num_keypoints, gauss_std,
                                     keypoint_readout, readout_scale, centre_maps,
                                     name="keypointer")
        if decoder_head == "bn_sigmoid":
            self.decoder = ConvStack(TRANSPORTER_DECODER_LAYERS, resample="bilinear",
                                     final_activation=tf.nn.sigmoid, name="decoder")
            self.decoder_out = None
        else:
            self.decoder = ConvStack(TRANSPORTER_DECODER_LAYERS[:-1], resample="bilinear",
                                     name="decoder")
            channels, kernel, _ = TRANSPORTER_DECODER_LAYERS[-1]
            self.decoder_out = layers.Conv2D(channels, kernel, name="decoder_out")

    def keypoints_and_features(self, images, is_training=False):
        """Centres [B, K, 2], heatmaps [B, S/2, S/2, K], features [B, S/2, S/2, 32]."""
        features = self.features(images, is_training)
        centres, heatmaps = self.keypointer(images, is_training)
        return centres, heatmaps, features

    def keypoints(self, images, is_training=False):
        """Centres [B, K, 2] and heatmaps [B, S/2, S/2, K]."""
        return self.keypointer(images, is_training)

    def features(self, images, is_training=False):
        """The encoder's features [B, S/2, S/2, 32], float32 (what is transported)."""
        return tf.cast(self.encoder(images, is_training)[-1], tf.float32)

    def __call__(self, frame_a, frame_b, is_training):
        """Frames [B, S, S, 3] in [0, 1] -> dict of float32 outputs; "recon" reconstructs
        frame_b. The transport itself is float32 (a few elementwise ops).

        The two frames go through the networks in separate calls so that batch-norm
        statistics of frame b do not depend on frame a (a's branch gets no gradient).
        """
        centres_a, heatmaps_a, features_a = self.keypoints_and_features(frame_a, is_training)
        centres_b, heatmaps_b, features_b = self.keypoints_and_features(frame_b, is_training)
        transported = transport(features_a, features_b, heatmaps_a, heatmaps_b)
        recon = self.decoder(transported, is_training)[-1]
        if self.decoder_out is not None:
            recon = self.decoder_out(recon)
        return {
            "recon": tf.cast(recon, tf.float32),                    # [B, S, S, 3]
            "centres_a": centres_a, "centres_b": centres_b,         # [B, K, 2]
            "heatmaps_a": heatmaps_a, "heatmaps_b": heatmaps_b,     # [B, S/2, S/2, K]
            "features_a": features_a, "features_b": features_b,     # [B, S/2, S/2, 32]
        }
