"""MultiClassHead: softmax loss, TF's keys, accuracy, classes, label errors."""
import jax
import numpy as np
import pytest

import estlab
from estlab import heads

import _head_testing as ht

EVAL, PREDICT = estlab.ModeKeys.EVAL, estlab.ModeKeys.PREDICT
LOGITS = np.array([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2], [-1.0, 0.0, 3.0],
                   [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
IDS = np.array([0, 2, 2, 0, 1])
WEIGHTS = np.array([1.0, 0.5, 2.0, 1.0, 3.0], np.float32)
VOCAB = ["cat", "dog", "eel"]


def _xent(ids, logits):
  z = logits - logits.max(-1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
  return -logp[np.arange(len(ids)), ids]


@pytest.mark.parametrize("reduction", [heads.SUM_OVER_BATCH_SIZE, heads.SUM])
def test_loss_and_metrics_match_numpy(reduction):
  head = heads.MultiClassHead(3, weight_column="w", loss_reduction=reduction)
  loss, _, m = ht.run(head, EVAL, LOGITS, head.transform_labels(IDS),
                      {"w": WEIGHTS})
  per_example = _xent(IDS, LOGITS)
  total = np.sum(WEIGHTS * per_example)
  np.testing.assert_allclose(loss, total if reduction == heads.SUM else total / 5,
                             rtol=1e-5)
  assert set(m) == {"accuracy", "average_loss"}
  np.testing.assert_allclose(m["average_loss"], ht.wmean(per_example, WEIGHTS),
                             rtol=1e-5)
  np.testing.assert_allclose(
      m["accuracy"], ht.wmean(LOGITS.argmax(-1) == IDS, WEIGHTS), rtol=1e-6)


def test_vocabulary_labels_predictions_and_classes():
  head = heads.MultiClassHead(3, label_vocabulary=VOCAB, name="animal")
  labels = head.transform_labels(np.array(VOCAB, dtype=object)[IDS])
  assert labels.dtype == np.int32 and labels[:, 0].tolist() == IDS.tolist()
  loss, _, m = ht.run(head, EVAL, LOGITS, labels)
  np.testing.assert_allclose(loss, np.mean(_xent(IDS, LOGITS)), rtol=1e-5)
  assert set(m) == {"accuracy/animal", "average_loss/animal"}
  _, preds, _ = ht.run(head, PREDICT, LOGITS)
  assert set(preds) == {"logits", "probabilities", "class_ids", "all_class_ids"}
  np.testing.assert_allclose(preds["probabilities"].sum(-1), 1.0, rtol=1e-6)
  out = head.postprocess_predictions(preds)
  assert out["classes"][:, 0].tolist() == ["cat", "dog", "eel", "dog", "eel"]
  assert out["all_classes"].tolist() == [VOCAB] * 5
  plain = heads.MultiClassHead(3).postprocess_predictions(preds)
  assert plain["classes"][:, 0].tolist() == ["0", "1", "2", "1", "2"]


@pytest.mark.parametrize("labels,vocab,match", [
    (np.array([0, 3, 1, 3]), None, r"\[3\.0\].*outside \[0, 2\]"),
    (np.array([0.0, 1.5]), None, r"integer ids, got \[1\.5\]"),
    (np.array(["cat", "dog", "gnu"]), VOCAB, r"\['gnu'\] are not in "
     r"label_vocabulary \['cat', 'dog', 'eel'\]"),
    (np.array(["cat"]), None, "no label_vocabulary"),
    (np.zeros((4, 3), np.int64), None, r"shape \(4, 3\)"),
])
def test_transform_labels_errors_name_the_value(labels, vocab, match):
  head = heads.MultiClassHead(3, label_vocabulary=vocab)
  with pytest.raises(ValueError, match=match):
    head.transform_labels(labels)


def test_whole_float_labels_and_constructor_errors():
  head = heads.MultiClassHead(3)
  assert head.transform_labels([2.0, 0.0]).tolist() == [[2], [0]]
  with pytest.raises(ValueError, match="n_classes=2"):
    heads.MultiClassHead(2)
  with pytest.raises(ValueError, match="2 items"):
    heads.MultiClassHead(3, label_vocabulary=["a", "b"])
  with pytest.raises(ValueError, match=r"duplicates \['a'\]"):
    heads.MultiClassHead(3, label_vocabulary=["a", "b", "a"])
  assert np.isnan(jax.jit(head.loss)(np.array([[1], [5]]), LOGITS[:2]))
