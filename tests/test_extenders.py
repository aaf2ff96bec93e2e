"""add_metrics: more evaluation metrics on an existing estimator."""
import numpy as np
import pytest

import estlab
from tests.premade import _data


def test_added_metrics_are_reported_on_the_same_checkpoints(tmp_path):
  features, labels = _data.table(100)
  y = labels["binary"]
  linear, _ = _data.columns()
  est = estlab.LinearClassifier(linear, model_dir=tmp_path, config=estlab.RunConfig(
      progress_bar=False, tf_random_seed=0, save_checkpoints_steps=None))
  est.train(_data.input_fn(features, y, batch_size=32, epochs=2))
  eval_fn = _data.input_fn(features, y, batch_size=32)  # 32, 32, 32, 4 rows
  plain = est.evaluate(eval_fn)

  def metric_fn(labels, predictions):
    return {"mean_logistic": estlab.metrics.mean(predictions["logistic"]),
            "accuracy": estlab.metrics.accuracy(labels, predictions["class_ids"])}
  more = estlab.add_metrics(est, metric_fn)
  assert type(more) is estlab.LinearClassifier and more.model_dir == est.model_dir
  result = more.evaluate(eval_fn)
  logistic = np.concatenate([p["logistic"] for p in est.predict(
      _data.input_fn(features, None, batch_size=32))])
  np.testing.assert_allclose(result["mean_logistic"], logistic.mean(), rtol=1e-5)
  np.testing.assert_allclose(result["accuracy"], plain["accuracy"], rtol=1e-6)
  np.testing.assert_allclose(result["loss"], plain["loss"], rtol=1e-6)
  assert "mean_logistic" not in est.evaluate(eval_fn)  # the original unchanged


def test_metric_fn_arguments_and_result_are_checked(tmp_path):
  linear, _ = _data.columns()
  est = estlab.LinearClassifier(linear, model_dir=tmp_path)
  with pytest.raises(ValueError, match=r"wrong: \['mode'\]"):
    estlab.add_metrics(est, lambda labels, mode: {})
  with pytest.raises(TypeError, match="must be callable"):
    estlab.add_metrics(est, "auc")
  features, labels = _data.table(40)
  est.train(_data.input_fn(features, labels["binary"], batch_size=20), steps=1)
  broken = estlab.add_metrics(est, lambda predictions: 0.5)
  with pytest.raises(TypeError, match="must return a dict of metrics"):
    broken.evaluate(_data.input_fn(features, labels["binary"], batch_size=20))
