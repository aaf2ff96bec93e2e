"""Wide & deep: the sum of a linear model's and a DNN's logits.

As ``tf.estimator.DNNLinearCombined*``: separate feature columns and
optimizers for the two parts (``optax.multi_transform`` over the ``linear``
and ``dnn`` parameter subtrees). Named optimizers get TF 2.15's rates for
this estimator: FTRL at min(0.005, 1/sqrt(#linear columns)), Adagrad 0.001.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import jax
import optax

from estlab.premade import optimizers
from estlab.premade._base import (SUM_OVER_BATCH_SIZE, PremadeEstimator,
                                  check_columns, classification_head,
                                  regression_head)
from estlab.premade.dnn import dnn_logit_fn
from estlab.premade.linear import linear_logit_fn
from estlab.premade.linear import linear_optimizer as _linear_opt

__all__ = ["DNNLinearCombinedClassifier", "DNNLinearCombinedRegressor",
           "DNNLinearCombinedEstimator"]


class DNNLinearCombinedEstimator(PremadeEstimator):
  """Wide & deep over any ``head``."""

  def __init__(self, head: Any, model_dir: Any = None,
               linear_feature_columns: Sequence[Any] | None = None,
               linear_optimizer: Any = "Ftrl",
               dnn_feature_columns: Sequence[Any] | None = None,
               dnn_optimizer: Any = "Adagrad",
               dnn_hidden_units: Sequence[int] | None = None,
               dnn_activation_fn: Any = jax.nn.relu,
               dnn_dropout: float | None = None, config: Any = None,
               linear_sparse_combiner: str = "sum", batch_norm: bool = False,
               warm_start_from: Any = None):
    linear_cols = check_columns(linear_feature_columns, "linear_feature_columns")
    dnn_cols = check_columns(dnn_feature_columns, "dnn_feature_columns")
    if not linear_cols and not dnn_cols:
      raise ValueError("Either linear_feature_columns or dnn_feature_columns "
                       "must be given (both are empty).")
    parts, txs = [], {}
    units = head.logits_dimension
    if linear_cols:
      parts.append(linear_logit_fn(linear_cols, units, linear_sparse_combiner))
      txs["linear"] = _linear_opt(linear_optimizer, linear_cols, min(
          optimizers.DNN_LINEAR_COMBINED_LINEAR_LEARNING_RATE,
          1.0 / math.sqrt(len(linear_cols))))
    if dnn_cols:
      parts.append(dnn_logit_fn(dnn_cols, dnn_hidden_units, units,
                                dnn_activation_fn, dnn_dropout, batch_norm))
      txs["dnn"] = optimizers.get_optimizer(
          dnn_optimizer, optimizers.DNN_LINEAR_COMBINED_DNN_LEARNING_RATE)

    def logit_fn(features, mode):
      return sum(part(features, mode) for part in parts)

    optimizer = optax.multi_transform(
        txs, lambda params: {name: name for name in params})
    columns = tuple(dict.fromkeys(linear_cols + dnn_cols))
    super().__init__(head=head, logit_fn=logit_fn, optimizer=optimizer,
                     feature_columns=columns, model_dir=model_dir,
                     config=config, warm_start_from=warm_start_from)



class DNNLinearCombinedClassifier(DNNLinearCombinedEstimator):
  """Wide & deep classifier; as ``tf.estimator.DNNLinearCombinedClassifier``."""

  def __init__(self, model_dir: Any = None, linear_feature_columns=None,
               linear_optimizer: Any = "Ftrl", dnn_feature_columns=None,
               dnn_optimizer: Any = "Adagrad", dnn_hidden_units=None,
               dnn_activation_fn: Any = jax.nn.relu, dnn_dropout=None,
               n_classes: int = 2, weight_column: Any = None,
               label_vocabulary: Any = None, config: Any = None,
               warm_start_from: Any = None,
               loss_reduction: str = SUM_OVER_BATCH_SIZE,
               batch_norm: bool = False, linear_sparse_combiner: str = "sum"):
    head = classification_head(n_classes, weight_column, label_vocabulary,
                               loss_reduction)
    super().__init__(head, model_dir, linear_feature_columns, linear_optimizer,
                     dnn_feature_columns, dnn_optimizer, dnn_hidden_units,
                     dnn_activation_fn, dnn_dropout, config,
                     linear_sparse_combiner, batch_norm, warm_start_from)


class DNNLinearCombinedRegressor(DNNLinearCombinedEstimator):
  """Wide & deep regressor; as ``tf.estimator.DNNLinearCombinedRegressor``."""

  def __init__(self, model_dir: Any = None, linear_feature_columns=None,
               linear_optimizer: Any = "Ftrl", dnn_feature_columns=None,
               dnn_optimizer: Any = "Adagrad", dnn_hidden_units=None,
               dnn_activation_fn: Any = jax.nn.relu, dnn_dropout=None,
               label_dimension: int = 1, weight_column: Any = None,
               config: Any = None, warm_start_from: Any = None,
               loss_reduction: str = SUM_OVER_BATCH_SIZE,
               batch_norm: bool = False, linear_sparse_combiner: str = "sum"):
    head = regression_head(label_dimension, weight_column, loss_reduction)
    super().__init__(head, model_dir, linear_feature_columns, linear_optimizer,
                     dnn_feature_columns, dnn_optimizer, dnn_hidden_units,
                     dnn_activation_fn, dnn_dropout, config,
                     linear_sparse_combiner, batch_norm, warm_start_from)
