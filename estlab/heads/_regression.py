"""RegressionHead and its GLM variants: PoissonRegressionHead (log link) and
LogisticRegressionHead (logit link), as in TF's regression_head.py."""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from estlab import metrics as metrics_lib
from estlab._export_outputs import RegressionOutput, head_export_outputs
from estlab.heads import _labels
from estlab.heads._losses import sigmoid_cross_entropy
from estlab.heads._base import Head, Reduction, validate_loss_fn

__all__ = ["RegressionHead", "PoissonRegressionHead", "LogisticRegressionHead"]


class RegressionHead(Head):
  """Head for regression, as ``tf.estimator.RegressionHead``.

  Loss: squared error per label value, ``[B, label_dimension]``; so
  ``SUM_OVER_BATCH_SIZE`` divides by ``batch * label_dimension``. Weights may
  be per example (``[B]``, ``[B, 1]``) or per value (``[B, label_dimension]``).

  Args:
    label_dimension: number of regression targets per example.
    weight_column: feature name (or column with ``.key``) of weights.
    loss_reduction: ``SUM_OVER_BATCH_SIZE`` (default) or ``SUM``.
    loss_fn: ``loss_fn(labels, logits[, features])`` returning
      ``[B, label_dimension]``; default squared error.
    inverse_link_fn: maps logits to ``predictions`` (e.g. ``jnp.exp``); when
      set, predictions also hold ``logits``.
    name: suffix for metric keys and the MultiHead key.

  Example:
    >>> head = RegressionHead()
    >>> float(head.loss(np.array([43., 44.]), jnp.array([[45.], [41.]])))
    6.5
  """

  _label_dtype = jnp.float32
  _per_logit_weights = True

  def __init__(self, label_dimension: int = 1, weight_column: Any = None,
               loss_reduction: str = Reduction.SUM_OVER_BATCH_SIZE,
               loss_fn: Callable | None = None,
               inverse_link_fn: Callable | None = None, name: str | None = None):
    self._name = name
    if not isinstance(label_dimension, (int, np.integer)) or label_dimension < 1:
      raise ValueError(f"{self!r}: label_dimension={label_dimension!r} must be "
                       "an int >= 1 (targets per example).")
    Reduction.validate(loss_reduction)
    validate_loss_fn(loss_fn, repr(self))
    self._label_dimension = int(label_dimension)
    self._weight_column = weight_column
    self._loss_reduction = loss_reduction
    self._loss_fn = loss_fn
    self._inverse_link_fn = inverse_link_fn

  @property
  def logits_dimension(self) -> int:
    return self._label_dimension

  @property
  def _label_dim(self) -> int:
    return self._label_dimension

  @property
  def _loss_dim(self) -> int:
    return self._label_dimension

  def _check_values(self, values: np.ndarray) -> None:
    """Range checks of subclasses, on the host."""

  def transform_labels(self, labels: Any) -> np.ndarray | None:
    """Labels -> float32 ``[B, label_dimension]`` (``[B]`` allowed for 1)."""
    if labels is None:
      return None
    array = _labels.reshape(_labels.as_array(labels), self._label_dimension,
                            repr(self), "label_dimension")
    values = _labels.check_numeric(array, repr(self))
    self._check_values(values)
    return values.astype(np.float32)

  def _export_outputs(self, predictions):
    """TF's: ``regression`` (also the default; one target only) and ``predict``."""
    if self._label_dimension != 1:  # TF Serving's regress takes one value
      return head_export_outputs(predictions)
    regress = RegressionOutput(predictions["predictions"])
    return head_export_outputs(predictions, "regression", regress)

  def _processed_labels(self, labels, logits):
    del logits
    return labels.astype(jnp.float32), None

  def _default_loss(self, labels, logits):
    return jnp.square(labels - logits)

  def predictions(self, logits, keys=None):
    """``predictions`` (``inverse_link_fn(logits)``), plus ``logits`` when
    there is a link function."""
    valid = ("predictions", "logits") if self._inverse_link_fn else ("predictions",)
    keys = self._device_keys(keys, valid)
    logits = self._check_logits(logits)
    out = {}
    if "predictions" in keys:
      out["predictions"] = (self._inverse_link_fn(logits) if self._inverse_link_fn
                            else logits)
    if "logits" in keys:
      out["logits"] = logits
    return out

  def _batch_metrics(self, features, logits, labels, regularization_losses):
    logits, labels, loss, weights = self._prepare(features, logits, labels)
    predicted = self.predictions(logits, ("predictions",))["predictions"]
    key = self._summary_key
    m = {key("average_loss"): metrics_lib.mean(loss, weights),
         key("label/mean"): metrics_lib.mean(labels, weights),
         key("prediction/mean"): metrics_lib.mean(predicted, weights)}
    self._regularization_metric(m, regularization_losses)
    return m


def log_poisson_loss(targets: jax.Array, log_input: jax.Array,
                     compute_full_loss: bool = False) -> jax.Array:
  """``exp(log_input) - log_input * targets``, as tf.nn.log_poisson_loss.

  ``compute_full_loss`` adds Stirling's approximation of ``log(targets!)``
  where ``targets > 1``.
  """
  loss = jnp.exp(log_input) - log_input * targets
  if compute_full_loss:
    z = jnp.maximum(targets, 1.0)  # keeps log() finite where it is unused
    stirling = z * jnp.log(z) - z + 0.5 * jnp.log(2.0 * math.pi * z)
    loss = loss + jnp.where((targets >= 0) & (targets <= 1), 0.0, stirling)
  return loss


class PoissonRegressionHead(RegressionHead):
  """Poisson regression, as ``tf.estimator.PoissonRegressionHead``.

  ``predictions = exp(logits)``; loss ``log_poisson_loss(labels, logits,
  compute_full_loss)``. Labels must be counts >= 0.

  Args:
    label_dimension, weight_column, loss_reduction, name: as RegressionHead.
    compute_full_loss: add the constant ``log(labels!)`` (Stirling) term;
      True by default, as TF.
  """

  def __init__(self, label_dimension: int = 1, weight_column: Any = None,
               loss_reduction: str = Reduction.SUM_OVER_BATCH_SIZE,
               compute_full_loss: bool = True, name: str | None = None):
    super().__init__(label_dimension, weight_column, loss_reduction,
                     inverse_link_fn=jnp.exp, name=name)
    self._compute_full_loss = compute_full_loss

  def _check_values(self, values):
    _labels.check_range(values, 0, np.inf, repr(self),
                        "Poisson labels are counts: give values >= 0.")

  def _processed_labels(self, labels, logits):
    labels = labels.astype(jnp.float32)
    return labels, labels < 0

  def _default_loss(self, labels, logits):
    return log_poisson_loss(labels, logits, self._compute_full_loss)


class LogisticRegressionHead(RegressionHead):
  """Logistic regression, as ``tf.estimator.LogisticRegressionHead``.

  ``predictions = sigmoid(logits)``; loss sigmoid cross entropy, as
  BinaryClassHead, but labels are floats in [0, 1] (no vocabulary) and the
  metrics are regression ones (no AUC).

  Args:
    weight_column, loss_reduction, name: as RegressionHead.
  """

  def __init__(self, weight_column: Any = None,
               loss_reduction: str = Reduction.SUM_OVER_BATCH_SIZE,
               name: str | None = None):
    super().__init__(1, weight_column, loss_reduction,
                     inverse_link_fn=jax.nn.sigmoid, name=name)

  def _check_values(self, values):
    _labels.check_range(values, 0, 1, repr(self),
                        "LogisticRegressionHead takes labels in [0, 1].")

  def _processed_labels(self, labels, logits):
    labels = labels.astype(jnp.float32)
    return labels, (labels < 0) | (labels > 1)

  def _default_loss(self, labels, logits):
    return sigmoid_cross_entropy(logits, labels)
