"""RegressionHead, PoissonRegressionHead, LogisticRegressionHead."""
import math

import numpy as np
import pytest

import estlab
from estlab import heads

import _head_testing as ht

EVAL, PREDICT = estlab.ModeKeys.EVAL, estlab.ModeKeys.PREDICT
KEYS = {"average_loss", "label/mean", "prediction/mean"}


@pytest.mark.parametrize("reduction", [heads.SUM_OVER_BATCH_SIZE, heads.SUM])
def test_regression_loss_and_metrics_with_label_dimension(reduction):
  logits = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]], np.float32)
  labels = np.array([[1.5, 2.0], [1.0, -3.0], [2.0, 0.0]], np.float32)
  w = np.array([1.0, 2.0, 0.5], np.float32)
  head = heads.RegressionHead(label_dimension=2, weight_column="w",
                              loss_reduction=reduction)
  loss, preds, m = ht.run(head, EVAL, logits, head.transform_labels(labels),
                          {"w": w})
  sq = (labels - logits) ** 2
  total = np.sum(w[:, None] * sq)
  np.testing.assert_allclose(
      loss, total if reduction == heads.SUM else total / 6, rtol=1e-5)
  assert set(m) == KEYS and set(preds) == {"predictions"}
  np.testing.assert_allclose(m["average_loss"], ht.wmean(sq, w[:, None]), rtol=1e-5)
  np.testing.assert_allclose(m["label/mean"], ht.wmean(labels, w[:, None]), rtol=1e-5)
  np.testing.assert_allclose(m["prediction/mean"], ht.wmean(logits, w[:, None]),
                             rtol=1e-5)


def test_regression_accepts_per_value_weights_and_flat_labels():
  head = heads.RegressionHead(label_dimension=2, weight_column="w")
  w = np.array([[1.0, 0.0], [2.0, 1.0]], np.float32)
  loss = head.loss(np.ones((2, 2)), np.zeros((2, 2)), {"w": w})
  np.testing.assert_allclose(loss, np.sum(w) / 4)
  flat = heads.RegressionHead().transform_labels([1, 2, 3])
  assert flat.dtype == np.float32 and flat.shape == (3, 1)
  assert heads.RegressionHead().postprocess_predictions({"predictions": 1}) == {
      "predictions": 1}


@pytest.mark.parametrize("full", [True, False])
def test_poisson_loss_predictions_and_negative_labels(full):
  logits = np.array([[0.5], [-1.0], [1.2]], np.float32)
  labels = np.array([0.0, 1.0, 4.0], np.float32)
  head = heads.PoissonRegressionHead(compute_full_loss=full)
  loss, preds, m = ht.run(head, EVAL, logits, head.transform_labels(labels))
  x = logits[:, 0]
  expected = np.exp(x) - x * labels
  if full:  # Stirling's log(z!) where z > 1, as tf.nn.log_poisson_loss
    expected[2] += 4 * math.log(4) - 4 + 0.5 * math.log(2 * math.pi * 4)
  np.testing.assert_allclose(loss, expected.mean(), rtol=1e-5)
  assert set(m) == KEYS and set(preds) == {"predictions", "logits"}
  np.testing.assert_allclose(preds["predictions"], np.exp(logits), rtol=1e-6)
  np.testing.assert_allclose(m["prediction/mean"], np.exp(x).mean(), rtol=1e-5)
  with pytest.raises(ValueError, match=r"\[-2\.0\].*counts"):
    head.transform_labels(np.array([1.0, -2.0]))


def test_logistic_regression_loss_predictions_and_range():
  logits = np.array([[0.5], [-1.0], [2.0]], np.float32)
  labels = np.array([0.2, 1.0, 0.0], np.float32)
  head = heads.LogisticRegressionHead(name="ctr")
  loss, _, m = ht.run(head, EVAL, logits, head.transform_labels(labels))
  np.testing.assert_allclose(loss, ht.sigmoid_xent(labels, logits[:, 0]).mean(),
                             rtol=1e-5)
  assert set(m) == {f"{k}/ctr" for k in KEYS}
  _, preds, _ = ht.run(head, PREDICT, logits)
  np.testing.assert_allclose(preds["predictions"], ht.sigmoid(logits), rtol=1e-6)
  np.testing.assert_allclose(preds["logits"], logits)
  with pytest.raises(ValueError, match=r"\[1\.5\].*\[0, 1\]"):
    head.transform_labels([0.5, 1.5])


@pytest.mark.parametrize("labels,match", [
    (np.zeros((4, 3)), r"shape \(4, 3\).*\[batch, 1\]"),
    (np.array(["1.0", "2.0"]), "are strings"),
    (np.array([1.0, np.inf]), r"\[inf\]"),
])
def test_regression_transform_errors(labels, match):
  with pytest.raises(ValueError, match=match):
    heads.RegressionHead().transform_labels(labels)


def test_inverse_link_and_constructor_errors():
  head = heads.RegressionHead(inverse_link_fn=lambda x: 2 * x)
  preds = head.predictions(np.ones((2, 1), np.float32))
  assert set(preds) == {"predictions", "logits"}
  np.testing.assert_allclose(preds["predictions"], 2.0)
  with pytest.raises(ValueError, match="label_dimension=0"):
    heads.RegressionHead(label_dimension=0)
  with pytest.raises(ValueError, match=r"\['classes'\]"):
    heads.RegressionHead().predictions(np.ones((2, 1)), keys=["classes"])
