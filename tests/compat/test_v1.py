"""estlab.compat.v1 against TF 2.15's tf.compat.v1.estimator.

The same program (tests/compat/reference/v1_premade_tf.py, run on TF 2.15;
its numbers in v1_premade_tf.json) on estlab.compat.v1.estimator: the
zero-initialized models (Linear, Baseline, DNNLinearCombined's linear part)
end with TF's weights and evaluate metrics; the DNNs (random init) have TF's
metric and prediction keys, variable names, TF 1's Adagrad rate 0.05 and
loss semantics (evaluate's loss = batch size x average_loss), and their loss
falls as TF's does.
"""
import json
import pathlib

import numpy as np
import pytest

import estlab
from estlab import feature_column as fc
from estlab.compat.v1 import estimator as v1
from estlab.compat.v1 import losses

_REF = json.loads((pathlib.Path(__file__).parent / "reference" /
                   "v1_premade_tf.json").read_text())
_DATA = {k: np.asarray(v) for k, v in _REF["data"].items()}
_DATA["x1"] = _DATA["x1"].astype(np.float32)
_DATA["x2"] = _DATA["x2"].astype(np.float32)
_DATA["target"] = _DATA["target"].astype(np.float32)


def _input_fn(label, num_epochs):
  return v1.inputs.numpy_input_fn(
      {"x1": _DATA["x1"], "x2": _DATA["x2"]}, _DATA[label],
      batch_size=_REF["batch_size"], num_epochs=num_epochs, shuffle=False)


def _cols():
  return [fc.numeric_column("x1"), fc.numeric_column("x2")]


_CASES = {
    "LinearClassifier": lambda d: v1.LinearClassifier(_cols(), model_dir=d),
    "LinearClassifier3": lambda d: v1.LinearClassifier(_cols(), n_classes=3,
                                                       model_dir=d),
    "LinearClassifierSGD": lambda d: v1.LinearClassifier(
        _cols(), optimizer="SGD", model_dir=d),
    "LinearRegressor": lambda d: v1.LinearRegressor(_cols(), model_dir=d),
    "LinearRegressorMean": lambda d: v1.LinearRegressor(
        _cols(), model_dir=d,
        loss_reduction=losses.Reduction.SUM_OVER_BATCH_SIZE),
    # TF 1's heads (as tf.contrib.estimator.regression_head) sum the loss.
    "LinearEstimator": lambda d: v1.LinearEstimator(
        estlab.RegressionHead(loss_reduction=estlab.heads.SUM), _cols(),
        model_dir=d),
    "BaselineClassifier": lambda d: v1.BaselineClassifier(model_dir=d),
    "BaselineClassifier3": lambda d: v1.BaselineClassifier(n_classes=3,
                                                           model_dir=d),
    "BaselineRegressor": lambda d: v1.BaselineRegressor(model_dir=d),
    "BaselineEstimator": lambda d: v1.BaselineEstimator(
        estlab.RegressionHead(loss_reduction=estlab.heads.SUM), model_dir=d),
    "DNNLinearCombinedClassifier": lambda d: v1.DNNLinearCombinedClassifier(
        model_dir=d, linear_feature_columns=_cols()),
    "DNNLinearCombinedRegressor": lambda d: v1.DNNLinearCombinedRegressor(
        model_dir=d, linear_feature_columns=_cols()),
}
_DNN_CASES = {
    "DNNClassifier": lambda d: v1.DNNClassifier([8], _cols(), model_dir=d),
    "DNNClassifier3": lambda d: v1.DNNClassifier([8], _cols(), n_classes=3,
                                                 model_dir=d),
    "DNNRegressor": lambda d: v1.DNNRegressor([8], _cols(), model_dir=d),
    "DNNEstimator": lambda d: v1.DNNEstimator(
        estlab.RegressionHead(loss_reduction=estlab.heads.SUM), [8], _cols(),
        model_dir=d),
}


def _train_and_evaluate(make, label, model_dir):
  est = make(str(model_dir))
  est.train(_input_fn(label, None), steps=_REF["steps"])
  metrics = est.evaluate(_input_fn(label, 1))
  preds = list(est.predict(_input_fn(label, 1)))
  return est, metrics, preds


def _train_and_evaluate_twice(make, label, model_dir):
  est = make(str(model_dir))
  # After one step (TF's reference evaluates at step 0, before training;
  # estlab's evaluate needs a checkpoint), then to the same final step.
  est.train(_input_fn(label, None), steps=1)
  before = est.evaluate(_input_fn(label, 1))
  est.train(_input_fn(label, None), steps=_REF["steps"] - 1)
  metrics = est.evaluate(_input_fn(label, 1))
  preds = list(est.predict(_input_fn(label, 1)))
  return est, before, metrics, preds


def _weights(names):
  return [n for n in names if n != "global_step" and "/Ftrl" not in n
          and "/Adagrad" not in n and "/Momentum" not in n]


@pytest.mark.parametrize("name", sorted(_CASES))
def test_deterministic_models_match_tf(name, tmp_path):
  ref = _REF["cases"][name]
  est, metrics, preds = _train_and_evaluate(_CASES[name], ref["label"],
                                               tmp_path)
  assert sorted(metrics) == sorted(ref["metrics"])
  for key, want in ref["metrics"].items():
    if key == "auc_precision_recall":  # v1 heads: careful_interpolation
      continue
    np.testing.assert_allclose(metrics[key], want, rtol=2e-4, atol=2e-5,
                               err_msg=key)
  assert sorted(preds[0]) == ref["prediction_keys"]
  for var in _weights(ref["variables"]):
    np.testing.assert_allclose(est.get_variable_value(var),
                               ref["variables"][var], rtol=2e-4, atol=2e-5,
                               err_msg=var)


@pytest.mark.parametrize("name", sorted(_DNN_CASES))
def test_dnn_keys_rate_and_loss_semantics_match_tf(name, tmp_path):
  ref = _REF["cases"][name]
  est, before, metrics, preds = _train_and_evaluate_twice(_DNN_CASES[name],
                                                    ref["label"], tmp_path)
  assert sorted(metrics) == sorted(ref["metrics"])
  assert sorted(preds[0]) == ref["prediction_keys"]
  assert sorted(_weights(est.get_variable_names())) == sorted(
      _weights(ref["variables"]))
  # TF 1's loss: the mean over batches of each batch's summed loss.
  for got in (metrics, ref["metrics"], before, ref["metrics_before"]):
    np.testing.assert_allclose(got["loss"],
                               _REF["batch_size"] * got["average_loss"],
                               rtol=1e-5)
  # Adagrad at TF 1's 0.05 (TF 2: 0.001): six steps move the loss as TF's do.
  assert metrics["average_loss"] < before["average_loss"]


class _Rates(estlab.SessionRunHook):
  """Records the learning rate of every training step."""

  def __init__(self):
    self.rates = []

  def after_run(self, run_context, run_values):
    del run_context
    self.rates.append(float(run_values.results["learning_rate"]))


@pytest.mark.parametrize("make, rate", [
    (lambda: v1.DNNClassifier([4], _cols()), 0.05),
    (lambda: v1.DNNRegressor([4], _cols(), optimizer="SGD"), 0.05),
    (lambda: v1.LinearClassifier(_cols()), 0.2),
    (lambda: v1.LinearRegressor(_cols(), optimizer=None),
     min(0.2, 1 / np.sqrt(2))),
    (lambda: v1.BaselineClassifier(), 0.3),
    # TF 2's own default, for contrast: Adagrad at Keras' 0.001.
    (lambda: estlab.DNNClassifier([4], _cols()), 0.001),
], ids=["dnn", "dnn_sgd", "linear", "linear_none", "baseline", "v2_dnn"])
def test_named_optimizers_train_at_tf1_rates(make, rate):
  rates = _Rates()
  label = "target" if "Regressor" in type(make()).__name__ else "binary"
  make().train(_input_fn(label, None), steps=2, hooks=[rates])
  assert rates.rates and np.allclose(rates.rates, rate)


def test_v1_heads_default_to_sum_and_refuse_unsupported_reductions():
  assert v1.DNNRegressor([4], _cols()).head.loss_reduction == "sum"
  assert v1.LinearClassifier(
      _cols(), loss_reduction=losses.Reduction.SUM_OVER_BATCH_SIZE
  ).head.loss_reduction == "sum_over_batch_size"
  with pytest.raises(ValueError, match="weighted_mean"):
    v1.LinearClassifier(_cols(), loss_reduction=losses.Reduction.MEAN)


def test_namespace_maps_tf_compat_v1_estimator():
  assert v1.DNNClassifier is estlab.compat.v1.DNNClassifier
  assert v1.DNNClassifier is not estlab.DNNClassifier
  assert issubclass(v1.DNNClassifier, estlab.DNNEstimator)
  assert v1.RunConfig is estlab.RunConfig and v1.ModeKeys is estlab.ModeKeys
  assert v1.inputs.pandas_input_fn is estlab.inputs.pandas_input_fn
  assert issubclass(v1.Estimator, estlab.Estimator)
  assert hasattr(v1.Estimator, "export_savedmodel")
