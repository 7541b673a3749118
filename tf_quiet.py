"""Import TensorFlow without its start-up chatter: the one job of this module.

Every script imports it first (`import tf_quiet`), so that TensorFlow's C++ runtime starts
with its start-up lines filtered out of stderr, whoever imports TensorFlow next.
"""
import logging
import os
import sys
import tempfile

# TensorFlow's start-up lines that say nothing to a user of this repository (printed by its
# C++ runtime before logging is set up, so TF_CPP_MIN_LOG_LEVEL does not hide them).
STARTUP_NOISE = ("absl::InitializeLog", "cuda drivers", "cuInit", "oneDNN custom operations",
                 "cpu_feature_guard", "rebuild TensorFlow with the appropriate compiler flags",
                 "Unable to register cu", "TF-TRT Warning", "computation_placer", "cuda_blas",
                 "cuda_dnn", "cuda_fft")


def import_tensorflow():
    """Import TensorFlow with its start-up lines filtered out of stderr (other lines pass),
    and say in one line which GPUs it uses, if any. Returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
            gpus = tf.config.list_physical_devices("GPU")  # CUDA initialises (and complains) here
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if line.strip() and not any(noise in line for noise in STARTUP_NOISE):
                    sys.stderr.write(line)
    logging.getLogger("absl").setLevel(logging.WARNING)  # "Sharding callback duration" per save
    if gpus:
        details = [tf.config.experimental.get_device_details(gpu) for gpu in gpus]
        print("TensorFlow uses " + ", ".join(
            f"{gpu.name.split(':', 1)[1]} ({d.get('device_name', '?')}, compute "
            f"{'.'.join(map(str, d.get('compute_capability', ('?',))))})"
            for gpu, d in zip(gpus, details)))
    return tf


import_tensorflow()
