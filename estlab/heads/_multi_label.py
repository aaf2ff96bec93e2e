"""MultiLabelHead: any number of n classes per example, sigmoid loss per class."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from estlab import metrics as metrics_lib
from estlab._export_outputs import ClassificationOutput, head_export_outputs
from estlab.heads import _labels
from estlab.heads._losses import sigmoid_cross_entropy
from estlab.heads._base import (Head, Reduction, validate_loss_fn,
                                 validate_thresholds)

__all__ = ["MultiLabelHead"]


class MultiLabelHead(Head):
  """Head for multi-label classification, as ``tf.estimator.MultiLabelHead``.

  Loss: sigmoid cross entropy per class, averaged over the classes, so one
  value per example. Labels (encoded by ``transform_labels``) are:

  * numbers: a multi-hot array ``[B, n_classes]`` of 0/1 (TF's dense
    labels; a list of equal-length lists of numbers is read this way too), or
  * objects or strings: per-row class lists (TF's SparseTensor labels): a
    1-D object array (or a ragged list) whose items are lists / arrays of
    class ids or of names from ``label_vocabulary`` (a bare id or name is a
    one-class row), or a 2-D object / string array read row by row, with
    ``''`` and ``None`` as padding (``np.array(rows, dtype=object)``).

  Args:
    n_classes: number of classes, > 1.
    weight_column: feature name (or column with ``.key``) of example weights.
    thresholds: floats in (0, 1); adds ``accuracy/positive_threshold_<t>``,
      ``precision/...``, ``recall/...`` over all (example, class) pairs.
    label_vocabulary: list of ``n_classes`` class names.
    loss_reduction: ``SUM_OVER_BATCH_SIZE`` (default) or ``SUM``.
    loss_fn: ``loss_fn(labels, logits[, features])`` returning ``[B, 1]``;
      labels are multi-hot ``[B, n_classes]``.
    classes_for_class_based_metrics: class ids or vocabulary names; adds
      ``probability_mean/``, ``auc/`` and ``auc_precision_recall/``
      ``class<id>`` (or ``<name>`` with a vocabulary) for each.
    name: suffix for metric keys and the MultiHead key.

  Example:
    >>> head = MultiLabelHead(3, label_vocabulary=['a', 'b', 'c'])
    >>> head.transform_labels([['a', 'c'], ['b']]).tolist()
    [[1, 0, 1], [0, 1, 0]]
  """

  _label_dtype = jnp.int32
  _KEYS = ("logits", "probabilities")

  def __init__(self, n_classes: int, weight_column: Any = None,
               thresholds: Sequence[float] | None = None,
               label_vocabulary: Sequence[str] | None = None,
               loss_reduction: str = Reduction.SUM_OVER_BATCH_SIZE,
               loss_fn: Callable | None = None,
               classes_for_class_based_metrics: Sequence | None = None,
               name: str | None = None):
    self._name = name
    if not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
      raise ValueError(f"{self!r}: n_classes={n_classes!r} must be an int > 1; "
                       "for one class use BinaryClassHead().")
    thresholds = validate_thresholds(thresholds, repr(self))
    Reduction.validate(loss_reduction)
    validate_loss_fn(loss_fn, repr(self))
    self._vocab = (None if label_vocabulary is None else
                   _labels.Vocabulary(label_vocabulary, repr(self)))
    if self._vocab is not None and len(self._vocab) != n_classes:
      raise ValueError(f"{self!r}: label_vocabulary has {len(self._vocab)} "
                       f"items but n_classes={n_classes}; give n_classes names.")
    self._n_classes = int(n_classes)
    self._class_ids = tuple(self._class_id(c) for c in
                            classes_for_class_based_metrics or ())
    self._weight_column = weight_column
    self._thresholds = thresholds
    self._loss_reduction = loss_reduction
    self._loss_fn = loss_fn

  def _class_id(self, c: Any) -> int:
    if isinstance(c, (str, bytes)):
      if self._vocab is None or c not in self._vocab.names:
        raise ValueError(
            f"{self!r}: classes_for_class_based_metrics names {c!r}, which is "
            "not in label_vocabulary" + (
                f" {list(self._vocab.names)!r}" if self._vocab else
                " (none given: pass label_vocabulary or use class ids)") + ".")
      return self._vocab.names.index(c)
    if not 0 <= c < self._n_classes:
      raise ValueError(f"{self!r}: classes_for_class_based_metrics holds {c!r};"
                       f" class ids must lie in [0, {self._n_classes - 1}].")
    return int(c)

  @property
  def logits_dimension(self) -> int:
    return self._n_classes

  @property
  def _label_dim(self) -> int:
    return self._n_classes

  def transform_labels(self, labels: Any) -> np.ndarray | None:
    """Labels -> int32 multi-hot ``[B, n_classes]`` (see the class docstring)."""
    if labels is None:
      return None
    array, owner, n = _labels.as_array(labels), repr(self), self._n_classes
    if array.dtype.kind in "biuf":
      if array.ndim < 2 or array.shape[-1] != n:
        raise ValueError(
            f"{owner}: numeric labels of shape {array.shape!r} must be "
            f"multi-hot [batch, {n}]; to give class ids per row pass an object "
            "array, e.g. np.array([[0, 2], [1, 2]], dtype=object).")
      values = _labels.check_numeric(array, owner)
      if not np.isin(values, (0, 1)).all():
        raise ValueError(f"{owner}: multi-hot labels must be 0 or 1, got "
                         f"{_labels.bad_values(values, ~np.isin(values, (0, 1)))!r}"
                         "; to give class ids per row pass an object array, "
                         "e.g. np.array([[0, 2], [1, 2]], dtype=object).")
      return values.astype(np.int32)
    rows = list(array) if array.ndim == 2 else list(array.ravel())
    items = [[] if r is None else [r] if np.ndim(r) == 0 else list(np.ravel(r))
             for r in rows]
    items = [[v for v in row if not (v is None or (
        isinstance(v, (str, bytes)) and not v))] for row in items]
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    flat = np.asarray([v for row in items for v in row], dtype=object)
    if self._vocab is not None and _labels.is_strings(flat):
      ids = self._vocab.lookup(flat)
    else:
      values = _labels.check_numeric(flat, owner, integer=True)
      _labels.check_range(values, 0, n - 1, owner,
                          f"Give class ids in [0, {n}) or raise n_classes.")
      ids = values.astype(np.int64)
    multi_hot = np.zeros((len(items), n), np.int32)
    multi_hot[np.repeat(np.arange(len(items)), lengths), ids] = 1
    return multi_hot

  def postprocess_predictions(self, predictions: Mapping[str, Any]) -> dict:
    """Adds ``classes``: every class name per example, ``[B, n_classes]``
    (TF 2.15's MultiLabelHead does the same), as str objects (TF: bytes)."""
    out = dict(predictions)
    source = next((out[k] for k in ("logits", "probabilities") if k in out), None)
    if source is not None:
      names = _labels.class_names(self._n_classes, self._vocab)
      out["classes"] = np.broadcast_to(names, np.shape(source)).copy()
    return out

  def _export_outputs(self, predictions):
    """TF's: ``classification`` (every class with its probability, also the
    default) and ``predict``."""
    scores = predictions["probabilities"]
    classify = ClassificationOutput(
        scores=scores, classes=jnp.broadcast_to(
            jnp.arange(self._n_classes, dtype=jnp.int32), scores.shape),
        class_names=_labels.class_names(self._n_classes, self._vocab))
    return head_export_outputs(predictions, "classification", classify)

  def _processed_labels(self, labels, logits):
    del logits
    invalid = jnp.any((labels < 0) | (labels > 1), axis=-1, keepdims=True)
    return labels.astype(jnp.int32), invalid

  def _default_loss(self, labels, logits):
    loss = sigmoid_cross_entropy(logits, labels.astype(jnp.float32))
    return jnp.mean(loss, axis=-1, keepdims=True)

  def predictions(self, logits, keys=None):
    """``logits`` and ``probabilities`` (sigmoid); ``classes`` comes from
    ``postprocess_predictions`` on the host."""
    keys = self._device_keys(keys, self._KEYS, {"classes": "probabilities"})
    logits = self._check_logits(logits)
    values = {"logits": lambda: logits,
              "probabilities": lambda: jax.nn.sigmoid(logits)}
    return {k: values[k]() for k in self._KEYS if k in keys}

  def _batch_metrics(self, features, logits, labels, regularization_losses):
    logits, labels, loss, weights = self._prepare(features, logits, labels)
    probabilities = jax.nn.sigmoid(logits)
    key = self._summary_key
    m = {
        key("average_loss"): metrics_lib.mean(loss, weights),
        key("auc"): metrics_lib.auc(labels, probabilities, weights, curve="ROC"),
        key("auc_precision_recall"): metrics_lib.auc(
            labels, probabilities, weights, curve="PR"),
    }
    self._regularization_metric(m, regularization_losses)
    for t in self._thresholds:
      m[key("accuracy/positive_threshold_%g" % t)] = metrics_lib.accuracy(
          labels, probabilities, weights, threshold=t)
      m[key("precision/positive_threshold_%g" % t)] = metrics_lib.precision(
          labels, probabilities, weights, threshold=t)
      m[key("recall/positive_threshold_%g" % t)] = metrics_lib.recall(
          labels, probabilities, weights, threshold=t)
    for c in self._class_ids:
      suffix = f"class{c}" if self._vocab is None else self._vocab.names[c]
      p, y = probabilities[..., c:c + 1], labels[..., c:c + 1]
      m[key(f"probability_mean/{suffix}")] = metrics_lib.mean(p, weights)
      m[key(f"auc/{suffix}")] = metrics_lib.auc(y, p, weights, curve="ROC")
      m[key(f"auc_precision_recall/{suffix}")] = metrics_lib.auc(
          y, p, weights, curve="PR")
    return m
