"""Test set-up: JAX on the CPU with several virtual devices.

Set before JAX is imported anywhere, so every test sees the same platform.
"""
import os

# Keras 3 picks its backend on import (TensorFlow when installed): estlab.keras
# runs it on JAX.
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flag = "--xla_force_host_platform_device_count=4"
if _flag not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
