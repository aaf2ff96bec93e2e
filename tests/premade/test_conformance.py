"""One contract, every premade estimator (scikit-learn's check_estimator idea).

Each case trains, evaluates, predicts, resumes from its checkpoint in a new
instance, names its variables, and rejects bad labels with a clear error.
"""
import itertools

import numpy as np
import pytest

import estlab
from _data import columns, input_fn, table

CONFIG = dict(tf_random_seed=0, progress_bar=False, save_checkpoints_steps=None,
              save_checkpoints_secs=None)

BINARY_EVAL = {"accuracy", "accuracy_baseline", "auc", "auc_precision_recall",
               "average_loss", "label/mean", "precision", "prediction/mean",
               "recall", "loss", "global_step"}
MULTI_EVAL = {"accuracy", "average_loss", "loss", "global_step"}
REGRESSION_EVAL = {"average_loss", "label/mean", "prediction/mean", "loss",
                   "global_step"}
BINARY_PREDICT = {"logits", "logistic", "probabilities", "class_ids", "classes",
                  "all_class_ids", "all_classes"}
MULTI_PREDICT = {"logits", "probabilities", "class_ids", "classes",
                 "all_class_ids", "all_classes"}


def _linear(**kw):
  return dict(feature_columns=columns()[0], **kw)


def _dnn(**kw):
  return dict(hidden_units=[16, 8], feature_columns=columns()[1], **kw)


def _combined(**kw):
  lin, dnn = columns()
  return dict(linear_feature_columns=lin, dnn_feature_columns=dnn,
              dnn_hidden_units=[16, 8], **kw)


# name -> (class, kwargs factory, label kind, eval keys, predict keys, a var name)
CASES = {
    "BaselineClassifier": (estlab.BaselineClassifier, dict, "binary",
                           BINARY_EVAL, BINARY_PREDICT, "baseline/bias"),
    "BaselineRegressor": (estlab.BaselineRegressor, dict, "regression",
                          REGRESSION_EVAL, {"predictions"}, "baseline/bias"),
    "LinearClassifier": (estlab.LinearClassifier, _linear, "binary",
                         BINARY_EVAL, BINARY_PREDICT,
                         "linear/linear_model/city/weights"),
    "LinearClassifier3": (estlab.LinearClassifier,
                          lambda: _linear(n_classes=3), "multi", MULTI_EVAL,
                          MULTI_PREDICT, "linear/linear_model/bias_weights"),
    "LinearRegressor": (estlab.LinearRegressor, _linear, "regression",
                        REGRESSION_EVAL, {"predictions"},
                        "linear/linear_model/x/weights"),
    "DNNClassifier": (estlab.DNNClassifier, _dnn, "binary", BINARY_EVAL,
                      BINARY_PREDICT, "dnn/hiddenlayer_0/kernel"),
    "DNNClassifier3": (estlab.DNNClassifier,
                       lambda: _dnn(n_classes=3, dropout=0.1, batch_norm=True),
                       "multi", MULTI_EVAL, MULTI_PREDICT, "dnn/logits/kernel"),
    "DNNRegressor": (estlab.DNNRegressor, _dnn, "regression", REGRESSION_EVAL,
                     {"predictions"}, "dnn/hiddenlayer_1/bias"),
    "DNNLinearCombinedClassifier": (estlab.DNNLinearCombinedClassifier,
                                    _combined, "binary", BINARY_EVAL,
                                    BINARY_PREDICT, "linear/linear_model/code/weights"),
    "DNNLinearCombinedRegressor": (estlab.DNNLinearCombinedRegressor,
                                   _combined, "regression", REGRESSION_EVAL,
                                   {"predictions"}, "dnn/logits/bias"),
    # The *Estimator forms take any head.
    "LinearEstimatorPoisson": (
        estlab.LinearEstimator,
        lambda: _linear(head=estlab.PoissonRegressionHead()), "counts",
        REGRESSION_EVAL, {"predictions", "logits"}, "linear/linear_model/age/weights"),
    "DNNEstimatorMultiLabel": (
        estlab.DNNEstimator,
        lambda: _dnn(head=estlab.MultiLabelHead(3)), "multilabel",
        {"auc", "auc_precision_recall", "average_loss", "loss", "global_step"},
        {"logits", "probabilities", "classes"}, "dnn/logits/kernel"),
    "BaselineEstimator": (
        estlab.BaselineEstimator,
        lambda: dict(head=estlab.RegressionHead(weight_column="age")),
        "regression", REGRESSION_EVAL, {"predictions"}, "baseline/bias"),
    "DNNLinearCombinedEstimator": (
        estlab.DNNLinearCombinedEstimator,
        lambda: _combined(head=estlab.MultiClassHead(3)), "multi", MULTI_EVAL,
        MULTI_PREDICT, "linear/linear_model/bias_weights"),
    # Label vocabulary and weights, as TF.
    "LinearClassifierVocabulary": (
        estlab.LinearClassifier,
        lambda: _linear(n_classes=3, label_vocabulary=["lo", "mid", "hi"],
                        weight_column="age"),
        "multi_names", MULTI_EVAL, MULTI_PREDICT, "linear/linear_model/city/weights"),
}


@pytest.fixture(scope="module")
def data():
  return table()


@pytest.mark.parametrize("name", sorted(CASES))
def test_premade_contract(name, data, tmp_path):
  cls, kwargs, kind, eval_keys, predict_keys, variable = CASES[name]
  features, labels = data
  if kind == "counts":
    y = np.round(np.exp(labels["regression"] / 4)).astype(np.float32)
  elif kind == "multilabel":
    y = np.stack([labels["binary"], labels["multi"] == 2,
                  features["city"] == "paris"], 1).astype(np.int64)
  elif kind == "multi_names":
    y = np.asarray(["lo", "mid", "hi"], dtype=object)[labels["multi"]]
  else:
    y = labels[kind]
  make = lambda: cls(**kwargs(), model_dir=tmp_path, config=estlab.RunConfig(**CONFIG))
  est = make()
  train_fn = input_fn(features, y, epochs=None, shuffle=True)
  est.train(train_fn, steps=30)
  metrics = est.evaluate(input_fn(features, y))
  assert set(metrics) == eval_keys
  assert metrics["global_step"] == 30
  rows = list(itertools.islice(est.predict(input_fn(features, None)), 5))
  assert set(rows[0]) == predict_keys
  names = est.get_variable_names()
  assert variable in names, names
  # Resume: a new instance reads the checkpoint and continues the step.
  again = make()
  key = "predictions" if kind == "regression" else "logits"
  fresh = list(itertools.islice(again.predict(input_fn(features, None)), 5))
  np.testing.assert_allclose([r[key] for r in fresh], [r[key] for r in rows],
                             rtol=1e-5)
  again.train(train_fn, steps=5)
  assert again.evaluate(input_fn(features, y))["global_step"] == 35
  # Bad labels: a clear error that shows the value.
  bad = {"regression": np.ones((len(y), 3), np.float32),
         "counts": np.full(len(y), -7.0, np.float32),
         "multi_names": np.full(len(y), "7", dtype=object)}.get(kind, np.full_like(y, 7))
  with pytest.raises(ValueError, match="7|shape"):
    again.train(input_fn(features, bad), steps=1)
