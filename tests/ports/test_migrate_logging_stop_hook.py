"""Port of TensorFlow's guide/migrate/logging_stop_hook.ipynb, Estimator half.

Original: tensorflow/docs, site/en/guide/migrate/logging_stop_hook.ipynb
(read at commit 092b1273 with the repository search tool's read_file). The
section "TF1: Estimator.train" is kept whole: a model_fn that returns
`EstimatorSpec(training_hooks=[StopAtStepHook(num_steps=2),
LoggingTensorHook(weights, every_n_iter=1), LoggingTensorHook({'loss from
LoggingTensorHook': loss}, every_n_secs=3)])`, trained with
`estimator.train(_input_fn)` on a 3-batch input ("the training will stop
after 2 steps, and the weights/loss are logged as well"); with
`tf1.estimator` -> `estlab`, `tf1.train.StopAtStepHook` /
`tf1.train.LoggingTensorHook` -> `estlab.StopAtStepHook` /
`estlab.LoggingTensorHook` (tf.estimator's aliases of the same classes),
`tf1.data` -> `estlab.data`. Chosen as an extra port because no other port
returns hooks from the model_fn. Left out: the TF2 section (Keras
callbacks; not tf.estimator).

Changes beyond imports, one per line, with why:
- `tf1.layers.Dense(1)` -> `nn.Dense(1)` (TF layer -> Flax linen).
- `tf1.losses.mean_squared_error(labels=labels, predictions=logits)` ->
  `jnp.mean(jnp.square(labels - logits))` (tf op -> jnp; TF's default
  reduction is the mean).
- `tf1.train.AdagradOptimizer(0.05)` -> `optax.adagrad(0.05)` and
  `train_op = optimizer.minimize(...)` -> `train_op = optimizer` (optax).
- `kernel_name = tf.identity(dense.weights[0])` (and the bias) ->
  `kernel_name = dense.variables['params']['kernel']`: a Flax module's
  parameters are read from its variables (no `weights` list, no graph op).
  The hooks take the arrays themselves, as TF's took tensors; a list's
  arrays are logged as `tensor_0`, `tensor_1` where TF printed the graph
  tensors' reprs.

Results asserted against tests/ports/reference/logging_stop_hook.json, made
by reference/logging_stop_hook_tf.py (the same cells on TF 2.15): training
stops at step 2 of the 3 the input holds; the weights are logged at both
steps, as the step read them (the zero-initialised bias first, then after
one Adagrad step on the first batch); the loss is logged once (3-second
cadence, first step), and it is the first batch's MSE under the first
logged weights.
"""
import json
import logging
import os
import re
import tempfile

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab

with open(os.path.join(os.path.dirname(__file__), "reference",
                       "logging_stop_hook.json")) as _f:
  REFERENCE = json.load(_f)["runs"]

_FLOAT = r"-?\d+(?:\.\d*)?(?:e[-+]?\d+)?"

# --- guide: "Setup" ---
features = [[1., 1.5], [2., 2.5], [3., 3.5]]
labels = [[0.3], [0.5], [0.7]]

# define input function
def _input_fn():
  return estlab.data.Dataset.from_tensor_slices((features, labels)).batch(1)

# --- guide: "TF1: Estimator.train" ---
def _model_fn(features, labels, mode):
  dense = nn.Dense(1)
  logits = dense(features)
  loss = jnp.mean(jnp.square(labels - logits))
  optimizer = optax.adagrad(0.05)
  train_op = optimizer

  # build the stop hook
  stop_hook = estlab.StopAtStepHook(num_steps=2)

  # access tensors to be logged by names
  kernel_name = dense.variables['params']['kernel']
  bias_name = dense.variables['params']['bias']
  logging_weight_hook = estlab.LoggingTensorHook(
      tensors=[kernel_name, bias_name],
      every_n_iter=1)
  # log training loss by the tensor object
  logging_loss_hook = estlab.LoggingTensorHook(
      {'loss from LoggingTensorHook': loss},
      every_n_secs=3)

  # pass all hooks to EstimatorSpec
  return estlab.EstimatorSpec(mode,
                              loss=loss,
                              train_op=train_op,
                              training_hooks=[stop_hook,
                                              logging_weight_hook,
                                              logging_loss_hook])


def test_hooks_from_the_model_fn_stop_and_log(tmp_path, monkeypatch, caplog):
  # The guide passes no model_dir: the Estimator makes a temporary one,
  # here under tmp_path instead of the system's temporary folder.
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
  caplog.set_level(logging.INFO)

  estimator = estlab.Estimator(model_fn=_model_fn)

  # the training will stop after 2 steps, and the weights/loss are logged as well
  estimator.train(_input_fn)
  # ----------------------------------------------------------------------

  tf_run, = REFERENCE
  assert tf_run["global_step"] == 2
  assert estimator.latest_checkpoint() == os.path.join(estimator.model_dir, "2")

  lines = [r.getMessage() for r in caplog.records if r.name == "estlab"]
  weight_lines = [l.split(" (")[0] for l in lines  # less TF's "(x sec)"
                  if l.startswith("tensor_0 = ")]
  loss_lines = [l for l in lines if l.startswith("loss from LoggingTensorHook = ")]
  assert len(weight_lines) == len(tf_run["weight_lines"]) == 2
  assert len(loss_lines) == len(tf_run["loss_lines"]) == 1

  # What each step read: [kernel (2 values), bias (1 value)].
  (k1, b1), (k2, b2) = [
      (np.array([float(v) for v in re.findall(
          _FLOAT, l.split("tensor_1")[0].split("=")[1])]),
       np.array([float(v) for v in re.findall(_FLOAT, l.split("tensor_1 =")[1])]))
      for l in weight_lines]
  assert k1.shape == k2.shape == (2,) and b1.shape == b2.shape == (1,)
  assert b1 == 0.0                                     # as TF's first line
  # Step 2 reads step 1's result: one Adagrad(0.05) step on the first batch
  # (initial accumulator 0.1, as tf1.train.AdagradOptimizer).
  x, y = np.array(features[0]), labels[0][0]
  error = x @ k1 + b1[0] - y
  grads = np.append(2 * error * x, 2 * error)
  step = -0.05 * grads / np.sqrt(0.1 + grads ** 2)
  np.testing.assert_allclose(np.append(k2, b2), np.append(k1, b1) + step,
                             rtol=1e-4, atol=1e-6)
  # The loss line is step 1's loss.
  loss = float(re.findall(_FLOAT, loss_lines[0].split("=")[1])[0])
  assert loss == pytest.approx(error ** 2, rel=1e-5)
