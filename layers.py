"""Layers that make the vision networks fast, kept apart from the architectures.

vision_modules.py builds the paper's networks from these; they compute the same
functions as Sonnet's layers and keep Sonnet's variables and checkpoint layout:
  - Linear, Conv2D, Conv2DTranspose: Sonnet's layers, computed in the precision of the
    enclosing `precision(...)` context (float32 outside any);
  - BatchNorm: Sonnet's batch norm as one fused kernel for every input rank;
  - neighbour_matmul: the local spatial predictor's first layer, a matmul on the
    gathered neighbour cells whose rows are not kept for the backward pass.
Their speed is measured by `make bench` (README, "Speed and memory").

Mixed precision is one context around a model call:

    with layers.precision("bf16"):
        outputs = model(images, is_training=True)

Inside it the convolutions, matmuls and batch norms of these layers compute in
bfloat16; variables, batch-norm statistics and whatever a model returns as float32
stay float32, so the same checkpoints serve both precisions. Enter the context inside
the function that `tf.function` traces: the choice is read while tracing, and a traced
function does not retrace when the context changes.
"""
import contextlib

import sonnet as snt
import tensorflow as tf

from common import ConfigError

# --------------------------------------------------------------------------------------
# Precision

PRECISIONS = {"float32": tf.float32, "bf16": tf.bfloat16}
_compute_dtype = tf.float32  # a plain global, not thread-local: tf.distribute replicas
                             # trace in threads of their own


def compute_dtype(precision):
    """The tf dtype of a `precision` config value ("float32" or "bf16")."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


@contextlib.contextmanager
def precision(name):
    """Compute this module's layers in `name` ("float32" or "bf16") inside the block."""
    global _compute_dtype
    previous, _compute_dtype = _compute_dtype, compute_dtype(name)
    try:
        yield
    finally:
        _compute_dtype = previous


def current_dtype():
    """The dtype the layers compute in here: bfloat16 inside `precision("bf16")`."""
    return _compute_dtype


class _InPrecision:
    """Mixin for a Sonnet layer with weights `w`: compute it in current_dtype().

    The variables stay float32: created by a float32 call if they do not exist yet, then
    cast for the computation. The output has the compute dtype.
    """

    def __call__(self, inputs):
        dtype = current_dtype()
        inputs = tf.cast(inputs, dtype)
        if dtype == tf.float32:
            return super().__call__(inputs)
        if not hasattr(self, "w"):
            with tf.init_scope():
                super().__call__(tf.zeros([1] + inputs.shape[1:].as_list(), tf.float32))
        return self._cast_call(inputs, dtype)

    def _cast_call(self, inputs, dtype):
        """Sonnet's own call, every variable read cast to `dtype`."""
        with snt.custom_variable_getter(lambda variable: tf.cast(variable, dtype),
                                        instances=[self]):
            return super().__call__(inputs)

    def _add_bias(self, outputs, dtype):
        return tf.nn.bias_add(outputs, tf.cast(self.b, dtype)) if self.with_bias else outputs


class Linear(_InPrecision, snt.Linear):
    """snt.Linear computed in the current precision."""

    def _cast_call(self, inputs, dtype):
        return self._add_bias(tf.matmul(inputs, tf.cast(self.w, dtype)), dtype)


class Conv2D(_InPrecision, snt.Conv2D):
    """snt.Conv2D with a string padding ("SAME", the default, or "VALID"), computed in
    the current precision."""

    def _cast_call(self, inputs, dtype):
        if self.padding_func is not None:
            return super()._cast_call(inputs, dtype)
        outputs = tf.nn.convolution(inputs, tf.cast(self.w, dtype), strides=self.stride,
                                    padding=self.conv_padding, dilations=self.rate,
                                    data_format=self.data_format)
        return self._add_bias(outputs, dtype)


class Conv2DTranspose(_InPrecision, snt.Conv2DTranspose):
    """snt.Conv2DTranspose computed in the current precision."""


# --------------------------------------------------------------------------------------
# Batch norm

# Decay of the batch-norm moving averages: the authors' Keras layers' momentum. Sonnet's
# default (0.999) left inference-mode keypoints far behind training-mode ones on CPU
# runs at lr 1e-3 (docs/keypoint_learning.md).
BN_DECAY = 0.99


class BatchNorm(snt.Module):
    """snt.BatchNorm(create_scale=True, create_offset=True, decay_rate=BN_DECAY), computed
    by one fused kernel.

    Same function, variables and checkpoint layout as Sonnet's module (scale, offset and
    the debiased moving averages `moving_mean`, `moving_variance`, shaped as Sonnet
    shapes them for the input's rank), but:
      - every rank goes through the fused kernel (a [N, C] input as [1, 1, N, C]), where
        Sonnet's path for rank != 4 (tf.nn.moments, then tf.nn.batch_normalization)
        makes several passes over the input forward and backward;
      - inputs may be bfloat16: the statistics, scale and offset stay float32, the
        output has the input's dtype.
    The moving variance is updated as Sonnet does: with the unbiased batch variance for
    4-D inputs (its fused path), the biased one otherwise (its tf.nn.moments path).
    """

    def __init__(self, decay_rate=BN_DECAY, eps=1e-5, name=None):
        super().__init__(name=name)
        self._eps = eps
        self.moving_mean = snt.ExponentialMovingAverage(decay_rate, name="moving_mean")
        self.moving_variance = snt.ExponentialMovingAverage(decay_rate, name="moving_variance")

    @snt.once
    def _initialize(self, inputs):
        channels = inputs.shape[-1]
        statistics = tf.zeros([1] * (inputs.shape.rank - 1) + [channels])
        self.moving_mean.initialize(statistics)
        self.moving_variance.initialize(statistics)
        self.scale = tf.Variable(tf.ones([channels]), name="scale")
        self.offset = tf.Variable(tf.zeros([channels]), name="offset")

    def __call__(self, inputs, is_training, test_local_stats=False):
        """Normalise over every axis but the last; is_training updates the averages."""
        self._initialize(inputs)
        channels, rank = inputs.shape[-1], inputs.shape.rank
        fused_input = inputs if rank == 4 else tf.reshape(inputs, [1, 1, -1, channels])
        if is_training or test_local_stats:
            mean = variance = tf.constant([], tf.float32)
        else:
            mean = tf.reshape(self.moving_mean.value, [channels])
            variance = tf.reshape(self.moving_variance.value, [channels])
        outputs, batch_mean, batch_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=fused_input, scale=self.scale, offset=self.offset, mean=mean, variance=variance,
            epsilon=self._eps, is_training=is_training or test_local_stats)
        if is_training:
            if rank != 4:                        # Bessel-corrected -> biased
                count = tf.cast(tf.size(inputs) // channels, tf.float32)
                batch_variance = batch_variance * (count - 1.0) / count
            shape = self.moving_mean.average.shape
            self.moving_mean.update(tf.reshape(batch_mean, shape))
            self.moving_variance.update(tf.reshape(batch_variance, shape))
        return outputs if rank == 4 else tf.reshape(outputs, tf.shape(inputs))


# --------------------------------------------------------------------------------------
# The local spatial predictor's first layer

# The 8 neighbours of a cell as (dy, dx) offsets in a 3 x 3 block of cells, row-major,
# the centre (1, 1) left out: the order of the first LSP layer's input.
NEIGHBOUR_OFFSETS = tuple((dy, dx) for dy in range(3) for dx in range(3) if (dy, dx) != (1, 1))


def neighbour_cells(cells):
    """Cell map [B, h, w, ppC] -> [B, h, w, 8ppC]: each cell's 8 neighbours concatenated
    in NEIGHBOUR_OFFSETS order, zero beyond the map's edge (the zero padding by p)."""
    height, width = cells.shape[1:3]
    padded = tf.pad(cells, [[0, 0], [1, 1], [1, 1], [0, 0]])
    return tf.concat([padded[:, dy:dy + height, dx:dx + width] for dy, dx in NEIGHBOUR_OFFSETS],
                     axis=-1)


def neighbour_matmul(cells, weight):
    """neighbour_cells(cells) as rows [N, 8ppC] @ weight [8ppC, F] -> [N, F], N = B*h*w,
    computed in the current precision.

    One matmul rather than a centre-masked 3 x 3 convolution on the cell map: it skips
    the masked ninth tap, and its weight gradient is a plain matmul. The gathered rows
    (8 copies of the cell map) are not kept for the backward pass, which gathers them
    again (a copy, no FLOPs).
    """
    dtype = current_dtype()
    return _neighbour_matmul(tf.cast(cells, dtype), tf.cast(weight, dtype))


@tf.custom_gradient
def _neighbour_matmul(cells, weight):
    def rows_of(cell_map):
        return tf.reshape(neighbour_cells(cell_map), [-1, weight.shape[0]])

    def backward(d_outputs):
        # Gather only once d_outputs exists, or the runtime could run it right away.
        with tf.GradientTape() as tape, tf.control_dependencies([d_outputs]):
            tape.watch(cells)
            rows = rows_of(tf.identity(cells))
        d_weight = tf.matmul(rows, d_outputs, transpose_a=True)
        # Pruned from a compiled step when nothing needs it (stop-gradient inputs).
        d_cells = tape.gradient(rows, cells,
                                output_gradients=tf.matmul(d_outputs, weight, transpose_b=True))
        return d_cells, d_weight

    return tf.matmul(rows_of(cells), weight), backward
