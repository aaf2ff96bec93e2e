"""Baseline estimators: a learned bias per output, ignoring the features.

Useful as the number to beat; as ``tf.estimator.BaselineClassifier``.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from estlab.premade import optimizers
from estlab.premade._base import (SUM_OVER_BATCH_SIZE, PremadeEstimator,
                                  batch_size, classification_head,
                                  regression_head)

__all__ = ["BaselineClassifier", "BaselineRegressor", "BaselineEstimator"]


class _Bias(nn.Module):
  units: int

  @nn.compact
  def __call__(self, features):
    bias = self.param("bias", nn.initializers.zeros, (self.units,))
    return jnp.broadcast_to(bias, (batch_size(features), self.units))


def _logit_fn(units: int):
  def logit_fn(features, mode):
    del mode
    return _Bias(units, name="baseline")(features)
  return logit_fn


class BaselineEstimator(PremadeEstimator):
  """A bias-only model over any ``head``."""

  def __init__(self, head: Any, model_dir: Any = None, optimizer: Any = "Ftrl",
               config: Any = None):
    super().__init__(head=head, logit_fn=_logit_fn(head.logits_dimension),
                     optimizer=optimizers.get_optimizer(
                         optimizer, optimizers.BASELINE_LEARNING_RATE),
                     feature_columns=(), model_dir=model_dir, config=config)


class BaselineClassifier(BaselineEstimator):
  """Predicts the class prior; as ``tf.estimator.BaselineClassifier``."""

  def __init__(self, model_dir: Any = None, n_classes: int = 2,
               weight_column: Any = None, label_vocabulary: Any = None,
               optimizer: Any = "Ftrl", config: Any = None,
               loss_reduction: str = SUM_OVER_BATCH_SIZE):
    head = classification_head(n_classes, weight_column, label_vocabulary,
                               loss_reduction)
    super().__init__(head, model_dir=model_dir, optimizer=optimizer,
                     config=config)


class BaselineRegressor(BaselineEstimator):
  """Predicts the label mean; as ``tf.estimator.BaselineRegressor``."""

  def __init__(self, model_dir: Any = None, label_dimension: int = 1,
               weight_column: Any = None, optimizer: Any = "Ftrl",
               config: Any = None, loss_reduction: str = SUM_OVER_BATCH_SIZE):
    head = regression_head(label_dimension, weight_column, loss_reduction)
    super().__init__(head, model_dir=model_dir, optimizer=optimizer,
                     config=config)
