"""BinaryClassHead: loss, TF's metric keys and values, predictions, labels."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from estlab import heads

import _head_testing as ht

EVAL, TRAIN, PREDICT = estlab.ModeKeys.EVAL, estlab.ModeKeys.TRAIN, estlab.ModeKeys.PREDICT
LOGITS = np.array([[-1.0], [0.5], [2.0], [-0.3], [1.2], [0.1]], np.float32)
LABELS = np.array([0, 1, 1, 1, 0, 0], np.float32)
WEIGHTS = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.5], np.float32)
BASE_KEYS = {"accuracy", "accuracy_baseline", "auc", "auc_precision_recall",
             "average_loss", "label/mean", "precision", "prediction/mean",
             "recall"}


@pytest.mark.parametrize("reduction", [heads.SUM_OVER_BATCH_SIZE, heads.SUM])
def test_loss_matches_numpy_for_each_reduction_with_weights(reduction):
  head = heads.BinaryClassHead(weight_column="w", loss_reduction=reduction)
  labels = head.transform_labels(LABELS)
  loss, _, _ = ht.run(head, TRAIN, LOGITS, labels, {"w": WEIGHTS})
  weighted = np.sum(WEIGHTS * ht.sigmoid_xent(LABELS, LOGITS[:, 0]))
  expected = weighted if reduction == heads.SUM else weighted / len(LABELS)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_sum_over_batch_size_divides_by_batch_not_weight_sum():
  head = heads.BinaryClassHead(weight_column="w")
  loss = head.loss(LABELS, LOGITS, {"w": WEIGHTS[:, None]})  # [B, 1] weights
  unweighted = ht.sigmoid_xent(LABELS, LOGITS[:, 0])
  np.testing.assert_allclose(loss, np.sum(WEIGHTS * unweighted) / 6, rtol=1e-5)
  assert not np.isclose(loss, ht.wmean(unweighted, WEIGHTS))


def test_eval_keys_are_tfs_with_thresholds():
  head = heads.BinaryClassHead(thresholds=[0.25, 0.5])
  _, _, metrics = ht.run(head, EVAL, LOGITS, head.transform_labels(LABELS))
  assert set(metrics) == BASE_KEYS | {
      f"{m}/positive_threshold_{t}" for m in ("accuracy", "precision", "recall")
      for t in ("0.25", "0.5")}


def test_named_head_suffixes_keys_and_regularization_adds_a_key():
  head = heads.BinaryClassHead(name="click")
  loss, _, metrics = ht.run(head, EVAL, LOGITS, head.transform_labels(LABELS),
                            regularization_losses=[jnp.float32(0.5), 0.25])
  assert set(metrics) == {f"{k}/click" for k in BASE_KEYS | {"regularization_loss"}}
  np.testing.assert_allclose(metrics["regularization_loss/click"], 0.75)
  unreg = np.mean(ht.sigmoid_xent(LABELS, LOGITS[:, 0]))
  np.testing.assert_allclose(loss, unreg + 0.75, rtol=1e-5)


def test_metric_values_match_numpy_with_weights():
  head = heads.BinaryClassHead(weight_column="w", thresholds=[0.6])
  _, _, m = ht.run(head, EVAL, LOGITS, head.transform_labels(LABELS),
                   {"w": WEIGHTS})
  x, y, w = LOGITS[:, 0], LABELS, WEIGHTS
  cls, p = (x > 0).astype(np.float32), ht.sigmoid(x)
  label_mean = ht.wmean(y, w)
  expected = {
      "accuracy": ht.wmean(cls == y, w),
      "precision": np.sum(w * cls * y) / np.sum(w * cls),
      "recall": np.sum(w * cls * y) / np.sum(w * y),
      "label/mean": label_mean,
      "accuracy_baseline": max(label_mean, 1 - label_mean),
      "prediction/mean": ht.wmean(p, w),
      "average_loss": ht.wmean(ht.sigmoid_xent(y, x), w),
      "accuracy/positive_threshold_0.6": ht.wmean((p > 0.6) == y, w),
      "precision/positive_threshold_0.6":
          np.sum(w * (p > 0.6) * y) / np.sum(w * (p > 0.6)),
      "recall/positive_threshold_0.6": np.sum(w * (p > 0.6) * y) / np.sum(w * y),
  }
  for key, value in expected.items():
    np.testing.assert_allclose(m[key], value, rtol=1e-5, err_msg=key)
  np.testing.assert_allclose(m["auc"], ht.roc_auc(y, p, w), atol=0.02)
  assert 0.0 < m["auc_precision_recall"] <= 1.0


def test_metrics_stream_across_batches():
  head = heads.BinaryClassHead(weight_column="w")
  features = {"w": jnp.asarray(WEIGHTS)}
  labels = head.transform_labels(LABELS)
  empty = head.metrics()
  assert set(empty) == BASE_KEYS
  assert all(float(np.sum(leaf)) == 0 for leaf in jax.tree.leaves(empty))

  @jax.jit
  def two_batches(features, logits, labels):
    acc = head.metrics()
    for part in (slice(0, 2), slice(2, 6)):
      acc = head.update_metrics(acc, {"w": features["w"][part]}, logits[part],
                                labels[part])
    whole = head.update_metrics({}, features, logits, labels)
    return ({k: v.compute() for k, v in acc.items()},
            {k: v.compute() for k, v in whole.items()})
  streamed, whole = two_batches(features, LOGITS, labels)
  for key in BASE_KEYS:
    np.testing.assert_allclose(streamed[key], whole[key], rtol=1e-5, err_msg=key)


def test_predictions_and_postprocessed_classes_from_vocabulary():
  head = heads.BinaryClassHead(label_vocabulary=["no", "yes"])
  _, preds, _ = ht.run(head, PREDICT, LOGITS)
  assert set(preds) == {"logits", "logistic", "probabilities", "class_ids",
                        "all_class_ids"}
  np.testing.assert_allclose(preds["logistic"], ht.sigmoid(LOGITS), rtol=1e-6)
  np.testing.assert_allclose(preds["probabilities"][:, 1:], ht.sigmoid(LOGITS),
                             rtol=1e-6)
  np.testing.assert_array_equal(preds["class_ids"], LOGITS > 0)
  assert preds["class_ids"].shape == (6, 1) and preds["all_class_ids"].shape == (6, 2)
  out = head.postprocess_predictions(preds)
  assert out["classes"].dtype == object and out["classes"].shape == (6, 1)
  assert out["classes"][:, 0].tolist() == ["no", "yes", "yes", "no", "yes", "yes"]
  assert out["all_classes"].tolist() == [["no", "yes"]] * 6
  single = head.postprocess_predictions({k: v[0] for k, v in preds.items()})
  assert single["classes"].tolist() == ["no"]
  assert single["all_classes"].tolist() == ["no", "yes"]


def test_classes_without_vocabulary_are_str_ids():
  head = heads.BinaryClassHead()
  preds = jax.device_get(head.predictions(LOGITS[:2], keys=["classes"]))
  assert set(preds) == {"class_ids"}
  out = head.postprocess_predictions(preds)
  assert out["classes"].tolist() == [["0"], ["1"]]


def test_train_spec_uses_the_optimizer_and_needs_exactly_one():
  head = heads.BinaryClassHead()
  opt = optax.adam(1e-3)
  spec = head.create_estimator_spec({}, TRAIN, LOGITS, LABELS, optimizer=opt)
  assert spec.train_op is opt and spec.loss.shape == ()
  spec = head.create_estimator_spec({}, TRAIN, LOGITS, LABELS,
                                    train_op_fn=lambda loss: opt)
  assert spec.train_op is opt
  with pytest.raises(ValueError, match="optimizer"):
    head.create_estimator_spec({}, TRAIN, LOGITS, LABELS)
  with pytest.raises(ValueError, match="both be set"):
    head.create_estimator_spec({}, TRAIN, LOGITS, LABELS, optimizer=opt,
                               train_op_fn=lambda loss: opt)


@pytest.mark.parametrize("labels,vocab,match", [
    (np.array([0, 3, 1]), None, r"\[3\.0\].*outside \[0, 1\]"),
    (np.array(["yes", "maybe", "no"]), ["no", "yes"], r"\['maybe'\].*not in "
     r"label_vocabulary"),
    (np.zeros((3, 3)), None, r"shape \(3, 3\)"),
    (np.array(["yes", "no"]), None, "no label_vocabulary"),
    (np.array([0.0, np.nan]), None, r"\[nan\].*rows \[1\]"),
])
def test_transform_labels_errors_name_the_value(labels, vocab, match):
  head = heads.BinaryClassHead(label_vocabulary=vocab)
  with pytest.raises(ValueError, match=match):
    head.transform_labels(labels)


def test_transform_labels_encodes_vocabulary_and_reshapes():
  head = heads.BinaryClassHead(label_vocabulary=["no", "yes"])
  out = head.transform_labels(np.array(["yes", b"no", "no"], dtype=object))
  assert out.dtype == np.float32 and out.tolist() == [[1.0], [0.0], [0.0]]
  assert head.transform_labels(out).tolist() == out.tolist()  # idempotent
  assert head.transform_labels(None) is None


def test_invalid_labels_inside_jit_give_nan_loss():
  head = heads.BinaryClassHead()
  loss = jax.jit(head.loss)(jnp.array([0.0, 2.0]), jnp.zeros((2, 1)))
  assert np.isnan(loss)


def test_constructor_and_shape_errors():
  with pytest.raises(ValueError, match=r"thresholds .*1\.5"):
    heads.BinaryClassHead(thresholds=[0.5, 1.5])
  with pytest.raises(ValueError, match="'mean'"):
    heads.BinaryClassHead(loss_reduction="mean")
  with pytest.raises(ValueError, match="exactly 2"):
    heads.BinaryClassHead(label_vocabulary=["a", "b", "c"])
  head = heads.BinaryClassHead(weight_column="w")
  assert head.weight_column == "w" and head.loss_reduction == heads.SUM_OVER_BATCH_SIZE
  with pytest.raises(ValueError, match=r"logits of shape \(6, 2\)"):
    head.loss(LABELS, np.zeros((6, 2)), {"w": WEIGHTS})
  with pytest.raises(ValueError, match=r"weight_column='w' is not among"):
    head.loss(LABELS, LOGITS, {"x": WEIGHTS})
  with pytest.raises(ValueError, match=r"weights 'w' of shape \(3,\)"):
    head.loss(LABELS, LOGITS, {"w": WEIGHTS[:3]})


def test_custom_loss_fn_gets_features_and_is_shape_checked():
  def loss_fn(labels, logits, features):
    return features["scale"][:, None] * jnp.abs(labels - logits)
  head = heads.BinaryClassHead(loss_fn=loss_fn, loss_reduction=heads.SUM)
  loss = head.loss(LABELS, LOGITS, {"scale": np.full(6, 2.0, np.float32)})
  np.testing.assert_allclose(loss, 2 * np.sum(np.abs(LABELS - LOGITS[:, 0])),
                             rtol=1e-6)
  bad = heads.BinaryClassHead(loss_fn=lambda labels, logits: jnp.sum(logits))
  with pytest.raises(ValueError, match=r"shape \(6, 1\).*got \(\)"):
    bad.loss(LABELS, LOGITS)
  with pytest.raises(ValueError, match="loss_fn"):
    heads.BinaryClassHead(loss_fn=lambda y, logits: 0)
