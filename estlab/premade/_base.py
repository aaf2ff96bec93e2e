"""A premade estimator is a logit function plus a head, composed into a model_fn.

This is the part of tf.estimator worth keeping: ``LinearClassifier`` is
``Estimator(model_fn=compose(linear_logits, BinaryClassHead))``, with no
per-class copies of the training logic. Feature columns are encoded on the
host and labels checked there (``_encode``, the estimator's ``HostStep``);
class names are added to predictions on the host after the compiled step.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from estlab import feature_column as fc
from estlab._engine.host_step import HostStep
from estlab.estimator import Estimator
from estlab.heads import (BinaryClassHead, MultiClassHead, Reduction,
                          RegressionHead)

__all__ = ["PremadeEstimator", "classification_head", "regression_head"]


def classification_head(n_classes: int, weight_column: Any,
                        label_vocabulary: Any, loss_reduction: str) -> Any:
  """TF's rule: a binary head for 2 classes, a multi-class head otherwise."""
  if not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
    raise ValueError(f"n_classes={n_classes!r} must be an int >= 2.")
  if n_classes == 2:
    return BinaryClassHead(weight_column=weight_column,
                           label_vocabulary=label_vocabulary,
                           loss_reduction=loss_reduction)
  return MultiClassHead(n_classes, weight_column=weight_column,
                        label_vocabulary=label_vocabulary,
                        loss_reduction=loss_reduction)


def regression_head(label_dimension: int, weight_column: Any,
                    loss_reduction: str) -> Any:
  return RegressionHead(label_dimension=label_dimension,
                        weight_column=weight_column,
                        loss_reduction=loss_reduction)


class PremadeEstimator(Estimator):
  """An Estimator built from ``logit_fn(features, mode) -> logits`` and a head.

  Args:
    head: an ``estlab.heads`` head.
    logit_fn: called inside the model_fn with the encoded features and the
      mode; creates Flax modules and returns logits ``[B, head.logits_dimension]``.
    optimizer: the optax transformation the head applies.
    feature_columns: every column the logit_fn reads (encoded on the host).
    model_dir, config, warm_start_from: as ``Estimator``.
    model_fn: a model_fn over the same head and columns used instead of the
      one composed from ``logit_fn`` and ``optimizer`` (``LinearSDCA``'s,
      which computes its update itself); those are then None.
  """

  def __init__(self, *, head: Any, logit_fn: Callable | None,
               optimizer: Any, feature_columns: Sequence[Any],
               model_dir: Any = None, config: Any = None,
               warm_start_from: Any = None, model_fn: Callable | None = None):
    self._head = head
    self._feature_columns = tuple(feature_columns)

    if model_fn is None:
      def model_fn(features, labels, mode):
        logits = logit_fn(features, mode)
        return head.create_estimator_spec(features=features, mode=mode,
                                          logits=logits, labels=labels,
                                          optimizer=optimizer)
    model_fn.__name__ = f"{type(self).__name__}_model_fn"
    super().__init__(model_fn, model_dir=model_dir, config=config,
                     warm_start_from=warm_start_from)
    # The host step as data, which the export describes in JSON. Columns
    # encode an input_fn's batches 4096 rows at a time: on 256-row batches
    # encoding is mostly fixed cost per call (``data._chunks``); heads weigh
    # padded rows (VALID_ROWS_KEY) zero.
    self._host = HostStep(
        transform=self._encode, chunk_rows=4096, pads_eval_batches=True,
        postprocess=head.postprocess_predictions,
        feature_columns=self._feature_columns,
        batch_key=None if self._feature_columns else BATCH_KEY, head=head)

  @property
  def head(self) -> Any:
    return self._head

  @property
  def feature_columns(self) -> tuple:
    return self._feature_columns

  def _encode(self, features: dict, labels: Any, mode: str):
    """Features through the columns, labels through the head (on the host)."""
    del mode  # (the same in every mode; LinearSDCA adds example ids in TRAIN)
    if not isinstance(features, Mapping):
      shape = tuple(np.shape(features)[1:])
      raise TypeError(
          f"{type(self).__name__} reads features by name through its "
          f"feature_columns, so features must be a dict of arrays; the "
          f"input_fn gave one {type(features).__name__} of shape "
          f"{np.shape(features)!r}: {features!r:.100}. Wrap it as {{'x': "
          f"array}} in the input_fn (numpy_input_fn(x={{'x': array}}, ...)) "
          f"and use estlab.feature_column.numeric_column('x', "
          f"shape={shape!r}).")
    if self._feature_columns:
      encoded = fc.encode(self._feature_columns, features)
    else:  # no columns (Baseline): keep only the batch size
      rows = len(next(iter(features.values()))) if features else 0
      encoded = {BATCH_KEY: np.zeros((rows,), np.int8)}
    weight = getattr(self._head, "weight_column", None)
    if weight is not None:
      key = weight if isinstance(weight, str) else weight.key
      if key not in features:
        raise ValueError(f"weight_column {key!r} is not in the batch; features "
                         f"are {sorted(features)!r}.")
      encoded[key] = np.asarray(features[key], np.float32)
    if labels is not None:
      labels = self._head.transform_labels(labels)
    return encoded, labels


BATCH_KEY = "__batch_size__"


def batch_size(features: dict) -> int:
  """The batch size of encoded features (for logit fns with no inputs)."""
  import jax  # pylint: disable=g-import-not-at-top
  return jax.tree_util.tree_leaves(features)[0].shape[0]


def check_columns(columns: Any, arg: str = "feature_columns") -> tuple:
  """A tuple of feature columns, or a clear error for anything else."""
  if columns is None:
    return ()
  if isinstance(columns, (str, bytes, dict)) or not hasattr(columns, "__iter__"):
    raise TypeError(f"{arg}={columns!r} must be a list of estlab.feature_column "
                    "columns.")
  return tuple(columns)


SUM_OVER_BATCH_SIZE = Reduction.SUM_OVER_BATCH_SIZE
