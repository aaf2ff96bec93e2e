"""MultiHead: weighted loss, prefixed metric and prediction keys, labels."""
import jax
import numpy as np
import optax
import pytest

import estlab
from estlab import heads

import _head_testing as ht

EVAL, TRAIN, PREDICT = estlab.ModeKeys.EVAL, estlab.ModeKeys.TRAIN, estlab.ModeKeys.PREDICT
A_LOGITS = np.array([[1.0], [-2.0], [0.5]], np.float32)
B_LOGITS = np.array([[1.0, 2.0], [0.0, 1.0], [2.0, 2.0]], np.float32)
RAW_LABELS = {"click": np.array(["yes", "no", "no"]),
              "size": np.array([[1.0, 1.0], [0.0, 2.0], [2.0, 0.0]], np.float32)}


def _head(**kwargs):
  return heads.MultiHead(
      [heads.BinaryClassHead(label_vocabulary=["no", "yes"], name="click"),
       heads.RegressionHead(label_dimension=2, name="size")], **kwargs)


def test_loss_is_weighted_sum_and_logits_may_be_one_array():
  head = _head(head_weights=[1.0, 0.5])
  labels = head.transform_labels(RAW_LABELS)
  assert labels["click"].tolist() == [[1.0], [0.0], [0.0]]
  loss_a = ht.sigmoid_xent(labels["click"][:, 0], A_LOGITS[:, 0]).mean()
  loss_b = ((RAW_LABELS["size"] - B_LOGITS) ** 2).mean()
  as_dict, _, _ = ht.run(head, TRAIN, {"click": A_LOGITS, "size": B_LOGITS},
                         labels, regularization_losses=[0.1])
  np.testing.assert_allclose(as_dict, loss_a + 0.5 * loss_b + 0.1, rtol=1e-5)
  as_array, _, _ = ht.run(head, TRAIN, np.concatenate([A_LOGITS, B_LOGITS], -1),
                          labels, regularization_losses=[0.1])
  np.testing.assert_allclose(as_array, as_dict, rtol=1e-6)
  assert head.logits_dimension == 3 and head.name == "click_size"


def test_eval_metrics_are_suffixed_by_head_name():
  head = _head()
  labels = head.transform_labels(RAW_LABELS)
  _, _, m = ht.run(head, EVAL, {"click": A_LOGITS, "size": B_LOGITS}, labels,
                   regularization_losses=[0.2])
  binary = {"accuracy", "accuracy_baseline", "auc", "auc_precision_recall",
            "average_loss", "label/mean", "precision", "prediction/mean",
            "recall"}
  assert set(m) == ({f"{k}/click" for k in binary} |
                    {f"{k}/size" for k in ("average_loss", "label/mean",
                                           "prediction/mean")} |
                    {"loss/click", "loss/size", "regularization_loss/click_size"})
  np.testing.assert_allclose(m["loss/size"],
                             ((RAW_LABELS["size"] - B_LOGITS) ** 2).mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(m["label/mean/click"], 1 / 3, rtol=1e-6)
  assert set(head.metrics()) == set(m) - {"regularization_loss/click_size"}


def test_predictions_keyed_by_head_and_key_and_postprocessed_per_head():
  # TF's MultiHead keys predictions by (head name, key) tuples.
  head = _head()
  _, preds, _ = ht.run(head, PREDICT, {"click": A_LOGITS, "size": B_LOGITS})
  assert set(preds) == {("click", "logits"), ("click", "logistic"),
                        ("click", "probabilities"), ("click", "class_ids"),
                        ("click", "all_class_ids"), ("size", "predictions")}
  out = head.postprocess_predictions(preds)
  assert out[("click", "classes")][:, 0].tolist() == ["yes", "no", "yes"]
  assert out[("click", "all_classes")].shape == (3, 2)
  np.testing.assert_allclose(out[("size", "predictions")], B_LOGITS)
  some = jax.device_get(head.predictions({"click": A_LOGITS, "size": B_LOGITS},
                                         keys=[("size", "predictions")]))
  assert set(some) == {("size", "predictions")}
  with pytest.raises(ValueError, match=r"\['size/predictions'\].*\('click', "
                     r"'logits'\)"):
    head.predictions({"click": A_LOGITS, "size": B_LOGITS},
                     keys=["size/predictions"])


def test_export_outputs_name_predictions_head_slash_key():
  # TF's merged PredictOutput names outputs '<head name>/<key>'.
  head = _head()
  spec = head.create_estimator_spec({}, PREDICT,
                                    {"click": A_LOGITS, "size": B_LOGITS})
  outputs = spec.export_outputs
  assert set(outputs["serving_default"].outputs) == {
      "click/logits", "click/logistic", "click/probabilities",
      "click/class_ids", "click/all_class_ids", "size/predictions"}
  assert {"click", "size", "predict"} <= set(outputs)


def test_train_summaries_hold_each_heads_loss():
  head = _head()
  spec = head.create_estimator_spec(
      {}, TRAIN, {"click": A_LOGITS, "size": B_LOGITS},
      head.transform_labels(RAW_LABELS), optimizer=optax.sgd(0.1))
  assert set(spec.summaries) == {"loss/click", "loss/size"}
  np.testing.assert_allclose(spec.loss, spec.summaries["loss/click"] +
                             spec.summaries["loss/size"], rtol=1e-6)


def test_errors_name_heads_and_values():
  with pytest.raises(ValueError, match="needs a name"):
    heads.MultiHead([heads.BinaryClassHead(), heads.RegressionHead(name="r")])
  with pytest.raises(ValueError, match=r"names \['a', 'a'\] repeat"):
    heads.MultiHead([heads.BinaryClassHead(name="a"),
                     heads.RegressionHead(name="a")])
  with pytest.raises(ValueError, match="one weight per head"):
    _head(head_weights=[1.0])
  head = _head()
  with pytest.raises(ValueError, match=r"no values for head\(s\) \['size'\]"):
    head.transform_labels({"click": RAW_LABELS["click"]})
  with pytest.raises(ValueError, match=r"\['maybe'\]"):
    head.transform_labels({**RAW_LABELS, "click": np.array(["maybe"] * 3)})
  with pytest.raises(ValueError, match=r"shape \(3, 4\).*\[1, 2\]"):
    head.predictions(np.zeros((3, 4)))
