"""AtariARI-style linear probes of frozen representations against console-RAM state
variables: how much of a game's state a linear read-out of a representation recovers.

The benchmark is AtariARI (Anand et al. 2019, "Unsupervised State Representation Learning
in Atari"; repository mila-iqia/atari-representation-learning). Every frame of our HDF5
splits carries the 128-byte console RAM (`ram`, uint8 [N, 128]); AtariARI's annotations
turn it into state variables (player_x = ram[10], ...), each a class label in 0..255.
One linear classifier per variable is trained on cached features of the training split,
stopped early on the validation split, and scored by weighted F1 on the test split;
the F1s are averaged within AtariARI's five categories, then across them.

Their protocol, and where ours differs (docs/probes.md says the same):
- Labels: `ram[index]` for AtariARI's variables (atariari/benchmark/wrapper.py:ram2label).
- Entropy filter: a variable is dropped when the entropy of its labels is below 0.6
  nats (natural log: torch.distributions.Categorical.entropy in
  atariari/benchmark/label_preprocess.py:remove_low_entropy_labels). Difference: they
  pool every frame before splitting; we use the training split only.
- Probe: nn.Linear(D, 256) per variable, cross-entropy, Adam(lr 3e-4, eps 1e-5), batch
  64, at most 100 epochs, early stopping with patience 15 on validation accuracy, and
  ReduceLROnPlateau(mode max, factor 0.2, patience 5, min_lr 1e-5) on the same accuracy
  (atariari/benchmark/probe.py:ProbeTrainer, the per-variable version; lr 3e-4, batch 64,
  epochs 100, patience 15 are atariari/methods/utils.py:get_argparser's defaults). The
  probe tested is the last one trained, not the best on validation: their EarlyStopping
  only stops (its checkpoint is never read back). Same here.
  Differences: (1) an epoch here is one pass over the training frames in a random order,
  where theirs draws as many frames, each from an episode drawn uniformly (with
  replacement), so short episodes weigh more there; (2) validation accuracy here is over
  the whole validation split, theirs the mean batch accuracy over such a resample;
  (3) test F1 here is over the whole test split, theirs over such a resample; (4) they
  drop episodes of <= 64 frames and test frames that also occur in train or valid, we
  do not (`novel_frames` gives the mask, for a caller who wants it).
  Implementation: all variables' probes are one [D, V * 256] matmul trained together;
  each variable's loss, gradient and Adam moments are its own, and a stopped variable's
  learning rate is set to 0, so each probe follows the same path as if trained alone.
- Score: weighted F1 (sklearn f1_score(average="weighted"), atariari/benchmark/utils.py:
  calculate_multiclass_f1_score), averaged within each category, then across categories
  (atariari/benchmark/probe.py:compute_category_avgs, postprocess_raw_metrics).
AtariARI's frames are 210 x 160 grayscale from a random agent that never takes NOOP;
ours are 84 x 84 RGB from a uniformly random agent: compare numbers with theirs only
with that said.

Representations: `extract` gives, per frame, what the GNN agent reads (each keypoint's
position and the encoder features pooled at it, agent.KEYPOINT_ENCODERS["gnn"].inputs,
in keypoint order) and the positions alone; `extract_cached` stores them in an .npz
keyed by the model and the frames.
"""
import hashlib
import os
import time

import numpy as np
import tensorflow as tf

from agent import KEYPOINT_ENCODERS
from common import ConfigError, save_npz
from datasets import SPLITS, read_h5, split_path
from games import env_name

# ----------------------------------------------------------------------------
# AtariARI's RAM annotations and categories

# Copied from mila-iqia/atari-representation-learning, atariari/benchmark/ram_annotations.py
# (atari_dict; the four games of the paper's Table 1, identical at commits 1a94116 and
# cc87a29), comments included. A range or list is expanded as in that file: name_i for
# its i-th index (`ram_variables`).
ATARIARI_RAM = {
    "battlezone": dict(  # red_enemy_x=75,
        blue_tank_facing_direction=46,  # 17 left 21 forward 29 right
        blue_tank_size_y=47,  # tank gets larger as it gets closer
        blue_tank_x=48,
        blue_tank2_facing_direction=52,
        blue_tank2_size_y=53,
        blue_tank2_x=54,
        num_lives=58,
        missile_y=105,
        compass_needles_angle=84,
        angle_of_tank=4,  # as shown by what the mountains look like
        left_tread_position=59,  # got to mod this number by 8 to get unique values
        right_tread_position=60,  # got to mod this number by 8 to get unique values
        crosshairs_color=108,  # 0 if black 46 if yellow
        score=29),
    "frostbite": dict(
        top_row_iceflow_x=34,
        second_row_iceflow_x=33,
        third_row_iceflow_x=32,
        fourth_row_iceflow_x=31,
        enemy_bear_x=104,
        num_lives=76,
        igloo_blocks_count=77,  # 255 is none and 15 is all "
        enemy_x=range(84, 88),  # 84  bottom row -   87  top row
        player_x=102,
        player_y=100,
        player_direction=4,
        score=[72, 73, 74]),
    "mspacman": dict(
        enemy_sue_x=6,
        enemy_inky_x=7,
        enemy_pinky_x=8,
        enemy_blinky_x=9,
        enemy_sue_y=12,
        enemy_inky_y=13,
        enemy_pinky_y=14,
        enemy_blinky_y=15,
        player_x=10,
        player_y=16,
        fruit_x=11,
        fruit_y=17,
        ghosts_count=19,
        player_direction=56,
        dots_eaten_count=119,
        player_score=120,
        num_lives=123),
    "seaquest": dict(
        enemy_obstacle_x=range(30, 34),
        player_x=70,
        player_y=97,
        diver_or_enemy_missile_x=range(71, 75),
        player_direction=86,
        player_missile_direction=87,
        oxygen_meter_value=102,
        player_missile_x=103,
        score=[57, 58],
        num_lives=59,
        divers_collected_count=62),
}

# AtariARI's summary categories, in the order of atariari/benchmark/categorization.py's
# summary_key_dict (read from its copy aari/categorization.py in the same repository,
# and the identical atariari/benchmark/categorization.py of the fork
# mariodoebler/atari-representation-learning), with their names.
CATEGORIES = ("small_object_localization", "agent_localization", "other_localization",
              "score_clock_lives_display", "misc_keys")

NUM_CLASSES = 256
ENTROPY_THRESHOLD = 0.6  # nats, as AtariARI (torch Categorical entropy uses the natural log)
PROTOCOL = dict(lr=3e-4, batch_size=64, epochs=100, patience=15)  # AtariARI's get_argparser
ADAM_EPSILON = 1e-5                               # AtariARI's ProbeTrainer.create_probes
PLATEAU = dict(factor=0.2, patience=5, min_lr=1e-5, threshold=1e-4)  # its ReduceLROnPlateau


def ram_variables(env):
    """{variable: RAM index} of a game, AtariARI's names: a range or list `name` becomes
    name_0, name_1, ... after the single indices (atari_dict's expansion). ConfigError
    for a game without annotations."""
    game = env_name(env)
    if game not in ATARIARI_RAM:
        raise ConfigError(f"no AtariARI RAM annotations for env {env!r}; annotated: "
                          f"{', '.join(ATARIARI_RAM)}")
    table = ATARIARI_RAM[game]
    single = {name: index for name, index in table.items() if isinstance(index, int)}
    expanded = {f"{name}_{i}": index for name, indices in table.items()
                if not isinstance(indices, int) for i, index in enumerate(indices)}
    return {**single, **expanded}


def categories_of(variable):
    """The categories (names of CATEGORIES) of a variable name, by the rules of
    atariari/benchmark/categorization.py; none for names no rule matches (BattleZone's
    compass_needles_angle, for example), which then count only in the overall mean."""
    found = []
    if any(coord in variable for coord in ("_x", "_y", "_z", "_column")):
        small = any(name in variable for name in ("ball", "missile"))
        agent = any(name in variable for name in ("agent", "player"))
        found.append("small_object_localization" if small else
                     "agent_localization" if agent else "other_localization")
    if any(word in variable for word in ("score", "clock", "lives", "lifes", "meter",
                                         "display")):
        found.append("score_clock_lives_display")
    if any(word in variable for word in ("count", "bit_map", "existence", "level", "room",
                                         "game_state", "direction")):
        found.append("misc_keys")
    return sorted(found, key=CATEGORIES.index)


def labels(env, ram):
    """RAM [N, 128] uint8 -> {variable: int32 labels [N] in 0..255}, AtariARI's
    ram2label (the byte as it is)."""
    ram = np.asarray(ram)
    if ram.ndim != 2 or ram.shape[1] != 128:
        raise ConfigError(f"RAM of shape {ram.shape}: expected [N, 128]")
    return {name: ram[:, index].astype(np.int32) for name, index in ram_variables(env).items()}


# ----------------------------------------------------------------------------
# Entropy filter, weighted F1, category averages


def label_entropy(values):
    """Entropy in nats of the empirical distribution of `values` [N] (AtariARI's
    remove_low_entropy_labels)."""
    _, counts = np.unique(np.asarray(values), return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)))


def entropy_filter(train_labels, threshold=ENTROPY_THRESHOLD):
    """(kept variable names, {variable: entropy in nats}) for {variable: labels [N]} of
    the training split: a variable is kept when its entropy is >= threshold."""
    entropy = {name: label_entropy(values) for name, values in train_labels.items()}
    return [name for name in train_labels if entropy[name] >= threshold], entropy


def weighted_f1(true, pred):
    """sklearn's f1_score(true, pred, average="weighted") for labels in 0..255: the F1 of
    each class (2 TP / (2 TP + FP + FN), 0 without a true positive) weighted by its
    number of true labels. true, pred: int [N]."""
    true, pred = np.asarray(true), np.asarray(pred)
    true_count = np.bincount(true, minlength=NUM_CLASSES)
    pred_count = np.bincount(pred, minlength=NUM_CLASSES)
    hits = np.bincount(true[true == pred], minlength=NUM_CLASSES)
    denominator = true_count + pred_count                  # = 2 TP + FP + FN per class
    f1 = np.divide(2.0 * hits, denominator, out=np.zeros(len(denominator)),
                   where=denominator > 0)
    return float(np.sum(true_count * f1) / len(true))


def category_averages(scores):
    """{variable: score} -> {"categories": {category: mean over its variables},
    "overall_avg": mean over all variables, "across_categories_avg": mean of the
    category means}. Categories without a variable are left out
    (AtariARI's compute_category_avgs and postprocess_raw_metrics)."""
    per_category = {}
    for category in CATEGORIES:
        values = [v for name, v in scores.items() if category in categories_of(name)]
        if values:
            per_category[category] = float(np.mean(values))
    return {"categories": per_category,
            "overall_avg": float(np.mean(list(scores.values()))),
            "across_categories_avg": float(np.mean(list(per_category.values())))}


def majority_f1(train_labels, test_labels):
    """Weighted F1 on the test split of always answering the training split's most
    frequent label (AtariARI's methods/majority.py): the chance level. int [N] each."""
    majority = np.bincount(train_labels, minlength=NUM_CLASSES).argmax()
    return weighted_f1(test_labels, np.full(len(test_labels), majority))


# ----------------------------------------------------------------------------
# The probes: V linear classifiers trained at once


class Probes:
    """V linear classifiers D -> 256 as one [D, V * 256] matmul, with Adam state.

    weights [D, V * 256] and bias [V * 256] start as torch's nn.Linear does (uniform in
    +-1/sqrt(D)); variable v's logits are columns v * 256 .. v * 256 + 255. Each
    variable has its own learning rate (`lr` [V]); 0 freezes it.
    """

    def __init__(self, num_features, num_variables, seed=0):
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(num_features)
        shape = (num_features, num_variables * NUM_CLASSES)
        self.num_variables = num_variables
        self.weights = tf.Variable(rng.uniform(-bound, bound, shape).astype(np.float32))
        self.bias = tf.Variable(rng.uniform(-bound, bound, shape[1:]).astype(np.float32))
        self.moments = [tf.Variable(tf.zeros_like(v)) for v in (self.weights, self.bias) * 2]
        self.step = tf.Variable(0.0)

    def logits(self, x):
        """x [B, D] -> logits [B, V, 256]."""
        out = tf.matmul(x, self.weights) + self.bias                       # [B, V * 256]
        return tf.reshape(out, [-1, self.num_variables, NUM_CLASSES])

    @tf.function(reduce_retracing=True)
    def predict(self, x):
        """x [B, D] -> predicted labels [B, V] int32."""
        return tf.argmax(self.logits(x), axis=-1, output_type=tf.int32)

    @tf.function(jit_compile=True)
    def train_epoch(self, features, targets, order, lr):
        """One pass of Adam steps: features [N, D], targets [N, V] int32, order [S, B] the
        frames of each batch, lr [V] per variable. The loss is the sum over variables of
        the batch-mean cross-entropy, so each probe gets its own loss's gradient."""
        lr_columns = tf.repeat(lr, NUM_CLASSES)                            # [V * 256]
        beta1, beta2 = 0.9, 0.999
        for s in tf.range(tf.shape(order)[0]):
            x = tf.gather(features, order[s])                             # [B, D]
            y = tf.gather(targets, order[s])                              # [B, V]
            with tf.GradientTape() as tape:
                ce = tf.nn.sparse_softmax_cross_entropy_with_logits(y, self.logits(x))
                loss = tf.reduce_sum(tf.reduce_mean(ce, axis=0))
            grads = tape.gradient(loss, [self.weights, self.bias])
            self.step.assign_add(1.0)
            correction1 = 1.0 - beta1 ** self.step
            correction2 = 1.0 - beta2 ** self.step
            for var, grad, m, v in zip((self.weights, self.bias), grads, self.moments[:2],
                                       self.moments[2:]):
                m.assign(beta1 * m + (1.0 - beta1) * grad)
                v.assign(beta2 * v + (1.0 - beta2) * tf.square(grad))
                # torch.optim.Adam: eps added to the bias-corrected root
                denominator = tf.sqrt(v / correction2) + ADAM_EPSILON
                var.assign_sub(lr_columns * (m / correction1) / denominator)


def predict(probes, x, batch_size=4096):
    """Labels [N, V] int32 of features x [N, D], in batches."""
    return np.concatenate([probes.predict(tf.constant(x[i:i + batch_size], tf.float32)).numpy()
                           for i in range(0, len(x), batch_size)])


def train_probes(train_x, train_y, valid_x, valid_y, seed=0, lr=PROTOCOL["lr"],
                 batch_size=PROTOCOL["batch_size"], epochs=PROTOCOL["epochs"],
                 patience=PROTOCOL["patience"]):
    """Train one linear probe per variable; AtariARI's early stopping and plateau
    schedule, per variable.

    train_x [N, D], valid_x [M, D] float; train_y [N, V], valid_y [M, V] int labels.
    Each epoch: one shuffled pass (full batches only), then the validation accuracy of
    each variable. A variable stops when its accuracy has not exceeded its best for
    `patience` epochs; its learning rate falls by PLATEAU["factor"] after
    PLATEAU["patience"] + 1 epochs without relative gain PLATEAU["threshold"].
    Returns (probes, {"epochs": [V] epochs trained, "best_valid_accuracy": [V]}); the
    probes are the last trained, as AtariARI tests them.
    """
    num_frames, num_variables = train_y.shape
    if num_frames < batch_size:
        raise ConfigError(f"{num_frames} training frames: the probes need at least one "
                          f"batch of {batch_size}")
    rng = np.random.default_rng(seed)
    probes = Probes(train_x.shape[1], num_variables, seed=seed)
    features = tf.constant(train_x, tf.float32)
    targets = tf.constant(train_y, tf.int32)
    rates = np.full(num_variables, lr, np.float32)
    stopped = np.zeros(num_variables, bool)
    best_stop = np.full(num_variables, -np.inf)      # EarlyStopping: strict improvement
    waited = np.zeros(num_variables, int)
    best_plateau = np.full(num_variables, -np.inf)   # ReduceLROnPlateau: relative improvement
    bad_epochs = np.zeros(num_variables, int)
    trained = np.zeros(num_variables, int)
    steps = num_frames // batch_size
    for _ in range(epochs):
        if stopped.all():
            break
        order = rng.permutation(num_frames)[:steps * batch_size].reshape(steps, batch_size)
        probes.train_epoch(features, targets, tf.constant(order, tf.int32),
                           tf.constant(np.where(stopped, 0.0, rates), tf.float32))
        trained += ~stopped
        accuracy = (predict(probes, valid_x) == valid_y).mean(axis=0)              # [V]
        active = ~stopped
        improved = accuracy > best_stop
        best_stop = np.where(active & improved, accuracy, best_stop)
        waited = np.where(active, np.where(improved, 0, waited + 1), waited)
        stopped |= active & (waited >= patience)
        active &= ~stopped                           # the scheduler steps for running probes
        better = accuracy > best_plateau * (1.0 + PLATEAU["threshold"])
        best_plateau = np.where(active & better, accuracy, best_plateau)
        bad_epochs = np.where(active, np.where(better, 0, bad_epochs + 1), bad_epochs)
        reduce = active & (bad_epochs > PLATEAU["patience"])
        rates = np.where(reduce, np.maximum(rates * PLATEAU["factor"], PLATEAU["min_lr"]),
                         rates).astype(np.float32)
        bad_epochs = np.where(reduce, 0, bad_epochs)
    return probes, {"epochs": trained, "best_valid_accuracy": best_stop}


# ----------------------------------------------------------------------------
# One representation's table


def probe_table(features_by_split, ram_by_split, env, seed=0, **protocol):
    """Filter, train, score and average the probes of one representation on one game.

    features_by_split: {"train", "valid", "test"} -> float features [N_split, D] of the
        frames of that split (one representation, e.g. `extract(...)["positions"]`).
    ram_by_split: the same splits -> uint8 RAM [N_split, 128] of the same frames.
    env: the game (AtariARI-annotated: mspacman, seaquest, frostbite, battlezone).
    seed: the probes' initialisation and batch order. protocol: overrides of PROTOCOL
        (lr, batch_size, epochs, patience), for tests.
    Returns a JSON-ready dict:
        "variables": {variable: {"f1", "accuracy" (test), "majority_f1" (chance level),
            "entropy" (train, nats), "categories", "epochs", "best_valid_accuracy"}}
            for the variables kept by the entropy filter;
        "dropped": {variable: entropy} for those below ENTROPY_THRESHOLD;
        "categories", "overall_avg", "across_categories_avg": category_averages of the
            test F1 (across_categories_avg is AtariARI's reported number);
        "majority": the same three for majority_f1;
        "frames": {split: N_split}, "feature_size": D.
    """
    unknown = set(protocol) - set(PROTOCOL)
    if unknown:
        raise ConfigError(f"unknown probe settings {sorted(unknown)}; known: {sorted(PROTOCOL)}")
    for split in SPLITS:
        if split not in features_by_split or split not in ram_by_split:
            raise ConfigError(f"probe_table needs features and RAM of the splits "
                              f"{', '.join(SPLITS)}; {split} is missing")
        if len(features_by_split[split]) != len(ram_by_split[split]):
            raise ConfigError(f"{split}: {len(features_by_split[split])} feature rows for "
                              f"{len(ram_by_split[split])} RAM rows")
    sizes = {np.shape(features_by_split[split])[1:] for split in SPLITS}
    if len(sizes) != 1 or len(next(iter(sizes))) != 1:
        raise ConfigError(f"features of shapes {sorted(sizes)}: expected [N, D], one D")
    label_sets = {split: labels(env, ram_by_split[split]) for split in SPLITS}
    kept, entropy = entropy_filter(label_sets["train"])
    if not kept:
        raise ConfigError(f"no RAM variable of {env} has label entropy >= {ENTROPY_THRESHOLD} "
                          f"nats on the training split ({len(ram_by_split['train'])} frames)")

    def stack(split):
        return np.stack([label_sets[split][name] for name in kept], axis=1)  # [N, V]

    x = {split: np.asarray(features_by_split[split], np.float32) for split in SPLITS}
    probes, history = train_probes(x["train"], stack("train"), x["valid"], stack("valid"),
                                   seed=seed, **protocol)
    test_y = stack("test")
    test_pred = predict(probes, x["test"])                                          # [N, V]
    variables = {}
    for v, name in enumerate(kept):
        variables[name] = {
            "f1": weighted_f1(test_y[:, v], test_pred[:, v]),
            "accuracy": float(np.mean(test_y[:, v] == test_pred[:, v])),
            "majority_f1": majority_f1(label_sets["train"][name], test_y[:, v]),
            "entropy": entropy[name], "categories": categories_of(name),
            "epochs": int(history["epochs"][v]),
            "best_valid_accuracy": float(history["best_valid_accuracy"][v])}
    return {"variables": variables,
            "dropped": {name: entropy[name] for name in entropy if name not in kept},
            **category_averages({name: r["f1"] for name, r in variables.items()}),
            "majority": category_averages({name: r["majority_f1"]
                                           for name, r in variables.items()}),
            "frames": {split: len(x[split]) for split in SPLITS},
            "feature_size": int(x["train"].shape[1])}


# ----------------------------------------------------------------------------
# Representations of a keypoint model, extracted once and cached

REPRESENTATIONS = ("keypoints+features", "positions")


def extract(model, frames_uint8, batch_size=64):
    """A frozen keypoint model's representations of frames uint8 [N, 84, 84, 3]:
    {"keypoints+features": [N, K * (2 + C)], "positions": [N, 2 K]} float32.

    "keypoints+features": for each keypoint in order, its centre (y, x) in [-1, 1] and
    the encoder features [C] pooled where its heatmap exceeds the agent's threshold:
    what the GNN agent reads (agent.KEYPOINT_ENCODERS["gnn"].inputs), flattened.
    "positions": the centres alone, flattened (y_0, x_0, y_1, x_1, ...).
    The model answers model.keypoints(images, is_training=False) -> (centres [B, K, 2],
    heatmaps or None) and model.features(images, is_training=False) -> [B, 42, 42, C],
    images float32 [B, 84, 84, 3] in [0, 1].
    """
    gnn_inputs = KEYPOINT_ENCODERS["gnn"].inputs

    @tf.function(reduce_retracing=True)
    def represent(frames):
        images = tf.cast(frames, tf.float32) / 255.0                      # [B, 84, 84, 3]
        centres, _ = model.keypoints(images, is_training=False)           # [B, K, 2]
        features = model.features(images, is_training=False)              # [B, 42, 42, C]
        nodes, centres = gnn_inputs(features, centres)                    # [B, K, C], [B, K, 2]
        centres = tf.cast(centres, tf.float32)
        per_keypoint = tf.concat([centres, tf.cast(nodes, tf.float32)], axis=-1)  # [B, K, 2+C]
        batch = tf.shape(frames)[0]
        return tf.reshape(per_keypoint, [batch, -1]), tf.reshape(centres, [batch, -1])

    outputs = [represent(tf.constant(frames_uint8[i:i + batch_size]))
               for i in range(0, len(frames_uint8), batch_size)]
    return {name: np.concatenate([out[j].numpy() for out in outputs]).astype(np.float32)
            for j, name in enumerate(REPRESENTATIONS)}


def frames_digest(frames_uint8):
    """First 12 hex digits of the SHA-256 of frames [N, 84, 84, 3] uint8 (and their shape)."""
    digest = hashlib.sha256(str(np.shape(frames_uint8)).encode())
    digest.update(np.ascontiguousarray(frames_uint8).tobytes())
    return digest.hexdigest()[:12]


def cache_path(cache_dir, model_key, split):
    """The .npz of one model's representations of one split: model_key names the model
    (run_folders.checkpoint_digest of its checkpoint, or e.g. "random-seed0")."""
    return os.path.join(cache_dir, f"features_{model_key}_{split}.npz")


def extract_cached(model, frames_uint8, path, model_key, batch_size=64):
    """`extract`, read from `path` when it holds the same model_key and frames_digest,
    else computed and written there (atomically) with the seconds it took. Returns
    (the dict `extract` returns, seconds of the extraction that made the cache)."""
    key = f"{model_key}:{frames_digest(frames_uint8)}"
    if os.path.isfile(path):
        with np.load(path) as cached:
            if (str(cached["key"]) == key and "seconds" in cached.files
                    and set(REPRESENTATIONS) <= set(cached.files)):
                return ({name: cached[name] for name in REPRESENTATIONS},
                        float(cached["seconds"]))
    started = time.time()
    arrays = extract(model, frames_uint8, batch_size)
    seconds = time.time() - started
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    save_npz(path, {**arrays, "key": np.array(key), "seconds": np.array(seconds)})
    return arrays, seconds


def read_splits(data_dir, env):
    """{split: (frames uint8 [N, 84, 84, 3], RAM uint8 [N, 128])} of a game's HDF5 files."""
    out = {}
    for split in SPLITS:
        arrays, _ = read_h5(split_path(data_dir, env, split), ("frames", "ram"))
        if "ram" not in arrays:
            raise ConfigError(f"{split_path(data_dir, env, split)} has no console RAM; "
                              f"delete it to regenerate")
        out[split] = arrays["frames"], arrays["ram"]
    return out


def novel_frames(frames_uint8, seen):
    """Mask [N] of the frames [N, 84, 84, 3] that occur in none of the arrays `seen`
    (e.g. the train and valid frames): AtariARI's remove_duplicates, for the test split."""
    known = {frame.tobytes() for frames in seen for frame in frames}
    return np.array([frame.tobytes() not in known for frame in frames_uint8], bool)
