"""Diagnostic, not part of the method: train a fresh PointNet alone on the frozen error maps
of a trained PermaKey checkpoint, with the paper's objective or an alternative, and score
its keypoints against the RAM ground truth of the validation split every `--every` steps.

It isolates the PointNet: the error maps stay fixed, so any difference between objectives
is the PointNet's. Findings and the exact runs: docs/keypoint_learning.md.

    .venv/bin/python tools/pnet_lab.py --run permakey_exp/none/mspacman/7/1 --ckpt 6 \
        --variants paper,paper_t10,ms,ms_t10,km,km_p2,km_p4 --steps 600

The error maps of `--train_frames` training frames and of the whole validation split are
computed once (inference mode) and cached in `--cache`; delete it to switch checkpoints.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import sonnet as snt  # noqa: E402
import tensorflow as tf  # noqa: E402

import datasets  # noqa: E402
import kpt_metrics as km  # noqa: E402
import ul_loss  # noqa: E402
import vision_modules as vm  # noqa: E402
from keypoint_models import load_keypoint_model  # noqa: E402

STD = 0.12  # the paper's heatmap width (gauss_std)
GRID = 21   # PointNet output grid for 84 x 84 frames
STRIP_TOP = 68  # first 84 x 84 row below the MsPacman maze (score, lives, level fruit)
VARIANTS = {
    # loss: "paper" (summed Gaussian heatmaps vs error maps, MSE), "ms" (the same at 21 x 21
    # plus coarser scales: both sides blurred by a Gaussian of sd `scales` in [-1, 1] units),
    # "km" (each keypoint pulled to the centroid of the error mass, raised to `power`, in
    # its Voronoi cell: sum_p e(p)^power min_k |p - mu_k|^2 / sum_p e(p)^power).
    # temp: a learned scale on the keypoint maps before the softmax (initial value).
    # renorm: heatmaps keep their mass at the border (see heatmaps_of).
    "paper": dict(loss="paper"),
    "paper_t10": dict(loss="paper", temp=10.0),
    "ms": dict(loss="ms", scales=(0.0, 0.1, 0.3)),
    "ms_t10": dict(loss="ms", scales=(0.0, 0.1, 0.3), temp=10.0),
    "paper_renorm": dict(loss="paper", renorm=True),
    "ms_t10_renorm": dict(loss="ms", scales=(0.0, 0.1, 0.3), temp=10.0, renorm=True),
    "km": dict(loss="km", power=1.0),
    "km_p2": dict(loss="km", power=2.0),
    "km_p4": dict(loss="km", power=4.0),
    # readout "seq": keypoint k is a 2-D softmax of map k, closed where keypoints 1..k-1
    # already are (vision_modules.sequential_keypoint_centres).
    # loss "amp": ul_loss.amplitude_pnet_loss (each keypoint's Gaussian scaled by the error
    # map's mean under it, overlapping keypoints combined by their maximum).
    "amp_max": dict(loss="amp"),
    "amp_max_seq": dict(loss="amp", readout="seq", temp=10.0),
    "amp_max_t10": dict(loss="amp", temp=10.0),
    "seq": dict(loss="paper", readout="seq", temp=10.0),
    "seq_t1": dict(loss="paper", readout="seq"),
    "seq_renorm": dict(loss="paper", readout="seq", temp=10.0, renorm=True),
}


def error_maps_of(model, frames, batch=32):
    """[N, 84, 84, L] float16 error maps of uint8 frames, inference mode."""
    maps = tf.function(lambda x: model(x, is_training=False)["error_maps"])
    return np.concatenate([maps(tf.constant(frames[i:i + batch], tf.float32) / 255.0).numpy()
                           .astype(np.float16) for i in range(0, len(frames), batch)])


def peak_picker(maps, num_keypoints=7, window=9):
    """The `num_keypoints` strongest local maxima (window x window) of the summed error map."""
    summed = tf.reduce_sum(tf.cast(maps, tf.float32), -1, keepdims=True)
    is_max = tf.equal(summed, tf.nn.max_pool2d(summed, window, 1, "SAME"))
    scores = tf.where(is_max, summed, -1.0).numpy().reshape(len(maps), -1)
    top = np.argsort(-scores, axis=1)[:, :num_keypoints]
    return np.stack([top // 84, top % 84], -1) / 83.0 * 2.0 - 1.0


def gaussian_blur(maps, sd_cells):
    """Separable Gaussian blur of [B, H, W, C] maps (zero outside the frame)."""
    radius = int(3 * sd_cells) + 1
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-x ** 2 / (2.0 * sd_cells ** 2)).astype(np.float32)
    k = tf.constant(k / k.sum())
    channels = tf.unstack(maps, axis=-1)
    blurred = [tf.nn.conv2d(tf.nn.conv2d(c[..., None], tf.reshape(k, [-1, 1, 1, 1]), 1, "SAME"),
                            tf.reshape(k, [1, -1, 1, 1]), 1, "SAME") for c in channels]
    return tf.concat(blurred, -1)


class PointNet(snt.Module):
    """The PermaKey PointNet (vision_modules.Keypointer's tower and head), optionally with a
    learned scale on its keypoint maps before the per-axis softmax."""

    def __init__(self, num_keypoints, temp=1.0, readout="axis"):
        super().__init__()
        self.readout = readout
        self.tower = vm.ConvStack(vm.PERMAKEY_ENCODER_LAYERS)
        self.head = snt.Conv2D(num_keypoints, 1)
        self.log_temp = tf.Variable(np.log(temp), dtype=tf.float32, trainable=temp != 1.0)

    def __call__(self, maps, is_training):
        keypoint_maps = self.head(self.tower(maps, is_training)[-1]) * tf.exp(self.log_temp)
        if self.readout == "axis":
            return vm.keypoint_centres(keypoint_maps)                  # [B, K, 2]
        return vm.sequential_keypoint_centres(keypoint_maps, STD)


def heatmaps_of(variant, centres, std):
    """[B, 21, 21, K] Gaussian heatmaps; with `renorm` each keeps the mass it has at the
    centre of the grid wherever it is (a keypoint cannot shed its cost off the border)."""
    heatmaps = vm.gaussian_heatmaps(centres, GRID, GRID, std)
    if not variant.get("renorm"):
        return heatmaps
    centre_mass = tf.reduce_sum(vm.gaussian_heatmaps(tf.zeros([1, 1, 2]), GRID, GRID, std))
    return heatmaps * centre_mass / tf.reduce_sum(heatmaps, [1, 2], keepdims=True)


def loss_of(variant, centres, maps):
    maps = tf.cast(maps, tf.float32)
    if variant["loss"] == "paper":
        return ul_loss.pnet_loss(heatmaps_of(variant, centres, STD), maps)
    if variant["loss"] == "amp":
        return ul_loss.amplitude_pnet_loss(vm.gaussian_heatmaps(centres, GRID, GRID, STD), maps)
    if variant["loss"] == "ms":
        small = tf.nn.avg_pool2d(maps, 4, 4, "VALID")                  # [B, 21, 21, L]
        total = 0.0
        for sd in variant["scales"]:  # a blurred unit Gaussian is a wider, lower Gaussian
            wide = np.sqrt(STD ** 2 + 2 * sd ** 2)
            heatmaps = heatmaps_of(variant, centres, wide) * (STD / wide) ** 2
            target = small if sd == 0 else gaussian_blur(small, sd * (GRID - 1) / 2)
            total += tf.reduce_mean(tf.square(tf.reduce_sum(heatmaps, -1, keepdims=True) - target))
        return total
    mass = tf.reduce_sum(maps, -1) ** variant["power"]                 # [B, 84, 84]
    mass = tf.reshape(mass / (tf.reduce_sum(mass, [1, 2], keepdims=True) + 1e-6), [-1, 84 * 84])
    g = tf.linspace(-1.0, 1.0, 84)
    gy, gx = tf.meshgrid(g, g, indexing="ij")
    pixels = tf.stack([tf.reshape(gy, [-1]), tf.reshape(gx, [-1])], -1)  # [P, 2]
    d2 = tf.reduce_sum(tf.square(pixels[None, :, None] - centres[:, None]), -1)  # [B, P, K]
    return tf.reduce_mean(tf.reduce_sum(mass * tf.reduce_min(d2, -1), -1))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="PermaKey run folder (needed until the cache exists)")
    p.add_argument("--ckpt", default="best", help="best | last | an epoch number")
    p.add_argument("--data_dir", default=os.path.join(datasets.DEFAULT_DATA_DIR, "quick"))
    p.add_argument("--cache", default="/tmp/pnet_lab_maps.npz")
    p.add_argument("--train_frames", type=int, default=2000)
    p.add_argument("--variants", default="paper", help=f"comma-separated: {', '.join(VARIANTS)}")
    p.add_argument("--num_keypoints", type=int, default=7)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--with_frames", action="store_true",
                   help="the PointNet sees the RGB frame beside the error maps (the loss still "
                        "reads the error maps only)")
    p.add_argument("--blank_strip", action="store_true",
                   help="zero the error maps below the maze (rows >= 68: score, lives, "
                        "level fruit)")
    a = p.parse_args()

    valid, attrs = datasets.read_h5(datasets.split_path(a.data_dir, "mspacman", "valid"),
                                    ("frames", "ram"))
    if not os.path.exists(a.cache):
        model, _ = load_keypoint_model(a.run, a.ckpt, {"kind": "permakey", "env": "mspacman"})
        train, _ = datasets.read_h5(datasets.split_path(a.data_dir, "mspacman", "train"),
                                    ("frames",))
        picks = np.random.default_rng(0).permutation(len(train["frames"]))[:a.train_frames]
        np.savez(a.cache, train=error_maps_of(model, train["frames"][picks]),
                 valid=error_maps_of(model, valid["frames"]))
    cached = np.load(a.cache)
    train_maps, valid_maps = cached["train"], cached["valid"]
    num_maps = train_maps.shape[-1]
    if a.with_frames:  # the cached training maps are of these frames, in this order
        train, _ = datasets.read_h5(datasets.split_path(a.data_dir, "mspacman", "train"),
                                    ("frames",))
        picks = np.random.default_rng(0).permutation(len(train["frames"]))[:a.train_frames]
        train_maps = np.concatenate([train_maps, train["frames"][picks] / np.float16(255)], -1)
        valid_maps = np.concatenate([valid_maps, valid["frames"] / np.float16(255)], -1)
    if a.blank_strip:
        train_maps[:, STRIP_TOP:] = 0
        valid_maps[:, STRIP_TOP:] = 0
    boxes = [o.boxes for o in km.ground_truth_for_split(valid, "mspacman", attrs)]

    def score(centres):
        m = km.keypoint_metrics(centres, boxes, 4.0)
        return m["precision"], m["recall"], km.keypoint_spread(centres)

    print("peak picker: precision %.3f recall %.3f spread %.1f px"
          % score(peak_picker(valid_maps[..., :num_maps], a.num_keypoints)), flush=True)
    for name in a.variants.split(","):
        variant = VARIANTS[name]
        tf.random.set_seed(a.seed)
        net = PointNet(a.num_keypoints, variant.get("temp", 1.0), variant.get("readout", "axis"))
        optimizer = tf.keras.optimizers.Adam(a.lr)

        @tf.function
        def train_step(maps):
            with tf.GradientTape() as tape:
                loss = loss_of(variant, net(maps, True), maps[..., :num_maps])
            optimizer.apply_gradients(zip(tape.gradient(loss, net.trainable_variables),
                                          net.trainable_variables))
            return loss

        infer = tf.function(lambda maps: net(maps, False))
        rng = np.random.default_rng(a.seed)
        start, curve = time.time(), []
        for step in range(1, a.steps + 1):
            loss = train_step(tf.constant(train_maps[rng.integers(0, len(train_maps), a.batch)]))
            if step % a.every == 0:
                centres = np.concatenate([infer(tf.constant(valid_maps[i:i + 64])).numpy()
                                          for i in range(0, len(valid_maps), 64)])
                curve.append((step,) + score(centres))
                print(f"{name} step {step} loss {float(loss):.4f} precision {curve[-1][1]:.3f} "
                      f"recall {curve[-1][2]:.3f} spread {curve[-1][3]:.1f} px "
                      f"({time.time() - start:.0f} s)", flush=True)
        pixels = km.pixel_coordinates(centres)
        boxes_padded, valid_boxes = km.padded_boxes(boxes)
        near = (km.box_distances(pixels, boxes_padded) <= 4.0) & valid_boxes[:, None]
        print(f"{name} per keypoint: "
              f"mean (y, x) px {np.round(pixels.mean(0)).astype(int).tolist()}, "
              f"precision {np.round(near.any(2).mean(0), 2).tolist()}, "
              f"in the bottom strip {float((pixels[..., 0] >= STRIP_TOP).mean()):.2f}", flush=True)
        print(json.dumps({"variant": name, "curve": curve}))


if __name__ == "__main__":
    main()
