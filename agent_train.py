r"""Keypoint-based RL agents on Atari (the paper's Tables 1-3): recurrent double Q-learning on
the keypoints of a frozen, pre-trained PermaKey or Transporter model.

    python agent_train.py with mspacman kp_type="permakey" vis_ckpt_fname=RUN vis_load=best
    python agent_train.py with mspacman kp_type="transporter" kpt_encoder_type="gnn" \
        vis_ckpt_fname=RUN vis_load=5
    python agent_train.py with mspacman kp_type="permakey" \
        resume_dir=rl_exp/none/permakey/cnn/mspacman/1
    python agent_train.py evaluate with mspacman kp_type="permakey" load_ckpts=A,B,C \
        eval_seeds=1,2,3,4,5
    python agent_train.py with mspacman kp_type="permakey" vis_ckpt_fname=RUN gpu=0,1   # two GPUs
    TF_CONFIG='{"cluster": ..., "task": ...}' python agent_train.py with ...          # one per host

Runs live in rl_exp/<noise_type>/<kp_type>/<kpt_encoder_type>/<env>/<run id>/: Sacred's
files, model.json (what the agent checkpoints hold, and which keypoint run they read),
tb/ (TensorBoard), evaluations.json and evaluations.csv (periodic greedy evaluations,
each with the authors' selection rule's verdict), ckpt/ (the resumable checkpoints:
online and target Q-networks, optimizer, step counters), ckpt_selected/ (the
checkpoints the rule kept: the policies `evaluate` scores) and time.json (wall and CPU
seconds of the training, over its resumes).

Reading order: config; the frozen keypoint model; logging; the training loop (set_up,
then train); the `evaluate` command (the paper's protocol). The networks and acting are
agent.py's, the episodes play.py's, the checkpoint rule agent_runs.py's.
"""
import contextlib
import csv
import dataclasses
import functools
import os
import shutil
import sys
import tempfile
import time
from typing import Callable, Optional

import tf_quiet  # noqa: F401 (first: TensorFlow starts without its start-up chatter)
import numpy as np
import tensorflow as tf
from sacred import Experiment
from tqdm import tqdm

import agent
import agent_runs
import games
import hardware
import keypoint_models
import play
import replay
import rl_loss
import run_folders
import stats
from atari_env import EVAL_TIME_LIMIT
from common import (ConfigError, as_list, atomic_path, check_options, one_line_errors,
                    quiet_experiment, read_json, write_json)

ex = quiet_experiment(Experiment("keypoint_agent", save_git_info=False))
EXP_ROOT = "rl_exp"
RANDOM = "random"  # evaluate load_ckpts=random: the uniformly random policy, the protocol's floor


# --------------------------------------------------------------------------------------
# Config


@ex.config
def config():
    env = "mspacman"  # short game name; `with <game>` sets the paper's values (games.GAMES)
    num_keypoints = 7
    replay_capacity = 1000  # episodes (lives) kept in the replay
    kp_type = "permakey"  # permakey | transporter | fixed (the control, KP_TYPES)
    kpt_encoder_type = "cnn"  # cnn | gnn
    mp_num_steps = 1  # gnn: message-passing steps
    vis_ckpt_fname = None  # the keypoint run folder (permakey_exp/... or transporter_exp/...)
    vis_load = "best"  # its checkpoint: best | last | an epoch number
    noise_type = "none"  # none | horizontal | vertical | both
    num_iters = 400_000  # environment steps (per worker when several hosts train)
    warmup_steps = 10_000  # environment steps before the first update (again after a resume)
    update_every = 4  # environment steps per update
    batch_size = 16  # sequences per update, split across replicas
    learning_rate = 1e-4
    window_size = 8  # steps per sequence that carry a loss
    n_step = 3
    gamma = 0.99
    tau = 0.005  # soft target update rate
    max_grad_norm = 10.0
    epsilon_start = 1.0  # linear to epsilon_end over num_iters
    epsilon_end = 0.1
    num_envs = 8  # environments acted in at once (one batched forward pass)
    async_envs = False  # True: one process per environment (AsyncVectorEnv)
    eval_every = 10_000  # environment steps between evaluations (and checkpoints)
    eval_episodes = 10  # greedy episodes per periodic evaluation
    eval_time_limit = EVAL_TIME_LIMIT  # agent steps per evaluation episode
    log_every = 1_000  # environment steps between training scalars
    ckpt_keep = 3  # agent checkpoints kept
    save_every_mins = 10  # also save this often (single-host runs) and on SIGTERM / SIGINT
    seed = 0
    gpu = None  # GPU ids to train on data-parallel, e.g. 0,1 (MirroredStrategy)
    devices = None  # TF device names instead of gpu ids, e.g. "/cpu:0,/cpu:1" (tests)
    resume_dir = None  # a run folder to continue from its last checkpoint
    exp_root = EXP_ROOT
    load_ckpts = None  # evaluate: agent run folders, one selected step per run, or random
    precision = "auto"  # auto | float32 | bf16: keypoint model and encoder compute in bfloat16
    save_replay = True  # keep the replay with each checkpoint (replay.npy.gz), for resume
    eval_seeds = (1, 2, 3, 4, 5)  # evaluate
    num_eval_episodes = 10  # evaluate: greedy episodes per seed and policy
    repeat_action_probability = 0.0  # evaluate: ALE sticky actions (0.25: the v5 default)
    distinct_starts = True  # evaluate: play each distinct start once (the same returns)


games.add_game_configs(ex, ("env", "num_keypoints", "replay_capacity"))


@ex.capture
def agent_spec(env, kp_type, kpt_encoder_type, num_keypoints, noise_type, mp_num_steps):
    """What an agent checkpoint depends on; resume and evaluate check it (model.json)."""
    if kp_type not in keypoint_models.KP_TYPES:
        raise ConfigError(f"kp_type={kp_type!r}: expected one of "
                          f"{', '.join(keypoint_models.KP_TYPES)}")
    agent.keypoint_encoder_kind(kpt_encoder_type)  # ConfigError if unknown
    return {"kind": "keypoint_agent", "env": games.canonical_env(env), "kp_type": kp_type,
            "kpt_encoder_type": kpt_encoder_type, "num_keypoints": num_keypoints,
            "noise_type": games.check_noise_type(noise_type), "mp_num_steps": mp_num_steps}


# Numeric options, checked where a command reads its config (common.check_options).
OPTIONS = {
    "num_keypoints": "count", "replay_capacity": "count", "mp_num_steps": "count",
    "num_iters": "count", "warmup_steps": "index", "update_every": "count", "batch_size": "count",
    "learning_rate": "positive", "window_size": "count", "n_step": "count", "gamma": "fraction",
    "tau": "rate", "max_grad_norm": "positive", "epsilon_start": "fraction",
    "epsilon_end": "fraction", "num_envs": "count", "eval_every": "count",
    "eval_episodes": "count", "eval_time_limit": "count", "log_every": "count",
    "ckpt_keep": "count", "save_every_mins": "non-negative",
    "num_eval_episodes": "count", "repeat_action_probability": "fraction",
}


# --------------------------------------------------------------------------------------
# Devices: one device, several GPUs of one host, or several hosts (TF_CONFIG)


# --------------------------------------------------------------------------------------
# The frozen keypoint model and the agent's inputs


def load_frozen_keypoints(strategy, kp_type, vis_ckpt_fname, vis_load, env, num_keypoints,
                          noise_type):
    """The pre-trained keypoint model the agent reads (keypoint_models.load_agent_keypoints),
    checked against the config (one line if it differs).

    Its variables are created under the strategy (mirrored on every replica's device,
    restored from the checkpoint as they appear) by one eager call (docs/DESIGN.md,
    "Notes on the stack").
    """
    if not vis_ckpt_fname:
        raise ConfigError("vis_ckpt_fname is not set; give the keypoint run folder "
                          "(permakey_exp/... or transporter_exp/...)")
    expected = {"env": games.canonical_env(env), "num_keypoints": num_keypoints,
                "noise_type": noise_type}
    with strategy.scope():
        model = keypoint_models.load_agent_keypoints(kp_type, vis_ckpt_fname, vis_load, expected)
        agent.observe(model, tf.zeros([1, 84, 84, 3], tf.uint8))
    return model


# --------------------------------------------------------------------------------------
# Environments and greedy evaluation


# --------------------------------------------------------------------------------------
# Logging: Sacred metrics, TensorBoard, evaluations.json / .csv (chief only)


class Metrics:
    """Scalars to Sacred and TensorBoard; periodic evaluations also to JSON and CSV in the
    run folder, each with the selection rule's verdict (select_policy). Silent without a
    run folder (non-chief workers)."""

    def __init__(self, _run, run_dir, env_step):
        self._run, self._run_dir = _run, run_dir
        self._writer = run_dir and tf.summary.create_file_writer(os.path.join(run_dir, "tb"))
        # A resumed run continues from its checkpoint: drop scalars and evaluations logged
        # after it (the checkpoint at a step is saved after all of that step's logging).
        if run_dir:
            run_folders.drop_metrics_after(run_dir, env_step)
        logged = read_json(self._path("json"), default=[]) if run_dir else []
        self.evaluations = [e for e in logged if e["step"] <= env_step]
        self.best = self.evaluations[-1].get("best") if self.evaluations else None

    def _path(self, suffix):
        return os.path.join(self._run_dir, f"evaluations.{suffix}")

    def scalars(self, prefix, values, step):
        if not self._run_dir:
            return
        with self._writer.as_default(step=step):
            for name, value in values.items():
                self._run.log_scalar(f"{prefix}.{name}", float(value), step)
                tf.summary.scalar(f"{prefix}/{name}", value)
        self._writer.flush()

    def evaluation(self, step, returns, distinct_starts):
        """Log one periodic evaluation; returns its stats, "selected" among them."""
        stats = {"mean": float(np.mean(returns)), "std": float(np.std(returns)),
                 "min": float(np.min(returns)), "max": float(np.max(returns)),
                 "distinct_starts": distinct_starts}
        self.scalars("eval", stats, step)
        selected, self.best, why = agent_runs.select_policy(stats["mean"], self.best)
        stats.update(selected=selected, best=self.best, why=why)
        if not self._run_dir:
            return stats
        self.evaluations.append(dict(step=step, **stats, returns=[float(r) for r in returns]))
        write_json(self._path("json"), self.evaluations)
        with atomic_path(self._path("csv")) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", "mean", "std", "min", "max", "episodes", "selected"])
            for e in self.evaluations:
                writer.writerow([e["step"], e["mean"], e["std"], e["min"], e["max"],
                                 len(e["returns"]), int(e.get("selected", False))])
        return stats


class TrainingClock:
    """Wall and CPU (process) seconds of a run's training, summed over its resumes, and
    the CPUs it ran on: <run>/time.json, written at each checkpoint. Work lost to a kill
    after the last checkpoint is not counted (its steps are counted again when redone)."""

    def __init__(self, run_dir):
        self.path = run_dir and os.path.join(run_dir, "time.json")
        saved = read_json(self.path, default={}) if self.path else {}
        self.seconds = saved.get("seconds", 0.0)
        self.cpu_seconds = saved.get("cpu_seconds", 0.0)
        self.cpus = sorted(set(saved.get("cpus", [])) | {hardware.machine()["cpu"]})
        self.started, self.cpu_started = time.time(), time.process_time()

    def save(self, env_step):
        if not self.path:
            return
        write_json(self.path, {
            "step": env_step, "seconds": self.seconds + time.time() - self.started,
            "cpu_seconds": self.cpu_seconds + time.process_time() - self.cpu_started,
            "cpus": self.cpus})


# --------------------------------------------------------------------------------------
# Training


def agent_run_folder(command, config):
    """rl_exp/<noise>/<kp_type>/<encoder>/<env>/<new id> for training, the run folder
    itself when resuming, .../<env>/evaluate/<new id> for the evaluate command."""
    env = games.env_name(config["env"])
    base = os.path.join(config["exp_root"], str(config["noise_type"]), str(config["kp_type"]),
                        str(config["kpt_encoder_type"]), str(env))
    if command == "evaluate":
        return os.path.join(base, "evaluate"), False
    if config.get("resume_dir"):
        return config["resume_dir"], True
    return base, False


if hardware.is_chief_process():  # other workers of a multi-host run write no run folder
    ex.observers.append(run_folders.RunFolderObserver(agent_run_folder))


def checkpoint_managers(checkpoint, run_dir, resume_dir, ckpt_keep):
    """(save, restore) CheckpointManagers of the agent checkpoint, `<run>/ckpt/`.

    Every worker of a multi-host run must save (saving reads distributed variables
    collectively); the non-chief ones write to a temporary folder, deleted at the end.
    All restore from the resumed run's folder (a filesystem shared by the hosts).
    """
    save_dir = os.path.join(run_dir, "ckpt") if run_dir else tempfile.mkdtemp(prefix="agent_ckpt_")
    save = tf.train.CheckpointManager(checkpoint, save_dir, ckpt_keep)
    restore = save
    if resume_dir and not run_dir:
        restore = tf.train.CheckpointManager(checkpoint, os.path.join(resume_dir, "ckpt"), None)
    return save, restore


def store_steps(buffer, frames, actions, rewards, terminated, truncated, centres):
    """Add one step of every environment to the replay, each env its own stream.

    An episode cut by a time limit (truncated, not terminated) is dropped rather than
    stored with a terminal `done` it never had.
    """
    for i in range(len(frames)):
        if truncated[i] and not terminated[i]:
            buffer.drop_episode(stream=i)
        else:
            buffer.add(frames[i], actions[i], rewards[i], terminated[i], stream=i,
                       centres=centres[i])


@dataclasses.dataclass
class Learner:
    """What the training loop acts and learns with, built by `set_up`."""
    strategy: tf.distribute.Strategy
    worker: int                    # this process's index among num_workers
    num_workers: int               # processes (hosts) of a cluster; 1 on one host
    actor: agent.RecurrentQNetwork  # the acting copy of the online Q-network
    act: Callable                  # (frames [N, 84, 84, 3], state) -> Q [N, A], state, centres
    sync_actor: Callable           # online network -> actor
    update: Callable               # distributed replay batch -> loss
    counters: dict                 # env_step, updates: tf.Variables in the checkpoint
    manager: tf.train.CheckpointManager
    run_dir: Optional[str]         # None on non-chief workers
    buffer: replay.EpisodeReplay
    replay_path: Optional[str]     # None: the replay is not saved
    replay_restored: bool          # the buffer holds the replay saved with the checkpoint

    def save(self, env_step, updates):
        """Checkpoint the agent at `env_step` after `updates` updates, and the replay
        (first: a checkpoint never points past the replay saved with it)."""
        self.counters["env_step"].assign(env_step)
        self.counters["updates"].assign(updates)
        if self.replay_path:
            self.buffer.save(self.replay_path, env_step)
        self.manager.save(checkpoint_number=env_step)


REPLAY_FILE = "replay.npy.gz"


@ex.capture
def set_up(_run, env, noise_type, kp_type, kpt_encoder_type, mp_num_steps, vis_ckpt_fname,
           vis_load, num_keypoints, replay_capacity, batch_size, learning_rate, window_size,
           n_step, gamma, tau, max_grad_norm, ckpt_keep, seed, gpu, devices, resume_dir,
           precision, save_replay):
    """Devices, the frozen keypoint model, the Q-networks and their update, the checkpoint
    and the replay; resuming, all restored from resume_dir (the replay if it was saved
    at the checkpoint's step)."""
    worker, num_workers = hardware.cluster_task()
    strategy = hardware.make_strategy(gpu, devices, num_workers)
    tf.random.set_seed(seed)  # initial weights (the workers of a cluster start from the chief's)
    spec = agent_spec()
    if batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"batch_size={batch_size} is not divisible by the "
                          f"{strategy.num_replicas_in_sync} replicas")
    precision = hardware.resolve_precision(precision)
    if resume_dir:
        run_folders.check_model_spec(resume_dir, spec)
        vis_ckpt_fname, vis_load = agent_runs.recorded_keypoint_run(resume_dir, vis_ckpt_fname,
                                                                    vis_load)
    kp_model = load_frozen_keypoints(strategy, kp_type, vis_ckpt_fname, vis_load, env,
                                     num_keypoints, noise_type)
    online, target, actor, sync_actor = agent.build_q_networks(strategy, kp_model, kpt_encoder_type,
                                                         mp_num_steps, play.action_count(env))
    with strategy.scope():
        optimizer = rl_loss.make_optimizer(learning_rate, online.trainable_variables)
    config = rl_loss.LearnerConfig(window_size, n_step, gamma, tau, max_grad_norm)
    update = tf.function(rl_loss.make_update_fn(
        online, target, optimizer, config, strategy,
        prepare=agent.make_prepare(kp_model, kpt_encoder_type), precision=precision))

    counters = {"env_step": tf.Variable(0, dtype=tf.int64),
                "updates": tf.Variable(0, dtype=tf.int64)}
    checkpoint = tf.train.Checkpoint(online=online, target=target, optimizer=optimizer, **counters)
    run_dir = run_folders.run_dir_of(_run)  # None on non-chief workers
    manager, restore = checkpoint_managers(checkpoint, run_dir, resume_dir, ckpt_keep)
    if resume_dir:
        if not restore.latest_checkpoint:
            raise ConfigError(f"run folder {resume_dir} has no agent checkpoint in ckpt/")
        checkpoint.restore(restore.latest_checkpoint).assert_existing_objects_matched()
        sync_actor()
    if run_dir:
        run_folders.write_model_spec(run_dir, dict(
            spec, vis_ckpt_fname=os.path.abspath(vis_ckpt_fname), vis_load=vis_load))
    start_step = int(counters["env_step"])
    # Own sampling seeds per worker, new ones after a resume.
    buffer = replay.EpisodeReplay(replay_capacity, config.sequence_length,
                                  seed=[seed, worker, start_step])
    # A single process keeps its replay with the checkpoint (a cluster's workers each
    # have their own and refill them after a resume).
    replay_path = None
    if save_replay and num_workers == 1 and run_dir:
        replay_path = os.path.join(run_dir, REPLAY_FILE)
    replay_restored = bool(resume_dir and replay_path
                           and restore_replay(buffer, replay_path, start_step))
    if resume_dir:
        print(f"resumed from {restore.latest_checkpoint} at step {start_step}; "
              + (f"the replay too ({buffer.num_episodes} episodes)" if replay_restored else
                 "the replay restarts empty and refills before updates resume"))
    return Learner(strategy=strategy, num_workers=num_workers, worker=worker, actor=actor,
                   act=agent.make_act_fn(kp_model, actor, kpt_encoder_type, precision),
                   sync_actor=sync_actor, update=update, counters=counters,
                   manager=manager, run_dir=run_dir, buffer=buffer, replay_path=replay_path,
                   replay_restored=replay_restored)


def restore_replay(buffer, path, step):
    """Fill `buffer` from the replay saved at `path` if it was saved at `step`; True if so."""
    if not os.path.exists(path):
        return False
    saved_step = replay.saved_step(path)
    if saved_step != step:   # a save interrupted between the replay and the checkpoint
        print(f"{path} was saved at step {saved_step}, the checkpoint at step {step}: "
              f"not used")
        return False
    buffer.load(path)
    return True


@ex.main
@one_line_errors
def train(_run, _config, env, noise_type, num_iters, warmup_steps, update_every, batch_size,
          epsilon_start, epsilon_end, num_envs, async_envs, eval_every, eval_episodes,
          eval_time_limit, log_every, save_every_mins, seed, replay_capacity):
    """Train a keypoint agent: act in num_envs games at once, learn from replayed windows,
    evaluate greedily and checkpoint every eval_every steps (and at the end); a single-host
    run also checkpoints every save_every_mins and, stopping, on SIGTERM or SIGINT."""
    check_options(_config, OPTIONS)
    learner = set_up(_run)
    run_dir, buffer = learner.run_dir, learner.buffer
    start_step, updates = int(learner.counters["env_step"]), int(learner.counters["updates"])
    env_step = start_step
    # One update per update_every steps from step warmup_steps on. A resumed run whose
    # replay was not kept waits another warm-up and adds its updates to the count.
    if learner.replay_restored or start_step == 0:
        first_update, earlier_updates = warmup_steps, 0
    else:
        first_update, earlier_updates = start_step + warmup_steps, updates
    next_eval = (start_step // eval_every + 1) * eval_every
    metrics, clock = Metrics(_run, run_dir, start_step), TrainingClock(run_dir)
    rng = np.random.default_rng([seed, learner.worker, start_step])
    train_seeds = play.env_seeds(seed, num_envs, play.TRAIN_SEEDS, learner.worker, start_step)
    envs = play.make_envs(env, "train", train_seeds, noise_type, eval_time_limit, async_envs)
    frames, _ = envs.reset()                                               # [N, 84, 84, 3]
    state = learner.actor.initial_state(num_envs)
    episode_returns, finished_returns, losses = np.zeros(num_envs), [], []
    progress = tqdm(total=num_iters, initial=start_step, unit="step", mininterval=2,
                    disable=run_dir is None)
    log_step, log_time, last_save = start_step, time.time(), time.time()
    waited = False  # acted past the warm-up because no episode had ended
    # a single-host run saves on SIGTERM / SIGINT and stops (a cluster keeps the default)
    signals = run_folders.StopSignals() if learner.num_workers == 1 else contextlib.nullcontext()
    with signals as stop:
        while env_step < num_iters:
            epsilon = agent.epsilon_at(env_step, num_iters, epsilon_start, epsilon_end)
            q_values, state, centres = learner.act(frames, state)               # [N, A], [N, K, 2]
            actions = [agent.epsilon_greedy(q, epsilon, rng) for q in q_values.numpy()]
            next_frames, rewards, terminated, truncated, _ = envs.step(actions)
            store_steps(buffer, frames, actions, rewards, terminated, truncated, centres.numpy())
            ended = terminated | truncated
            episode_returns += rewards
            finished_returns += list(episode_returns[ended])
            episode_returns[ended] = 0.0
            state = agent.zero_where(state, ended)
            frames = next_frames
            env_step += num_envs
            progress.update(num_envs)

            updates_due = earlier_updates + max(0, (env_step - first_update) // update_every + 1)
            if updates_due > updates and buffer.num_episodes == 0:
                # The warm-up ended before any episode did: act on until one has, and count
                # the updates from then.
                if not waited:
                    print(f"no episode has ended in the {warmup_steps} warm-up steps; acting on "
                          f"until one has, then updating")
                first_update, updates_due, waited = env_step + num_envs, updates, True
            if updates_due > updates:
                for _ in range(updates_due - updates):
                    batch = buffer.sample(batch_size)                          # [B, T, ...] numpy
                    losses.append(float(learner.update(
                        rl_loss.distribute_batch(learner.strategy, batch))))
                updates = updates_due
                learner.sync_actor()

            if env_step - log_step >= log_every or env_step >= num_iters:
                scalars = {"epsilon": epsilon, "updates": updates,
                           "steps_per_second": (env_step - log_step) / (time.time() - log_time)}
                if losses:
                    scalars["loss"] = np.mean(losses)
                if finished_returns:  # per life, clipped rewards
                    scalars["episode_return"] = np.mean(finished_returns)
                metrics.scalars("train", scalars, env_step)
                losses, finished_returns, log_step, log_time = [], [], env_step, time.time()

            due = env_step >= next_eval or env_step >= num_iters
            if due and run_dir:
                returns, keys = play.play_distinct(
                    functools.partial(play.greedy_policy, learner.act, learner.actor), env,
                    noise_type, play.env_seeds(seed, eval_episodes, play.SELECTION_SEEDS),
                    eval_time_limit, async_envs)
                evaluation = metrics.evaluation(env_step, returns, len(set(keys)))
                progress.write(f"step {env_step}: eval return {evaluation['mean']:.1f} "
                               f"+- {evaluation['std']:.1f} ({eval_episodes} episodes, "
                               f"{evaluation['distinct_starts']} distinct starts); "
                               f"{'selected' if evaluation['selected'] else 'not selected'}: "
                               f"{evaluation['why']}")
            timed = stop and (stop.received or time.time() - last_save >= 60 * save_every_mins)
            if due or timed:
                run_folders.flush_metrics(_run)  # metrics.json is never behind a checkpoint
                learner.save(env_step, updates)
                clock.save(env_step)
                last_save = time.time()
                next_eval = (env_step // eval_every + 1) * eval_every
            if due and run_dir and evaluation["selected"]:
                agent_runs.keep_selected(learner.manager.latest_checkpoint, run_dir)
            if stop and stop.received:
                progress.close()
                envs.close()
                print(f"{stop.received}: stopped at step {env_step}, saved in "
                      f"{learner.manager.latest_checkpoint}; resume with:\n"
                      f"  {run_folders.resume_command(_run, run_dir)}")
                raise run_folders.Stopped()

    progress.close()
    envs.close()
    if run_dir:
        print(f"run folder: {run_dir}")
    else:
        shutil.rmtree(learner.manager.directory, ignore_errors=True)
    return metrics.evaluations[-1]["mean"] if metrics.evaluations else None


# --------------------------------------------------------------------------------------
# The evaluate command: the paper's protocol


def format_table(seeds, policies, summary):
    """The per-seed table and the summary line."""
    lines = ["policies: " + ", ".join(f"P{p + 1}={path}" for p, path in enumerate(policies)),
             f"{'seed':>6} " + " ".join(f"{f'P{p + 1}':>9}" for p in range(len(policies)))
             + f" {'mean':>9} {'pooled std':>10}"]
    for s, seed in enumerate(seeds):
        lines.append(f"{seed:>6} " + " ".join(f"{m:9.1f}" for m in summary["policy_means"][s])
                     + f" {summary['seed_means'][s]:9.1f} {summary['pooled_stds'][s]:10.1f}")
    m = summary["median_index"]
    lines.append(f"median over seeds: {summary['seed_means'][m]:.1f} +- "
                 f"{summary['pooled_stds'][m]:.1f} (seed {seeds[m]})")
    return "\n".join(lines)


def agent_policies(given, spec, game_dir, vis_ckpt_fname, vis_load):
    """[(run folder, checkpoint, step, how chosen)] and [(keypoint run, its checkpoint)]
    of evaluate's agent policies (resolve_policies), each run checked against `spec`."""
    for policy in given:
        if isinstance(policy, str):
            run_folders.check_model_spec(agent_runs.run_and_step(policy)[0], spec)
    resolved = agent_runs.resolve_policies(given, game_dir)
    for run in {run for run, *_ in resolved}:
        run_folders.check_model_spec(run, spec)
    for p, (run, _, step, how) in enumerate(resolved):
        print(f"P{p + 1}: {run} at step {step} ({how})")
    policies = [run for run, *_ in resolved]
    return resolved, keypoint_runs_per_policy(policies, vis_ckpt_fname, vis_load)


def keypoint_runs_per_policy(policies, vis_ckpt_fname, vis_load):
    """(keypoint run, checkpoint) for each policy: vis_ckpt_fname names one run for all,
    one per policy, or none (each policy's recorded run)."""
    given = as_list(vis_ckpt_fname)
    if len(given) not in (0, 1, len(policies)):
        raise ConfigError(f"vis_ckpt_fname names {len(given)} keypoint runs for {len(policies)} "
                          f"policies (load_ckpts); give one, one per policy, or none")
    given = given * len(policies) if len(given) == 1 else given or [None] * len(policies)
    return [tuple(agent_runs.recorded_keypoint_run(policy, run, vis_load))
            for policy, run in zip(policies, given)]


def keypoint_record(run, load):
    """What a policy's keypoint model was: its run, checkpoint, the checkpoint's digest and
    the keypoint precision its run measured on test frames (None where not measured)."""
    if run is None:
        return {"run": None, "load": None, "digest": None, "precision": None}
    measured = read_json(os.path.join(run, "evaluate", "keypoint_metrics.json"), default={})
    rows = [row for name, row in measured.get("rows", {}).items() if "random" not in name]
    return {"run": os.path.abspath(run), "load": load,
            "digest": run_folders.checkpoint_digest(run, load),
            "precision": rows[0].get("precision") if rows else None}


@ex.command
@one_line_errors
def evaluate(_run, _config, env, noise_type, kp_type, kpt_encoder_type, mp_num_steps,
             num_keypoints, vis_ckpt_fname, vis_load, load_ckpts, eval_seeds, num_eval_episodes,
             eval_time_limit, async_envs, precision, exp_root, repeat_action_probability,
             distinct_starts):
    """The paper's protocol: num_eval_episodes greedy eval-mode episodes per eval seed and
    trained policy (load_ckpts: run folders, each its last selected checkpoint, RUN@STEP
    for a run's selected checkpoint at STEP, or one selected step per run of this game's
    experiment folder; or `random` once per uniformly random policy, the floor); per seed
    the mean of the policy means and the pooled std; the median over seeds.

    With distinct_starts (the default) a greedy policy plays each distinct start of the
    episodes once (play.play_distinct): the same returns as playing every episode.
    repeat_action_probability > 0 evaluates with the ALE's sticky actions instead of the
    paper's deterministic games."""
    check_options(_config, OPTIONS)
    spec = agent_spec()
    seeds = as_list(eval_seeds)
    if not as_list(load_ckpts):
        raise ConfigError("load_ckpts is not set; give the agent run folders (load_ckpts=A,B,C) "
                          "or one selected step per run (load_ckpts=30000,80000,50000)")
    if not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"eval_seeds={eval_seeds!r}: expected integers >= 0, e.g. 1,2,3,4,5")
    given = as_list(load_ckpts)
    num_actions = play.action_count(env)
    episode_seeds = [s for seed in seeds
                     for s in play.env_seeds(seed, num_eval_episodes, play.PROTOCOL_SEEDS)]
    episodes = (env, noise_type, episode_seeds, eval_time_limit, async_envs,
                repeat_action_probability)
    returns = np.zeros([len(seeds), len(given), num_eval_episodes])       # [S, P, E]
    keys = [f"seed {seed}" for seed in episode_seeds]  # every episode its own, until known
    if RANDOM in given:
        if set(given) != {RANDOM}:
            raise ConfigError(f"load_ckpts={','.join(map(str, given))} mixes {RANDOM} with "
                              f"agent runs; evaluate the random policy alone "
                              f"(load_ckpts={RANDOM},{RANDOM},{RANDOM}: three of them)")
        resolved = [(RANDOM, None, None, f"uniformly random, policy seed {p}")
                    for p in range(len(given))]
        keypoint_runs = [(None, None)] * len(given)
        for p, (_, _, _, how) in enumerate(resolved):
            print(f"P{p + 1}: {how}")
            returns[:, p] = play.play_returns(play.random_policy(num_actions, p), *episodes
                                              ).reshape(len(seeds), -1)
    else:
        resolved, keypoint_runs = agent_policies(given, spec, os.path.join(
            exp_root, str(noise_type), str(kp_type), str(kpt_encoder_type),
            games.env_name(env)), vis_ckpt_fname, vis_load)
        precision = hardware.resolve_precision(precision)
        kp_models = {run: load_frozen_keypoints(tf.distribute.get_strategy(), kp_type, *run,
                                                env, num_keypoints, noise_type)
                     for run in set(keypoint_runs)}  # each distinct keypoint checkpoint once
        for p, ((_, checkpoint, _, _), keypoint_run) in enumerate(zip(resolved, keypoint_runs)):
            kp_model = kp_models[keypoint_run]
            actor = agent.q_network(kp_model, kpt_encoder_type, mp_num_steps, num_actions)
            tf.train.Checkpoint(online=actor).restore(checkpoint) \
                .assert_existing_objects_matched().expect_partial()
            act = agent.make_act_fn(kp_model, actor, kpt_encoder_type, precision)
            policy_for = functools.partial(play.greedy_policy, act, actor)
            # every seed's episodes side by side: one batched forward pass per step
            if distinct_starts:
                policy_returns, keys = play.play_distinct(policy_for, *episodes)
            else:
                policy_returns = play.play_returns(policy_for(len(episode_seeds)), *episodes)
            print(f"policy {p + 1}/{len(resolved)}: {len(episode_seeds)} episodes, "
                  f"{len(set(keys))} distinct starts played"
                  f"{' once each' if distinct_starts else ''}")
            returns[:, p] = policy_returns.reshape(len(seeds), -1)
    policies = [run for run, *_ in resolved]

    summary = stats.protocol_summary(returns)
    print(format_table(seeds, policies, summary))
    out_dir = run_folders.run_dir_of(_run) or "."
    m = summary["median_index"]
    seed_keys = np.array(keys).reshape(len(seeds), -1)
    result = {"policies": [p if p == RANDOM else os.path.abspath(p) for p in policies],
              "eval_seeds": seeds,
              "policy_steps": [step for _, _, step, _ in resolved],
              "policy_choice": [how for _, _, _, how in resolved],
              "keypoint_runs": [[run and os.path.abspath(run), load]
                                for run, load in keypoint_runs],
              "keypoint_models": [keypoint_record(*run) for run in keypoint_runs],
              "repeat_action_probability": repeat_action_probability,
              "distinct_starts": len(set(keys)),
              "distinct_starts_per_seed": [len(set(row)) for row in seed_keys],
              "distinct_returns": [len(np.unique(returns[:, p])) for p in range(len(given))],
              "returns": returns.tolist(), "policy_means": summary["policy_means"].tolist(),
              "seed_means": summary["seed_means"].tolist(),
              "pooled_stds": summary["pooled_stds"].tolist(),
              "median": float(summary["seed_means"][m]),
              "median_std": float(summary["pooled_stds"][m]),
              "median_seed": seeds[m]}
    write_json(os.path.join(out_dir, "evaluation.json"), result)
    print(f"{result['distinct_starts']} distinct starts among {len(episode_seeds)} episodes; "
          f"distinct returns per policy: {result['distinct_returns']}")
    print(f"evaluation: {os.path.join(out_dir, 'evaluation.json')}")
    return result


def main(argv):
    run_folders.run_commandline(ex, argv)


if __name__ == "__main__":
    main(sys.argv)
