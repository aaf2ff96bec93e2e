"""Names at TF's paths: ``tf.estimator.LatestExporter`` -> ``estlab.LatestExporter``
(and the other exporters), ``tf.estimator.Head`` -> ``estlab.Head``,
``tf.estimator.experimental.build_raw_supervised_input_receiver_fn`` ->
``estlab.experimental.build_raw_supervised_input_receiver_fn``: the same
objects as ``estlab.export``'s / ``estlab.heads``', working as TF's."""
import itertools
import json
import os

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from _models import linear_model_fn, quiet, regression_data

X, Y = regression_data(64)


def _batches():
  return itertools.cycle([({"x": X[i:i + 16]}, Y[i:i + 16])
                          for i in range(0, 64, 16)])


def _receiver():
  return estlab.export.build_raw_serving_input_receiver_fn(
      {"x": np.zeros((1, 3), np.float32)})


@pytest.mark.parametrize("name", ["Exporter", "LatestExporter", "BestExporter",
                                  "FinalExporter"])
def test_exporters_are_estlab_exports(name):
  assert getattr(estlab, name) is getattr(estlab.export, name)
  assert name in dir(estlab)


class _EveryEvaluationExporter(estlab.Exporter):
  """A user's exporter, as TF's docs subclass tf.estimator.Exporter."""

  def __init__(self):  # pylint: disable=super-init-not-called
    self.calls = []

  @property
  def name(self):
    return "every"

  def export(self, estimator, export_path, checkpoint_path, eval_result,
             is_the_final_export):
    self.calls.append((eval_result["global_step"], is_the_final_export))
    return estimator.export_saved_model(export_path, _receiver(),
                                        checkpoint_path=checkpoint_path)


def test_top_level_exporters_run_in_train_and_evaluate(tmp_path):
  est = estlab.Estimator(linear_model_fn, tmp_path / "m", params={
      "learning_rate": 0.1}, config=quiet(save_checkpoints_steps=4))
  custom = _EveryEvaluationExporter()
  latest = estlab.LatestExporter("latest", _receiver(), exports_to_keep=1)
  best = estlab.BestExporter("best", _receiver())
  final = estlab.FinalExporter("final", _receiver())
  _, exports = estlab.train_and_evaluate(
      est, estlab.TrainSpec(_batches, max_steps=8),
      estlab.EvalSpec(lambda: itertools.islice(_batches(), 4), throttle_secs=0,
                      exporters=[custom, latest, best, final]))
  assert custom.calls == [(4, False), (8, True)]
  assert len(os.listdir(tmp_path / "m" / "export" / "every")) == 2
  assert len(os.listdir(tmp_path / "m" / "export" / "latest")) == 1
  assert os.listdir(tmp_path / "m" / "export" / "best")  # the first is a best
  assert [os.path.dirname(p) for p in exports] == [
      str(tmp_path / "m" / "export" / n) for n in ("every", "latest", "best",
                                                   "final")]
  served = estlab.export.load(exports[3]).signatures["serving_default"](
      {"x": X[:4]})
  expected = [p["pred"] for p in est.predict(lambda: [({"x": X[:4]}, None)])]
  np.testing.assert_allclose(served["pred"], expected, rtol=1e-5)


class _AbsoluteErrorHead(estlab.Head):
  """A user's head: absolute error, its own metric."""

  logits_dimension = 1

  def transform_labels(self, labels):
    return None if labels is None else np.asarray(
        labels, np.float32).reshape(-1, 1)

  def predictions(self, logits, keys=None):
    return {"predictions": self._check_logits(logits)}

  def _processed_labels(self, labels, logits):
    del logits
    return labels.astype(jnp.float32), None

  def _default_loss(self, labels, logits):
    return jnp.abs(labels - logits)

  def _batch_metrics(self, features, logits, labels, regularization_losses):
    del regularization_losses
    logits, labels, _, weights = self._prepare(features, logits, labels)
    return {"mae": estlab.metrics.mean_absolute_error(labels, logits, weights)}


def _head_model_fn(features, labels, mode):
  logits = nn.Dense(1, name="linear")(features["x"])
  return _AbsoluteErrorHead().create_estimator_spec(
      features, mode, logits, labels, optimizer=optax.adam(0.05))


def test_head_is_the_base_of_every_head_and_a_subclass_trains(tmp_path):
  assert estlab.Head is estlab.heads.Head
  with pytest.raises(TypeError, match="abstract"):
    estlab.Head()  # abstract, as TF's
  for name in ("BinaryClassHead", "MultiClassHead", "MultiLabelHead",
               "RegressionHead", "PoissonRegressionHead",
               "LogisticRegressionHead", "MultiHead"):
    assert issubclass(getattr(estlab, name), estlab.Head), name
  est = estlab.Estimator(_head_model_fn, tmp_path / "m", config=quiet())
  eval_fn = lambda: itertools.islice(_batches(), 4)  # noqa: E731
  before = est.train(_batches, steps=1).evaluate(eval_fn)
  after = est.train(_batches, steps=300).evaluate(eval_fn)
  assert after["mae"] < 0.2 * before["mae"]
  assert after["loss"] == pytest.approx(after["mae"], rel=1e-4)


def _binary_model_fn(features, labels, mode):
  logits = nn.Dense(1)(features["x"])[:, 0]
  if mode == estlab.ModeKeys.PREDICT:
    return estlab.EstimatorSpec(mode, predictions={"logits": logits})
  loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))
  return estlab.EstimatorSpec(mode, loss=loss, train_op=optax.sgd(0.5),
                              eval_metric_ops={"accuracy": estlab.metrics.accuracy(
                                  labels, logits > 0)})


def test_experimental_supervised_receiver_fn_exports_eval(tmp_path):
  fn = estlab.experimental.build_raw_supervised_input_receiver_fn
  assert fn is estlab.export.build_raw_supervised_input_receiver_fn
  assert "build_raw_supervised_input_receiver_fn" in estlab.experimental.__all__
  labels = (X[:, 0] > 0).astype(np.float32)
  est = estlab.Estimator(_binary_model_fn, tmp_path / "m", config=quiet())
  batch = estlab.inputs.numpy_input_fn({"x": X}, labels, batch_size=64,
                                       num_epochs=1, shuffle=False)
  est.train(estlab.inputs.numpy_input_fn({"x": X}, labels, batch_size=16,
                                         num_epochs=None, shuffle=False),
            steps=40)
  path = est.export_saved_model(
      str(tmp_path / "e"), fn({"x": X[:1]}, labels[:1]),
      experimental_mode=estlab.ModeKeys.EVAL)
  with open(os.path.join(path, "estlab_export.json")) as f:
    assert list(json.load(f)["signatures"]) == ["eval"]
  served = estlab.export.load(path).signatures["eval"](
      {"x": X, "labels": labels})
  expected = est.evaluate(batch)
  assert float(served["accuracy"]) == pytest.approx(expected["accuracy"])
  assert float(served["loss"]) == pytest.approx(expected["loss"], rel=1e-5)
