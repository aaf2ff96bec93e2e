"""Bad input on the estimator side (issue #23): each a clear error or TF's numbers.

TF 2.15's behaviour for each case is in tf_reference/bad_input_estimator_tf215.json
(made by tf_reference/bad_input_estimator_tf.py).
"""
import json
import logging
import pathlib

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from estlab._engine.step_counts import InvalidStepCountError
from estlab.warm_starting import WarmStartNotFoundError
from _models import quiet

_TF = json.loads((pathlib.Path(__file__).parent / "tf_reference" /
                  "bad_input_estimator_tf215.json").read_text())


def _model_fn(features, labels, mode):
  out = nn.Dense(1)(features["x"])[:, 0]
  loss = None if labels is None else jnp.mean((out - labels) ** 2)
  return estlab.EstimatorSpec(mode, predictions={"y": out}, loss=loss,
                              train_op=optax.sgd(0.1))


def _batches(sizes, labels=True):
  def input_fn():
    for n in sizes:
      x = np.ones((n, 1), np.float32)
      yield ({"x": x}, np.ones(n, np.float32)) if labels else {"x": x}
  return input_fn


@pytest.fixture(name="trained", scope="module")
def _trained(tmp_path_factory):
  est = estlab.Estimator(_model_fn, tmp_path_factory.mktemp("m"),
                         config=quiet())
  return est.train(_batches([4]))


# -- 1. inf at predict ---------------------------------------------------------

@pytest.mark.parametrize("head, logits, expected", [
    (estlab.BinaryClassHead(), [[np.inf], [-np.inf], [0.0]],
     [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]),
    (estlab.MultiClassHead(3), [[np.inf, 0.0, 1.0], [-np.inf, 0.0, 0.0],
                                [np.inf, np.inf, 0.0]],
     [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.5, 0.0]]),
])
def test_infinite_logits_give_their_limit_probabilities(head, logits, expected):
  logits = jnp.asarray(logits, jnp.float32)
  got = head.predictions(logits, keys=["probabilities"])["probabilities"]
  np.testing.assert_allclose(got, expected, atol=1e-7)


def test_tf_gives_the_same_probabilities_except_nan_for_plus_inf():
  # TF 2.15's LinearClassifier: logits -inf -> [1, 0] as here; +inf -> NaN
  # (softmax of [0, inf]), where estlab gives the limit [0, 1].
  tf_linear = _TF["predict_inf"]["linear"]
  assert tf_linear[1] == {"logits": [-np.inf], "probabilities": [1.0, 0.0]}
  assert np.isnan(tf_linear[0]["probabilities"]).all()
  head = estlab.BinaryClassHead()
  got = head.predictions(jnp.array([[np.inf], [-np.inf]]),
                         keys=["probabilities"])["probabilities"]
  np.testing.assert_array_equal(got, [[0.0, 1.0], [1.0, 0.0]])


def test_nan_prediction_from_inf_feature_warns_naming_feature_and_rows(
    tmp_path, caplog):
  def model_fn(features, labels, mode):
    kernel = nn.Dense(1, kernel_init=nn.initializers.zeros)
    out = kernel(features["x"])[:, 0]  # a zero weight: 0 * inf is NaN
    loss = None if labels is None else jnp.mean((out - labels) ** 2)
    return estlab.EstimatorSpec(mode, predictions={"y": out}, loss=loss,
                                train_op=optax.sgd(0.0))
  est = estlab.Estimator(model_fn, tmp_path, config=quiet())
  est.train(_batches([4]))
  x = np.array([[1.0], [np.inf], [2.0], [-np.inf], [3.0]], np.float32)
  with caplog.at_level(logging.WARNING, logger="estlab"):
    first = list(est.predict(lambda: [{"x": x[:3]}, {"x": x[3:]}]))
  assert np.isnan([p["y"] for p in first]).tolist() == [
      False, True, False, True, False]
  warnings = [r.getMessage() for r in caplog.records
              if "NaN predictions" in r.getMessage()]
  assert len(warnings) == 1  # once per predict call
  assert "examples [1]" in warnings[0]
  assert "'x' in examples [1] (e.g. inf)" in warnings[0]
  assert "np.nan_to_num" in warnings[0]
  caplog.clear()
  with caplog.at_level(logging.WARNING, logger="estlab"):
    list(est.predict(lambda: [{"x": x[3:]}]))
  assert any("'x' in examples [0] (e.g. -inf)" in r.getMessage()
             for r in caplog.records)


def test_finite_predictions_do_not_warn(trained, caplog):
  with caplog.at_level(logging.WARNING, logger="estlab"):
    list(trained.predict(_batches([3], labels=False)))
  assert not [r for r in caplog.records if "NaN" in r.getMessage()]


# -- 2. steps ---------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"steps": True}, r"train\(steps=True\): steps must be a positive int, "
     r"not a bool.*steps=1"),
    ({"max_steps": True}, r"train\(max_steps=True\).*not a bool"),
    ({"steps": np.bool_(True)}, "not a bool"),
    ({"steps": 2.5}, r"train\(steps=2.5\): steps must be a positive whole "
     r"number of steps, got float 2.5; pass an int, e.g. steps=2"),
    ({"steps": "3"}, r"got str '3'"),
    ({"steps": 0}, r"train\(steps=0\): Must specify steps > 0, given: 0"),
    ({"max_steps": -1}, r"Must specify max_steps > 0, given: -1"),
])
def test_train_rejects_step_counts_that_are_not_positive_ints(
    trained, kwargs, message):
  with pytest.raises(InvalidStepCountError, match=message) as info:
    trained.train(_batches([4] * 3), **kwargs)
  assert isinstance(info.value, ValueError) and isinstance(info.value,
                                                           TypeError)


def test_tf_took_bools_and_fractions_as_step_counts():
  # What the errors above replace: TF trained 1 step for True, 3 for 2.5.
  assert _TF["steps"]["steps=True"] == 1
  assert _TF["steps"]["steps=2.5"] == 3
  assert "Must specify steps > 0, given: -1" in _TF["steps"]["steps=-1"]


def test_whole_float_step_counts_are_counts(tmp_path):
  est = estlab.Estimator(_model_fn, tmp_path, config=quiet())
  est.train(_batches([4] * 5), steps=2.0)
  assert est.get_variable_value("global_step") == 2
  est.train(_batches([4] * 5), max_steps=3e0)
  assert est.get_variable_value("global_step") == 3


@pytest.mark.parametrize("steps, message", [
    (True, r"evaluate\(steps=True\).*not a bool"),
    (1.5, r"evaluate\(steps=1.5\).*whole number"),
    (0, r"Must specify steps > 0, given: 0"),
])
def test_evaluate_rejects_step_counts_that_are_not_positive_ints(
    trained, steps, message):
  with pytest.raises(InvalidStepCountError, match=message):
    trained.evaluate(_batches([4] * 3), steps=steps)


# -- 3. many input shapes ------------------------------------------------------

def _shape_warnings(caplog):
  return [r.getMessage() for r in caplog.records
          if "distinct input shapes" in r.getMessage()]


def test_many_batch_sizes_warn_once_naming_shapes_and_fix(tmp_path, caplog):
  est = estlab.Estimator(_model_fn, tmp_path, config=quiet())
  with caplog.at_level(logging.WARNING, logger="estlab"):
    est.train(_batches([1, 2, 3, 4, 5, 6, 7]))
  warnings = _shape_warnings(caplog)
  assert len(warnings) == 1
  assert warnings[0].startswith(
      "The train step has been compiled for 5 distinct input shapes: "
      "{'x': float32[1, 1]}, labels float32[1]; {'x': float32[2, 1]}")
  assert "float32[5, 1]" in warnings[0] and "float32[6, 1]" not in warnings[0]
  assert "drop_remainder=True" in warnings[0]
  caplog.clear()
  with caplog.at_level(logging.WARNING, logger="estlab"):
    list(est.predict(_batches([1, 2, 3, 4, 5, 6], labels=False)))
  warnings = _shape_warnings(caplog)
  assert len(warnings) == 1 and warnings[0].startswith("The predict step")


def test_a_few_batch_sizes_do_not_warn(tmp_path, caplog):
  est = estlab.Estimator(_model_fn, tmp_path, config=quiet())
  with caplog.at_level(logging.WARNING, logger="estlab"):
    est.train(_batches([8, 8, 8, 5, 8, 8, 3, 2, 8]))
    est.evaluate(_batches([8, 8, 3]))
  assert _shape_warnings(caplog) == []


# -- 4. an int loss -------------------------------------------------------------

def test_int_loss_is_a_clear_error_before_any_gradient(tmp_path):
  def model_fn(features, labels, mode):
    out = nn.Dense(1)(features["x"])[:, 0]
    loss = jnp.sum((out > 0).astype(jnp.int32) != labels.astype(jnp.int32))
    return estlab.EstimatorSpec(mode, predictions=out, loss=loss,
                                train_op=optax.sgd(0.1))
  est = estlab.Estimator(model_fn, tmp_path, config=quiet())
  with pytest.raises(TypeError, match=r"in TRAIN mode has dtype 'int32', but "
                     r"gradients need a real floating-point loss.*astype\("
                     r"jnp.float32\)"):
    est.train(_batches([4]))
  assert est.latest_checkpoint() is None


# -- 5. params and model_dir ---------------------------------------------------

def test_params_must_be_a_dict(tmp_path):
  def model_fn(features, labels, mode, params):
    del params
    return _model_fn(features, labels, mode)
  with pytest.raises(TypeError, match=r"Estimator\(params=\[1, 2\]\): params "
                     r"must be a dict of hyperparameters, got list"):
    estlab.Estimator(model_fn, tmp_path, params=[1, 2])
  assert estlab.Estimator(model_fn, tmp_path, params={"a": [1, 2]}).params == {
      "a": [1, 2]}


def test_model_dir_must_be_a_path(tmp_path):
  with pytest.raises(TypeError, match=r"Estimator\(model_dir=12345\): "
                     r"model_dir must be a directory path.*got int; pass "
                     r"e.g. model_dir='12345'"):
    estlab.Estimator(_model_fn, model_dir=12345)
  with pytest.raises(TypeError, match=r"RunConfig\(model_dir=12345\)"):
    estlab.RunConfig(model_dir=12345)
  assert estlab.Estimator(_model_fn, tmp_path).model_dir == str(tmp_path)


# -- 6. warm_start_from a missing folder -----------------------------------------

@pytest.mark.parametrize("wrap", [str, estlab.WarmStartSettings])
def test_warm_start_from_a_missing_folder_names_it(tmp_path, wrap):
  missing = str(tmp_path / "no_such_model")
  est = estlab.Estimator(_model_fn, tmp_path / "new", config=quiet(),
                         warm_start_from=wrap(missing))
  with pytest.raises(WarmStartNotFoundError,
                     match=f"warm_start_from='{missing}' does not exist.*"
                     "model_dir of a trained model") as info:
    est.train(_batches([4]))
  assert isinstance(info.value, FileNotFoundError)
  assert isinstance(info.value, ValueError)
  assert est.latest_checkpoint() is None
  # TF raised at train too (a NotFoundError from its checkpoint reader).
  assert "Failed to find any matching files" in _TF["warm_start_missing"]
