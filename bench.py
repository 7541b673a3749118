"""Speed and memory of the training steps, as fractions of this machine's matmul speed.

    python bench.py                          # every row, 20 timed steps each (make bench)
    python bench.py --steps 3 --warmup 1     # a quick look
    python bench.py --rows permakey --precisions float32,bf16 --json out.json

Rows, each in float32 and bf16 (the scripts' `precision`): the PermaKey train step
(batch 32), the Transporter train step (batch 64), the RL learner update (agent_train's
update: batch 16 windows of 12 uint8 frames, frozen PermaKey, CNN keypoint encoder) with
the keypoint cache (the replay keeps each frame's centres, the update rebuilds only the
encoder features) and without it (rl_update_uncached: the update re-runs the whole
PermaKey), acting (agent_train.py's batched forward pass of a frozen PermaKey and the
Q-network, plus ALE emulation, with 1 and 8 environments), and rl_100k: acting in 8
environments and the update of each agent kind (PermaKey / Transporter, CNN / GNN
encoder), timed, and the wall time of a 100k-step run projected from them (a table of
its own).

Each row runs in its own subprocess, so its peak memory is its own. Columns:
  s/step       median wall-clock seconds per step over the timed steps, after warm-up;
               every step's losses are fetched to the host, as training does;
  cpu s/step   process CPU time per step, all threads: the work done, less sensitive to
               other processes on the machine than wall-clock time;
  frames/s     frames through the model per second (PermaKey: the batch; Transporter:
               two per pair; RL update: batch x window length);
  GFLOP/step   conv and matmul FLOPs counted from the layer shapes of the traced forward
               pass, x3 for forward + backward (the RL target network and the frozen
               keypoint model x1); in brackets the FLOPs the compiled step really
               executes, counted on its traced train step after pruning (no input
               gradient for a stop-gradient input, ...);
  matmul       GFLOP/s of a compiled 4096 x 4096 matmul in the row's precision (the
               faster of tf.function and XLA), measured in the same subprocess just
               before and after the timed steps: the roofline the figures are relative to;
  fraction     GFLOP/s of the step / matmul GFLOP/s, by the x3 count (and executed);
  per CPU-s    the same ratio per CPU-second (executed FLOPs): insensitive to how many
               cores other processes leave to the benchmark;
  peak MB      peak resident memory of the subprocess (ru_maxrss), on a GPU also the
               device's peak allocation (JSON);
  input/s      batches per second the training input pipeline (datasets.py's tf.data
               datasets on in-memory frames) delivers on its own: the step is never
               starved while this exceeds 1 / (s/step).
The code is device-agnostic: on a GPU the same figures are measured there.
"""
import argparse
import functools
import json
import math
import os
import resource
import subprocess
import sys
import time

import hardware
import layers

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROWS = ("permakey", "transporter", "rl_update", "rl_update_uncached", "acting", "rl_100k")
DTYPES = {"float32": "float32", "bf16": "bfloat16"}  # precision -> tf dtype name
BATCH = {"permakey": 32, "transporter": 64, "rl_update": 16}
BATCH["rl_update_uncached"] = BATCH["rl_update"]
RESULT_TAG = "BENCH_RESULT "


# --------------------------------------------------------------------------------------
# FLOP counting from the layer shapes of a traced graph.

def _einsum_flops(op):
    """2 x the product of every index size of an einsum (a contraction's multiply-adds)."""
    inputs, _ = op.get_attr("equation").decode().replace(" ", "").split("->")
    sizes = {}
    for spec, tensor in zip(inputs.split(","), op.inputs):
        for letter, size in zip(spec, tensor.shape.as_list()):
            sizes[letter] = size
    return 2 * math.prod(sizes.values())


def op_flops(op):
    """FLOPs (a multiply-add = 2) of one conv or matmul op of a graph, else 0."""
    kind = op.type
    if kind in ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
        a = op.inputs[0].shape.as_list()
        transposed = op.get_attr("transpose_a" if kind == "MatMul" else "adj_x")
        inner = a[-2] if transposed else a[-1]
        return 2 * math.prod(op.outputs[0].shape.as_list()) * inner
    if kind in ("Conv2D", "DepthwiseConv2dNative"):
        kernel = op.inputs[1].shape.as_list()                  # [kh, kw, in, out|mult]
        per_output = kernel[0] * kernel[1] * (kernel[2] if kind == "Conv2D" else 1)
        return 2 * math.prod(op.outputs[0].shape.as_list()) * per_output
    if kind == "Conv2DBackpropInput":        # a transposed conv, or a conv's input gradient
        kernel = op.inputs[1].shape.as_list()                  # [kh, kw, in, out]
        return 2 * math.prod(op.inputs[2].shape.as_list()) * kernel[0] * kernel[1] * kernel[2]
    if kind == "Conv2DBackpropFilter":                         # a conv's kernel gradient
        kernel = op.outputs[0].shape.as_list()                 # [kh, kw, in, out]
        return 2 * math.prod(op.inputs[2].shape.as_list()) * kernel[0] * kernel[1] * kernel[2]
    if kind == "Einsum":
        return _einsum_flops(op)
    return 0


def graph_flops(graph, outputs=None):
    """Conv and matmul FLOPs of a tf.Graph, including the functions it calls.

    With `outputs` (tensors), only the ops that run when they are fetched count: those
    they depend on, and the stateful ops (variable updates), as the function runtime
    prunes the rest (e.g. the input gradient of a conv whose input is a constant).
    """
    ops = graph.get_operations()
    if outputs is not None:
        stack = [t.op for t in outputs] + [op for op in ops if op._is_stateful]  # noqa: SLF001
        needed = set()
        while stack:
            op = stack.pop()
            if op not in needed:
                needed.add(op)
                stack.extend(t.op for t in op.inputs)
                stack.extend(op.control_inputs)
        ops = [op for op in ops if op in needed]
    total = 0
    for op in ops:
        total += op_flops(op)
        for attr in ("f", "then_branch", "else_branch", "body"):
            try:
                name = op.get_attr(attr).name
            except (ValueError, AttributeError):
                continue
            function = graph._get_function(name)             # noqa: SLF001 (no public API)
            if function is not None:
                total += graph_flops(function.graph)
    return total


def step_flops(tf_function, *args):
    """FLOPs that one call of a compiled step really executes (forward, the backward ops
    it needs, nothing pruned away), from its traced graph."""
    concrete = tf_function.get_concrete_function(*args)
    return graph_flops(concrete.graph, concrete.outputs)


def forward_flops(fn, *input_specs):
    """Conv and matmul FLOPs of one call of `fn` on inputs of these TensorSpecs.

    Traces `fn` without running it; its variables must exist already.
    """
    import tensorflow as tf
    return graph_flops(tf.function(fn).get_concrete_function(*input_specs).graph)


# --------------------------------------------------------------------------------------
# Measurements shared by the rows.

def matmul_roofline(precision, size=4096, repeats=3):
    """A compiled size x size matmul in `precision`: the faster of tf.function and XLA.

    Returns {"gflops": wall-clock GFLOP/s, "gflops_per_cpu_s": GFLOP per CPU-second of
    this process, "mode": "graph" | "xla"}.
    """
    import numpy as np
    import tensorflow as tf
    dtype = DTYPES[precision]
    a = tf.cast(tf.random.stateless_normal([size, size], seed=[1, 2]), dtype)
    b = tf.cast(tf.random.stateless_normal([size, size], seed=[3, 4]), dtype)
    flop = 2 * size ** 3 / 1e9
    best = None
    for mode, jit in (("graph", False), ("xla", True)):
        # Fetch one element so the timing covers the matmul, not a host copy of it.
        matmul = tf.function(lambda a, b: tf.matmul(a, b)[0, 0], jit_compile=jit)
        matmul(a, b).numpy()
        walls, cpus = [], []
        for _ in range(repeats):
            cpu, start = cpu_seconds(), time.perf_counter()
            matmul(a, b).numpy()
            walls.append(time.perf_counter() - start)
            cpus.append(cpu_seconds() - cpu)
        rate = {"gflops": flop / float(np.median(walls)),
                "gflops_per_cpu_s": flop / max(float(np.median(cpus)), 1e-9), "mode": mode}
        if best is None or rate["gflops"] > best["gflops"]:
            best = rate
    return best


def peak_memory_mb():
    """Peak resident memory of this process, and the peak device allocation on a GPU."""
    import tensorflow as tf
    kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = {"peak_rss_mb": kilobytes / 1024 if sys.platform != "darwin" else kilobytes / 2 ** 20}
    if tf.config.list_logical_devices("GPU"):
        peak["peak_device_mb"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 20
    return peak


def cpu_seconds():
    """CPU time of this process so far, all threads (user + system)."""
    times = os.times()
    return times.user + times.system


def time_steps(step, batches, steps, warmup):
    """Median wall seconds per step and mean CPU seconds per step over `steps` calls of
    `step(batch)` after `warmup` calls; the result is fetched to the host every step."""
    import numpy as np
    import tensorflow as tf

    def run(batch):
        tf.nest.map_structure(lambda x: x.numpy(), step(batch))

    for _ in range(warmup):
        run(next(batches))
    times, cpu_start = [], cpu_seconds()
    for _ in range(steps):
        batch = next(batches)
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    return {"s_per_step": float(np.median(times)), "s_per_step_min": float(np.min(times)),
            "s_per_step_max": float(np.max(times)),
            "cpu_s_per_step": (cpu_seconds() - cpu_start) / steps, "steps": steps}


def input_rate(dataset, batches=20):
    """Batches per second a tf.data dataset delivers on its own (after the first)."""
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches / (time.perf_counter() - start)


def synthetic_frames(num_frames=2000, episode_length=400, seed=0):
    """uint8 frames [N, 84, 84, 3] and episode ids, as datasets.read_h5 gives them."""
    import numpy as np
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, [num_frames, 84, 84, 3], dtype=np.uint8)
    episode = (np.arange(num_frames) // episode_length).astype(np.int32)
    return frames, episode


# --------------------------------------------------------------------------------------
# The rows. A step row returns its step function, an iterator of batches and figures:
# nominal FLOPs (x3 forward), executed FLOPs, frames per step, input batches/s.

def permakey_row(precision, batch_size=BATCH["permakey"]):
    import tensorflow as tf
    import datasets
    import fit
    import ul_loss
    import vision_modules
    model = vision_modules.PermaKey(7)
    model(tf.zeros([1, 84, 84, 3]), is_training=False)     # create the variables
    spec = tf.TensorSpec([batch_size, 84, 84, 3], tf.float32)
    train_step, _ = fit.permakey_steps(model, fit.inverse_time_adam(2e-4, 10_000, 0.85),
                                          precision)
    frames, _ = synthetic_frames()
    dataset = datasets.frame_dataset(frames, batch_size, "none", seed=0, epoch=1).repeat()
    figures = {
        "gflop_per_step": 3 * forward_flops(
            lambda images: ul_loss.permakey_losses(model, images, True)[0], spec) / 1e9,
        "executed_gflop_per_step": step_flops(train_step.compiled, spec) / 1e9,
        "frames_per_step": batch_size, "input_batches_per_s": input_rate(dataset)}
    return train_step, iter(dataset), figures


def transporter_row(precision, batch_size=BATCH["transporter"]):
    import tensorflow as tf
    import datasets
    import fit
    import ul_loss
    import vision_modules
    model = vision_modules.Transporter(7)
    blank = tf.zeros([1, 84, 84, 3])
    model(blank, blank, is_training=False)
    spec = tf.TensorSpec([batch_size, 84, 84, 3], tf.float32)
    train_step, _ = fit.transporter_steps(
        model, fit.inverse_time_adam(2e-4, 30_000, 0.9), precision)
    frames, episode = synthetic_frames()
    dataset = datasets.pair_dataset(frames, episode, batch_size, "none", 100 * batch_size,
                                      seed=0, epoch=1).repeat()
    figures = {
        "gflop_per_step": 3 * forward_flops(
            lambda a, b: ul_loss.transporter_losses(model, a, b, True)[0], spec, spec) / 1e9,
        "executed_gflop_per_step": step_flops(train_step.compiled, (spec, spec)) / 1e9,
        "frames_per_step": 2 * batch_size, "input_batches_per_s": input_rate(dataset)}
    return train_step, iter(dataset), figures


def fresh_keypoint_model(kp_type, num_keypoints=7):
    """An untrained keypoint model with its variables (as fast as a trained one)."""
    import tensorflow as tf
    import vision_modules
    blank = tf.zeros([1, 84, 84, 3])
    if kp_type == "permakey":
        model = vision_modules.PermaKey(num_keypoints)
        model(blank, is_training=False)
    else:
        model = vision_modules.Transporter(num_keypoints)
        model(blank, blank, is_training=False)
    return model


def rl_update_parts(kp_type, encoder, precision, cached_keypoints=True,
                    batch_size=BATCH["rl_update"], num_keypoints=7, num_actions=9):
    """agent_train's compiled learner update for one agent kind, the replay windows it
    trains on (random uint8 frames and centres), its prepare function and online network."""
    import numpy as np
    import tensorflow as tf
    import agent
    import rl_loss
    kp_model = fresh_keypoint_model(kp_type, num_keypoints)
    config = rl_loss.LearnerConfig()
    shape = [batch_size, config.sequence_length]
    rng = np.random.default_rng(0)
    windows = {name: tf.constant(value) for name, value in {
        "frames": rng.integers(0, 256, shape + [84, 84, 3], dtype=np.uint8),
        "centres": rng.uniform(-1, 1, shape + [num_keypoints, 2]).astype(np.float32),
        "actions": rng.integers(0, num_actions, shape).astype(np.int32),
        "rewards": rng.choice([0.0, 1.0], shape).astype(np.float32),
        "dones": np.zeros(shape, np.float32), "mask": np.ones(shape, np.float32)}.items()}
    online, target, _, _ = agent.build_q_networks(tf.distribute.get_strategy(), kp_model,
                                                         encoder, 1, num_actions)
    prepare = agent.make_prepare(kp_model, encoder, cached_keypoints)
    optimizer = rl_loss.make_optimizer(1e-4, online.trainable_variables)
    update = tf.function(rl_loss.make_update_fn(online, target, optimizer, config,
                                                prepare=prepare, precision=precision))
    return update, windows, prepare, online


def rl_update_row(precision, cached_keypoints=True, batch_size=BATCH["rl_update"]):
    """agent_train's learner update of PKey-CNN (prepare + rl_loss's update) on replay
    windows of uint8 frames and their stored centres, with a fresh frozen PermaKey:
    with the keypoint cache the update rebuilds only the encoder features of the
    batch x window frames; without it, it re-runs the whole PermaKey on them."""
    import tensorflow as tf
    update, windows, prepare, online = rl_update_parts("permakey", "cnn", precision,
                                                       cached_keypoints, batch_size)
    window_specs = {name: tf.TensorSpec(value.shape, value.dtype)
                    for name, value in windows.items()}
    traced_prepare = tf.function(prepare).get_concrete_function(window_specs)  # not run
    inputs = traced_prepare.structured_outputs["inputs"]            # [B, T, 42, 42, C]
    unroll = forward_flops(lambda x: online.unroll(x, is_training=True),
                           tf.TensorSpec(inputs.shape, inputs.dtype))
    batch_size, length = windows["frames"].shape[:2]
    figures = {   # prepare (forward), online network (forward + backward), target (forward)
        "gflop_per_step": (graph_flops(traced_prepare.graph) + 3 * unroll + unroll) / 1e9,
        "executed_gflop_per_step": step_flops(update, window_specs) / 1e9,
        "frames_per_step": batch_size * length, "input_batches_per_s": None}
    return update, iter(lambda: windows, None), figures


def acting_rate(kp_model, encoder, precision, num_envs, num_steps, warmup):
    """(environment steps per second, share of the time in the model) of agent_train's
    acting loop: batched forward pass of keypoint model and Q-network, greedy actions,
    ALE emulation of `num_envs` MsPacman games."""
    import numpy as np
    import agent
    import play
    envs = play.make_envs("mspacman", "train", list(range(num_envs)), "none", 1000, False)
    actor = agent.q_network(kp_model, encoder, 1, int(envs.single_action_space.n))
    act = agent.make_act_fn(kp_model, actor, encoder, precision)
    frames, _ = envs.reset(seed=0)
    state = actor.initial_state(num_envs)
    for index in range(warmup + num_steps):
        if index == warmup:
            start, in_model = time.perf_counter(), 0.0
        before = time.perf_counter()
        q_values, state, _ = act(frames, state)
        actions = np.argmax(q_values.numpy(), axis=-1)
        if index >= warmup:
            in_model += time.perf_counter() - before
        frames, *_ = envs.step(actions)
    elapsed = time.perf_counter() - start
    envs.close()
    return num_envs * num_steps / elapsed, in_model / elapsed


def acting_row(precision, num_steps, warmup):
    """Environment steps per second of agent_train's acting loop with 1 and 8 envs:
    a fresh (untrained) PermaKey and CNN Q-network, greedy actions, ALE emulation."""
    import tensorflow as tf
    kp_model = fresh_keypoint_model("permakey")
    results = {"gflop_per_frame": forward_flops(
        lambda x: kp_model.keypoints_and_features(x, False),
        tf.TensorSpec([1, 84, 84, 3], tf.float32)) / 1e9}
    results.update(keypoint_forward_rate(kp_model, precision, num_steps, warmup))
    for num_envs in (1, 8):
        rate, fraction = acting_rate(kp_model, "cnn", precision, num_envs, num_steps, warmup)
        results[f"env_steps_per_s_{num_envs}"] = rate
        results[f"model_fraction_{num_envs}"] = fraction
    return results


def keypoint_forward_rate(kp_model, precision, num_steps, warmup, batch_size=8):
    """Frames per second of the frozen PermaKey's forward pass alone (what acting runs
    per env step), batch 8."""
    import tensorflow as tf
    images = tf.random.stateless_uniform([batch_size, 84, 84, 3], seed=[0, 0])

    @tf.function
    def forward(x):
        with layers.precision(precision):
            return kp_model.keypoints_and_features(x, False)[0]

    timing = time_steps(forward, iter(lambda: images, None), num_steps, warmup)
    return {"keypoint_frames_per_s": batch_size / timing["s_per_step"]}


# The agent kinds of the paper's tables, and agent_train's defaults that set the cost of
# a run: environment steps, warm-up, environment steps per update, environments.
AGENT_KINDS = (("permakey", "cnn"), ("permakey", "gnn"), ("transporter", "cnn"),
               ("transporter", "gnn"))
RL_RUN = {"num_iters": 100_000, "warmup_steps": 10_000, "update_every": 4, "num_envs": 8}


def rl_100k_row(precision, num_steps, warmup):
    """Projected wall time of `RL_RUN["num_iters"]` environment steps of each agent kind:
    acting time (8 environments) plus update time, each measured here; the greedy
    evaluations (every 20k steps) are not included."""
    num_updates = (RL_RUN["num_iters"] - RL_RUN["warmup_steps"]) // RL_RUN["update_every"] + 1
    results = {"kinds": {}, "num_updates": num_updates}
    for kp_type, encoder in AGENT_KINDS:
        kp_model = fresh_keypoint_model(kp_type)
        rate, _ = acting_rate(kp_model, encoder, precision, RL_RUN["num_envs"], num_steps, warmup)
        update, windows, _, _ = rl_update_parts(kp_type, encoder, precision)
        timing = time_steps(update, iter(lambda: windows, None), num_steps, warmup)
        acting_h = RL_RUN["num_iters"] / rate / 3600
        updates_h = num_updates * timing["s_per_step"] / 3600
        results["kinds"][f"{kp_type}-{encoder}"] = {
            "env_steps_per_s": rate, "s_per_update": timing["s_per_step"],
            "acting_h": acting_h, "updates_h": updates_h, "total_h": acting_h + updates_h}
    return results


STEP_ROWS = {"permakey": permakey_row, "transporter": transporter_row,
             "rl_update": rl_update_row,
             "rl_update_uncached": functools.partial(rl_update_row, cached_keypoints=False)}


def run_row(row, precision, steps, warmup):
    """One row, in this process: roofline before, the timed steps, roofline after."""
    import tensorflow as tf
    result = {"row": row, "precision": precision,
              "device": (tf.config.list_logical_devices("GPU") or
                         tf.config.list_logical_devices("CPU"))[0].name}
    roof_before = matmul_roofline(precision)
    try:
        if row == "acting":
            result.update(acting_row(precision, steps * 5, warmup * 5))
        elif row == "rl_100k":
            result.update(rl_100k_row(precision, steps, warmup))
        else:
            step, batches, figures = STEP_ROWS[row](precision)
            result.update(figures)
            result.update(time_steps(step, batches, steps, warmup))
    except NotImplementedError as error:
        result["unavailable"] = str(error)
    result.update(peak_memory_mb())
    roof_after = matmul_roofline(precision)
    result.update(
        roofline_gflops=(roof_before["gflops"] + roof_after["gflops"]) / 2,
        roofline_gflops_per_cpu_s=(roof_before["gflops_per_cpu_s"] +
                                   roof_after["gflops_per_cpu_s"]) / 2,
        roofline_before=roof_before, roofline_after=roof_after, roofline_mode=roof_before["mode"])
    if "s_per_step" in result:
        result["frames_per_s"] = result["frames_per_step"] / result["s_per_step"]
        result["gflops"] = result["gflop_per_step"] / result["s_per_step"]
        result["roofline_fraction"] = result["gflops"] / result["roofline_gflops"]
        executed = result["executed_gflop_per_step"]
        result["executed_roofline_fraction"] = (executed / result["s_per_step"] /
                                                result["roofline_gflops"])
        result["executed_cpu_fraction"] = (executed / result["cpu_s_per_step"] /
                                           result["roofline_gflops_per_cpu_s"])
    return result


# --------------------------------------------------------------------------------------
# The parent: one subprocess per row, then a table.


def run_subprocess(row, precision, steps, warmup):
    command = [sys.executable, os.path.abspath(__file__), "--worker", row, "--precisions",
               precision, "--steps", str(steps), "--warmup", str(warmup)]
    done = subprocess.run(command, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"row": row, "precision": precision, "unavailable": f"failed: {tail}"}


COLUMNS = ("row", "precision", "s/step", "cpu s/step", "frames/s", "GFLOP/step x3 (executed)",
           "GFLOP/s x3", "matmul GFLOP/s", "fraction x3 (executed)", "executed, per CPU-s",
           "peak MB", "input batches/s")


def format_table(results):
    """Markdown table of the rows (see the module docstring for the columns)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    blanks = len(COLUMNS) - 3
    for r in results:
        name = f"{r['row']} (batch {BATCH[r['row']]})" if r["row"] in BATCH else r["row"]
        if r["row"] == "rl_100k" and "unavailable" not in r:
            continue                             # its own table: format_projection
        if "unavailable" in r:
            lines.append(f"| {name} | {r['precision']} | {r['unavailable']} |" + " |" * blanks)
        elif r["row"] == "acting":
            rates = "; ".join(
                f"{n} env: {r[f'env_steps_per_s_{n}']:.1f} steps/s "
                f"({100 * r[f'model_fraction_{n}']:.0f}% in the model)" for n in (1, 8))
            rates += f"; keypoint model alone, batch 8: {r['keypoint_frames_per_s']:.0f} frames/s"
            lines.append(f"| acting | {r['precision']} | {rates} | | | "
                         f"{r['gflop_per_frame']:.1f} per frame (forward) | | "
                         f"{r['roofline_gflops']:.0f} | | | {r['peak_rss_mb']:.0f} | |")
        else:
            inputs = f"{r['input_batches_per_s']:.0f}" if r.get("input_batches_per_s") else "-"
            lines.append(
                f"| {name} | {r['precision']} | {r['s_per_step']:.3f} | "
                f"{r['cpu_s_per_step']:.2f} | {r['frames_per_s']:.1f} | "
                f"{r['gflop_per_step']:.0f} ({r['executed_gflop_per_step']:.0f}) | "
                f"{r['gflops']:.0f} | {r['roofline_gflops']:.0f} ({r['roofline_mode']}) | "
                f"{r['roofline_fraction']:.2f} ({r['executed_roofline_fraction']:.2f}) | "
                f"{r['executed_cpu_fraction']:.2f} | {r['peak_rss_mb']:.0f} | {inputs} |")
    return "\n".join(lines)


def format_projection(results):
    """Markdown table of the rl_100k rows: projected hours per agent kind and precision."""
    rows = [r for r in results if r["row"] == "rl_100k" and "unavailable" not in r]
    if not rows:
        return ""
    lines = [f"Projected wall time of {RL_RUN['num_iters']:,} environment steps "
             f"({RL_RUN['num_envs']} environments, {rows[0]['num_updates']:,} updates of batch "
             f"{BATCH['rl_update']}; evaluations not included):", "",
             "| agent | precision | env steps/s acting | s/update | acting h | updates h "
             "| total h |", "|" + "---|" * 7]
    for kind in rows[0]["kinds"]:
        for r in rows:
            k = r["kinds"][kind]
            lines.append(f"| {kind} | {r['precision']} | {k['env_steps_per_s']:.1f} | "
                         f"{k['s_per_update']:.3f} | {k['acting_h']:.2f} | {k['updates_h']:.2f} | "
                         f"{k['total_h']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=",".join(ROWS),
                        help="comma-separated: " + ", ".join(ROWS))
    parser.add_argument("--precisions", default=",".join(layers.PRECISIONS),
                        help="comma-separated: " + ", ".join(layers.PRECISIONS))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (tracing)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rows, precisions = args.rows.split(","), args.precisions.split(",")
    unknown = sorted(set(rows) - set(ROWS)) + sorted(set(precisions) - set(layers.PRECISIONS))
    if unknown:
        parser.error(f"unknown rows or precisions: {', '.join(unknown)}")
    if args.worker:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        print(RESULT_TAG + json.dumps(run_row(args.worker, precisions[0], args.steps,
                                              args.warmup)), flush=True)
        return
    before = hardware.machine()
    print(f"machine: {before['cpu']} ({before['cpu_flags']}), {before['cores']} cores, "
          f"GPU: {before['gpu']}; load average {before['load_avg'][0]:.2f}", flush=True)
    results = []
    for row in rows:
        for precision in precisions:
            results.append(run_subprocess(row, precision, args.steps, args.warmup))
            r = results[-1]
            print(f"  {row} {precision}: " + (r.get("unavailable") or (
                f"{r['s_per_step']:.3f} s/step" if "s_per_step" in r else "done")), flush=True)
    after = hardware.machine()
    print(format_table(results))
    projection = format_projection(results)
    if projection:
        print("\n" + projection)
    print(f"load average (1 min) before {before['load_avg'][0]:.2f}, after "
          f"{after['load_avg'][0]:.2f}; {args.steps} timed steps per row after {args.warmup}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": before, "load_after": after["load_avg"], "steps": args.steps,
                       "warmup": args.warmup, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
