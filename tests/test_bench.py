"""bench.py: the FLOP counter behind its roofline fractions, and its table (no timings)."""
import numpy as np
import sonnet as snt
import tensorflow as tf

import bench
import ul_loss
import vision_modules


def test_forward_flops_of_a_conv_and_a_dense_layer():
    conv, dense = snt.Conv2D(5, 3, stride=2), snt.Linear(7)
    images = tf.zeros([2, 8, 8, 4])

    def forward(x):
        return dense(snt.flatten(conv(x)))                     # conv -> [2, 4, 4, 5]

    forward(images)
    expected = 2 * (2 * 4 * 4 * 5) * (3 * 3 * 4) + 2 * 2 * (4 * 4 * 5) * 7
    assert bench.forward_flops(forward, tf.TensorSpec(images.shape)) == expected


def test_flops_of_transposed_matmuls_and_einsum():
    def forward(a, b):
        return (tf.matmul(a, b, transpose_a=True), tf.einsum("bik,bkj->bij", b[None], b[None]))

    specs = tf.TensorSpec([6, 3]), tf.TensorSpec([6, 6])
    assert bench.forward_flops(forward, *specs) == 2 * 3 * 6 * 6 + 2 * 6 * 6 * 6


def test_step_flops_count_only_what_the_step_executes():
    # The conv's input is a constant for the tape: the gradient graph holds its input
    # gradient, which the runtime prunes; the executed count leaves it out.
    conv = snt.Conv2D(4, 3, with_bias=False)
    images = tf.ones([2, 6, 6, 3])
    conv(images)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(conv(tf.stop_gradient(x)))
        return loss, tape.gradient(loss, conv.trainable_variables)

    forward = 2 * (2 * 6 * 6 * 4) * (3 * 3 * 3)
    assert bench.step_flops(step, tf.TensorSpec(images.shape)) == 2 * forward  # fwd + kernel grad


def test_permakey_step_is_about_1_2_tflop_at_batch_32():
    # The estimate: ~1.2 TFLOP per step (forward x3), nearly all in the LSP MLPs.
    model = vision_modules.PermaKey(7)
    model(tf.zeros([1, 84, 84, 3]), is_training=False)
    flops = 3 * bench.forward_flops(lambda x: ul_loss.permakey_losses(model, x, True)[0],
                                    tf.TensorSpec([32, 84, 84, 3]))
    assert 1.1e12 < flops < 1.3e12


def test_format_table_shows_every_row():
    step_row = dict(row="permakey", precision="bf16", s_per_step=2.0, cpu_s_per_step=3.9,
                    frames_per_s=16.0, gflop_per_step=1200.0, executed_gflop_per_step=950.0,
                    gflops=600.0, roofline_gflops=400.0, roofline_mode="graph",
                    roofline_fraction=1.5, executed_roofline_fraction=1.19,
                    executed_cpu_fraction=0.6, peak_rss_mb=2000.0, input_batches_per_s=900.0)
    acting = dict(row="acting", precision="float32", env_steps_per_s_1=8.0, model_fraction_1=0.9,
                  env_steps_per_s_8=10.0, model_fraction_8=0.95, gflop_per_frame=12.2,
                  keypoint_frames_per_s=18.0, roofline_gflops=200.0, peak_rss_mb=1000.0)
    missing = dict(row="rl_update", precision="bf16", unavailable="failed: out of memory")
    projection = dict(row="rl_100k", precision="bf16", num_updates=22501, kinds={})
    lines = bench.format_table([step_row, acting, missing, projection]).splitlines()
    assert len(lines) == 5 and all(line.count("|") == len(bench.COLUMNS) + 1 for line in lines)
    assert "| permakey (batch 32) | bf16 | 2.000 |" in lines[2]
    assert "8 env: 10.0 steps/s (95% in the model)" in lines[3]
    assert "keypoint model alone, batch 8: 18 frames/s" in lines[3]
    assert "failed: out of memory" in lines[4]


def test_projection_adds_acting_and_update_hours():
    def kinds(rate, s_per_update):
        return {"permakey-cnn": {"env_steps_per_s": rate, "s_per_update": s_per_update,
                                 "acting_h": 1e5 / rate / 3600,
                                 "updates_h": 22501 * s_per_update / 3600,
                                 "total_h": 1e5 / rate / 3600 + 22501 * s_per_update / 3600}}
    rows = [dict(row="rl_100k", precision="float32", num_updates=22501, kinds=kinds(25.0, 0.4)),
            dict(row="rl_100k", precision="bf16", num_updates=22501, kinds=kinds(50.0, 0.2))]
    lines = bench.format_projection(rows).splitlines()
    assert "100,000 environment steps (8 environments, 22,501 updates of batch 16" in lines[0]
    # float32: 100k / 25 = 4000 s = 1.11 h acting, 22501 x 0.4 s = 2.50 h updating
    assert lines[4] == "| permakey-cnn | float32 | 25.0 | 0.400 | 1.11 | 2.50 | 3.61 |"
    assert lines[5] == "| permakey-cnn | bf16 | 50.0 | 0.200 | 0.56 | 1.25 | 1.81 |"
    assert bench.format_projection([dict(row="rl_100k", precision="bf16",
                                         unavailable="failed")]) == ""


def test_rl_update_without_keypoint_cache_reruns_permakey_on_every_frame():
    # The cache keeps each frame's centres: the update then runs only the encoder up to
    # the last LSP layer; without it, the whole keypoint model (~11 GFLOP a frame) again.
    rows = {cached: bench.rl_update_row("float32", cached, batch_size=1)[2]
            for cached in (True, False)}
    model = vision_modules.PermaKey(7)
    model(tf.zeros([1, 84, 84, 3]), is_training=False)
    frame = tf.TensorSpec([1, 84, 84, 3])
    keypoint_model = bench.forward_flops(lambda x: model.keypoints_and_features(x), frame)
    encoder = bench.forward_flops(lambda x: model.encoder(x, False)[2], frame)
    extra = rows[False]["executed_gflop_per_step"] - rows[True]["executed_gflop_per_step"]
    assert rows[True]["frames_per_step"] == 12 and keypoint_model > 10e9
    np.testing.assert_allclose(extra * 1e9, 12 * (keypoint_model - encoder), rtol=0.02)
