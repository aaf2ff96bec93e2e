"""DNN estimators: feature columns -> dense layers -> logits, as tf.estimator's.

Layers as TF 2.x builds them: ``hiddenlayer_<i>`` (Dense with the
activation, Glorot-uniform kernels), then dropout in training, then batch
normalization when asked; a ``logits`` layer; Adagrad at Keras' default
learning rate (0.001) unless told otherwise, as TF 2.15.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax

from estlab import feature_column as fc
from estlab.premade import optimizers
from estlab.premade._base import (SUM_OVER_BATCH_SIZE, PremadeEstimator,
                                  check_columns, classification_head,
                                  regression_head)
from estlab.spec import ModeKeys

__all__ = ["DNNClassifier", "DNNRegressor", "DNNEstimator", "DNNModel",
           "dnn_logit_fn"]


def activation(fn: Any) -> Callable:
  """A JAX activation, from a callable or a name such as 'relu'."""
  if callable(fn):
    return fn
  if isinstance(fn, str) and callable(getattr(jax.nn, fn, None)):
    return getattr(jax.nn, fn)
  raise ValueError(f"activation_fn={fn!r} is neither callable nor a jax.nn "
                   "function name such as 'relu'.")


class DNNModel(nn.Module):
  """The DNN tower of tf.estimator's DNN estimators."""

  feature_columns: tuple
  hidden_units: tuple
  units: int
  activation_fn: Callable = jax.nn.relu
  dropout: float | None = None
  batch_norm: bool = False

  @nn.compact
  def __call__(self, features, training: bool):
    net = fc.DenseFeatures(self.feature_columns,
                           name="input_from_feature_columns")(features)
    init = nn.initializers.glorot_uniform()
    for i, width in enumerate(self.hidden_units):
      net = self.activation_fn(nn.Dense(width, kernel_init=init,
                                        name=f"hiddenlayer_{i}")(net))
      if self.dropout:
        net = nn.Dropout(self.dropout, deterministic=not training)(net)
      if self.batch_norm:
        net = nn.BatchNorm(use_running_average=not training, momentum=0.999,
                           epsilon=1e-3, name=f"batchnorm_{i}")(net)
    return nn.Dense(self.units, kernel_init=init, name="logits")(net)


def _check_dnn(hidden_units: Any, dropout: Any) -> tuple:
  units = tuple(hidden_units or ())
  if not units or not all(isinstance(u, int) and u > 0 for u in units):
    raise ValueError(f"hidden_units={hidden_units!r} must be a non-empty list "
                     "of positive ints, e.g. [128, 64].")
  if dropout is not None and not 0 <= dropout < 1:
    raise ValueError(f"dropout={dropout!r} must be in [0, 1) or None.")
  return units


def dnn_logit_fn(feature_columns, hidden_units, units, activation_fn, dropout,
                 batch_norm, name: str = "dnn"):
  """``logit_fn(features, mode)`` running a ``DNNModel`` under scope ``name``."""
  model = dict(feature_columns=tuple(feature_columns),
               hidden_units=_check_dnn(hidden_units, dropout), units=units,
               activation_fn=activation(activation_fn), dropout=dropout,
               batch_norm=batch_norm)

  def logit_fn(features, mode):
    return DNNModel(**model, name=name)(features, mode == ModeKeys.TRAIN)
  return logit_fn


class DNNEstimator(PremadeEstimator):
  """A DNN over any ``head``; as ``tf.estimator.DNNEstimator``."""

  def __init__(self, head: Any, hidden_units: Sequence[int],
               feature_columns: Sequence[Any], model_dir: Any = None,
               optimizer: Any = "Adagrad", activation_fn: Any = jax.nn.relu,
               dropout: float | None = None, config: Any = None,
               warm_start_from: Any = None, batch_norm: bool = False):
    columns = check_columns(feature_columns)
    if not columns:
      raise ValueError(f"{type(self).__name__} needs feature_columns, got "
                       f"{feature_columns!r}.")
    super().__init__(
        head=head, feature_columns=columns, model_dir=model_dir, config=config,
        # TF 2's DNN passes no learning rate: Keras' default (0.001) applies.
        optimizer=optimizers.get_optimizer(optimizer),
        logit_fn=dnn_logit_fn(columns, hidden_units, head.logits_dimension,
                              activation_fn, dropout, batch_norm),
        warm_start_from=warm_start_from)


class DNNClassifier(DNNEstimator):
  """DNN classifier; as ``tf.estimator.DNNClassifier``."""

  def __init__(self, hidden_units: Sequence[int], feature_columns: Sequence[Any],
               model_dir: Any = None, n_classes: int = 2,
               weight_column: Any = None, label_vocabulary: Any = None,
               optimizer: Any = "Adagrad", activation_fn: Any = jax.nn.relu,
               dropout: float | None = None, config: Any = None,
               warm_start_from: Any = None,
               loss_reduction: str = SUM_OVER_BATCH_SIZE,
               batch_norm: bool = False):
    head = classification_head(n_classes, weight_column, label_vocabulary,
                               loss_reduction)
    super().__init__(head, hidden_units, feature_columns, model_dir=model_dir,
                     optimizer=optimizer, activation_fn=activation_fn,
                     dropout=dropout, config=config,
                     warm_start_from=warm_start_from, batch_norm=batch_norm)


class DNNRegressor(DNNEstimator):
  """DNN regressor; as ``tf.estimator.DNNRegressor``."""

  def __init__(self, hidden_units: Sequence[int], feature_columns: Sequence[Any],
               model_dir: Any = None, label_dimension: int = 1,
               weight_column: Any = None, optimizer: Any = "Adagrad",
               activation_fn: Any = jax.nn.relu, dropout: float | None = None,
               config: Any = None, warm_start_from: Any = None,
               loss_reduction: str = SUM_OVER_BATCH_SIZE,
               batch_norm: bool = False):
    head = regression_head(label_dimension, weight_column, loss_reduction)
    super().__init__(head, hidden_units, feature_columns, model_dir=model_dir,
                     optimizer=optimizer, activation_fn=activation_fn,
                     dropout=dropout, config=config,
                     warm_start_from=warm_start_from, batch_norm=batch_norm)
