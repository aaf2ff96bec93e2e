"""BinaryClassHead: single-label binary classification with sigmoid loss.

Also ``AccuracyBaseline``, the streaming metric behind ``accuracy_baseline``.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from estlab import metrics as metrics_lib
from estlab._export_outputs import (ClassificationOutput, RegressionOutput,
                                     head_export_outputs)
from estlab.heads import _labels
from estlab.heads._losses import sigmoid_cross_entropy
from estlab.heads._base import (Head, Reduction, softmax, validate_loss_fn,
                                 validate_thresholds)

__all__ = ["BinaryClassHead", "AccuracyBaseline"]


@struct.dataclass
class AccuracyBaseline(metrics_lib.Metric):
  """``max(label_mean, 1 - label_mean)``: the accuracy of always guessing the
  majority class. The state is label/mean's (weighted label sum, weight sum).

  Example:
    >>> float(AccuracyBaseline.from_model_output([1, 0, 1, 1]).compute())
    0.75
  """

  total: jax.Array
  count: jax.Array

  @classmethod
  def from_model_output(cls, labels: Any, weights: Any = None
                        ) -> AccuracyBaseline:
    mean = metrics_lib.mean(jnp.asarray(labels, jnp.float32), weights)
    return cls(total=mean.total, count=mean.count)

  def compute(self) -> jax.Array:
    best = jnp.maximum(self.total, self.count - self.total)
    safe = jnp.where(self.count == 0, 1.0, self.count)
    return jnp.where(self.count == 0, 0.0, best / safe).astype(jnp.float32)


class BinaryClassHead(Head):
  """Head for binary classification, as ``tf.estimator.BinaryClassHead``.

  Loss: sigmoid cross entropy of ``logits [B, 1]``. Labels are 0/1 (or
  probabilities in [0, 1]), or strings from ``label_vocabulary``
  (``vocabulary[0]`` is the negative class) encoded by ``transform_labels``.

  Args:
    weight_column: name of the feature (or a column with ``.key``) holding
      example weights, shape ``[B]`` or ``[B, 1]``.
    thresholds: floats in (0, 1); adds ``accuracy/positive_threshold_<t>``,
      ``precision/...`` and ``recall/...`` metrics for each.
    label_vocabulary: list of two class names.
    loss_reduction: ``SUM_OVER_BATCH_SIZE`` (default) or ``SUM``.
    loss_fn: ``loss_fn(labels, logits[, features])`` returning ``[B, 1]``.
    name: suffix for metric keys (``auc/<name>``) and MultiHead key.

  Example:
    >>> head = BinaryClassHead(label_vocabulary=['no', 'yes'])
    >>> labels = head.transform_labels(np.array(['yes', 'yes']))
    >>> round(float(head.loss(labels, jnp.array([[45.], [-41.]]))), 2)
    20.5
  """

  _label_dtype = jnp.float32
  _HOST_KEYS = {"classes": "class_ids", "all_classes": "all_class_ids"}
  _KEYS = ("logits", "logistic", "probabilities", "class_ids", "all_class_ids")

  def __init__(self, weight_column: Any = None,
               thresholds: Sequence[float] | None = None,
               label_vocabulary: Sequence[str] | None = None,
               loss_reduction: str = Reduction.SUM_OVER_BATCH_SIZE,
               loss_fn: Callable | None = None, name: str | None = None):
    self._name = name
    thresholds = validate_thresholds(thresholds, repr(self))
    Reduction.validate(loss_reduction)
    validate_loss_fn(loss_fn, repr(self))
    self._vocab = (None if label_vocabulary is None else
                   _labels.Vocabulary(label_vocabulary, repr(self)))
    if self._vocab is not None and len(self._vocab) != 2:
      raise ValueError(f"{self!r}: label_vocabulary={label_vocabulary!r} must "
                       "hold exactly 2 class names (negative first); for more "
                       "classes use MultiClassHead.")
    self._weight_column = weight_column
    self._thresholds = thresholds
    self._loss_reduction = loss_reduction
    self._loss_fn = loss_fn

  @property
  def logits_dimension(self) -> int:
    return 1

  def transform_labels(self, labels: Any) -> np.ndarray | None:
    """Labels -> float32 ``[B, 1]`` in [0, 1]; vocabulary strings -> 0/1.

    With a vocabulary, numeric labels are taken as class ids already encoded.
    """
    if labels is None:
      return None
    array = _labels.reshape(_labels.as_array(labels), 1, repr(self),
                            "a binary head")
    if self._vocab is not None and _labels.is_strings(array):
      return self._vocab.lookup(array).astype(np.float32)
    values = _labels.check_numeric(array, repr(self))
    _labels.check_range(values, 0, 1, repr(self),
                        "BinaryClassHead takes labels 0 or 1 (or "
                        "probabilities); for more classes use "
                        "MultiClassHead(n_classes=...).")
    return values.astype(np.float32)

  def postprocess_predictions(self, predictions: Mapping[str, Any]) -> dict:
    """Adds ``classes`` and ``all_classes``: str object arrays (TF gives bytes)
    of the vocabulary names, or ``'0'`` / ``'1'`` without a vocabulary."""
    return _labels.add_classes(predictions, _labels.class_names(2, self._vocab))

  def _export_outputs(self, predictions):
    """TF's: ``classification`` (also the default), ``regression`` (the
    ``logistic``) and ``predict``."""
    classify = ClassificationOutput(
        scores=predictions["probabilities"],
        classes=predictions["all_class_ids"],
        class_names=_labels.class_names(2, self._vocab))
    return head_export_outputs(
        predictions, "classification", classify,
        regression=RegressionOutput(predictions["logistic"]))

  def _processed_labels(self, labels, logits):
    del logits
    labels = labels.astype(jnp.float32)
    return labels, (labels < 0) | (labels > 1)

  def _default_loss(self, labels, logits):
    return sigmoid_cross_entropy(logits, labels)

  def predictions(self, logits, keys=None):
    """``logits``, ``logistic``, ``probabilities`` ``[B, 2]``, ``class_ids``,
    ``all_class_ids``; ``classes`` / ``all_classes`` come from
    ``postprocess_predictions`` on the host."""
    keys = self._device_keys(keys, self._KEYS, self._HOST_KEYS)
    logits = self._check_logits(logits)
    two_class = jnp.concatenate([jnp.zeros_like(logits), logits], axis=-1)
    values = {
        "logits": lambda: logits,
        "logistic": lambda: jax.nn.sigmoid(logits),
        "probabilities": lambda: softmax(two_class, axis=-1),
        "class_ids": lambda: jnp.argmax(two_class, -1)[..., None].astype(jnp.int32),
        "all_class_ids": lambda: jnp.broadcast_to(
            jnp.arange(2, dtype=jnp.int32), logits.shape[:-1] + (2,)),
    }
    return {k: values[k]() for k in self._KEYS if k in keys}

  def _batch_metrics(self, features, logits, labels, regularization_losses):
    logits, labels, loss, weights = self._prepare(features, logits, labels)
    preds = self.predictions(logits, ("logistic", "class_ids"))
    logistic, class_ids = preds["logistic"], preds["class_ids"]
    key = self._summary_key
    m = {
        key("average_loss"): metrics_lib.mean(loss, weights),
        key("accuracy"): metrics_lib.accuracy(labels, class_ids, weights),
        key("precision"): metrics_lib.precision(labels, class_ids, weights),
        key("recall"): metrics_lib.recall(labels, class_ids, weights),
        key("prediction/mean"): metrics_lib.mean(logistic, weights),
        key("label/mean"): metrics_lib.mean(labels, weights),
        key("accuracy_baseline"): AccuracyBaseline.from_model_output(labels,
                                                                     weights),
        key("auc"): metrics_lib.auc(labels, logistic, weights, curve="ROC"),
        key("auc_precision_recall"): metrics_lib.auc(labels, logistic, weights,
                                                     curve="PR"),
    }
    self._regularization_metric(m, regularization_losses)
    for t in self._thresholds:
      m[key("accuracy/positive_threshold_%g" % t)] = metrics_lib.accuracy(
          labels, logistic, weights, threshold=t)
      m[key("precision/positive_threshold_%g" % t)] = metrics_lib.precision(
          labels, logistic, weights, threshold=t)
      m[key("recall/positive_threshold_%g" % t)] = metrics_lib.recall(
          labels, logistic, weights, threshold=t)
    return m
