"""Streaming evaluation metrics as pytrees, the values of ``eval_metric_ops``.

A metric is built from one batch, merged across batches inside ``jit`` and
computed once at the end (the CLU pattern). tf.compat.v1.metrics returns a
``(value, update_op)`` pair instead; here ``accuracy(labels, predictions)``
returns a metric object and the engine does the streaming.

Constructors (``Cls.from_model_output`` and the tf.compat.v1.metrics names
``mean``, ``accuracy``, ``precision``, ``recall``, ``auc``, ...) take:

* ``labels``, ``predictions``: arrays of one shape (a trailing 1, ``[B, 1]``
  against ``[B]``, is dropped); jax arrays, tracers or anything array-like.
* ``weights``: ``None`` (all 1), one weight per example (``[B]`` or
  ``[B, 1]``, also against labels ``[B, k]``) or one per value; other shapes
  are a ``ValueError`` naming both shapes. A weight of 0 masks a value.
* configuration (``threshold``, ``num_thresholds``, ...), keyword-only.

Contract the evaluation engine relies on:

* Every metric is a ``flax.struct.dataclass``. Its array fields are sufficient
  statistics (weighted sums and counts, float32); its configuration
  (``threshold``, ``num_thresholds``, ``curve``, ...) is static
  (``struct.field(pytree_node=False)``) and never enters ``jit``.
* The all-zeros pytree of the same shapes is the empty state:
  ``jax.tree.map(jnp.zeros_like, jax.eval_shape(build, batch))`` equals
  ``metric.empty()``, and ``merge`` is associative with it as identity.
* ``merge`` and ``compute`` are pure ``jnp``, safe under ``jax.jit``.
  ``compute`` returns a float32 scalar; a ratio with a zero denominator (an
  empty state, a precision with no positive predictions) is 0.0, never NaN.

Example:
  >>> import jax.numpy as jnp
  >>> from estlab import metrics
  >>> m = metrics.accuracy(jnp.array([1, 0]), jnp.array([1, 1]))
  >>> m = m.merge(metrics.accuracy(jnp.array([1]), jnp.array([1])))
  >>> round(float(m.compute()), 4)
  0.6667
"""
from __future__ import annotations

import abc
import functools
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

__all__ = [
    "Metric", "Mean", "Accuracy", "Precision", "Recall", "AUC",
    "MeanSquaredError", "RootMeanSquaredError", "MeanAbsoluteError",
    "mean", "accuracy", "precision", "recall", "auc", "mean_squared_error",
    "root_mean_squared_error", "mean_absolute_error",
]

_CURVES = ("ROC", "PR")
_SUMMATIONS = ("careful_interpolation", "interpolation", "trapezoidal",
               "minoring", "majoring")


def _safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
  """``num / den``, and 0 where ``den == 0`` (tf.math.divide_no_nan)."""
  zero = den == 0
  return jnp.where(zero, 0.0, num / jnp.where(zero, 1.0, den))


def _broadcast_weights(weights: Any, shape: tuple[int, ...]) -> jax.Array:
  """Broadcasts per-example (``[B]``, ``[B, 1]``) or per-value weights."""
  if weights is None:
    return jnp.ones(shape, jnp.float32)
  w = jnp.asarray(weights, jnp.float32)
  given = w.shape
  while w.ndim > len(shape) and w.shape[-1] == 1:  # [B, 1] against [B].
    w = w[..., 0]
  w = w.reshape(w.shape + (1,) * (len(shape) - w.ndim))  # [B] against [B, k].
  if w.ndim != len(shape) or any(a not in (1, b) for a, b in zip(w.shape, shape)):
    raise ValueError(
        f"weights of shape {given!r} cannot broadcast to the labels' shape "
        f"{tuple(shape)!r}; pass one weight per example (shape [batch] or "
        f"[batch, 1]) or one per value (shape {tuple(shape)!r}).")
  return jnp.broadcast_to(w, shape)


def _match(labels: Any, predictions: Any) -> tuple[jax.Array, jax.Array]:
  """Gives labels and predictions one shape, dropping a trailing 1 (``[B, 1]``)."""
  labels, predictions = jnp.asarray(labels), jnp.asarray(predictions)
  if labels.ndim == predictions.ndim + 1 and labels.shape[-1:] == (1,):
    labels = labels[..., 0]
  elif predictions.ndim == labels.ndim + 1 and predictions.shape[-1:] == (1,):
    predictions = predictions[..., 0]
  if labels.shape != predictions.shape:
    raise ValueError(
        f"labels of shape {labels.shape!r} and predictions of shape "
        f"{predictions.shape!r} do not match; give both the same shape, e.g. "
        "predictions.reshape(labels.shape).")
  return labels, predictions


def _binary(labels: Any, predictions: Any, weights: Any,
            threshold: float | None) -> tuple[jax.Array, ...]:
  """Bool labels, bool predictions (``> threshold`` if given) and weights."""
  labels, predictions = _match(labels, predictions)
  w = _broadcast_weights(weights, labels.shape)
  pred = predictions.astype(bool) if threshold is None else predictions > threshold
  return labels.astype(bool), pred, w


def _error(labels: Any, predictions: Any) -> jax.Array:
  """``labels - predictions`` in float32."""
  labels, predictions = _match(labels, predictions)
  return labels.astype(jnp.float32) - predictions.astype(jnp.float32)


@functools.partial(jax.jit, static_argnums=3)
def _confusion_counts(labels: jax.Array, predictions: jax.Array,
                      weights: jax.Array, num_thresholds: int) -> tuple:
  """Weighted (tp, fp, tn, fn) at each of AUC's ``num_thresholds`` thresholds."""
  pos_w = jnp.where(labels.astype(bool).ravel(), weights.ravel(), 0.0)
  neg_w = weights.ravel() - pos_w
  # Bucket b holds predictions in (b/(n-1), (b+1)/(n-1)]; a prediction is
  # above threshold i iff its bucket is >= i (Keras' evenly-spaced path).
  p = jnp.clip(predictions.astype(jnp.float32).ravel(), 0.0, 1.0)
  bucket = jnp.maximum(jnp.ceil(p * (num_thresholds - 1)) - 1, 0)
  bucket = bucket.astype(jnp.int32)

  def above(v):  # Weight above each threshold: a reversed cumulative sum.
    hist = jnp.zeros(num_thresholds, jnp.float32).at[bucket].add(v)
    return jnp.cumsum(hist[::-1])[::-1]

  tp, fp = above(pos_w), above(neg_w)
  return tp, fp, jnp.sum(neg_w) - fp, jnp.sum(pos_w) - tp


class Metric(abc.ABC):
  """Abstract base: a pytree of sufficient statistics for one metric.

  Subclasses are ``flax.struct.dataclass``es whose array fields add up under
  ``merge``; see the module docstring for the contract.
  """

  @classmethod
  @abc.abstractmethod
  def from_model_output(cls, *args, **kwargs) -> Metric:
    """Builds the state of one batch."""

  @abc.abstractmethod
  def compute(self) -> jax.Array:
    """Returns the metric value, a float32 scalar."""

  def merge(self, other: Metric) -> Metric:
    """Returns the state of both batches together (sums the statistics)."""
    if jax.tree.structure(self) != jax.tree.structure(other):
      raise ValueError(
          f"cannot merge {jax.tree.structure(other)!r} into "
          f"{jax.tree.structure(self)!r}; merge only states built by the same "
          "metric with the same configuration.")
    return jax.tree.map(jnp.add, self, other)

  def empty(self) -> Metric:
    """Returns the empty state (all zeros, same shapes and configuration)."""
    return jax.tree.map(jnp.zeros_like, self)

  def __getitem__(self, index: int) -> jax.Array:
    """``metric[0]`` / ``metric[1]``: tf.compat.v1.metrics' ``(value,
    update_op)`` pair, both this state's value (``compute()``), so a
    migrated ``tf.summary.scalar('accuracy', accuracy[1])`` reads as
    ``summaries={'accuracy': accuracy[1]}``. In TRAIN that is the batch's
    value; TF's update op accumulated over the whole session."""
    if index not in (0, 1, -1, -2):
      raise IndexError(f"{type(self).__name__}[{index!r}]: a metric stands "
                       "for TF's (value, update_op) pair; index 0 or 1.")
    return self.compute()


@struct.dataclass
class _Average(Metric):
  """Abstract: a weighted average ``total / count``."""

  total: jax.Array
  count: jax.Array

  @classmethod
  def _of(cls, values: jax.Array, weights: Any, **config) -> _Average:
    w = _broadcast_weights(weights, values.shape)
    return cls(total=jnp.sum(w * values.astype(jnp.float32)),
               count=jnp.sum(w), **config)

  def compute(self) -> jax.Array:
    return _safe_div(self.total, self.count).astype(jnp.float32)


@struct.dataclass
class Mean(_Average):
  """Weighted mean of ``values``, as tf.compat.v1.metrics.mean."""

  @classmethod
  def from_model_output(cls, values: Any, weights: Any = None) -> Mean:
    return cls._of(jnp.asarray(values), weights)


@struct.dataclass
class Accuracy(_Average):
  """Weighted fraction of ``predictions`` equal to ``labels``.

  Attributes:
    threshold: if set, predictions are probabilities and count as class 1
      where ``> threshold`` (labels are then 0/1 or bool).
  """

  threshold: float | None = struct.field(pytree_node=False, default=None)

  @classmethod
  def from_model_output(cls, labels: Any, predictions: Any, weights: Any = None,
                        *, threshold: float | None = None) -> Accuracy:
    labels, predictions = _match(labels, predictions)
    if threshold is not None:
      labels, predictions = labels.astype(bool), predictions > threshold
    return cls._of(labels == predictions, weights, threshold=threshold)


@struct.dataclass
class Precision(Metric):
  """``tp / (tp + fp)`` of bool or 0/1 predictions (or ``> threshold``)."""

  true_positives: jax.Array
  false_positives: jax.Array
  threshold: float | None = struct.field(pytree_node=False, default=None)

  @classmethod
  def from_model_output(cls, labels: Any, predictions: Any, weights: Any = None,
                        *, threshold: float | None = None) -> Precision:
    pos, pred, w = _binary(labels, predictions, weights, threshold)
    return cls(true_positives=jnp.sum(jnp.where(pos & pred, w, 0.0)),
               false_positives=jnp.sum(jnp.where(~pos & pred, w, 0.0)),
               threshold=threshold)

  def compute(self) -> jax.Array:
    return _safe_div(self.true_positives,
                     self.true_positives + self.false_positives)


@struct.dataclass
class Recall(Metric):
  """``tp / (tp + fn)`` of bool or 0/1 predictions (or ``> threshold``)."""

  true_positives: jax.Array
  false_negatives: jax.Array
  threshold: float | None = struct.field(pytree_node=False, default=None)

  @classmethod
  def from_model_output(cls, labels: Any, predictions: Any, weights: Any = None,
                        *, threshold: float | None = None) -> Recall:
    pos, pred, w = _binary(labels, predictions, weights, threshold)
    return cls(true_positives=jnp.sum(jnp.where(pos & pred, w, 0.0)),
               false_negatives=jnp.sum(jnp.where(pos & ~pred, w, 0.0)),
               threshold=threshold)

  def compute(self) -> jax.Array:
    return _safe_div(self.true_positives,
                     self.true_positives + self.false_negatives)


@struct.dataclass
class AUC(Metric):
  """Area under the ROC or PR curve, as tf.keras.metrics.AUC.

  The state is the weighted confusion counts at ``num_thresholds`` thresholds
  ``[0 - 1e-7, 1/(n-1), ..., (n-2)/(n-1), 1 + 1e-7]``; a prediction counts as
  positive at a threshold it exceeds. Predictions outside [0, 1] are clipped
  (Keras raises; a jitted step cannot). ``summation_method``:
  ``'careful_interpolation'`` (and its Keras name ``'interpolation'``) is the
  trapezoid rule for ROC and Davis & Goadrich interpolation for PR;
  ``'trapezoidal'`` is the plain trapezoid rule for both (tf.compat.v1);
  ``'minoring'`` / ``'majoring'`` give lower / upper Riemann sums.

  Example:
    >>> m = AUC.from_model_output([0, 0, 1, 1], [0, 0.5, 0.3, 0.9],
    ...                           num_thresholds=3)
    >>> float(m.compute())
    0.75
  """

  true_positives: jax.Array
  false_positives: jax.Array
  true_negatives: jax.Array
  false_negatives: jax.Array
  num_thresholds: int = struct.field(pytree_node=False, default=200)
  curve: str = struct.field(pytree_node=False, default="ROC")
  summation_method: str = struct.field(pytree_node=False,
                                       default="careful_interpolation")

  @classmethod
  def from_model_output(cls, labels: Any, predictions: Any, weights: Any = None,
                        *, num_thresholds: int = 200, curve: str = "ROC",
                        summation_method: str = "careful_interpolation") -> AUC:
    if not isinstance(num_thresholds, int) or num_thresholds < 2:
      raise ValueError(f"num_thresholds={num_thresholds!r} must be an int > 1, "
                       "e.g. num_thresholds=200.")
    if not isinstance(curve, str) or curve.upper() not in _CURVES:
      raise ValueError(f"curve={curve!r} is not an AUC curve; use 'ROC' or 'PR'.")
    if summation_method not in _SUMMATIONS:
      raise ValueError(f"summation_method={summation_method!r} is not known; "
                       f"use one of {_SUMMATIONS!r}.")
    labels, predictions = _match(labels, predictions)
    w = _broadcast_weights(weights, labels.shape)
    tp, fp, tn, fn = _confusion_counts(labels, predictions, w, num_thresholds)
    return cls(true_positives=tp, false_positives=fp, true_negatives=tn,
               false_negatives=fn, num_thresholds=num_thresholds,
               curve=curve.upper(), summation_method=summation_method)

  def _interpolate_pr_auc(self) -> jax.Array:
    """PR-AUC by Davis & Goadrich interpolation (Keras' interpolate_pr_auc)."""
    tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
    dtp = tp[:-1] - tp[1:]
    p = tp + fp
    slope = _safe_div(dtp, jnp.maximum(p[:-1] - p[1:], 0))
    intercept = tp[1:] - slope * p[1:]
    ratio = jnp.where((p[:-1] > 0) & (p[1:] > 0),
                      _safe_div(p[:-1], jnp.maximum(p[1:], 0)), 1.0)
    return jnp.sum(_safe_div(slope * (dtp + intercept * jnp.log(ratio)),
                             jnp.maximum(tp[1:] + fn[1:], 0)))

  @jax.jit  # One compilation instead of ~30 when called eagerly.
  def compute(self) -> jax.Array:
    tp, fp = self.true_positives, self.false_positives
    tn, fn = self.true_negatives, self.false_negatives
    method = self.summation_method
    if self.curve == "PR" and method in ("careful_interpolation",
                                         "interpolation"):
      return self._interpolate_pr_auc().astype(jnp.float32)
    recall = _safe_div(tp, tp + fn)
    if self.curve == "ROC":
      x, y = _safe_div(fp, fp + tn), recall
    else:
      x, y = recall, _safe_div(tp, tp + fp)
    if method == "minoring":
      heights = jnp.minimum(y[:-1], y[1:])
    elif method == "majoring":
      heights = jnp.maximum(y[:-1], y[1:])
    else:
      heights = (y[:-1] + y[1:]) / 2.0
    return jnp.sum((x[:-1] - x[1:]) * heights).astype(jnp.float32)


@struct.dataclass
class MeanSquaredError(_Average):
  """Weighted mean of ``(labels - predictions) ** 2``."""

  @classmethod
  def from_model_output(cls, labels: Any, predictions: Any,
                        weights: Any = None) -> MeanSquaredError:
    err = _error(labels, predictions)
    return cls._of(jnp.square(err), weights)


@struct.dataclass
class RootMeanSquaredError(_Average):
  """Square root of the weighted mean of ``(labels - predictions) ** 2``."""

  @classmethod
  def from_model_output(cls, labels: Any, predictions: Any,
                        weights: Any = None) -> RootMeanSquaredError:
    err = _error(labels, predictions)
    return cls._of(jnp.square(err), weights)

  def compute(self) -> jax.Array:
    return jnp.sqrt(super().compute())


@struct.dataclass
class MeanAbsoluteError(_Average):
  """Weighted mean of ``|labels - predictions|``."""

  @classmethod
  def from_model_output(cls, labels: Any, predictions: Any,
                        weights: Any = None) -> MeanAbsoluteError:
    err = _error(labels, predictions)
    return cls._of(jnp.abs(err), weights)


def _v1(build: Any) -> Any:
  """``build`` under its tf.compat.v1.metrics name: also takes TF's graph
  arguments ``name``, ``metrics_collections`` and ``updates_collections``,
  which have no JAX meaning (no graph, no collections) and are dropped, so
  a migrated ``tf.compat.v1.metrics.accuracy(labels, predictions,
  name='acc_op')`` runs as written."""
  @functools.wraps(build)
  def metric(*args, name: str | None = None, metrics_collections: Any = None,
             updates_collections: Any = None, **kwargs) -> Metric:
    del name, metrics_collections, updates_collections
    return build(*args, **kwargs)
  return metric


# tf.compat.v1.metrics names, for model_fns migrated from TensorFlow.
mean = _v1(Mean.from_model_output)
accuracy = _v1(Accuracy.from_model_output)
precision = _v1(Precision.from_model_output)
recall = _v1(Recall.from_model_output)
auc = _v1(AUC.from_model_output)
mean_squared_error = _v1(MeanSquaredError.from_model_output)
root_mean_squared_error = _v1(RootMeanSquaredError.from_model_output)
mean_absolute_error = _v1(MeanAbsoluteError.from_model_output)
