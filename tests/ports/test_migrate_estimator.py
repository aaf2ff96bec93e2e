"""Port of TensorFlow's guide/migrate/migrating_estimator.ipynb, Estimator half.

Original: tensorflow/docs, site/en/guide/migrate/migrating_estimator.ipynb
(read at commit 0b5a2b24 with the repository search tool's read_file). The
section "TensorFlow 1: Train and evaluate with tf.estimator.Estimator" is
kept whole: the inline data, the two input_fns (a Dataset of single-array
features, batch 1), the model_fn (one Dense layer, MSE, Adagrad 0.05),
`Estimator(model_fn=_model_fn)`, `train(_input_fn)` until the input ends and
`evaluate(_eval_input_fn)`; with `tf1.estimator` -> `estlab` and `tf1.data` ->
`estlab.data`. Left out: the two TensorFlow 2 sections (Keras `Model.fit`
and a custom `train_step`; not tf.estimator).

Changes beyond imports, one per line, with why:
- `tf1.layers.Dense(1)(features)` -> `nn.Dense(1)(features)`: TF layer ->
  Flax linen, called directly in the model_fn (JAX).
- `tf1.losses.mean_squared_error(labels=labels, predictions=logits)` ->
  `jnp.mean(jnp.square(labels - logits))` (tf op -> jnp; TF's default
  reduction is the mean).
- `optimizer = tf1.train.AdagradOptimizer(0.05)` -> `optax.adagrad(0.05)`
  and `train_op = optimizer.minimize(loss, global_step=...)` ->
  `train_op = optimizer` (optax; estlab takes the gradients of `loss`).

Results asserted against tests/ports/reference/migrating_estimator.json, made
by reference/migrating_estimator_tf.py (the same cells on TF 2.15, 3 runs):
the guide shows `evaluate`'s dict; TF's has the keys `loss` and
`global_step`, 3 (one step per batch of the 3-row input), and its `loss` is
the mean squared error of the trained layer over the 3 evaluation rows. The
loss's value depends on the unseeded initial weights (TF's runs: 0.28 to
75), so the port's is checked against its own trained weights.
"""
import json
import os
import tempfile

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab

with open(os.path.join(os.path.dirname(__file__), "reference",
                       "migrating_estimator.json")) as _f:
  REFERENCE = json.load(_f)["runs"]

# --- guide: "Setup" ---
features = [[1., 1.5], [2., 2.5], [3., 3.5]]
labels = [[0.3], [0.5], [0.7]]
eval_features = [[4., 4.5], [5., 5.5], [6., 6.5]]
eval_labels = [[0.8], [0.9], [1.]]

# --- guide: "TensorFlow 1: Train and evaluate with tf.estimator.Estimator" ---
def _input_fn():
  return estlab.data.Dataset.from_tensor_slices((features, labels)).batch(1)

def _eval_input_fn():
  return estlab.data.Dataset.from_tensor_slices(
      (eval_features, eval_labels)).batch(1)

def _model_fn(features, labels, mode):
  logits = nn.Dense(1)(features)
  loss = jnp.mean(jnp.square(labels - logits))
  optimizer = optax.adagrad(0.05)
  train_op = optimizer
  return estlab.EstimatorSpec(mode, loss=loss, train_op=train_op)


def test_train_and_evaluate_with_estimator(tmp_path, monkeypatch):
  # The guide passes no model_dir: the Estimator makes a temporary one,
  # here under tmp_path instead of the system's temporary folder.
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

  estimator = estlab.Estimator(model_fn=_model_fn)
  estimator.train(_input_fn)

  result = estimator.evaluate(_eval_input_fn)
  # -------------------------------------------------------------------------

  tf_result = REFERENCE[0]["evaluate"]
  assert set(result) == set(tf_result) == {"loss", "global_step"}
  assert result["global_step"] == tf_result["global_step"] == 3

  # The reported loss is the trained layer's MSE over the evaluation rows
  # (batch 1: the mean of the per-batch losses is the mean over rows), as
  # TF's is over its trained variables.
  def mse(kernel, bias):
    predictions = np.asarray(eval_features) @ np.asarray(kernel) + bias
    return float(np.mean((np.asarray(eval_labels) - predictions) ** 2))

  for run in REFERENCE:
    tf_vars = run["variables"]
    assert run["evaluate"]["loss"] == pytest.approx(
        mse(tf_vars["dense/kernel"], tf_vars["dense/bias"]), rel=1e-5)
  names = estimator.get_variable_names()
  kernel, = [n for n in names if n.endswith("kernel")]
  bias, = [n for n in names if n.endswith("bias")]
  assert estimator.get_variable_value(kernel).shape == (2, 1)
  assert result["loss"] == pytest.approx(
      mse(estimator.get_variable_value(kernel),
          estimator.get_variable_value(bias)), rel=1e-5)
