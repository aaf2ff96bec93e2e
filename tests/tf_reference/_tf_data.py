"""The data the TF 2.15 reference scripts here share (run them from any directory:
``python tests/tf_reference/<script>.py``; this directory is on their path).

``regression_data`` is tests/_models.py's, so estlab's tests and these scripts
train on the same rows.
"""
import numpy as np
import tensorflow as tf


def regression_data(n=64, seed=0):  # tests/_models.py's
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 3)).astype(np.float32)
  y = (x @ np.array([1.0, -2.0, 0.5], np.float32) + 0.3).astype(np.float32)
  return x, y


X, Y = regression_data()


def forever():
  return tf.data.Dataset.from_tensor_slices(({"x": X}, Y)).repeat().batch(16)
