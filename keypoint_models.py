"""The keypoint models as the rest of the code sees them: which constructor arguments
each kind has (ARCH_KEYS, the one list), how a run's model.json builds one, how a
checkpoint loads, and the control's fixed places (FixedKeypoints).

Every keypoint model answers the same calls, so that no caller asks which kind it holds
(images: float32 [B, 84, 84, 3] in [0, 1]):
    keypoints(images)               -> centres [B, K, 2] (y, x in [-1, 1]), heatmaps or None
    features(images)                -> encoder features [B, 42, 42, C], float32
    keypoints_and_features(images)  -> centres, heatmaps, features (one pass, for acting)
"""
import numpy as np
import tensorflow as tf

import games
import vision_modules
from common import LIST_KEYS, ConfigError, as_list
from run_folders import check_model_spec, checkpoint_path

ARCH_KEYS = {  # constructor arguments of each keypoint model, as stored in model.json
    "permakey": ("num_keypoints", "lsp_layers", "patch_sizes", "latent_dim_size", "decoder_type",
                 "gauss_std", "pnet_readout"),
    "transporter": ("num_keypoints", "gauss_std", "decoder_head", "keypoint_readout",
                    "readout_scale", "centre_maps"),
}


# Values of model.json keys added after runs were made: what those runs had.
ARCH_DEFAULTS = {"pnet_readout": "axis", "decoder_head": "bn_sigmoid", "keypoint_readout": "axis",
                 "readout_scale": 10.0, "centre_maps": False}
# Keypoints an agent reads: a PermaKey or Transporter run's, or ("fixed", the control)
# K places fixed on the screen over a PermaKey run's encoder features (FixedKeypoints).
KP_TYPES = ("permakey", "transporter", "fixed")
# The keypoint model kind each kp_type loads (its run's model.json "kind").
KEYPOINT_KINDS = {"permakey": "permakey", "transporter": "transporter", "fixed": "permakey"}
CLASSES = {"permakey": vision_modules.PermaKey, "transporter": vision_modules.Transporter}


def model_spec(kind, config):
    """What a `kind` checkpoint depends on, from a script's config: the game, K, the
    distractors and the constructor arguments (ARCH_KEYS). Written to model.json;
    evaluate, compare_kpts and the agents check it."""
    spec = {"kind": kind, "env": games.canonical_env(config["env"]),
            "num_keypoints": config["num_keypoints"],
            "noise_type": games.check_noise_type(config["noise_type"])}
    for key in ARCH_KEYS[kind]:  # `lsp_layers=1` (one value for a list) becomes [1]
        spec[key] = as_list(config[key]) if key in LIST_KEYS else config[key]
    return spec


def check_spec(run_dir, expected):
    """A keypoint run's model.json, after a one-line ConfigError unless it matches every
    value of `expected` (keys older runs did not record: ARCH_DEFAULTS)."""
    return check_model_spec(run_dir, expected, ARCH_DEFAULTS)


def build_keypoint_model(spec):
    """A fresh PermaKey or Transporter module from a model spec (see ARCH_KEYS)."""
    return CLASSES[spec["kind"]](**{key: spec.get(key, ARCH_DEFAULTS.get(key))
                                    for key in ARCH_KEYS[spec["kind"]]})


def load_keypoint_model(run_dir, ckpt, expected):
    """Build the keypoint model a run folder describes (its model.json) and restore its
    `ckpt` checkpoint (best | last | an epoch number).

    `expected` holds the spec values the caller relies on (kind, env, num_keypoints,
    noise_type, ...); any difference is a one-line ConfigError. Returns (model, spec).
    """
    spec = check_spec(run_dir, expected)
    model = build_keypoint_model(spec)
    tf.train.Checkpoint(model=model).restore(checkpoint_path(run_dir, ckpt)).expect_partial()
    return model, spec


def load_agent_keypoints(kp_type, run_dir, ckpt, expected):
    """The frozen keypoint model an agent of `kp_type` reads (KP_TYPES): a run's model, or
    the control's fixed places over a PermaKey run's features. `expected`: as in
    load_keypoint_model, without the kind."""
    if kp_type not in KP_TYPES:
        raise ConfigError(f"kp_type={kp_type!r}: expected one of {', '.join(KP_TYPES)}")
    model, _ = load_keypoint_model(run_dir, ckpt, dict(expected, kind=KEYPOINT_KINDS[kp_type]))
    return FixedKeypoints(model, expected["num_keypoints"]) if kp_type == "fixed" else model


def fixed_places(num_keypoints):
    """K places spread over the screen, (y, x) in [-1, 1] [K, 2]: the centres of the cells
    of a grid of ceil(sqrt(K)) columns and ceil(K / columns) rows, row by row, the first
    K (K = 7: a 3 x 3 grid at -2/3, 0, 2/3 less its last two cells)."""
    columns = int(np.ceil(np.sqrt(num_keypoints)))
    rows = int(np.ceil(num_keypoints / columns))
    ys = (np.arange(rows) + 0.5) / rows * 2 - 1
    xs = (np.arange(columns) + 0.5) / columns * 2 - 1
    return np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(-1, 2)[:num_keypoints]


class FixedKeypoints:
    """The control agent's keypoint model: a PermaKey run's encoder features, with the
    keypoints at fixed_places whatever the frame. What an agent reaches with it is what
    the encoder features alone give, without keypoints that carry information."""

    def __init__(self, permakey, num_keypoints):
        self.permakey = permakey
        self.places = tf.constant(fixed_places(num_keypoints), tf.float32)  # [K, 2]

    def keypoints(self, images, is_training=False):
        """Centres [B, K, 2] (the fixed places) and no heatmaps."""
        return tf.tile(self.places[tf.newaxis], [tf.shape(images)[0], 1, 1]), None

    def features(self, images, is_training=False):
        """PermaKey's encoder features [B, 42, 42, C]."""
        return self.permakey.features(images, is_training)

    def keypoints_and_features(self, images, is_training=False):
        """The fixed places, no heatmaps, PermaKey's features."""
        centres, heatmaps = self.keypoints(images, is_training)
        return centres, heatmaps, self.features(images, is_training)
