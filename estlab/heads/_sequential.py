"""A head for per-step logits: ``SequentialHeadWrapper``, as TF's.

Wraps a head so that ``[B, T, D]`` logits and ``[B, T]`` labels are scored
per step: the steps the sequence mask marks valid count, padding steps weigh
nothing. Where TF gathers the valid steps (a dynamic shape), this flattens
all ``B * T`` steps and gives the invalid ones zero weight through the
engine's valid-row mask, so losses (``SUM_OVER_BATCH_SIZE`` divides by the
number of valid steps) and metrics are TF's. Labels are padded on the host
(``transform_sequence_labels``); predictions keep ``[B, T, ...]`` and gain
the mask.

Example:
  >>> import numpy as np, jax.numpy as jnp
  >>> from estlab import heads
  >>> head = heads.SequentialHeadWrapper(heads.BinaryClassHead(), 'mask')
  >>> labels = head.transform_sequence_labels([[1, 0], [1]], steps=2)
  >>> mask = jnp.array([[True, True], [True, False]])
  >>> logits = jnp.array([[[2.], [-2.]], [[2.], [9.]]])
  >>> round(float(head.loss(labels, logits, {'mask': mask})), 4)
  0.1269
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from estlab.heads._base import Head
from estlab.heads._multi_head import MultiHead
from estlab.spec import VALID_ROWS_KEY, ModeKeys

__all__ = ["SequentialHeadWrapper"]


class SequentialHeadWrapper(Head):
  """``static_head`` applied at every valid step of a sequence.

  Args:
    static_head: the head of one step (not a ``MultiHead``).
    sequence_length_mask: the feature holding the ``[B, T]`` mask of valid
      steps (an RNN estimator writes it from the lengths).
    feature_columns: names of per-step features (``[B, T]``, e.g. a weight)
      flattened with the logits and passed to ``static_head``.

  Raises:
    TypeError: the mask key or a feature name is not a string.
    ValueError: ``static_head`` is a ``MultiHead``.
  """

  def __init__(self, static_head: Head,
               sequence_length_mask: str = "sequence_length_mask",
               feature_columns: Any = None):
    if not isinstance(sequence_length_mask, str):
      raise TypeError(f"sequence_length_mask must be a string, got "
                      f"{sequence_length_mask!r}.")
    columns = feature_columns or []
    columns = [columns] if isinstance(columns, str) else list(columns)
    for column in columns:
      if not isinstance(column, str):
        raise TypeError(f"feature_columns must be strings (feature names); got "
                        f"{column!r}.")
    if isinstance(static_head, MultiHead):
      raise ValueError("MultiHead is not supported with SequentialHeadWrapper; "
                       "wrap each head of it instead.")
    self._static_head = static_head
    self._sequence_length_mask = sequence_length_mask
    self._feature_columns = columns
    self._name = static_head.name
    self._weight_column = static_head.weight_column
    self._loss_reduction = static_head.loss_reduction

  @property
  def static_head(self) -> Head:
    return self._static_head

  @property
  def input_sequence_mask_key(self) -> str:
    """The feature holding the ``[B, T]`` mask of valid steps."""
    return self._sequence_length_mask

  @property
  def logits_dimension(self) -> int:
    return self._static_head.logits_dimension

  def __repr__(self) -> str:
    return f"SequentialHeadWrapper({self._static_head!r})"

  # -- host -------------------------------------------------------------------

  def transform_labels(self, labels: Any) -> np.ndarray | None:
    """``[B, T]`` labels (already padded) encoded per step: ``[B, T, dim]``."""
    if labels is None:
      return None
    array = np.asarray(labels)
    if array.ndim < 2:
      raise ValueError(f"{self!r}: labels need one value per step, shape [B, "
                       f"T]; got shape {array.shape!r}.")
    flat = self._static_head.transform_labels(
        array.reshape(array.shape[0] * array.shape[1], *array.shape[2:]))
    return flat.reshape(array.shape[:2] + flat.shape[1:])

  def transform_sequence_labels(self, labels: Any, steps: int
                                ) -> np.ndarray | None:
    """Per-example label lists padded to ``steps`` and encoded: ``[B, steps,
    dim]``. Padding repeats a label of the batch (its steps weigh nothing)."""
    if labels is None:
      return None
    rows = [np.asarray(row).reshape(-1) for row in labels]
    if not any(row.size for row in rows):
      raise ValueError(f"{self!r}: the batch has no labels; give one per step.")
    filler = next(row[0] for row in rows if row.size)
    padded = np.stack([np.concatenate([row[:steps], np.full(
        max(steps - row.size, 0), filler, dtype=row.dtype)]) if row.size else
                       np.full(steps, filler) for row in rows])
    return self.transform_labels(padded)

  def postprocess_predictions(self, predictions: Mapping[str, Any]) -> dict:
    return self._static_head.postprocess_predictions(predictions)

  # -- device -----------------------------------------------------------------

  def _flatten(self, labels: Any, logits: Any, features: Mapping | None
               ) -> tuple:
    features = features or {}
    if self.input_sequence_mask_key not in features:
      raise ValueError(
          f"The sequence mask {self.input_sequence_mask_key!r} should be in "
          f"the features, but was not found; found {sorted(features)!r}.")
    mask = jnp.asarray(features[self.input_sequence_mask_key])
    if mask.ndim != 2:
      raise ValueError(f"The sequence mask is expected to have two dimensions"
                       f" [B, T], got shape {mask.shape!r}.")
    logits = jnp.asarray(logits)
    rows = mask.shape[0] * mask.shape[1]
    valid = mask.astype(bool)
    if VALID_ROWS_KEY in features:  # rows the engine padded
      valid = valid & jnp.asarray(features[VALID_ROWS_KEY]).reshape(-1, 1)
    flat = {VALID_ROWS_KEY: valid.reshape(rows)}
    for column in self._feature_columns:
      if column not in features:
        raise ValueError(f"{column!r} column expected in features; found "
                         f"{sorted(features)!r}.")
      value = jnp.asarray(features[column])
      flat[column] = value.reshape((rows,) + value.shape[2:])
    flat_logits = logits.reshape((rows,) + logits.shape[2:])
    flat_labels = None
    if labels is not None:
      labels = jnp.asarray(labels)
      flat_labels = labels.reshape((rows,) + labels.shape[2:])
    return flat_labels, flat_logits, flat

  def loss(self, labels: Any, logits: Any, features: Mapping | None = None,
           mode: str | None = None,
           regularization_losses: Sequence | None = None) -> Any:
    labels, logits, features = self._flatten(labels, logits, features)
    return self._static_head.loss(labels, logits, features, mode,
                                  regularization_losses)

  def predictions(self, logits: Any, keys: Sequence[str] | None = None) -> dict:
    return self._static_head.predictions(logits, keys)

  def metrics(self, regularization_losses: Sequence | None = None) -> dict:
    return self._static_head.metrics(regularization_losses)

  def update_metrics(self, eval_metrics: Mapping | None, features: Mapping,
                     logits: Any, labels: Any,
                     regularization_losses: Sequence | None = None) -> dict:
    labels, logits, features = self._flatten(labels, logits, features)
    return self._static_head.update_metrics(eval_metrics, features, logits,
                                            labels, regularization_losses)

  def _processed_labels(self, labels, logits):
    return self._static_head._processed_labels(labels, logits)  # pylint: disable=protected-access

  def _default_loss(self, labels, logits):
    return self._static_head._default_loss(labels, logits)  # pylint: disable=protected-access

  def _batch_metrics(self, features, logits, labels, regularization_losses):
    labels, logits, features = self._flatten(labels, logits, features)
    return self._static_head._batch_metrics(  # pylint: disable=protected-access
        features, logits, labels, regularization_losses)

  def create_estimator_spec(
      self, features: Mapping | None, mode: str, logits: Any, labels: Any = None,
      optimizer: Any = None, trainable_variables: Any = None,
      train_op_fn: Callable | None = None, update_ops: Any = None,
      regularization_losses: Sequence | None = None) -> Any:
    """TRAIN/EVAL: the static head's spec over the flattened valid steps;
    PREDICT: its per-step predictions plus the sequence mask."""
    if mode == ModeKeys.PREDICT:
      spec = self._static_head.create_estimator_spec(
          features=features, mode=mode, logits=logits)
      predictions = dict(spec.predictions)
      predictions[self.input_sequence_mask_key] = features[
          self.input_sequence_mask_key]
      return spec._replace(predictions=predictions)
    flat_labels, flat_logits, flat_features = self._flatten(
        labels, logits, features)
    return self._static_head.create_estimator_spec(
        features=flat_features, mode=mode, logits=flat_logits,
        labels=flat_labels, optimizer=optimizer,
        trainable_variables=trainable_variables, train_op_fn=train_op_fn,
        update_ops=update_ops, regularization_losses=regularization_losses)
