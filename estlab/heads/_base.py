"""The ``Head`` base class: loss, metrics and EstimatorSpec from logits.

A head has three parts, because strings and value errors cannot live inside
``jax.jit``: ``transform_labels`` (host, before the step: vocabulary lookup and
label checks), ``create_estimator_spec`` / ``loss`` / ``predictions`` /
``update_metrics`` (device, inside the jitted model_fn) and
``postprocess_predictions`` (host, after the step: string class names).
"""
from __future__ import annotations

import abc
import inspect
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from estlab import metrics as metrics_lib
from estlab._export_outputs import head_export_outputs
from estlab.spec import VALID_ROWS_KEY, EstimatorSpec, ModeKeys

__all__ = ["Reduction", "Head"]

_LABELS_NONE = (
    "You must provide labels in {mode!r} mode; got None. Check that the "
    "input_fn yields (features, labels) batches holding the label column.")


class Reduction:
  """How a head reduces its loss over the batch (tf.keras.losses.Reduction).

  ``SUM_OVER_BATCH_SIZE`` is the weighted sum divided by the number of loss
  elements (``batch * label_dimension``), not by the sum of the weights;
  ``SUM`` is the weighted sum; ``AUTO`` means ``SUM_OVER_BATCH_SIZE``;
  ``NONE`` is not accepted by heads (a loss must be a scalar).
  """

  AUTO = "auto"
  NONE = "none"
  SUM = "sum"
  SUM_OVER_BATCH_SIZE = "sum_over_batch_size"

  @classmethod
  def all(cls) -> tuple[str, ...]:
    return (cls.AUTO, cls.NONE, cls.SUM, cls.SUM_OVER_BATCH_SIZE)

  @classmethod
  def validate(cls, reduction: Any) -> None:
    if reduction not in cls.all() or reduction == cls.NONE:
      raise ValueError(
          f"Invalid loss_reduction={reduction!r}: use "
          f"estlab.heads.SUM_OVER_BATCH_SIZE ({cls.SUM_OVER_BATCH_SIZE!r}) or "
          f"estlab.heads.SUM ({cls.SUM!r}).")


def softmax(logits: jax.Array, axis: int = -1) -> jax.Array:
  """``jax.nn.softmax`` with its limit where a logit is ``+inf``: the ``+inf``
  classes share probability 1 (``sigmoid(+inf) = 1``), where softmax's
  ``inf - inf`` gave NaN (so did TF's; its ``-inf`` gave 0, as here).

  Example:
    >>> softmax(jnp.array([0.0, jnp.inf])).tolist()
    [0.0, 1.0]
  """
  top = jnp.isposinf(logits)
  share = top / jnp.maximum(jnp.sum(top, axis, keepdims=True), 1)
  return jnp.where(jnp.any(top, axis, keepdims=True),
                   share.astype(logits.dtype), jax.nn.softmax(logits, axis))


def validate_thresholds(thresholds: Any, owner: str) -> tuple:
  """Thresholds for the per-threshold metrics: each strictly inside (0, 1)."""
  thresholds = tuple(thresholds) if thresholds else ()
  for t in thresholds:
    if not 0.0 < t < 1.0:
      raise ValueError(f"{owner}: thresholds {thresholds!r} must lie in "
                       f"(0, 1); {t!r} does not.")
  return thresholds


def validate_loss_fn(loss_fn: Callable | None, owner: str) -> None:
  """``loss_fn`` takes ``labels`` and ``logits`` (and maybe ``features``)."""
  if loss_fn is None:
    return
  args = set(inspect.signature(loss_fn).parameters)
  missing = {"labels", "logits"} - args
  extra = args - {"labels", "logits", "features", "loss_reduction"}
  if missing or extra:
    raise ValueError(
        f"{owner}: loss_fn {loss_fn!r} takes {sorted(args)!r}; it must take "
        "`labels` and `logits` and optionally `features` and `loss_reduction`,"
        " e.g. def loss_fn(labels, logits): ...")


class Head(abc.ABC):
  """Interface for the top of a model: logits -> loss, metrics, predictions.

  Subclasses set ``_name``, ``_weight_column``, ``_loss_reduction`` and
  ``_loss_fn`` and implement the abstract methods.
  """

  _name: str | None = None
  _weight_column: Any = None
  _loss_reduction: str = Reduction.SUM_OVER_BATCH_SIZE
  _loss_fn: Callable | None = None
  _per_logit_weights: bool = False

  @property
  def name(self) -> str | None:
    """The head's name; metric keys get a ``/name`` suffix when set."""
    return self._name

  @property
  @abc.abstractmethod
  def logits_dimension(self) -> int:
    """Size of the last axis of the logits, e.g. ``n_classes``."""

  @property
  def loss_reduction(self) -> str:
    return self._loss_reduction

  @property
  def weight_column(self) -> Any:
    """The weight feature's name (or column with ``.key``), or None."""
    return self._weight_column

  def __repr__(self) -> str:
    return f"{type(self).__name__}(name={self._name!r})"

  def _summary_key(self, key: str) -> str:
    return f"{key}/{self.name}" if self.name else key

  # -- host, before the step --------------------------------------------------

  @abc.abstractmethod
  def transform_labels(self, labels: Any) -> np.ndarray | None:
    """Checks labels on the host and encodes them as numbers (None stays None).

    Raises:
      ValueError: naming the labels that are out of range, not in the
        vocabulary or of the wrong shape.
    """

  # -- host, after the step ---------------------------------------------------

  def postprocess_predictions(self, predictions: Mapping[str, Any]) -> dict:
    """Adds the host-only (string) predictions; this head has none."""
    return dict(predictions)

  # -- device, inside jit -----------------------------------------------------

  @abc.abstractmethod
  def predictions(self, logits: jax.Array, keys: Sequence[str] | None = None
                  ) -> dict[str, jax.Array]:
    """Returns the numeric predictions (all keys when ``keys`` is None)."""

  @abc.abstractmethod
  def _processed_labels(self, labels: jax.Array, logits: jax.Array
                        ) -> tuple[jax.Array, jax.Array | None]:
    """``(labels, invalid)``: labels shaped for the loss, and a mask ``[.., 1]``
    of examples whose labels are invalid (their loss becomes NaN, since jit
    cannot raise; ``transform_labels`` reports them by value on the host)."""

  @abc.abstractmethod
  def _default_loss(self, labels: jax.Array, logits: jax.Array) -> jax.Array:
    """The unreduced loss, ``[D0, ..., DN, loss_dim]``."""

  @abc.abstractmethod
  def _batch_metrics(self, features: Mapping, logits: jax.Array, labels: Any,
                     regularization_losses: Sequence | None) -> dict:
    """``estlab.metrics`` states of one batch, keyed as TF's head keys them."""

  _loss_dim = 1  # last axis of the unreduced loss

  def _device_keys(self, keys: Sequence[str] | None, valid: Sequence[str],
                   host: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Prediction keys to compute; a host-only key (``classes``) asks for its
    numeric source (``class_ids``), which postprocess_predictions converts."""
    if not keys:
      return tuple(valid)
    host = host or {}
    unknown = [k for k in keys if k not in valid and k not in host]
    if unknown:
      raise ValueError(f"{self!r}: prediction keys {unknown!r} are not known; "
                       f"use some of {list(valid) + list(host)!r}.")
    return tuple(dict.fromkeys(host.get(k, k) for k in keys))

  def _check_logits(self, logits: Any) -> jax.Array:
    logits = jnp.asarray(logits, jnp.float32)
    if logits.ndim < 2 or logits.shape[-1] != self.logits_dimension:
      raise ValueError(
          f"{self!r}: logits of shape {logits.shape!r} must be [batch, "
          f"{self.logits_dimension}] ([D0, ..., DN, logits_dimension]); make "
          "them with e.g. nn.Dense(head.logits_dimension)(x).")
    return logits

  def _dense_labels(self, labels: Any, logits: jax.Array, dim: int,
                    mode: str | None = None) -> jax.Array:
    """Labels ``[..., dim]`` matching the logits; host arrays are transformed."""
    if labels is None:
      raise ValueError(_LABELS_NONE.format(mode=mode or "train/eval"))
    if isinstance(labels, (np.ndarray, list, tuple)) or hasattr(labels, "to_numpy"):
      labels = self.transform_labels(labels)  # eager use, as in TF
    labels = jnp.asarray(labels)
    if dim == 1 and labels.ndim == logits.ndim - 1:
      labels = labels[..., None]
    expected = logits.shape[:-1] + (dim,)
    if labels.shape != expected:
      raise ValueError(
          f"{self!r}: labels of shape {labels.shape!r} do not match logits of "
          f"shape {logits.shape!r}; expected {expected!r}. Encode labels with "
          "head.transform_labels(labels) on the host before the step.")
    return labels

  def _weights(self, features: Mapping | None, logits: jax.Array
               ) -> jax.Array | None:
    """Example weights ``[..., 1]`` (or per logit) from ``weight_column``.

    Rows the engine padded (``VALID_ROWS_KEY`` False) weigh zero.
    """
    valid = _valid_rows(features)
    weights = self._column_weights(features, logits)
    if valid is None:
      return weights
    valid = valid.astype(jnp.float32).reshape(logits.shape[:-1] + (1,))
    return valid if weights is None else weights * valid

  def _column_weights(self, features: Mapping | None, logits: jax.Array
                      ) -> jax.Array | None:
    if self._weight_column is None:
      return None
    key = getattr(self._weight_column, "key", self._weight_column)
    features = features or {}
    if key not in features:
      raise ValueError(
          f"{self!r}: weight_column={key!r} is not among the features "
          f"{sorted(features)!r}; add it to the input_fn's features or fix "
          "weight_column.")
    weights = jnp.asarray(features[key])
    if not (jnp.issubdtype(weights.dtype, jnp.number) or weights.dtype == bool):
      raise ValueError(f"{self!r}: weights {key!r} of dtype {weights.dtype} "
                       "cannot be cast to float; give numbers.")
    weights = weights.astype(jnp.float32)
    batch = logits.shape[:-1]
    if weights.shape == batch:
      return weights[..., None]
    allowed = [batch + (1,)] + ([logits.shape] if self._per_logit_weights else [])
    if weights.shape not in allowed:
      raise ValueError(
          f"{self!r}: weights {key!r} of shape {weights.shape!r} do not fit "
          f"logits of shape {logits.shape!r}; give one weight per example, "
          f"shape {batch!r} or {batch + (1,)!r}.")
    return weights

  def _unweighted_loss_and_weights(self, logits: jax.Array, labels: jax.Array,
                                   features: Mapping | None,
                                   invalid: jax.Array | None = None) -> tuple:
    if self._loss_fn is not None:
      params = inspect.signature(self._loss_fn).parameters
      kwargs = {}
      if "features" in params:
        kwargs["features"] = features
      if "loss_reduction" in params:
        kwargs["loss_reduction"] = self._loss_reduction
      loss = jnp.asarray(self._loss_fn(labels=labels, logits=logits, **kwargs))
      expected = logits.shape[:-1] + (self._loss_dim,)
      if loss.shape != expected:
        raise ValueError(
            f"{self!r}: loss_fn must return the unreduced loss of shape "
            f"{expected!r} ([D0, ..., DN, {self._loss_dim}]), got "
            f"{loss.shape!r}; return one value per example (keepdims=True).")
    else:
      loss = self._default_loss(labels, logits)
    loss = loss.astype(jnp.float32)
    if invalid is not None:
      loss = jnp.where(invalid, jnp.nan, loss)
    return loss, self._weights(features, logits)

  def _reduce(self, loss: jax.Array, weights: jax.Array | None,
              features: Mapping | None = None) -> jax.Array:
    weighted = loss if weights is None else loss * weights
    total = jnp.sum(weighted)
    if self._loss_reduction == Reduction.SUM:
      return total
    valid = _valid_rows(features)
    if valid is None:
      return total / max(weighted.size, 1)
    per_row = weighted.size // max(valid.size, 1)  # padded rows do not count
    return total / jnp.maximum(jnp.sum(valid) * per_row, 1)

  def loss(self, labels: Any, logits: Any, features: Mapping | None = None,
           mode: str | None = None,
           regularization_losses: Sequence | None = None) -> jax.Array:
    """Returns the reduced training loss plus the regularization losses."""
    _, _, loss, weights = self._prepare(features, logits, labels, mode)
    return (self._reduce(loss, weights, features)
            + _regularization(regularization_losses))

  def _prepare(self, features, logits, labels, mode=None) -> tuple:
    """``(logits, labels, unweighted_loss, weights)``, checked and shaped."""
    logits = self._check_logits(logits)
    labels, invalid = self._processed_labels(
        self._dense_labels(labels, logits, self._label_dim, mode), logits)
    loss, weights = self._unweighted_loss_and_weights(logits, labels, features,
                                                      invalid)
    return logits, labels, loss, weights

  _label_dim = 1  # last axis of the encoded labels
  _label_dtype = jnp.float32

  def metrics(self, regularization_losses: Sequence | None = None) -> dict:
    """Empty metric states (all zeros) with this head's keys."""
    def build(logits, labels):
      features = {k: jnp.ones(logits.shape[:-1]) for k in self._weight_keys()}
      return self._batch_metrics(features, logits, labels, regularization_losses)
    shapes = jax.eval_shape(
        build, jax.ShapeDtypeStruct((1, self.logits_dimension), jnp.float32),
        self._label_struct())
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

  def _weight_keys(self) -> list[str]:
    if self._weight_column is None:
      return []
    return [getattr(self._weight_column, "key", self._weight_column)]

  def _label_struct(self) -> Any:
    return jax.ShapeDtypeStruct((1, self._label_dim), self._label_dtype)

  def update_metrics(self, eval_metrics: Mapping | None, features: Mapping,
                     logits: Any, labels: Any,
                     regularization_losses: Sequence | None = None) -> dict:
    """Merges this batch's metric states into ``eval_metrics`` (may be empty)."""
    batch = self._batch_metrics(features, logits, labels, regularization_losses)
    eval_metrics = eval_metrics or {}
    return {k: eval_metrics[k].merge(v) if k in eval_metrics else v
            for k, v in batch.items()}

  def _summaries(self, features, logits, labels, loss, regularization_losses):
    del features, logits, labels
    summaries = {}
    if self.name:  # unnamed, TF's "loss" tag is the one the engine writes
      summaries[self._summary_key("loss")] = loss
    if regularization_losses is not None:
      summaries[self._summary_key("regularization_loss")] = _regularization(
          regularization_losses)
    return summaries

  def create_estimator_spec(
      self, features: Mapping | None, mode: str, logits: Any, labels: Any = None,
      optimizer: Any = None, trainable_variables: Any = None,
      train_op_fn: Callable | None = None, update_ops: Any = None,
      regularization_losses: Sequence | None = None) -> EstimatorSpec:
    """Returns the ``EstimatorSpec`` a model_fn returns, as TF's heads do.

    On JAX ``train_op`` is the optax ``optimizer`` (or ``train_op_fn(loss)``):
    the engine differentiates ``loss`` w.r.t. all parameters, so
    ``trainable_variables`` and ``update_ops`` are accepted and ignored
    (freeze parameters with ``optax.multi_transform``; Flax collections such
    as batch_stats are updated by the engine).

    Raises:
      ValueError: in TRAIN mode with neither or both of ``optimizer`` and
        ``train_op_fn``; labels missing or of the wrong shape.
    """
    del trainable_variables, update_ops
    if mode not in ModeKeys.ALL:
      raise ValueError(f"mode={mode!r} is not one of {ModeKeys.ALL!r}; pass the "
                       "model_fn's `mode` through.")
    predictions = self.predictions(logits)
    if mode == ModeKeys.PREDICT:
      # Host-only predictions (classes) are added after the step, as TF's.
      host = (self.postprocess_predictions
              if type(self).postprocess_predictions
              is not Head.postprocess_predictions else None)
      return EstimatorSpec(mode, predictions=predictions,
                           export_outputs=self._export_outputs(predictions),
                           host_postprocess=host)
    loss = self.loss(labels, logits, features, mode, regularization_losses)
    if mode == ModeKeys.EVAL:
      return EstimatorSpec(mode, predictions=predictions, loss=loss,
                           eval_metric_ops=self._batch_metrics(
                               features, logits, labels, regularization_losses))
    if optimizer is not None and train_op_fn is not None:
      raise ValueError(f"{self!r}: train_op_fn and optimizer cannot both be set;"
                       " pass only optimizer=optax.adam(1e-3).")
    if optimizer is None and train_op_fn is None:
      raise ValueError(f"{self!r}: TRAIN mode needs an optimizer; pass "
                       "optimizer=optax.adam(1e-3) (any optax transformation).")
    train_op = optimizer if optimizer is not None else train_op_fn(loss)
    return EstimatorSpec(
        mode, predictions=predictions, loss=loss, train_op=train_op,
        summaries=self._summaries(features, logits, labels, loss,
                                  regularization_losses) or None)

  def _export_outputs(self, predictions: dict) -> dict:
    """The serving signatures (``estlab.export`` outputs) of PREDICT mode.

    ``serving_default`` and ``predict`` serve the predictions; heads with a
    classification or regression signature override this, as TF's heads.
    """
    return head_export_outputs(predictions)

  def _regularization_metric(self, metrics: dict,
                             regularization_losses: Sequence | None) -> None:
    if regularization_losses is not None:
      metrics[self._summary_key("regularization_loss")] = metrics_lib.mean(
          _regularization(regularization_losses))


def _valid_rows(features: Any) -> jax.Array | None:
  """The engine's mask of real (not padded) rows, when it padded the batch."""
  if isinstance(features, Mapping):
    return features.get(VALID_ROWS_KEY)
  return None


def _regularization(regularization_losses: Sequence | None) -> jax.Array:
  """Sum of the regularization losses (0.0 when there are none)."""
  total = jnp.zeros((), jnp.float32)
  for loss in regularization_losses or ():
    total = total + jnp.reshape(jnp.asarray(loss, jnp.float32), ())
  return total
