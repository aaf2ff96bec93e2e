"""Every shape of input_fn trains, evaluates and predicts alike (issue 19.1).

The same 64 rows in the same batches of 16 reach the estimator through each
shape an input_fn takes: the function ``numpy_input_fn`` returns, a lambda
calling a freshly made ``numpy_input_fn`` / ``pandas_input_fn`` (a new table
per call: the case that crashed evaluate and predict), a closure returning an
iterator, a generator function and a list of batches. Each shape trains its
own estimator from the same start; the variables, the evaluation and the
predictions must then be equal across shapes, for a premade estimator
(feature columns, the encoded-table path) and a custom model_fn.
"""
import gc
import itertools

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

import estlab
from _models import quiet

ROWS, BATCH, TRAIN_STEPS = 64, 16, 8  # training goes over the rows twice


def _data():
  rng = np.random.default_rng(0)
  df = pd.DataFrame({"a": rng.normal(size=ROWS), "b": rng.normal(size=ROWS)})
  y = pd.Series((df["a"] - df["b"] > 0).astype(np.int64))
  return df, y


def _shapes(epochs):
  """name -> input_fn over ``_data()``: ``epochs`` passes, None: forever."""
  df, y = _data()
  x = {k: df[k].to_numpy() for k in df}
  labels = y.to_numpy()
  passes = itertools.count() if epochs is None else range(epochs)
  n_batches = (TRAIN_STEPS if epochs is None else epochs * ROWS // BATCH)

  def generator_function():
    for _ in (itertools.count() if epochs is None else range(epochs)):
      for i in range(0, ROWS, BATCH):
        yield {k: v[i:i + BATCH] for k, v in x.items()}, labels[i:i + BATCH]

  def make_closure(columns, targets):
    def input_fn():
      starts = (i for _ in passes for i in range(0, ROWS, BATCH))
      return iter([({k: v[i:i + BATCH] for k, v in columns.items()},
                    targets[i:i + BATCH])
                   for i in itertools.islice(starts, n_batches)])
    return input_fn

  numpy_fn = estlab.inputs.numpy_input_fn(
      x, labels, batch_size=BATCH, num_epochs=epochs, shuffle=False)
  return {
      "function_object": numpy_fn,
      "lambda_numpy_call": lambda: estlab.inputs.numpy_input_fn(
          x, labels, batch_size=BATCH, num_epochs=epochs, shuffle=False)(),
      "lambda_pandas_call": lambda: estlab.inputs.pandas_input_fn(
          df, y, batch_size=BATCH, num_epochs=epochs, shuffle=False)(),
      "closure": make_closure(x, labels),
      "generator_function": generator_function,
      "list": lambda: list(itertools.islice(generator_function(), n_batches)),
  }


SHAPES = list(_shapes(1))


def _model_fn(features, labels, mode):
  x = jnp.stack([features["a"], features["b"]], axis=1).astype(jnp.float32)
  pred = nn.Dense(1)(x)[:, 0]
  if mode == estlab.ModeKeys.PREDICT:
    return estlab.EstimatorSpec(mode, predictions={"pred": pred})
  labels = labels.astype(jnp.float32)
  return estlab.EstimatorSpec(
      mode, loss=jnp.mean((pred - labels) ** 2), train_op=optax.sgd(0.1),
      eval_metric_ops={
          "mse": estlab.metrics.mean_squared_error(labels, pred),
          "mean_pred": estlab.metrics.mean(pred)})


def _estimator(kind, model_dir):
  if kind == "premade":
    columns = [estlab.feature_column.numeric_column(k) for k in ("a", "b")]
    return estlab.LinearClassifier(columns, model_dir=model_dir,
                                   config=quiet(), optimizer="SGD")
  return estlab.Estimator(_model_fn, model_dir, config=quiet())


def _run(kind, shape, model_dir):
  est = _estimator(kind, model_dir)
  est.train(_shapes(None)[shape], steps=TRAIN_STEPS)
  variables = {n: est.get_variable_value(n) for n in est.get_variable_names()}
  metrics = est.evaluate(_shapes(1)[shape])
  predictions = list(est.predict(_shapes(1)[shape]))
  return est, variables, metrics, predictions


@pytest.mark.parametrize("kind", ["premade", "custom"])
def test_every_input_fn_shape_trains_evaluates_and_predicts_alike(kind,
                                                                  tmp_path):
  results = {shape: _run(kind, shape, tmp_path / shape) for shape in SHAPES}
  _, variables, metrics, predictions = results["function_object"]
  assert metrics["global_step"] == TRAIN_STEPS
  assert len(predictions) == ROWS
  assert any(np.any(v != 0) for v in variables.values())  # it trained
  for shape, (_, other_vars, other_metrics, other_preds) in results.items():
    assert sorted(other_vars) == sorted(variables), shape
    for name, value in variables.items():
      np.testing.assert_allclose(other_vars[name], value, rtol=1e-6,
                                 atol=1e-7, err_msg=f"{shape}: {name}")
    assert sorted(other_metrics) == sorted(metrics), shape
    for name, value in metrics.items():
      np.testing.assert_allclose(other_metrics[name], value, rtol=1e-6,
                                 atol=1e-7, err_msg=f"{shape}: {name}")
    assert len(other_preds) == ROWS, shape
    for key in predictions[0]:
      got = np.stack([p[key] for p in other_preds])
      want = np.stack([p[key] for p in predictions])
      if want.dtype.kind in "OSU":  # class names
        np.testing.assert_array_equal(got, want, err_msg=f"{shape}: {key}")
      else:
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{shape}: {key}")


class _CountingClassifier(estlab.LinearClassifier):
  """Counts the host encodings (mode, rows) the engine asks for."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.encoded = []

  def _encode(self, features, labels, mode):
    self.encoded.append((mode, len(features["a"])))
    return super()._encode(features, labels, mode)


def _counting(tmp_path):
  columns = [estlab.feature_column.numeric_column(k) for k in ("a", "b")]
  return _CountingClassifier(columns, model_dir=tmp_path, config=quiet())


def test_a_table_made_per_call_is_encoded_per_call_and_not_kept(tmp_path):
  est = _counting(tmp_path)
  df, y = _data()
  est.train(estlab.inputs.numpy_input_fn(dict(df), y.to_numpy(),
                                         batch_size=BATCH, shuffle=False))
  results = []
  for _ in range(3):
    results.append(est.evaluate(lambda: estlab.inputs.pandas_input_fn(
        df, y, batch_size=BATCH, shuffle=False)()))
    predictions = list(est.predict(lambda: estlab.inputs.pandas_input_fn(
        df, batch_size=BATCH, shuffle=False)()))
    assert len(predictions) == ROWS
  # Each call encoded its own new table, whole: correct if slower.
  whole = [e for e in est.encoded if e[0] != estlab.ModeKeys.TRAIN]
  assert whole == [(estlab.ModeKeys.EVAL, ROWS),
                   (estlab.ModeKeys.PREDICT, ROWS)] * 3
  assert all(r == results[0] for r in results)
  gc.collect()
  assert len(est._tables) == 0  # pylint: disable=protected-access


def test_an_input_fn_made_once_is_encoded_once_per_mode(tmp_path):
  est = _counting(tmp_path)
  df, y = _data()
  train_fn = estlab.inputs.pandas_input_fn(df, y, batch_size=BATCH,
                                           num_epochs=None, shuffle=True,
                                           seed=0)
  eval_fn = estlab.inputs.pandas_input_fn(df, y, batch_size=BATCH,
                                          shuffle=False)
  for _ in range(2):
    est.train(train_fn, steps=3)
    first = est.evaluate(eval_fn)
    assert est.evaluate(eval_fn) == first  # same checkpoint, same table
  eval_encodings = [e for e in est.encoded if e[0] == estlab.ModeKeys.EVAL]
  assert eval_encodings == [(estlab.ModeKeys.EVAL, ROWS)]  # once
  train_whole = [e for e in est.encoded
                 if e == (estlab.ModeKeys.TRAIN, ROWS)]
  assert train_whole == [(estlab.ModeKeys.TRAIN, ROWS)]  # once
  assert len(est._tables) == 2  # pylint: disable=protected-access
  del train_fn, eval_fn
  gc.collect()
  assert len(est._tables) == 0  # pylint: disable=protected-access
