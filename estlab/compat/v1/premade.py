"""TF 1's premade estimators (``tf.compat.v1.estimator.*``) on estlab's.

Each class is its ``estlab.premade`` twin (the same logit function, head
and engine) given TF 1's defaults instead of TF 2's:

* ``loss_reduction`` defaults to ``Reduction.SUM`` ('weighted_sum'): the
  training loss is the batch's weighted *sum*, so gradients scale with the
  batch size, and ``evaluate()['loss']`` is the mean over batches of each
  batch's summed loss (e.g. 3.81 on batches of 30 where ``average_loss`` is
  0.13); ``average_loss`` is the per-example mean in both.
* A named optimizer is built at TF 1's rate with ``tf.compat.v1.train``'s
  hyperparameters (``estlab.compat.v1.optimizers``): DNN Adagrad at 0.05
  (TF 2: 0.001), Linear 0.2 (``optimizer=None``: FTRL at min(0.2,
  1/sqrt(#columns))), Baseline 0.3, DNNLinearCombined linear
  min(0.005, 1/sqrt(#linear columns)) and dnn 0.001 (the same rates as TF 2).
* ``partitioner`` / ``input_layer_partitioner`` are accepted and ignored:
  they split TF variables over parameter servers; estlab keeps each
  parameter whole, so the numbers do not change.

Metric keys, prediction keys and variable names are TF 2's, which are TF 1's
(checked against TF 2.15's tf.compat.v1.estimator in tests/compat).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import jax

from estlab import premade
from estlab.compat.v1 import optimizers
from estlab.compat.v1.losses import Reduction, head_reduction
from estlab.premade import _base
from estlab.premade import optimizers as v2_optimizers
from estlab.premade.linear import linear_optimizer as v2_linear_optimizer

__all__ = [
    "DNNClassifier", "DNNRegressor", "DNNEstimator", "LinearClassifier",
    "LinearRegressor", "LinearEstimator", "DNNLinearCombinedClassifier",
    "DNNLinearCombinedRegressor", "DNNLinearCombinedEstimator",
    "BaselineClassifier", "BaselineRegressor", "BaselineEstimator",
]

# TF 1's learning rates for a named optimizer (tensorflow_estimator canned/).
DNN_LEARNING_RATE = v2_optimizers.DNN_LEARNING_RATE  # dnn.py: 0.05
LINEAR_LEARNING_RATE = v2_optimizers.LINEAR_LEARNING_RATE  # linear.py: 0.2
BASELINE_LEARNING_RATE = v2_optimizers.BASELINE_LEARNING_RATE  # baseline.py: 0.3
COMBINED_DNN_LEARNING_RATE = v2_optimizers.DNN_LINEAR_COMBINED_DNN_LEARNING_RATE
COMBINED_LINEAR_LEARNING_RATE = (
    v2_optimizers.DNN_LINEAR_COMBINED_LINEAR_LEARNING_RATE)


class _V1Methods:
  """TF 1's Estimator method names that TF 2 dropped."""

  def export_savedmodel(self, export_dir_base, serving_input_receiver_fn,
                        assets_extra=None, as_text=False, checkpoint_path=None,
                        strip_default_attrs=True):
    """TF 1's name of ``export_saved_model`` (``strip_default_attrs`` is
    TF graph metadata and is ignored)."""
    del strip_default_attrs
    return self.export_saved_model(
        export_dir_base, serving_input_receiver_fn, assets_extra=assets_extra,
        as_text=as_text, checkpoint_path=checkpoint_path)


def _classification_head(n_classes, weight_column, label_vocabulary,
                         loss_reduction):
  return _base.classification_head(n_classes, weight_column, label_vocabulary,
                                   head_reduction(loss_reduction))


def _regression_head(label_dimension, weight_column, loss_reduction):
  return _base.regression_head(label_dimension, weight_column,
                               head_reduction(loss_reduction))


def _linear_optimizer(optimizer: Any, feature_columns: Any) -> Any:
  # linear.py: `optimizer or _get_default_optimizer(columns)`, then a name at
  # 0.2. estlab's linear_optimizer already maps None to that default.
  if optimizer is None:
    return v2_linear_optimizer(None, _base.check_columns(feature_columns))
  return optimizers.get_optimizer(optimizer, LINEAR_LEARNING_RATE)


# -- DNN ----------------------------------------------------------------------


class DNNEstimator(_V1Methods, premade.DNNEstimator):
  """As ``tf.compat.v1.estimator.DNNEstimator``: a named optimizer at 0.05."""

  def __init__(self, head: Any, hidden_units: Sequence[int],
               feature_columns: Sequence[Any], model_dir: Any = None,
               optimizer: Any = "Adagrad", activation_fn: Any = jax.nn.relu,
               dropout: float | None = None, input_layer_partitioner: Any = None,
               config: Any = None, warm_start_from: Any = None,
               batch_norm: bool = False):
    del input_layer_partitioner  # TF variable sharding; see the module doc
    super().__init__(head, hidden_units, feature_columns, model_dir=model_dir,
                     optimizer=optimizers.get_optimizer(optimizer,
                                                        DNN_LEARNING_RATE),
                     activation_fn=activation_fn, dropout=dropout,
                     config=config, warm_start_from=warm_start_from,
                     batch_norm=batch_norm)


class DNNClassifier(DNNEstimator):
  """As ``tf.compat.v1.estimator.DNNClassifier``: Adagrad at 0.05, SUM loss.

  Example:
    >>> from estlab import feature_column as fc
    >>> from estlab.compat.v1 import estimator
    >>> est = estimator.DNNClassifier([8], [fc.numeric_column('x')])
    >>> est.head.loss_reduction
    'sum'
  """

  def __init__(self, hidden_units: Sequence[int], feature_columns: Sequence[Any],
               model_dir: Any = None, n_classes: int = 2,
               weight_column: Any = None, label_vocabulary: Any = None,
               optimizer: Any = "Adagrad", activation_fn: Any = jax.nn.relu,
               dropout: float | None = None, input_layer_partitioner: Any = None,
               config: Any = None, warm_start_from: Any = None,
               loss_reduction: str = Reduction.SUM, batch_norm: bool = False):
    head = _classification_head(n_classes, weight_column, label_vocabulary,
                                loss_reduction)
    super().__init__(head, hidden_units, feature_columns, model_dir=model_dir,
                     optimizer=optimizer, activation_fn=activation_fn,
                     dropout=dropout,
                     input_layer_partitioner=input_layer_partitioner,
                     config=config, warm_start_from=warm_start_from,
                     batch_norm=batch_norm)


class DNNRegressor(DNNEstimator):
  """As ``tf.compat.v1.estimator.DNNRegressor``: Adagrad at 0.05, SUM loss."""

  def __init__(self, hidden_units: Sequence[int], feature_columns: Sequence[Any],
               model_dir: Any = None, label_dimension: int = 1,
               weight_column: Any = None, optimizer: Any = "Adagrad",
               activation_fn: Any = jax.nn.relu, dropout: float | None = None,
               input_layer_partitioner: Any = None, config: Any = None,
               warm_start_from: Any = None,
               loss_reduction: str = Reduction.SUM, batch_norm: bool = False):
    head = _regression_head(label_dimension, weight_column, loss_reduction)
    super().__init__(head, hidden_units, feature_columns, model_dir=model_dir,
                     optimizer=optimizer, activation_fn=activation_fn,
                     dropout=dropout,
                     input_layer_partitioner=input_layer_partitioner,
                     config=config, warm_start_from=warm_start_from,
                     batch_norm=batch_norm)


# -- Linear -------------------------------------------------------------------


class LinearEstimator(_V1Methods, premade.LinearEstimator):
  """As ``tf.compat.v1.estimator.LinearEstimator``."""

  def __init__(self, head: Any, feature_columns: Sequence[Any],
               model_dir: Any = None, optimizer: Any = "Ftrl",
               config: Any = None, partitioner: Any = None,
               sparse_combiner: str = "sum", warm_start_from: Any = None):
    del partitioner  # TF variable sharding; see the module doc
    super().__init__(head, feature_columns, model_dir=model_dir,
                     optimizer=_linear_optimizer(optimizer, feature_columns),
                     config=config, sparse_combiner=sparse_combiner,
                     warm_start_from=warm_start_from)


class LinearClassifier(LinearEstimator):
  """As ``tf.compat.v1.estimator.LinearClassifier``: FTRL at 0.2, SUM loss."""

  def __init__(self, feature_columns: Sequence[Any], model_dir: Any = None,
               n_classes: int = 2, weight_column: Any = None,
               label_vocabulary: Any = None, optimizer: Any = "Ftrl",
               config: Any = None, partitioner: Any = None,
               warm_start_from: Any = None,
               loss_reduction: str = Reduction.SUM,
               sparse_combiner: str = "sum"):
    head = _classification_head(n_classes, weight_column, label_vocabulary,
                                loss_reduction)
    super().__init__(head, feature_columns, model_dir=model_dir,
                     optimizer=optimizer, config=config,
                     partitioner=partitioner, sparse_combiner=sparse_combiner,
                     warm_start_from=warm_start_from)


class LinearRegressor(LinearEstimator):
  """As ``tf.compat.v1.estimator.LinearRegressor``: FTRL at 0.2, SUM loss."""

  def __init__(self, feature_columns: Sequence[Any], model_dir: Any = None,
               label_dimension: int = 1, weight_column: Any = None,
               optimizer: Any = "Ftrl", config: Any = None,
               partitioner: Any = None, warm_start_from: Any = None,
               loss_reduction: str = Reduction.SUM,
               sparse_combiner: str = "sum"):
    head = _regression_head(label_dimension, weight_column, loss_reduction)
    super().__init__(head, feature_columns, model_dir=model_dir,
                     optimizer=optimizer, config=config,
                     partitioner=partitioner, sparse_combiner=sparse_combiner,
                     warm_start_from=warm_start_from)


# -- Wide & deep --------------------------------------------------------------


class DNNLinearCombinedEstimator(_V1Methods, premade.DNNLinearCombinedEstimator):
  """As ``tf.compat.v1.estimator.DNNLinearCombinedEstimator``."""

  def __init__(self, head: Any, model_dir: Any = None,
               linear_feature_columns: Sequence[Any] | None = None,
               linear_optimizer: Any = "Ftrl",
               dnn_feature_columns: Sequence[Any] | None = None,
               dnn_optimizer: Any = "Adagrad",
               dnn_hidden_units: Sequence[int] | None = None,
               dnn_activation_fn: Any = jax.nn.relu,
               dnn_dropout: float | None = None,
               input_layer_partitioner: Any = None, config: Any = None,
               batch_norm: bool = False, linear_sparse_combiner: str = "sum",
               warm_start_from: Any = None):
    del input_layer_partitioner  # TF variable sharding; see the module doc
    linear_cols = _base.check_columns(linear_feature_columns,
                                      "linear_feature_columns")
    if linear_cols:  # dnn_linear_combined.py's `_linear_learning_rate`
      linear_optimizer = optimizers.get_optimizer(
          linear_optimizer, min(COMBINED_LINEAR_LEARNING_RATE,
                                1.0 / math.sqrt(len(linear_cols))))
    if dnn_feature_columns:
      dnn_optimizer = optimizers.get_optimizer(dnn_optimizer,
                                               COMBINED_DNN_LEARNING_RATE)
    super().__init__(
        head, model_dir=model_dir, linear_feature_columns=linear_feature_columns,
        linear_optimizer=linear_optimizer,
        dnn_feature_columns=dnn_feature_columns, dnn_optimizer=dnn_optimizer,
        dnn_hidden_units=dnn_hidden_units, dnn_activation_fn=dnn_activation_fn,
        dnn_dropout=dnn_dropout, config=config,
        linear_sparse_combiner=linear_sparse_combiner, batch_norm=batch_norm,
        warm_start_from=warm_start_from)


class DNNLinearCombinedClassifier(DNNLinearCombinedEstimator):
  """As ``tf.compat.v1.estimator.DNNLinearCombinedClassifier``: SUM loss."""

  def __init__(self, model_dir: Any = None, linear_feature_columns=None,
               linear_optimizer: Any = "Ftrl", dnn_feature_columns=None,
               dnn_optimizer: Any = "Adagrad", dnn_hidden_units=None,
               dnn_activation_fn: Any = jax.nn.relu, dnn_dropout=None,
               n_classes: int = 2, weight_column: Any = None,
               label_vocabulary: Any = None, input_layer_partitioner: Any = None,
               config: Any = None, warm_start_from: Any = None,
               loss_reduction: str = Reduction.SUM, batch_norm: bool = False,
               linear_sparse_combiner: str = "sum"):
    head = _classification_head(n_classes, weight_column, label_vocabulary,
                                loss_reduction)
    super().__init__(head, model_dir, linear_feature_columns, linear_optimizer,
                     dnn_feature_columns, dnn_optimizer, dnn_hidden_units,
                     dnn_activation_fn, dnn_dropout, input_layer_partitioner,
                     config, batch_norm, linear_sparse_combiner,
                     warm_start_from)


class DNNLinearCombinedRegressor(DNNLinearCombinedEstimator):
  """As ``tf.compat.v1.estimator.DNNLinearCombinedRegressor``: SUM loss."""

  def __init__(self, model_dir: Any = None, linear_feature_columns=None,
               linear_optimizer: Any = "Ftrl", dnn_feature_columns=None,
               dnn_optimizer: Any = "Adagrad", dnn_hidden_units=None,
               dnn_activation_fn: Any = jax.nn.relu, dnn_dropout=None,
               label_dimension: int = 1, weight_column: Any = None,
               input_layer_partitioner: Any = None, config: Any = None,
               warm_start_from: Any = None,
               loss_reduction: str = Reduction.SUM, batch_norm: bool = False,
               linear_sparse_combiner: str = "sum"):
    head = _regression_head(label_dimension, weight_column, loss_reduction)
    super().__init__(head, model_dir, linear_feature_columns, linear_optimizer,
                     dnn_feature_columns, dnn_optimizer, dnn_hidden_units,
                     dnn_activation_fn, dnn_dropout, input_layer_partitioner,
                     config, batch_norm, linear_sparse_combiner,
                     warm_start_from)


# -- Baseline -----------------------------------------------------------------


class BaselineEstimator(_V1Methods, premade.BaselineEstimator):
  """As ``tf.compat.v1.estimator.BaselineEstimator``: a named optimizer at 0.3."""

  def __init__(self, head: Any, model_dir: Any = None, optimizer: Any = "Ftrl",
               config: Any = None):
    super().__init__(head, model_dir=model_dir, config=config,
                     optimizer=optimizers.get_optimizer(
                         optimizer, BASELINE_LEARNING_RATE))


class BaselineClassifier(BaselineEstimator):
  """As ``tf.compat.v1.estimator.BaselineClassifier``: FTRL at 0.3, SUM loss."""

  def __init__(self, model_dir: Any = None, n_classes: int = 2,
               weight_column: Any = None, label_vocabulary: Any = None,
               optimizer: Any = "Ftrl", config: Any = None,
               loss_reduction: str = Reduction.SUM):
    head = _classification_head(n_classes, weight_column, label_vocabulary,
                                loss_reduction)
    super().__init__(head, model_dir=model_dir, optimizer=optimizer,
                     config=config)


class BaselineRegressor(BaselineEstimator):
  """As ``tf.compat.v1.estimator.BaselineRegressor``: FTRL at 0.3, SUM loss."""

  def __init__(self, model_dir: Any = None, label_dimension: int = 1,
               weight_column: Any = None, optimizer: Any = "Ftrl",
               config: Any = None, loss_reduction: str = Reduction.SUM):
    head = _regression_head(label_dimension, weight_column, loss_reduction)
    super().__init__(head, model_dir=model_dir, optimizer=optimizer,
                     config=config)
