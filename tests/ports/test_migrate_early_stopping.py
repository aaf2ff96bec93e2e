"""Port of TensorFlow's guide/migrate/early_stopping.ipynb, Estimator half.

Original: tensorflow/docs, site/en/guide/migrate/early_stopping.ipynb (read
at commits 60a8e77b and 64ad6204, whose TF1 cells are the same but for
`tf.data.experimental.AUTOTUNE` -> `tf.data.AUTOTUNE`, with the repository
search tool's read_file). The section "TF1: Estimator.train/evaluate" is
kept whole: MNIST input_fns (map, batch 128, repeat 100), a Flatten / Dense
128 relu / Dense 10 model_fn with Adagrad 0.005, an early-stopping hook from
`tf1.estimator.experimental.make_early_stopping_hook` that stops training
after 20 seconds (checked every second), and `train_and_evaluate` with it
in the TrainSpec; `tf1.estimator` -> `estlab`, `tf.data` -> `estlab.data`.
Left out: the TensorFlow 2 sections (Keras callbacks and a custom training
loop; not tf.estimator). The guide's early stopping is by time (a
`should_stop_fn`), not by `stop_if_no_decrease_hook`.

Changes beyond imports, one per line, with why:
- `tfds.load(name='mnist', split=..., shuffle_files=True,
  as_supervised=True)` -> `estlab.data.Dataset.from_tensor_slices(
  _data_b.mnist(split))`: local arrays of MNIST's schema and sizes (uint8
  [28, 28, 1] images, int64 labels, 60000 / 10000 rows; no downloads, no
  tensorflow_datasets); `shuffle_files` has no counterpart for arrays.
- `tf.cast(image, tf.float32) / 255.` in `normalize_img` ->
  `np.asarray(image, np.float32) / 255.`: estlab.data's map runs numpy
  functions on the host (tf op -> numpy).
- `tf1.layers.Flatten()(features)` -> `jnp.reshape(features,
  (features.shape[0], -1))` (Flax linen has no Flatten layer).
- `tf1.layers.Dense(128, 'relu')(flatten)` -> `nn.relu(nn.Dense(128)(flatten))`
  and `tf1.layers.Dense(10)` -> `nn.Dense(10)`: TF layers -> Flax linen.
- `tf1.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)` ->
  `optax.softmax_cross_entropy_with_integer_labels(logits=logits,
  labels=labels).mean()` (tf op -> JAX; TF's default reduction is the mean).
- `tf1.train.AdagradOptimizer(0.005)` -> `optax.adagrad(0.005)` and
  `train_op = optimizer.minimize(...)` -> `train_op = optimizer` (optax).
- `train_and_evaluate(...)`'s value, which the notebook displays, is
  assigned to `result` so the test can check it.

Results asserted against tests/ports/reference/early_stopping.json, made by
reference/early_stopping_tf.py (the same cells on TF 2.15 and the same
arrays): TF's run stopped at step 1018 of the 46900 its input holds and
returned `({'loss': 0.33, 'global_step': 1018}, [])`. The port must return
the same structure, stop before its input ends, and reach an evaluation
loss well under chance (ln 10 = 2.30); the step it stops at depends on the
machine's speed, so it is not compared.
"""
import json
import math
import os
import tempfile
import time

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax

import estlab

import _data_b

with open(os.path.join(os.path.dirname(__file__), "reference",
                       "early_stopping.json")) as _f:
  REFERENCE = json.load(_f)["runs"]

# --- guide: "TF1: Estimator.train/evaluate" ---
def normalize_img(image, label):
  return np.asarray(image, np.float32) / 255., label

def _input_fn():
  ds_train = estlab.data.Dataset.from_tensor_slices(_data_b.mnist('train'))

  ds_train = ds_train.map(
      normalize_img, num_parallel_calls=estlab.data.AUTOTUNE)
  ds_train = ds_train.batch(128)
  ds_train = ds_train.repeat(100)
  return ds_train

def _eval_input_fn():
  ds_test = estlab.data.Dataset.from_tensor_slices(_data_b.mnist('test'))
  ds_test = ds_test.map(
    normalize_img, num_parallel_calls=estlab.data.AUTOTUNE)
  ds_test = ds_test.batch(128)
  return ds_test

def _model_fn(features, labels, mode):
  flatten = jnp.reshape(features, (features.shape[0], -1))
  features = nn.relu(nn.Dense(128)(flatten))
  logits = nn.Dense(10)(features)

  loss = optax.softmax_cross_entropy_with_integer_labels(
      logits=logits, labels=labels).mean()
  optimizer = optax.adagrad(0.005)
  train_op = optimizer

  return estlab.EstimatorSpec(mode, loss=loss, train_op=train_op)


def test_early_stopping_hook_limits_training_time(tmp_path, monkeypatch):
  # The guide passes no model_dir: the Estimator makes a temporary one,
  # here under tmp_path instead of the system's temporary folder.
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
  tf_run, = REFERENCE
  assert _data_b.fingerprint(*_data_b.mnist('train'),
                             *_data_b.mnist('test')) == tf_run["data"]

  estimator = estlab.Estimator(model_fn=_model_fn)

  start_time = time.time()
  max_train_seconds = 20

  def should_stop_fn():
    return time.time() - start_time > max_train_seconds

  early_stopping_hook = estlab.experimental.make_early_stopping_hook(
      estimator=estimator,
      should_stop_fn=should_stop_fn,
      run_every_secs=1,
      run_every_steps=None)

  train_spec = estlab.TrainSpec(
      input_fn=_input_fn,
      hooks=[early_stopping_hook])

  eval_spec = estlab.EvalSpec(input_fn=_eval_input_fn)

  result = estlab.train_and_evaluate(estimator, train_spec, eval_spec)
  # ----------------------------------------------------------------------

  metrics, export_results = result
  assert export_results == tf_run["export_results"] == []
  assert set(metrics) == set(tf_run["metrics"]) == {"loss", "global_step"}
  # Stopped by the hook, long before the 100 epochs of input end (TF: 1018
  # of 46900 steps), and evaluated at the step it stopped at.
  assert tf_run["latest_step"] < tf_run["steps_in_input"] == 100 * 469
  assert 0 < metrics["global_step"] < tf_run["steps_in_input"]
  assert estimator.latest_checkpoint() is not None
  assert int(os.path.basename(estimator.latest_checkpoint())) == (
      metrics["global_step"])
  # It learned: TF's evaluation loss was 0.33; chance is ln(10).
  assert tf_run["metrics"]["loss"] < 0.5
  assert metrics["loss"] < 0.5 * math.log(10)
