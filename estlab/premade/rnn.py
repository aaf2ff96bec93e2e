"""RNN estimators: sequence columns -> recurrent layers -> logits, as TF's.

``tf.estimator.experimental.RNNClassifier`` / ``RNNEstimator`` on Flax: the
sequence columns give ``[B, T, D]`` inputs and lengths (``SequenceFeatures``,
padded on the host to a power-of-two ``T``, so one compile per length
bucket); context columns (``DenseFeatures``) are repeated at every step and
concatenated after them; ``units`` stacks ``flax.linen.RNN`` layers of
``OptimizedLSTMCell`` / ``GRUCell`` / ``SimpleCell`` (Glorot-uniform input
kernels, orthogonal recurrent ones), each masked by length
(``seq_lengths``); a ``logits`` Dense layer reads the output of each
example's last valid step, or of every step with ``return_sequences``.
As TF, a named optimizer runs at learning rate 0.05 with each gradient
clipped to norm 5.0.

Example:
  >>> from estlab import feature_column as fc
  >>> tokens = fc.sequence_categorical_column_with_vocabulary_list(
  ...     'tokens', ['a', 'b'])
  >>> est = RNNClassifier([fc.embedding_column(tokens, 4)], units=[8],
  ...                     cell_type='gru')  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from estlab import feature_column as fc
from estlab.feature_column import sequence as sequence_lib
from estlab.heads import SequentialHeadWrapper
from estlab.premade import optimizers
from estlab.premade._base import (SUM_OVER_BATCH_SIZE, PremadeEstimator,
                                  check_columns, classification_head)

__all__ = ["RNNClassifier", "RNNEstimator", "RNNModel", "rnn_logit_fn"]

# TF's canned RNN defaults for a named optimizer (canned/rnn.py).
DEFAULT_LEARNING_RATE = 0.05
DEFAULT_CLIP_NORM = 5.0

_CELLS = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell,
          "simple_rnn": nn.SimpleCell}


class _UseDefault:
  def __repr__(self) -> str:
    return "USE_DEFAULT"


USE_DEFAULT = _UseDefault()
"""``cell_type`` left out: ``'simple_rnn'`` with ``units``, as TF."""


def _make_cell(units: int, cell_type: Any, index: int) -> nn.RNNCellBase:
  cell = _CELLS.get(cell_type, cell_type)
  if not callable(cell):
    raise ValueError(f"cell_type={cell_type!r} is not one of {sorted(_CELLS)!r}"
                     " nor a Flax RNN cell class (e.g. flax.linen.GRUCell).")
  name = f"{cell_type if isinstance(cell_type, str) else 'rnn'}_cell"
  name += f"_{index}" if index else ""  # Keras' names: lstm_cell, lstm_cell_1
  if cell in _CELLS.values():
    return cell(units, kernel_init=nn.initializers.glorot_uniform(), name=name)
  return cell(units, name=name)


def _check_cells(cells: Any) -> list:
  cells = list(cells) if isinstance(cells, (list, tuple)) else [cells]
  for cell in cells:
    if not isinstance(cell, nn.RNNCellBase):
      raise ValueError(
          f"rnn_cell_fn must return a Flax RNN cell or a list of them (stacked"
          f"), e.g. flax.linen.LSTMCell(32); got {cell!r}.")
  return cells


class RNNModel(nn.Module):
  """The model of TF's canned RNNs: ``[B, units]`` (or ``[B, T, units]``)
  logits from sequence (and context) features encoded on the host.

  Attributes:
    sequence_feature_columns: sequence columns (``SequenceFeatures``).
    context_feature_columns: dense columns repeated at every step.
    units: the logits' width.
    cell_units: hidden units per stacked layer (with ``cell_type``).
    cell_type: ``'lstm'``, ``'gru'``, ``'simple_rnn'`` or a Flax cell class.
    rnn_cell_fn: instead of the two above, ``rnn_cell_fn()`` returns a Flax
      cell or a list of cells, one per stacked layer.
    return_sequences: logits at every step instead of the last valid one.
  """

  sequence_feature_columns: tuple
  context_feature_columns: tuple
  units: int
  cell_units: tuple = ()
  cell_type: Any = "simple_rnn"
  rnn_cell_fn: Callable | None = None
  return_sequences: bool = False

  @nn.compact
  def __call__(self, features) -> tuple[jax.Array, jax.Array]:
    """``(logits, sequence lengths [B])``."""
    inputs, lengths = fc.SequenceFeatures(
        self.sequence_feature_columns, name="sequence_features")(features)
    if self.context_feature_columns:
      context = fc.DenseFeatures(self.context_feature_columns,
                                 name="dense_features")(features)
      context = jnp.broadcast_to(context[:, None, :], inputs.shape[:2]
                                 + context.shape[-1:])
      inputs = jnp.concatenate([inputs, context], axis=-1)
    if self.rnn_cell_fn is not None:
      cells = _check_cells(self.rnn_cell_fn())
    else:
      cells = [_make_cell(n, self.cell_type, i)
               for i, n in enumerate(self.cell_units)]
    outputs = inputs
    for i, cell in enumerate(cells):
      outputs = nn.RNN(cell, name=f"rnn_{i}")(outputs, seq_lengths=lengths)
    if not self.return_sequences:
      last = jnp.maximum(lengths - 1, 0)
      outputs = jnp.take_along_axis(outputs, last[:, None, None], axis=1)[:, 0]
      outputs = jnp.where((lengths > 0)[:, None], outputs, 0.0)
    logits = nn.Dense(self.units, kernel_init=nn.initializers.glorot_uniform(),
                      name="logits")(outputs)
    return logits, lengths


def _check_units(units: Any, cell_type: Any, rnn_cell_fn: Any) -> tuple:
  if rnn_cell_fn is not None:
    if units or cell_type is not USE_DEFAULT:
      raise ValueError(f"units={units!r} and cell_type={cell_type!r} must not "
                       "be specified when using rnn_cell_fn; drop them.")
    if not callable(rnn_cell_fn):
      raise ValueError(f"rnn_cell_fn={rnn_cell_fn!r} must be a callable "
                       "returning a Flax RNN cell (or a list of them).")
    return ()
  units = (units,) if isinstance(units, (int, np.integer)) else tuple(units or ())
  if not units or not all(isinstance(u, (int, np.integer)) and u > 0
                          for u in units):
    raise ValueError(f"units={units!r} must be a positive int or a non-empty "
                     "list of them (one per stacked layer), e.g. [32, 16]; or "
                     "pass rnn_cell_fn.")
  return tuple(int(u) for u in units)


def rnn_logit_fn(sequence_feature_columns, context_feature_columns, units,
                 cell_units, cell_type, rnn_cell_fn, return_sequences,
                 sequence_mask: str | None = None, name: str = "rnn_model"):
  """``logit_fn(features, mode)`` running an ``RNNModel`` under ``name``.

  With ``sequence_mask``, the ``[B, T]`` mask of valid steps is written into
  ``features`` under that key (unless the input gave one), for a
  ``SequentialHeadWrapper``, as TF's RNN estimators do.
  """
  model = dict(sequence_feature_columns=tuple(sequence_feature_columns),
               context_feature_columns=tuple(context_feature_columns),
               units=units, cell_units=tuple(cell_units),
               cell_type="simple_rnn" if cell_type is USE_DEFAULT else cell_type,
               rnn_cell_fn=rnn_cell_fn, return_sequences=return_sequences)

  def logit_fn(features, mode):
    del mode
    logits, lengths = RNNModel(**model, name=name)(features)
    if sequence_mask is not None and sequence_mask not in features:
      steps = jnp.arange(logits.shape[1])
      features[sequence_mask] = steps[None, :] < lengths[:, None]
    return logits
  return logit_fn


def rnn_optimizer(optimizer: Any) -> optax.GradientTransformation:
  """TF's rule: a name gets learning rate 0.05 and each gradient clipped to
  norm 5.0 (Keras' ``clipnorm``, per variable); anything else as given."""
  if isinstance(optimizer, str):
    clip = optax.stateless(lambda updates, params: jax.tree.map(
        lambda g: g * jnp.minimum(
            1.0, DEFAULT_CLIP_NORM / jnp.maximum(jnp.linalg.norm(g), 1e-12)),
        updates))
    return optax.chain(clip, optimizers.get_optimizer(
        optimizer, DEFAULT_LEARNING_RATE))
  return optimizers.get_optimizer(optimizer)


class RNNEstimator(PremadeEstimator):
  """An RNN over any ``head``; as ``tf.estimator.experimental.RNNEstimator``.

  Args:
    head: an ``estlab.heads`` head; with ``return_sequences`` a
      ``SequentialHeadWrapper``.
    sequence_feature_columns: ``sequence_numeric_column``s and embedding /
      indicator columns over ``sequence_categorical_column_with_*``.
    context_feature_columns: dense columns, repeated at every step.
    units: hidden units per stacked layer (an int: one layer).
    cell_type: ``'simple_rnn'`` (the default with ``units``), ``'lstm'``,
      ``'gru'``, or a Flax cell class taking the units.
    rnn_cell_fn: instead of ``units``/``cell_type``: a no-argument callable
      returning a Flax cell (``flax.linen.LSTMCell(32)``) or a list of cells.
    return_sequences: logits at every step (``[B, T, D]``).
    model_dir, config, warm_start_from: as ``Estimator``.
    optimizer: a name (learning rate 0.05, gradients clipped to norm 5), an
      optax transformation, or a callable returning one.

  Example:
    >>> from estlab import feature_column as fc, heads
    >>> x = fc.sequence_numeric_column('x')
    >>> est = RNNEstimator(heads.RegressionHead(), [x], units=[4])  # doctest: +SKIP
  """

  def __init__(self, head: Any, sequence_feature_columns: Sequence[Any],
               context_feature_columns: Sequence[Any] | None = None,
               units: Any = None, cell_type: Any = USE_DEFAULT,
               rnn_cell_fn: Callable | None = None,
               return_sequences: bool = False, model_dir: Any = None,
               optimizer: Any = "Adagrad", config: Any = None,
               warm_start_from: Any = None):
    sequence_columns = check_columns(sequence_feature_columns,
                                     "sequence_feature_columns")
    context_columns = check_columns(context_feature_columns,
                                    "context_feature_columns")
    if not sequence_columns:
      raise ValueError(f"{type(self).__name__} needs sequence_feature_columns,"
                       f" got {sequence_feature_columns!r}.")
    for column in sequence_columns:
      if not sequence_lib.is_sequence(column):
        raise ValueError(
            f"sequence_feature_columns must be sequence columns "
            f"(sequence_numeric_column, or embedding/indicator columns over "
            f"sequence_categorical_column_with_*); {column!r:.120} is not. Put "
            "it in context_feature_columns.")
    for column in context_columns:
      if sequence_lib.is_sequence(column):
        raise ValueError(f"context_feature_columns must not be sequence "
                         f"columns; {column.name!r} is one. Put it in "
                         "sequence_feature_columns.")
    if return_sequences and not isinstance(head, SequentialHeadWrapper):
      raise ValueError("Provided head must be a SequentialHeadWrapper when "
                       f"return_sequences is set to True; got {head!r}.")
    cell_units = _check_units(units, cell_type, rnn_cell_fn)
    mask = head.input_sequence_mask_key if return_sequences else None
    self._sequence_mask = mask
    super().__init__(
        head=head, optimizer=rnn_optimizer(optimizer),
        logit_fn=rnn_logit_fn(sequence_columns, context_columns,
                              head.logits_dimension, cell_units, cell_type,
                              rnn_cell_fn, return_sequences, mask),
        feature_columns=sequence_columns + context_columns,
        model_dir=model_dir, config=config, warm_start_from=warm_start_from)

  def _encode(self, features: dict, labels: Any, mode: str):
    """As the premades', and with ``return_sequences`` per-step labels,
    weights and a given mask padded to the features' padded length."""
    if self._sequence_mask is None:
      return super()._encode(features, labels, mode)
    if not isinstance(features, dict):
      return super()._encode(features, labels, mode)  # its error
    weight = getattr(self._head, "weight_column", None)
    weight = getattr(weight, "key", weight)
    if weight is not None and weight not in features:
      raise ValueError(f"weight_column {weight!r} is not in the batch; features"
                       f" are {sorted(features)!r}.")
    per_step = [k for k in (weight, self._sequence_mask) if k in features]
    encoded = fc.encode(self.feature_columns, features)
    steps = next(v["ids"].shape[1] if "ids" in v else v["values"].shape[1]
                 for v in encoded.values()
                 if isinstance(v, dict) and sequence_lib.SEQUENCE_LENGTH in v)
    for key in per_step:
      fill, dtype = (False, bool) if key == self._sequence_mask else (
          0.0, np.float32)
      encoded[key] = sequence_lib.pad_steps(features[key], steps, fill).astype(
          dtype)
    if labels is not None:
      labels = self._head.transform_sequence_labels(labels, steps)
    return encoded, labels


class RNNClassifier(RNNEstimator):
  """An RNN classifier; as ``tf.estimator.experimental.RNNClassifier``.

  A binary head for 2 classes, else a multi-class head; with
  ``return_sequences`` wrapped in a ``SequentialHeadWrapper`` whose mask is
  ``features[sequence_mask]`` (computed from the lengths when absent):
  labels then hold one class per step, loss and metrics count valid steps
  only, and predictions hold the mask.

  Example:
    >>> from estlab import feature_column as fc
    >>> tok = fc.sequence_categorical_column_with_identity('tok', 10)
    >>> est = RNNClassifier([fc.embedding_column(tok, 4)], units=[8],
    ...                     cell_type='lstm')  # doctest: +SKIP
    >>> est.train(lambda: ({'tok': [[1, 2], [3]]}, [0, 1]), steps=1)  # doctest: +SKIP
  """

  def __init__(self, sequence_feature_columns: Sequence[Any],
               context_feature_columns: Sequence[Any] | None = None,
               units: Any = None, cell_type: Any = USE_DEFAULT,
               rnn_cell_fn: Callable | None = None,
               return_sequences: bool = False, model_dir: Any = None,
               n_classes: int = 2, weight_column: Any = None,
               label_vocabulary: Any = None, optimizer: Any = "Adagrad",
               loss_reduction: str = SUM_OVER_BATCH_SIZE,
               sequence_mask: str = "sequence_mask", config: Any = None,
               warm_start_from: Any = None):
    head = classification_head(n_classes, weight_column, label_vocabulary,
                               loss_reduction)
    if return_sequences:
      head = SequentialHeadWrapper(head, sequence_length_mask=sequence_mask,
                                   feature_columns=weight_column)
    super().__init__(
        head, sequence_feature_columns, context_feature_columns, units=units,
        cell_type=cell_type, rnn_cell_fn=rnn_cell_fn,
        return_sequences=return_sequences, model_dir=model_dir,
        optimizer=optimizer, config=config, warm_start_from=warm_start_from)
