"""Linear estimators: TF's linear model over feature columns, trained with FTRL.

As ``tf.estimator.LinearClassifier/Regressor/Estimator``: weights per column
(gathered per id for categorical columns, combined with ``sparse_combiner``)
plus a bias, zeros at the start; FTRL by default, or SDCA with
``optimizer=LinearSDCA(...)`` (``premade.sdca``).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn

from estlab import feature_column as fc
from estlab.premade import optimizers, sdca
from estlab.premade._base import (SUM_OVER_BATCH_SIZE, PremadeEstimator,
                                  check_columns, classification_head,
                                  regression_head)
from estlab.spec import ModeKeys

__all__ = ["LinearClassifier", "LinearRegressor", "LinearEstimator",
           "linear_logit_fn", "linear_optimizer"]


class _Scope(nn.Module):
  """TF's variable scope around the linear model: ``<name>/linear_model/``,
  so weights carry TF's names (``linear/linear_model/age/weights``)."""

  feature_columns: tuple
  units: int
  sparse_combiner: str

  @nn.compact
  def __call__(self, features):
    return fc.LinearModel(self.feature_columns, units=self.units,
                          sparse_combiner=self.sparse_combiner,
                          name="linear_model")(features)


def linear_logit_fn(feature_columns: Sequence[Any], units: int,
                    sparse_combiner: str, name: str = "linear"):
  """``logit_fn(features, mode)``: TF's ``LinearModel`` under scope
  ``name/linear_model``, TF's variable names."""
  def logit_fn(features, mode):
    del mode
    return _Scope(tuple(feature_columns), units, sparse_combiner,
                  name=name)(features)
  return logit_fn


def linear_optimizer(optimizer: Any, feature_columns: Sequence[Any],
                     learning_rate: float = optimizers.LINEAR_LEARNING_RATE) -> Any:
  """TF 2's choice: a name gets ``learning_rate`` (0.2); None gets FTRL at
  min(0.2, 1/sqrt(#columns)); an optax transformation is used as is."""
  if optimizer is None:
    return optimizers.default_linear_optimizer(len(feature_columns))
  return optimizers.get_optimizer(optimizer, learning_rate)


def _check_sdca(optimizer: Any, sparse_combiner: str) -> None:
  """TF's checks of a LinearSDCA optimizer common to both estimators."""
  if isinstance(optimizer, sdca.LinearSDCA):
    if sparse_combiner != "sum":
      raise ValueError(f'sparse_combiner must be "sum" when optimizer is a '
                       f"LinearSDCA object, got {sparse_combiner!r}.")
    optimizer.check()


class LinearEstimator(PremadeEstimator):
  """A linear model over any ``head``; as ``tf.estimator.LinearEstimator``.

  With ``optimizer=estlab.experimental.LinearSDCA(...)`` it is trained by
  stochastic dual coordinate ascent (a binary or one-dimensional regression
  head only, as TF's); the input_fn's features then carry the example ids.
  """

  def __init__(self, head: Any, feature_columns: Sequence[Any],
               model_dir: Any = None, optimizer: Any = "Ftrl",
               config: Any = None, sparse_combiner: str = "sum",
               warm_start_from: Any = None):
    columns = check_columns(feature_columns)
    if not columns:
      raise ValueError(f"{type(self).__name__} needs feature_columns, got "
                       f"{feature_columns!r}.")
    self._sdca = None
    if isinstance(optimizer, sdca.LinearSDCA):
      _check_sdca(optimizer, sparse_combiner)
      self._sdca = (optimizer, sdca.loss_type(head))
      make_linear = lambda name: _Scope(tuple(columns), 1, "sum", name=name)
      super().__init__(
          head=head, optimizer=None, logit_fn=None,
          model_fn=sdca.sdca_model_fn(head, make_linear, optimizer),
          feature_columns=columns, model_dir=model_dir, config=config,
          warm_start_from=warm_start_from)
      return
    super().__init__(
        head=head, optimizer=linear_optimizer(optimizer, columns),
        logit_fn=linear_logit_fn(columns, head.logits_dimension, sparse_combiner),
        feature_columns=columns, model_dir=model_dir, config=config,
        warm_start_from=warm_start_from)

  def _encode(self, features: dict, labels: Any, mode: str):
    encoded, labels = super()._encode(features, labels, mode)
    if self._sdca is not None and mode == ModeKeys.TRAIN:
      options, kind = self._sdca
      encoded[sdca.EXAMPLE_ID_KEY] = sdca.host_example_ids(features, options)
      sdca.check_labels(labels, kind)
    return encoded, labels


class LinearClassifier(LinearEstimator):
  """Linear classifier; as ``tf.estimator.LinearClassifier``."""

  def __init__(self, feature_columns: Sequence[Any], model_dir: Any = None,
               n_classes: int = 2, weight_column: Any = None,
               label_vocabulary: Any = None, optimizer: Any = "Ftrl",
               config: Any = None, warm_start_from: Any = None,
               loss_reduction: str = SUM_OVER_BATCH_SIZE,
               sparse_combiner: str = "sum"):
    if isinstance(optimizer, sdca.LinearSDCA) and n_classes > 2:
      raise ValueError(f"LinearSDCA cannot be used in a multi-class setting "
                       f"(n_classes={n_classes!r}); use n_classes=2 or a "
                       "gradient optimizer such as 'Ftrl'.")
    head = classification_head(n_classes, weight_column, label_vocabulary,
                               loss_reduction)
    super().__init__(head, feature_columns, model_dir=model_dir,
                     optimizer=optimizer, config=config,
                     sparse_combiner=sparse_combiner,
                     warm_start_from=warm_start_from)


class LinearRegressor(LinearEstimator):
  """Linear regressor; as ``tf.estimator.LinearRegressor``."""

  def __init__(self, feature_columns: Sequence[Any], model_dir: Any = None,
               label_dimension: int = 1, weight_column: Any = None,
               optimizer: Any = "Ftrl", config: Any = None,
               warm_start_from: Any = None,
               loss_reduction: str = SUM_OVER_BATCH_SIZE,
               sparse_combiner: str = "sum"):
    if isinstance(optimizer, sdca.LinearSDCA) and label_dimension > 1:
      raise ValueError(f"LinearSDCA can only be used with one-dimensional "
                       f"label (label_dimension={label_dimension!r}).")
    head = regression_head(label_dimension, weight_column, loss_reduction)
    super().__init__(head, feature_columns, model_dir=model_dir,
                     optimizer=optimizer, config=config,
                     sparse_combiner=sparse_combiner,
                     warm_start_from=warm_start_from)
