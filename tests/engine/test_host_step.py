"""The host step: what an estimator runs around its compiled step, as data.

A plain Estimator's is the identity; a premade's carries its columns and
head (which the export describes); a custom host step runs in train,
evaluate and predict, and the export refuses what no JSON describes.
"""
import doctest

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from estlab import feature_column as fc
from estlab._engine import host_step
from estlab._engine.host_step import HostStep
from estlab.export import _servable

_X = np.linspace(-1, 1, 32, dtype=np.float32)[:, None]


@pytest.mark.parametrize("module", [host_step, _servable])
def test_docstring_examples(module):
  result = doctest.testmod(module)
  assert result.attempted > 0 and result.failed == 0


def _model_fn(features, labels, mode):
  y = nn.Dense(1)(features["x"])[:, 0]
  loss = None if labels is None else jnp.mean((y - labels) ** 2)
  return estlab.EstimatorSpec(mode, predictions={"y": y}, loss=loss,
                              train_op=optax.sgd(0.1))


def _config():
  return estlab.RunConfig(progress_bar=False, tf_random_seed=0)


def test_a_plain_estimator_runs_the_identity_on_the_host(tmp_path):
  est = estlab.Estimator(_model_fn, str(tmp_path), config=_config())
  step = est._host  # pylint: disable=protected-access
  assert step == HostStep()
  features, labels = {"x": _X}, _X[:, 0]
  assert step.apply(features, labels, "train") == (features, labels)
  assert not (step.python_transform or step.python_postprocess)


def test_a_premade_host_step_is_its_columns_and_head(tmp_path):
  columns = [fc.numeric_column("x")]
  est = estlab.LinearClassifier(columns, model_dir=str(tmp_path),
                                config=_config())
  step = est._host  # pylint: disable=protected-access
  assert step.feature_columns == tuple(columns) and step.head is est.head
  assert step.pads_eval_batches and step.chunk_rows > 0
  assert not (step.python_transform or step.python_postprocess)
  encoded, labels = step.apply({"x": _X[:, 0]}, np.array([0, 1] * 16), "eval")
  assert set(encoded) == {"x"} and labels.shape[0] == 32
  assert step.postprocess({"class_ids": np.array([[1]])})["classes"][0, 0] == "1"
  no_columns = estlab.BaselineClassifier(model_dir=str(tmp_path / "b"),
                                         config=_config())
  assert no_columns._host.batch_key is not None  # pylint: disable=protected-access


def test_add_metrics_keeps_the_host_step_but_pads_no_eval_batch(tmp_path):
  est = estlab.LinearRegressor([fc.numeric_column("x")],
                               model_dir=str(tmp_path), config=_config())
  with_metrics = estlab.add_metrics(est, lambda labels, predictions: {})
  step = with_metrics._host  # pylint: disable=protected-access
  assert step.feature_columns == est.feature_columns
  assert not step.pads_eval_batches and est._host.pads_eval_batches  # pylint: disable=protected-access


class _Scaled(estlab.Estimator):
  """Features doubled on the host; predictions gain a host-made key."""
  _host = HostStep(
      transform=lambda features, labels, mode: ({"x": 2 * features["x"]},
                                                labels),
      postprocess=lambda p: {**p, "negated": -np.asarray(p["y"])})


def test_a_custom_host_step_runs_in_every_mode(tmp_path):
  est = _Scaled(_model_fn, str(tmp_path / "scaled"), config=_config())
  est.train(lambda: [({"x": _X}, 2 * _X[:, 0])] * 5)
  plain = estlab.Estimator(_model_fn, str(tmp_path / "plain"), config=_config())
  plain.train(lambda: [({"x": 2 * _X}, 2 * _X[:, 0])] * 5)
  np.testing.assert_allclose(est.get_variable_value("Dense_0/kernel"),
                             plain.get_variable_value("Dense_0/kernel"), rtol=1e-6)
  assert est.evaluate(lambda: ({"x": _X}, 2 * _X[:, 0]))["loss"] == (
      pytest.approx(plain.evaluate(lambda: ({"x": 2 * _X}, 2 * _X[:, 0]))["loss"]))
  # predict_keys may name what the postprocess makes: chosen after it
  rows = list(est.predict(lambda: {"x": _X}, predict_keys=["negated"]))
  want = [p["y"] for p in plain.predict(lambda: {"x": 2 * _X})]
  assert [set(r) for r in rows] == [{"negated"}] * 32
  np.testing.assert_allclose([-r["negated"] for r in rows], want, rtol=1e-6)


def test_the_export_refuses_python_no_json_describes(tmp_path):
  est = _Scaled(_model_fn, str(tmp_path / "m"), config=_config())
  est.train(lambda: [({"x": _X}, _X[:, 0])] * 2)
  spec = {"x": fc.FixedLenFeature([1], np.float32)}
  parsing = estlab.export.build_parsing_serving_input_receiver_fn(spec)
  with pytest.raises(ValueError, match=r"HostStep\.transform"):
    est.export_saved_model(str(tmp_path / "e"), parsing)
  raw = estlab.export.build_raw_serving_input_receiver_fn({"x": _X})
  with pytest.raises(ValueError, match=r"HostStep\.postprocess"):
    est.export_saved_model(str(tmp_path / "e"), raw)
  only_transform = _Scaled(_model_fn, str(tmp_path / "m"), config=_config())
  only_transform._host = HostStep(transform=_Scaled._host.transform)  # pylint: disable=protected-access
  path = only_transform.export_saved_model(str(tmp_path / "e"), raw)
  got = estlab.export.load(path).signatures["serving_default"]({"x": 2 * _X})
  want = [p["y"] for p in only_transform.predict(lambda: {"x": _X})]
  np.testing.assert_allclose(np.asarray(got["y"]), want, rtol=1e-5)
