"""MultiLabelHead: per-class sigmoid loss, AUC keys, per-class metrics, labels."""
import numpy as np
import pytest

import estlab
from estlab import heads

import _head_testing as ht

EVAL, PREDICT = estlab.ModeKeys.EVAL, estlab.ModeKeys.PREDICT
LOGITS = np.array([[-1.0, 1.0, 0.5], [-1.5, 1.0, -2.0], [2.0, -0.5, 0.3],
                   [0.2, 0.4, -0.6]], np.float32)
MULTI_HOT = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
WEIGHTS = np.array([1.0, 2.0, 0.5, 1.5], np.float32)
VOCAB = ["red", "green", "blue"]


@pytest.mark.parametrize("reduction", [heads.SUM_OVER_BATCH_SIZE, heads.SUM])
def test_loss_is_class_mean_then_reduced(reduction):
  head = heads.MultiLabelHead(3, weight_column="w", loss_reduction=reduction)
  loss, _, m = ht.run(head, EVAL, LOGITS, head.transform_labels(MULTI_HOT),
                      {"w": WEIGHTS})
  per_example = ht.sigmoid_xent(MULTI_HOT, LOGITS).mean(-1)
  total = np.sum(WEIGHTS * per_example)
  np.testing.assert_allclose(loss, total if reduction == heads.SUM else total / 4,
                             rtol=1e-5)
  assert set(m) == {"auc", "auc_precision_recall", "average_loss"}
  np.testing.assert_allclose(m["average_loss"], ht.wmean(per_example, WEIGHTS),
                             rtol=1e-5)
  w = np.broadcast_to(WEIGHTS[:, None], LOGITS.shape).ravel()
  np.testing.assert_allclose(
      m["auc"], ht.roc_auc(MULTI_HOT.ravel(), ht.sigmoid(LOGITS).ravel(), w),
      atol=0.02)


def test_per_class_and_threshold_keys_by_id_and_by_name():
  head = heads.MultiLabelHead(3, thresholds=[0.5],
                              classes_for_class_based_metrics=[0, 2])
  _, _, m = ht.run(head, EVAL, LOGITS, MULTI_HOT)
  per_class = {f"{k}/class{c}" for c in (0, 2) for k in
               ("probability_mean", "auc", "auc_precision_recall")}
  thresholds = {f"{k}/positive_threshold_0.5" for k in
                ("accuracy", "precision", "recall")}
  assert set(m) == {"auc", "auc_precision_recall", "average_loss"} | per_class \
      | thresholds
  p = ht.sigmoid(LOGITS)
  np.testing.assert_allclose(m["probability_mean/class2"], p[:, 2].mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(m["auc/class0"],
                             ht.roc_auc(MULTI_HOT[:, 0], p[:, 0], np.ones(4)),
                             atol=0.02)
  np.testing.assert_allclose(m["accuracy/positive_threshold_0.5"],
                             np.mean((p > 0.5) == MULTI_HOT), rtol=1e-6)
  named = heads.MultiLabelHead(3, label_vocabulary=VOCAB, name="tags",
                               classes_for_class_based_metrics=["blue"])
  _, _, m = ht.run(named, EVAL, LOGITS, MULTI_HOT)
  assert {"auc/blue/tags", "auc_precision_recall/blue/tags",
          "probability_mean/blue/tags", "average_loss/tags"} <= set(m)


def test_labels_as_class_lists_ragged_names_and_padded_strings():
  head = heads.MultiLabelHead(3, label_vocabulary=VOCAB)
  ragged = np.empty(4, dtype=object)
  ragged[:] = [["red", "blue"], ["green"], ["red", "green"], "blue"]
  np.testing.assert_array_equal(head.transform_labels(ragged), MULTI_HOT)
  padded = np.array([["red", "blue"], ["green", ""], ["green", "red"],
                     ["blue", ""]])
  np.testing.assert_array_equal(head.transform_labels(padded), MULTI_HOT)
  ids = heads.MultiLabelHead(3).transform_labels(
      [[0, 2], [1], [0, 1], [2]])  # ragged list of class ids
  np.testing.assert_array_equal(ids, MULTI_HOT)
  assert ids.dtype == np.int32
  np.testing.assert_array_equal(head.transform_labels(MULTI_HOT), MULTI_HOT)


@pytest.mark.parametrize("labels,vocab,match", [
    (np.array([["red"], ["pink"]], dtype=object), VOCAB, r"\['pink'\]"),
    (np.array([[0, 5], [1]], dtype=object), None, r"\[5\.0\].*outside"),
    (np.array([[0, 2, 1], [1, 0, 0]]), None, r"0 or 1, got \[2\.0\]"),
    (np.array([[0, 1], [1, 1]]), None, r"shape \(2, 2\).*multi-hot \[batch, 3\]"),
    (np.array([["red"]], dtype=object), None, "no label_vocabulary"),
])
def test_transform_labels_errors_name_the_value(labels, vocab, match):
  head = heads.MultiLabelHead(3, label_vocabulary=vocab)
  with pytest.raises(ValueError, match=match):
    head.transform_labels(labels)


def test_predictions_and_classes_follow_tf():
  head = heads.MultiLabelHead(3, label_vocabulary=VOCAB)
  _, preds, _ = ht.run(head, PREDICT, LOGITS)
  assert set(preds) == {"logits", "probabilities"}
  np.testing.assert_allclose(preds["probabilities"], ht.sigmoid(LOGITS),
                             rtol=1e-6)
  out = head.postprocess_predictions(preds)
  assert out["classes"].tolist() == [VOCAB] * 4  # TF: all names per example
  with pytest.raises(ValueError, match="'blue'.*not in label_vocabulary"):
    heads.MultiLabelHead(3, label_vocabulary=VOCAB[:2] + ["teal"],
                         classes_for_class_based_metrics=["blue"])
  with pytest.raises(ValueError, match=r"holds 3"):
    heads.MultiLabelHead(3, classes_for_class_based_metrics=[3])
