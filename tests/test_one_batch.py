"""An input_fn that returns one batch, as tf.estimator allows (issue 19.3).

Training takes that batch at every step until steps / max_steps / a hook
stops it; evaluate and predict read it once with steps=None (tf.estimator
looped until stopped), and evaluate(steps=N) N times.
"""
import logging

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from _models import quiet

X = np.random.default_rng(0).normal(size=(24, 3)).astype(np.float32)
Y = (X @ np.array([1.0, -2.0, 0.5], np.float32)).astype(np.float32)


def _model_fn(features, labels, mode):
  x = features["x"] if isinstance(features, dict) else features
  pred = nn.Dense(1)(x)[:, 0]
  if mode == estlab.ModeKeys.PREDICT:
    return estlab.EstimatorSpec(mode, predictions={"pred": pred})
  return estlab.EstimatorSpec(
      mode, loss=jnp.mean((pred - labels) ** 2), train_op=optax.sgd(0.05),
      eval_metric_ops={"mse": estlab.metrics.mean_squared_error(labels, pred)})


class _Counter(estlab.SessionRunHook):
  """Counts the steps (batches) a loop ran."""

  def __init__(self):
    self.runs = 0

  def after_run(self, run_context, run_values):
    self.runs += 1


def _variables(est):
  return {n: est.get_variable_value(n) for n in est.get_variable_names()}


def _assert_same_variables(a, b):
  assert sorted(a) == sorted(b)
  for name, value in a.items():
    np.testing.assert_allclose(b[name], value, rtol=1e-6, atol=1e-7,
                               err_msg=name)


@pytest.mark.parametrize("batch", [
    ({"x": X}, Y),
    (X, Y),
], ids=["dict_features", "array_features"])
@pytest.mark.parametrize("steps_per_loop", [1, 2])
def test_training_on_one_batch_takes_it_at_every_step(batch, steps_per_loop,
                                                      tmp_path):
  config = quiet(steps_per_loop=steps_per_loop)
  one = estlab.Estimator(_model_fn, tmp_path / "one", config=config)
  one.train(lambda: batch, steps=5)
  listed = estlab.Estimator(_model_fn, tmp_path / "list", config=config)
  listed.train(lambda: [batch] * 5)
  assert one.evaluate(lambda: batch)["global_step"] == 5
  _assert_same_variables(_variables(listed), _variables(one))
  one.train(lambda: batch, max_steps=8)  # three more
  assert one.evaluate(lambda: batch)["global_step"] == 8


def test_training_on_one_batch_without_steps_runs_until_a_hook_stops_it(
    tmp_path, caplog):
  est = estlab.Estimator(_model_fn, tmp_path, config=quiet())
  with caplog.at_level(logging.WARNING, logger="estlab"):
    est.train(lambda: ({"x": X}, Y), hooks=[estlab.StopAtStepHook(4)])
  assert est.evaluate(lambda: ({"x": X}, Y))["global_step"] == 4
  assert any("one batch" in r.getMessage() and "neither steps nor max_steps"
             in r.getMessage() for r in caplog.records)
  caplog.clear()
  with caplog.at_level(logging.WARNING, logger="estlab"):
    est.train(lambda: ({"x": X}, Y), steps=2)
  assert not any("one batch" in r.getMessage() for r in caplog.records)


def test_a_premade_estimator_encodes_one_batch_once(tmp_path):
  encoded = []

  class Counting(estlab.LinearRegressor):

    def _encode(self, features, labels, mode):
      encoded.append(mode)
      return super()._encode(features, labels, mode)
  column = estlab.feature_column.numeric_column("x", shape=(3,))
  est = Counting([column], model_dir=tmp_path / "one", config=quiet())
  est.train(lambda: ({"x": X}, Y), steps=6)
  assert encoded == [estlab.ModeKeys.TRAIN]
  listed = estlab.LinearRegressor([column], model_dir=tmp_path / "list",
                                  config=quiet())
  listed.train(lambda: [({"x": X}, Y)] * 6)
  _assert_same_variables(_variables(listed), _variables(est))


def test_evaluate_reads_one_batch_once_or_steps_times(tmp_path):
  est = estlab.Estimator(_model_fn, tmp_path, config=quiet())
  est.train(lambda: (X, Y), steps=3)
  counter = _Counter()
  once = est.evaluate(lambda: ({"x": X}, Y), hooks=[counter])
  assert counter.runs == 1
  assert once == est.evaluate(lambda: [({"x": X}, Y)])
  counter = _Counter()
  thrice = est.evaluate(lambda: ({"x": X}, Y), steps=3, hooks=[counter])
  assert counter.runs == 3
  np.testing.assert_allclose(thrice["mse"], once["mse"], rtol=1e-6)
  assert "until stopped" in estlab.Estimator.evaluate.__doc__  # TF's way


@pytest.mark.parametrize("batch", [
    {"x": X}, X, ({"x": X}, Y), (X, Y), (X, None),
], ids=["dict", "array", "dict_labels", "array_labels", "labels_none"])
def test_predict_reads_one_batch_once(batch, tmp_path):
  est = estlab.Estimator(_model_fn, tmp_path, config=quiet())
  est.train(lambda: (X, Y), steps=3)
  predictions = list(est.predict(lambda: batch))
  assert len(predictions) == len(X)
  expected = list(est.predict(lambda: [{"x": X[:10]}, {"x": X[10:]}]))
  np.testing.assert_allclose([p["pred"] for p in predictions],
                             [p["pred"] for p in expected], rtol=1e-6)
  assert "until stopped" in estlab.Estimator.predict.__doc__  # TF's way


def test_a_malformed_one_batch_shows_the_value_and_the_fix(tmp_path):
  est = estlab.Estimator(_model_fn, tmp_path, config=quiet())
  with pytest.raises(ValueError, match="'features': 24, 'labels': 5"):
    est.train(lambda: (X, Y[:5]), steps=1)
  with pytest.raises(TypeError, match="features must be a dict of arrays or "
                     "one array, got list"):
    est.train(lambda: [(X.tolist(), Y)], steps=1)
