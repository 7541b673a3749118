"""Test-session set-up: quiet TensorFlow, two logical CPU devices, repo on sys.path.

Two logical CPUs let the multi-replica (tf.distribute) code paths run on this
2-core, GPU-less machine. Logical devices must be configured before TensorFlow
initialises its runtime, hence here, at import.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * 2)
