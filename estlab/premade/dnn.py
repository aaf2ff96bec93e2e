"""DNN estimators: feature columns -> dense layers -> logits, as tf.estimator's.

Layers as TF 2.x builds them: ``hiddenlayer_<i>`` (Dense with the
activation, Glorot-uniform kernels), then dropout in training, then batch
normalization when asked; a ``logits`` layer; Adagrad at Keras' default
learning rate (0.001) unless told otherwise, as TF 2.15.

Variables carry TF 2.x's checkpoint names (``get_variable_names()``)::

  dnn/input_from_feature_columns/input_layer/<col>_embedding/embedding_weights
  dnn/hiddenlayer_<i>/kernel, dnn/hiddenlayer_<i>/bias
  dnn/hiddenlayer_<i>/batchnorm_<i>/gamma, .../beta      (params)
  dnn/hiddenlayer_<i>/batchnorm_<i>/moving_mean, .../moving_variance
                                                         (batch_stats)
  dnn/logits/kernel, dnn/logits/bias
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

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


class _BatchNorm(nn.Module):
  """Keras' ``BatchNormalization`` over the batch axis, with its names.

  ``gamma`` and ``beta`` are params; ``moving_mean`` and ``moving_variance``
  live in the ``batch_stats`` collection and move by ``momentum`` in
  training (``moving = momentum * moving + (1 - momentum) * batch``, the
  batch's biased variance, as Keras).
  """

  momentum: float = 0.999
  epsilon: float = 1e-3

  @nn.compact
  def __call__(self, x, training: bool):
    width = x.shape[-1]
    gamma = self.param("gamma", nn.initializers.ones, (width,), jnp.float32)
    beta = self.param("beta", nn.initializers.zeros, (width,), jnp.float32)
    mean = self.variable("batch_stats", "moving_mean", jnp.zeros, (width,),
                         jnp.float32)
    var = self.variable("batch_stats", "moving_variance", jnp.ones, (width,),
                        jnp.float32)
    if training:
      batch_mean, batch_var = jnp.mean(x, axis=0), jnp.var(x, axis=0)
      if not self.is_initializing():
        m = self.momentum
        mean.value = m * mean.value + (1 - m) * batch_mean
        var.value = m * var.value + (1 - m) * batch_var
    else:
      batch_mean, batch_var = mean.value, var.value
    scale = jax.lax.rsqrt(batch_var + self.epsilon) * gamma
    return (x - batch_mean) * scale + beta


class _HiddenLayer(nn.Module):
  """TF's ``hiddenlayer_<i>``: Dense with the activation, dropout in training,
  then (``batch_norm``) ``_BatchNorm`` named ``batchnorm_<index>`` inside it."""

  width: int
  index: int
  activation_fn: Callable = jax.nn.relu
  dropout: float | None = None
  batch_norm: bool = False

  @nn.compact
  def __call__(self, x, training: bool):
    kernel = self.param("kernel", nn.initializers.glorot_uniform(),
                        (x.shape[-1], self.width), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.width,), jnp.float32)
    x = self.activation_fn(x @ kernel + bias)
    if self.dropout:
      x = nn.Dropout(self.dropout, deterministic=not training)(x)
    if self.batch_norm:
      x = _BatchNorm(name=f"batchnorm_{self.index}")(x, training)
    return x


class _InputFromFeatureColumns(nn.Module):
  """TF's scope ``input_from_feature_columns/input_layer`` around the
  ``DenseFeatures`` of the DNN's columns."""

  feature_columns: tuple

  @nn.compact
  def __call__(self, features):
    return fc.DenseFeatures(self.feature_columns, name="input_layer")(features)


class DNNModel(nn.Module):
  """The DNN tower of tf.estimator's DNN estimators, with TF 2.x's names."""

  feature_columns: tuple
  hidden_units: tuple
  units: int
  activation_fn: Callable = jax.nn.relu
  dropout: float | None = None
  batch_norm: bool = False

  @nn.compact
  def __call__(self, features, training: bool):
    net = _InputFromFeatureColumns(self.feature_columns,
                                   name="input_from_feature_columns")(features)
    for i, width in enumerate(self.hidden_units):
      net = _HiddenLayer(width, i, self.activation_fn, self.dropout,
                        self.batch_norm, name=f"hiddenlayer_{i}")(net, training)
    return nn.Dense(self.units, kernel_init=nn.initializers.glorot_uniform(),
                    name="logits")(net)


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
