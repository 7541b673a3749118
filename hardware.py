"""What this machine is and how a run uses it: the CPU (name, cores, flags), the GPUs,
the precision a training step computes in, and the tf.distribute strategy (one device,
several GPUs of one host, or several hosts from TF_CONFIG)."""
import json
import os
import platform
import subprocess

import tensorflow as tf

import layers
from common import ConfigError, as_list


def machine():
    """CPU model and flags, cores, load averages, GPU (if any): what a timing means."""
    info = {"cpu": platform.processor() or platform.machine(), "cpu_flags": "",
            "cores": os.cpu_count(), "load_avg": os.getloadavg(), "gpu": "none",
            "python": platform.python_version()}
    info["cpu"] = cpu_name() or info["cpu"]
    flags = cpu_flags()
    info["cpu_flags"] = " ".join(w for w in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
                                 if w in flags)
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        info["gpu"] = listing.stdout.strip() or "none"
    except OSError:
        pass
    return info


def cpuinfo_field(field, path="/proc/cpuinfo"):
    """The value of the first `field` line of /proc/cpuinfo (None where there is none)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name(path="/proc/cpuinfo"):
    """The CPU's model name, e.g. "AMD EPYC 9B14" (None where /proc/cpuinfo has none)."""
    return cpuinfo_field("model name", path)


def cpu_flags(path="/proc/cpuinfo"):
    """This machine's CPU feature flags (an empty set where /proc/cpuinfo does not exist)."""
    return set((cpuinfo_field("flags", path) or "").split())


# CPU flags (Linux /proc/cpuinfo names) of units that compute bfloat16 natively.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def gpu_compute_capabilities():
    """(major, minor) of each visible GPU."""
    return [tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
            for gpu in tf.config.list_physical_devices("GPU")]


def resolve_precision(precision, flags=None, gpus=None):
    """The precision a training step computes in: "auto" becomes "bf16" where the hardware
    computes bfloat16 natively (GPUs of compute capability 8.0 or more; without a GPU, a
    CPU with AVX512_BF16 or AMX) and "float32" elsewhere, saying which and why. An
    explicit "float32" or "bf16" is returned as given; anything else is a ConfigError.

    flags: CPU flags (default: this machine's); gpus: GPU compute capabilities (default:
    the visible GPUs').
    """
    if precision != "auto":
        if precision not in layers.PRECISIONS:
            raise ConfigError(f"precision={precision!r}: expected one of auto, "
                              f"{', '.join(layers.PRECISIONS)}")
        return precision
    gpus = gpu_compute_capabilities() if gpus is None else gpus
    if gpus:
        native = all(tuple(capability) >= (8, 0) for capability in gpus)
        reason = f"GPU compute capability {', '.join('.'.join(map(str, c)) for c in gpus)}"
    else:
        flags = cpu_flags() if flags is None else set(flags)
        found = [flag for flag in BF16_CPU_FLAGS if flag in flags]
        native = bool(found)
        reason = f"CPU has {' and '.join(found)}" if found else \
            f"CPU has none of {', '.join(BF16_CPU_FLAGS)}"
    chosen = "bf16" if native else "float32"
    print(f"precision auto: {chosen} ({reason})")
    return chosen


def cluster_task():
    """(worker index, number of workers) from TF_CONFIG; (0, 1) without it.

    Worker 0 is the chief: the "chief" task if the cluster names one, else worker 0,
    as in TensorFlow.
    """
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        cluster = tf_config.get("cluster", {})
        tasks = [(job, index) for job in ("chief", "worker")
                 for index in range(len(cluster.get(job, [])))]
        if len(tasks) <= 1:
            return 0, 1
        task = tf_config["task"]
        return tasks.index((task["type"], task["index"])), len(tasks)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError("TF_CONFIG is not a cluster description with this process's task: "
                          '{"cluster": {"worker": ["host:port", ...]}, '
                          '"task": {"type": "worker", "index": I}}') from None


def is_chief_process():
    """True unless TF_CONFIG makes this process a non-chief worker (bad TF_CONFIG: True,
    so that the error is reported by the command)."""
    try:
        return cluster_task()[0] == 0
    except ConfigError:
        return True


def checked_gpu_ids(gpu):
    """Integer ids from the `gpu` config; ConfigError naming any that do not exist."""
    ids = as_list(gpu)
    num_gpus = len(tf.config.list_physical_devices("GPU"))
    missing = [i for i in ids if not (str(i).isdigit() and int(i) < num_gpus)]
    if missing:
        here = f"GPU ids 0..{num_gpus - 1}" if num_gpus else "no GPU"
        raise ConfigError(f"gpu ids {', '.join(map(str, missing))} do not exist; "
                          f"this machine has {here}")
    return [int(i) for i in ids]


def checked_devices(devices):
    """TF device names from the `devices` config; ConfigError naming any that do not
    exist and listing those that do."""
    present = {(d.device_type, int(d.name.rsplit(":", 1)[1])): d.name
               for d in tf.config.list_logical_devices()}

    def exists(name):
        try:
            spec = tf.DeviceSpec.from_string(name)
        except ValueError:
            return False
        return (str(spec.device_type).upper(), spec.device_index) in present

    names = as_list(devices)
    missing = [name for name in names if not exists(str(name))]
    if missing:
        raise ConfigError(f"devices {', '.join(map(str, missing))} do not exist; devices here: "
                          f"{', '.join(present.values())}")
    return names


def make_strategy(gpu, devices, num_workers):
    """The tf.distribute strategy for this process.

    Several workers (TF_CONFIG): MultiWorkerMirroredStrategy, each worker over its
    `gpu` ids (default: all its GPUs). One host: MirroredStrategy over the `gpu` ids or
    the `devices`; neither: TensorFlow's default device (GPU 0 if there is one). Call it
    before any other TensorFlow op: collective ops are configured at start-up.
    """
    if num_workers > 1:
        if devices is not None:
            raise ConfigError("devices= names one host's devices; with TF_CONFIG give gpu= ids")
        if gpu is not None:
            gpus = tf.config.list_physical_devices("GPU")
            tf.config.set_visible_devices([gpus[i] for i in checked_gpu_ids(gpu)], "GPU")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices is not None:
        names = checked_devices(devices)
    else:
        names = [f"/gpu:{i}" for i in checked_gpu_ids(gpu)]
    return tf.distribute.MirroredStrategy(names) if names else tf.distribute.get_strategy()
