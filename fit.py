"""The keypoint models' training: compiled train and eval steps, the fit loop
(validation every epoch, best checkpoint, early stopping, resume, a wall-time budget),
and the test of the best checkpoint. pkey_train.py and transporter_train.py share it.

Checkpoints of a keypoint run: ckpt_last/ (resumable), ckpt_best/ (the best epoch's
weights), ckpt_epochs/ (the weights of improving epochs and of the last `keep_epochs`).
"""
import math
import os
import time

import tensorflow as tf
from tqdm import tqdm

import layers
import ul_loss
from common import ConfigError, folder_size, write_json
from run_folders import (Stopped, StopSignals, checkpoint_path,
                         drop_metrics_after, flush_metrics, resume_command, run_dir_of,
                         write_model_spec)


def epochs_to_keep(improved_epochs, last_epoch, keep_epochs, keep_improved=-1):
    """Epoch numbers whose weights ckpt_epochs/ keeps: the last `keep_improved` epochs
    that improved validation (-1: every one), and the last `keep_epochs` epochs (-1: all
    of them)."""
    if keep_epochs < 0:
        return set(range(1, last_epoch + 1))
    improved = sorted(improved_epochs)
    kept_improved = improved if keep_improved < 0 else improved[len(improved) - keep_improved:]
    return set(kept_improved) | set(range(max(last_epoch - keep_epochs, 0) + 1, last_epoch + 1))


def fit(train_step, eval_step, datasets, model, optimizer, run_dir, _run, epochs, max_patience,
        select, steps_per_epoch=None, valid_batches=None, probe=None, metrics_every=None,
        save_every_mins=10, keep_epochs=0, keep_improved=-1, max_minutes=None):
    """Train with validation every epoch, best checkpoint, early stopping and resume.

    train_step(batch) / eval_step(batch) return dicts of scalar losses; `select` names
    the validation losses whose sum picks the best checkpoint. datasets["train"](epoch,
    start) gives an epoch's batches from batch `start` on (datasets.get_datasets).
    The resumable checkpoint holds the model, the optimizer (if any), the epoch, the batch
    within it, and the early-stopping state.

    Checkpoints: ckpt_last/ holds one resumable checkpoint, saved at every epoch end,
    every `save_every_mins` minutes and on SIGTERM/SIGINT (after which the run stops with
    the command that resumes it); ckpt_best/ the weights of the best epoch; ckpt_epochs/
    the weights of the last `keep_improved` epochs that improved validation (-1: all of
    them) and of the last `keep_epochs` (-1: all). A resumed run continues from the saved
    batch of its epoch, reading the same batches as a run that never stopped. A non-finite
    training loss stops the run with a one-line error and leaves the last good checkpoints
    untouched.

    probe() -> dict of keypoint metrics (kpt_metrics.split_probe), when given, runs at
    every epoch end and, with `metrics_every`, every that many steps; its values are
    logged as valid.<name> beside the validation losses and printed in the epoch line.

    max_minutes, when set, is a wall-time budget for the run, counted across resumes:
    once it is spent, the current epoch ends early (validation, checkpoints as at any
    epoch end) and training stops. Methods compared at equal wall time use it.
    """

    state = {"epoch": tf.Variable(0, dtype=tf.int64), "step": tf.Variable(0, dtype=tf.int64),
             "batch": tf.Variable(0, dtype=tf.int64),  # batches of the current epoch done
             "best": tf.Variable(math.inf, dtype=tf.float64),
             "patience": tf.Variable(0, dtype=tf.int64),
             "improved": tf.Variable(""),  # epochs that improved validation: "1 2 5"
             "seconds": tf.Variable(0.0, dtype=tf.float64),  # wall time of the run so far
             "saved_at": tf.Variable(0.0, dtype=tf.float64)}  # time.time() of this save
    checkpoint = tf.train.Checkpoint(model=model, **state,
                                     **({"optimizer": optimizer} if optimizer else {}))
    last = tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, "ckpt_last"), 1)
    weights = tf.train.Checkpoint(model=model)
    best = tf.train.CheckpointManager(weights, os.path.join(run_dir, "ckpt_best"), 1)
    if last.latest_checkpoint:
        checkpoint.restore(last.latest_checkpoint)
        # Sonnet and Keras make their variables on first use, and a checkpoint restores a
        # variable when it is made. Make them all now: a save before the first training step
        # (resuming at an epoch's end) would otherwise overwrite this checkpoint without
        # the optimizer's state, which is then lost.
        eval_step(next(iter(datasets["valid"])))
        if optimizer is not None:
            optimizer.build(model.trainable_variables)
        drop_metrics_after(run_dir, int(state["step"]), float(state["saved_at"]) or None)
        print(f"resumed from {last.latest_checkpoint} at epoch {int(state['epoch']) + 1}, "
              f"batch {int(state['batch'])} (step {int(state['step'])})")
    writer = tf.summary.create_file_writer(os.path.join(run_dir, "tb"))
    keypoints = (None, {})  # (step, metrics) of the last probe

    def log(prefix, losses, step):
        with writer.as_default(step=step):
            for name, value in losses.items():
                _run.log_scalar(f"{prefix}.{name}", value, step)
                tf.summary.scalar(f"{prefix}/{name}", value)

    run_started = time.time() - float(state["seconds"])

    def out_of_time():
        return max_minutes is not None and time.time() - run_started >= 60 * max_minutes

    def save_last():
        flush_metrics(_run)  # first: what the checkpoint has done is on disk
        started = time.time()
        state["seconds"].assign(started - run_started)
        state["saved_at"].assign(started)
        last.save(checkpoint_number=int(state["step"]))
        return started

    with StopSignals() as stop:
        last_save = time.time()
        while (int(state["epoch"]) < epochs and int(state["patience"]) < max_patience
               and not out_of_time()):
            epoch, start = int(state["epoch"]) + 1, int(state["batch"])
            batches = datasets["train"](epoch, start)
            total = min(steps_per_epoch or math.inf, start + int(batches.cardinality()))
            for batch in tqdm(batches.take(total - start), desc=f"epoch {epoch}", unit="step",
                              initial=start, total=total, leave=False):
                losses = {k: float(v) for k, v in train_step(batch).items()}
                step = int(state["step"].assign_add(1))
                state["batch"].assign_add(1)
                bad = [k for k, v in losses.items() if not math.isfinite(v)]
                if bad:
                    raise ConfigError(f"non-finite loss at step {step}: {bad[0]}={losses[bad[0]]} "
                                      f"(all: {losses}); last good checkpoint kept in {run_dir}")
                if step % 10 == 0:
                    log("train", losses, step)
                if probe and metrics_every and step % metrics_every == 0:
                    keypoints = (step, probe())
                    log("valid", keypoints[1], step)
                if stop.received or time.time() - last_save >= 60 * save_every_mins:
                    last_save = save_last()
                if stop.received:
                    writer.flush()
                    print(f"{stop.received}: stopped at epoch {epoch}, batch {int(state['batch'])} "
                          f"(step {step}), saved in {last.latest_checkpoint}; resume with:\n"
                          f"  {resume_command(_run, run_dir)}")
                    raise Stopped()
                if out_of_time():
                    break
            step = int(state["step"])
            valid = evaluate_losses(eval_step, datasets["valid"], valid_batches)
            score = sum(valid[k] for k in select)
            log("valid", dict(valid, selection=score), step)
            if probe and keypoints[0] != step:
                keypoints = (step, probe())
                log("valid", keypoints[1], step)
            improved = score < float(state["best"])
            state["epoch"].assign(epoch)
            state["batch"].assign(0)
            state["patience"].assign(0 if improved else int(state["patience"]) + 1)
            if improved:
                state["best"].assign(score)
                state["improved"].assign(f"{state['improved'].numpy().decode()} {epoch}".strip())
                best.save(checkpoint_number=epoch)
            weights.write(os.path.join(run_dir, "ckpt_epochs", f"ckpt-{epoch}"))
            improved_epochs = [int(e) for e in state["improved"].numpy().decode().split()]
            kept = epochs_to_keep(improved_epochs, epoch, keep_epochs, keep_improved)
            for old in set(range(1, epoch + 1)) - kept:
                for path in tf.io.gfile.glob(os.path.join(run_dir, "ckpt_epochs", f"ckpt-{old}.*")):
                    os.remove(path)
            last_save = save_last()
            print(f"epoch {epoch}: valid {format_losses(valid)}"
                  f"{' (best)' if improved else ''}"
                  f"{' | keypoints ' + format_keypoint_metrics(keypoints[1]) if probe else ''}")
    writer.flush()
    if out_of_time():
        print(f"time budget max_minutes={max_minutes} spent at epoch {int(state['epoch'])} "
              f"(step {int(state['step'])})")
    print(f"run folder size: {folder_size(run_dir) / 1e6:.0f} MB")
    return state


def evaluate_losses(eval_step, dataset, max_batches=None):
    """Mean of each loss over the batches of `dataset` (at most `max_batches`)."""
    totals, count = {}, 0
    for batch in dataset.take(max_batches) if max_batches else dataset:
        for name, value in eval_step(batch).items():
            totals[name] = totals.get(name, 0.0) + float(value)
        count += 1
    return {name: total / count for name, total in totals.items()}


def compiled_steps(model, optimizer, loss_fn, precision="float32"):
    """Compiled (train_step, eval_step): batch -> dict of scalar losses.

    loss_fn(batch, is_training) -> (losses, outputs), run in `precision` (float32 |
    bf16: layers.precision); the train step follows the gradient of losses["total"]
    over all of the model's trainable variables.
    """
    layers.compute_dtype(precision)  # a one-line ConfigError before tracing

    @tf.function
    def compiled_train_step(batch):
        with tf.GradientTape() as tape, layers.precision(precision):
            losses, _ = loss_fn(batch, True)
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(losses["total"], variables), variables))
        return losses

    def train_step(batch):
        # tf.function traces a function twice when its first trace creates variables; an
        # eager inference call on one example and optimizer.build create them first, so
        # the step is traced once (seconds per start). Inference mode: no batch-norm
        # update, no VAE noise drawn, so training draws what it would have drawn.
        if not optimizer.built:
            with layers.precision(precision):
                loss_fn(tf.nest.map_structure(lambda t: t[:1], batch), False)
            optimizer.build(model.trainable_variables)
        return compiled_train_step(batch)

    train_step.compiled = compiled_train_step  # the tf.function itself (bench counts its FLOPs)

    @tf.function
    def eval_step(batch):
        with layers.precision(precision):
            return loss_fn(batch, False)[0]

    return train_step, eval_step


def permakey_steps(model, optimizer, precision="float32", pnet_loss="paper"):
    """PermaKey's compiled train and eval steps: images [B, 84, 84, 3] -> dict of scalar
    losses, computed in `precision` (float32 | bf16), the PointNet's by `pnet_loss`
    (ul_loss.PNET_LOSSES)."""
    if pnet_loss not in ul_loss.PNET_LOSSES:
        raise ConfigError(f"pnet_loss={pnet_loss!r}: expected one of "
                          f"{', '.join(ul_loss.PNET_LOSSES)}")
    return compiled_steps(model, optimizer, lambda images, training: ul_loss.permakey_losses(
        model, images, training, pnet_loss), precision)


def transporter_steps(model, optimizer, precision="float32"):
    """Transporter's compiled train and eval steps: (frame_a, frame_b) [B, 84, 84, 3] each
    -> dict of scalar losses, computed in `precision` (float32 | bf16)."""
    return compiled_steps(model, optimizer, lambda pair, training: ul_loss.transporter_losses(
        model, *pair, training), precision)


def inverse_time_adam(learning_rate, decay_steps, decay_rate):
    """Adam with staircase inverse-time decay, as both keypoint models use (docs/DESIGN.md).

    A Keras optimizer (not a Keras model): it also works under tf.distribute strategies.
    """
    schedule = tf.keras.optimizers.schedules.InverseTimeDecay(
        learning_rate, decay_steps, decay_rate, staircase=True)
    return tf.keras.optimizers.Adam(schedule)


# The config entries of a keypoint script that fit() takes.
FIT_KEYS = ("epochs", "max_patience", "steps_per_epoch", "valid_batches", "metrics_every",
            "save_every_mins", "keep_epochs", "keep_improved", "max_minutes")


def train_and_test(_run, config, spec, model, optimizer, data, steps, select, write_examples,
                   probe=None):
    """Main command of a keypoint script: fit (FIT_KEYS of `config`), restore the best
    checkpoint, test, write examples.

    steps = (train_step, eval_step); `write_examples(model, test_data, out_dir)` saves
    figures and arrays for a few test batches into `<run>/evaluate`; `probe(model)`, if
    given, measures keypoint quality during training (see fit).
    """
    run_dir = run_dir_of(_run)
    write_model_spec(run_dir, spec)
    fit(*steps, data, model, optimizer, run_dir, _run, select=select,
        probe=probe and (lambda: probe(model)), **{key: config[key] for key in FIT_KEYS})
    tf.train.Checkpoint(model=model).restore(checkpoint_path(run_dir, "best")).expect_partial()
    test = evaluate_losses(steps[1], data["test"])
    for name, value in test.items():
        _run.log_scalar(f"test.{name}", value)
    print(f"test: {format_losses(test)}")
    write_examples(model, data["test"], os.path.join(run_dir, "evaluate"))
    print(f"run folder: {run_dir}")
    return test


def evaluate_checkpoint(_run, run_dir, model, eval_step, test_data, write_examples):
    """The evaluate command of a keypoint script, once the model is loaded: its test
    losses (JSON) and example figures into `<run_dir>/evaluate`."""
    out_dir = run_dir_of(_run) or os.path.join(run_dir, "evaluate")
    test = evaluate_losses(eval_step, test_data)
    write_json(os.path.join(out_dir, "test_losses.json"), test)
    print(f"test: {format_losses(test)}")
    write_examples(model, test_data, out_dir)
    return test


def format_losses(losses):
    return " ".join(f"{name}={value:.4f}" for name, value in losses.items())


def format_keypoint_metrics(metrics):
    return " ".join(f"{name}={value:.1f}px" if name == "spread" else f"{name}={value:.2f}"
                    for name, value in metrics.items())
