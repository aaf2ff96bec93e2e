"""MultiClassHead: single-label classification over n classes, softmax loss."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from estlab import metrics as metrics_lib
from estlab._export_outputs import ClassificationOutput, head_export_outputs
from estlab.heads import _labels
from estlab.heads._base import Head, Reduction, softmax, validate_loss_fn

__all__ = ["MultiClassHead"]


class MultiClassHead(Head):
  """Head for multi-class classification, as ``tf.estimator.MultiClassHead``.

  Loss: sparse softmax cross entropy of ``logits [B, n_classes]``. Labels are
  int ids in ``[0, n_classes)``, or strings from ``label_vocabulary`` encoded
  by ``transform_labels``.

  Args:
    n_classes: number of classes, > 2 (use BinaryClassHead for 2).
    weight_column: feature name (or column with ``.key``) of example weights.
    label_vocabulary: list of ``n_classes`` class names.
    loss_reduction: ``SUM_OVER_BATCH_SIZE`` (default) or ``SUM``.
    loss_fn: ``loss_fn(labels, logits[, features])`` returning ``[B, 1]``;
      labels are int ids ``[B, 1]``.
    name: suffix for metric keys and the MultiHead key.

  Example:
    >>> head = MultiClassHead(3, label_vocabulary=['a', 'b', 'c'])
    >>> head.transform_labels(np.array(['c', 'a'])).tolist()
    [[2], [0]]
  """

  _label_dtype = jnp.int32
  _HOST_KEYS = {"classes": "class_ids", "all_classes": "all_class_ids"}
  _KEYS = ("logits", "probabilities", "class_ids", "all_class_ids")

  def __init__(self, n_classes: int, weight_column: Any = None,
               label_vocabulary: Sequence[str] | None = None,
               loss_reduction: str = Reduction.SUM_OVER_BATCH_SIZE,
               loss_fn: Callable | None = None, name: str | None = None):
    self._name = name
    if not isinstance(n_classes, (int, np.integer)) or n_classes <= 2:
      raise ValueError(f"{self!r}: n_classes={n_classes!r} must be an int > 2; "
                       "for two classes use BinaryClassHead().")
    Reduction.validate(loss_reduction)
    validate_loss_fn(loss_fn, repr(self))
    self._vocab = (None if label_vocabulary is None else
                   _labels.Vocabulary(label_vocabulary, repr(self)))
    if self._vocab is not None and len(self._vocab) != n_classes:
      raise ValueError(
          f"{self!r}: label_vocabulary has {len(self._vocab)} items "
          f"{list(self._vocab.names)!r} but n_classes={n_classes}; give exactly "
          "n_classes names.")
    self._n_classes = int(n_classes)
    self._weight_column = weight_column
    self._loss_reduction = loss_reduction
    self._loss_fn = loss_fn

  @property
  def logits_dimension(self) -> int:
    return self._n_classes

  def transform_labels(self, labels: Any) -> np.ndarray | None:
    """Labels -> int32 class ids ``[B, 1]``; vocabulary strings -> ids.

    With a vocabulary, numeric labels are taken as ids already encoded; whole
    floats (``2.0``, as pandas gives) are accepted as ids.
    """
    if labels is None:
      return None
    array = _labels.reshape(_labels.as_array(labels), 1, repr(self),
                            "a single-label head (one class per example)")
    if self._vocab is not None and _labels.is_strings(array):
      return self._vocab.lookup(array)
    values = _labels.check_numeric(array, repr(self), integer=True)
    _labels.check_range(
        values, 0, self._n_classes - 1, repr(self),
        f"Give class ids in [0, {self._n_classes}), or raise n_classes (or "
        "use label_vocabulary for string labels).")
    return values.astype(np.int32)

  def postprocess_predictions(self, predictions: Mapping[str, Any]) -> dict:
    """Adds ``classes`` and ``all_classes``: str object arrays (TF gives bytes)
    of the vocabulary names, or ``'0'``, ``'1'``, ... without one."""
    return _labels.add_classes(
        predictions, _labels.class_names(self._n_classes, self._vocab))

  def _export_outputs(self, predictions):
    """TF's: ``classification`` (also the default) and ``predict``."""
    classify = ClassificationOutput(
        scores=predictions["probabilities"],
        classes=predictions["all_class_ids"],
        class_names=_labels.class_names(self._n_classes, self._vocab))
    return head_export_outputs(predictions, "classification", classify)

  def _processed_labels(self, labels, logits):
    del logits
    if not jnp.issubdtype(labels.dtype, jnp.integer):
      labels = labels.astype(jnp.int32)
    return labels, (labels < 0) | (labels >= self._n_classes)

  def _default_loss(self, labels, logits):
    ids = jnp.clip(labels[..., 0], 0, self._n_classes - 1)
    return optax.softmax_cross_entropy_with_integer_labels(logits, ids)[..., None]

  def predictions(self, logits, keys=None):
    """``logits``, ``probabilities``, ``class_ids`` ``[B, 1]``,
    ``all_class_ids``; ``classes`` / ``all_classes`` come from
    ``postprocess_predictions`` on the host."""
    keys = self._device_keys(keys, self._KEYS, self._HOST_KEYS)
    logits = self._check_logits(logits)
    values = {
        "logits": lambda: logits,
        "probabilities": lambda: softmax(logits, axis=-1),
        "class_ids": lambda: jnp.argmax(logits, -1)[..., None].astype(jnp.int32),
        "all_class_ids": lambda: jnp.broadcast_to(
            jnp.arange(self._n_classes, dtype=jnp.int32),
            logits.shape[:-1] + (self._n_classes,)),
    }
    return {k: values[k]() for k in self._KEYS if k in keys}

  def _batch_metrics(self, features, logits, labels, regularization_losses):
    logits, labels, loss, weights = self._prepare(features, logits, labels)
    class_ids = self.predictions(logits, ("class_ids",))["class_ids"]
    m = {
        self._summary_key("average_loss"): metrics_lib.mean(loss, weights),
        self._summary_key("accuracy"): metrics_lib.accuracy(labels, class_ids,
                                                            weights),
    }
    self._regularization_metric(m, regularization_losses)
    return m
