"""Device side of feature columns: Flax ``DenseFeatures`` and ``LinearModel``.

Both are linen modules called inside a model_fn (under ``jit``) on the output
of ``encode``: numbers only. Embedding tables and linear weights are Flax
parameters named like TF's variables: ``DenseFeatures_0/x_embedding/
embedding_weights``, ``LinearModel_0/x/weights``, ``LinearModel_0/
bias_weights``; a shared embedding table is the parameter named by its
collection, e.g. ``DenseFeatures_0/a_b_shared_embedding``. Lookups gather
rows (``jnp.take``), never multiply by one-hot matrices, so tables can be
large. Where TF builds variables in a graph, these are Flax parameters
created on first call.

Example:
  >>> import jax, numpy as np
  >>> from estlab import feature_column as fc
  >>> cols = [fc.numeric_column('x'), fc.embedding_column(
  ...     fc.categorical_column_with_identity('id', 10), 4)]
  >>> batch = fc.encode(cols, {'x': np.ones(2), 'id': np.array([3, -1])})
  >>> layer = fc.DenseFeatures(cols)
  >>> params = layer.init(jax.random.PRNGKey(0), batch)
  >>> layer.apply(params, batch).shape
  (2, 5)
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from estlab.feature_column import _base, dense, sequence
from estlab.feature_column.numeric import BucketizedColumn, NumericColumn

__all__ = ["DenseFeatures", "LinearModel", "combine", "input_layer",
           "linear_logits", "linear_model", "multi_hot", "sparse_dot"]


def _truncated_normal(stddev: float) -> Callable:
  """TF's truncated_normal_initializer: normal cut at two stddevs."""
  def init(key, shape, dtype=jnp.float32):
    return stddev * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)
  return init


def _clip_by_norm(rows: jax.Array, max_norm: float) -> jax.Array:
  """TF's clip_by_norm over the last axis, with a safe gradient at zero."""
  squared = jnp.sum(rows * rows, axis=-1, keepdims=True)
  positive = squared > 0
  norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)
  return rows * max_norm / jnp.maximum(norm, max_norm)


def combine(table: jax.Array, ids: jax.Array, weights: jax.Array,
            combiner: str, max_norm: float | None = None) -> jax.Array:
  """TF's safe_embedding_lookup_sparse on padded ``[B, K]`` ids: ``[B, D]``.

  Ids < 0 are dropped, and so are weights <= 0 unless ``combiner == 'sum'``;
  a row with nothing left gives zeros.
  """
  ids, w = _column_ids(ids, weights, table.shape[0], combiner)
  rows = jnp.take(table, ids, axis=0)
  if max_norm is not None:
    rows = _clip_by_norm(rows, max_norm)
  return jnp.sum(w[..., None] * rows, axis=1)


def _column_ids(ids: jax.Array, weights: jax.Array, rows: int,
                combiner: str) -> tuple[jax.Array, jax.Array]:
  """One column's ``[B, K]`` ids clipped to its ``rows``, and its weights
  zeroed where an id is dropped (see ``combine``) and divided by the
  column's own ``mean``/``sqrtn`` denominator: ``sparse_dot`` over them is
  the column's combined lookup, alone or beside other columns."""
  valid = ids >= 0
  if combiner != "sum":
    valid = valid & (weights > 0)
  w = jnp.where(valid, weights, 0.0)
  if combiner != "sum":
    denominator = jnp.sum(w if combiner == "mean" else w * w, axis=1,
                          keepdims=True)
    if combiner == "sqrtn":
      denominator = jnp.sqrt(denominator)
    w = jnp.where(denominator > 0,
                  w / jnp.where(denominator > 0, denominator, 1.0), 0.0)
  return jnp.clip(jnp.where(valid, ids, 0), 0, rows - 1), w


def sparse_dot(table: jax.Array, ids: jax.Array, weights: jax.Array
               ) -> jax.Array:
  """``sum_k weights[b, k] * table[ids[b, k]]``: ``[B, D]`` from ``[R, D]``.

  One gather (and, in the gradient, one scatter-add) however many columns
  the ids come from.
  """
  rows = jnp.take(table, ids, axis=0, mode="clip")
  return jnp.sum(weights[..., None] * rows, axis=1)


# Dense inputs this narrow (total) join the gather; wider ones use a matmul.
_FOLD_WIDTH = 16


def linear_logits(table: jax.Array, names: Sequence[str],
                  rows: Mapping[str, int], inputs: Mapping[str, Any],
                  combiner: str) -> jax.Array:
  """A linear model's ``[B, units]`` output from all its weights in one table.

  ``table`` stacks the weights ``[rows[name], units]`` of ``names`` in that
  order; ``inputs[name]`` is ``(ids, weights)`` for a categorical column,
  a ``[B, rows[name]]`` value for a dense one, absent for the bias. Stacked
  in the parameters' own order (sorted names, as JAX flattens a dict), the
  table is the model's slice of the training state's raveled parameters
  (``estlab._engine.flat``), and its gradient is one scatter-add into it: no
  per-column slices, no concatenation (on XLA:CPU each small kernel costs
  ~0.5 us). Categorical
  ids are clipped and offset all at once (per-entry constants), so a batch's
  id columns stay one array; dense inputs and the bias join the gather while
  narrow (``_FOLD_WIDTH``), else they are a matmul against their rows.
  """
  starts = dict(zip(names, np.cumsum([0] + [rows[n] for n in names])[:-1]))
  categorical = [n for n in names if isinstance(inputs.get(n), tuple)]
  dense_names = [n for n in names
                 if n in inputs and not isinstance(inputs[n], tuple)]
  biases = [n for n in names if n not in inputs]
  if not inputs:  # no columns: the bias alone
    return sum(table[starts[n]] for n in biases)
  batch = next(v[0] if isinstance(v, tuple) else v
               for v in inputs.values()).shape[0]
  ids, weights, offsets = _categorical_ids(
      [(inputs[n], rows[n], starts[n]) for n in categorical], combiner, batch)
  total = None
  if sum(rows[n] for n in dense_names) <= _FOLD_WIDTH:
    folded = dense_names + biases
    weights = jnp.concatenate(
        [weights, *(inputs[n] for n in dense_names),
         jnp.ones((batch, len(biases)), jnp.float32)], axis=1)
    constant = np.concatenate([np.zeros(0, np.int64)] + [
        starts[n] + np.arange(rows[n]) for n in folded]).astype(np.int32)
    if offsets is not None:  # one fused add: ids padded, then all offsets
      ids = jnp.pad(ids, ((0, 0), (0, len(constant))))
      ids = ids + np.concatenate([offsets, constant])
    else:
      ids = jnp.concatenate(
          [ids, jnp.broadcast_to(constant, (batch, len(constant)))], axis=1)
  else:
    if offsets is not None:
      ids = ids + offsets
    for name in dense_names + biases:
      part = table[starts[name]:starts[name] + rows[name]]
      part = inputs[name] @ part if name in inputs else part[0]
      total = part if total is None else total + part
  if ids.shape[1]:
    part = sparse_dot(table, ids, weights)
    total = part if total is None else total + part
  return total


def _categorical_ids(columns: Sequence[tuple[tuple, int, int]], combiner: str,
                     batch: Any
                     ) -> tuple[jax.Array, jax.Array, np.ndarray | None]:
  """``(ids, weights, offsets)`` of ``(inputs, rows, start)`` columns.

  With the ``sum`` combiner and static widths (training), the ids of all
  columns are clipped at once against per-entry bounds, and ``offsets`` (a
  constant) is left for the caller to add: one fused kernel, not a few per
  column. Otherwise (``mean``/``sqrtn``, or symbolic widths in an export)
  each column's ids are processed and offset on their own; ``offsets`` is
  None.
  """
  if not columns:
    return (jnp.zeros((batch, 0), jnp.int32),
            jnp.zeros((batch, 0), jnp.float32), np.zeros(0, np.int32))
  widths = [value[0].shape[1] for value, _, _ in columns]
  if combiner == "sum" and all(isinstance(w, int) for w in widths):
    raw = jnp.concatenate([value[0] for value, _, _ in columns], axis=1)
    w = jnp.concatenate([jnp.asarray(value[1], jnp.float32)
                         for value, _, _ in columns], axis=1)
    last = np.repeat([rows - 1 for _, rows, _ in columns], widths)
    valid = raw >= 0
    ids = jnp.clip(jnp.where(valid, raw, 0), 0, last.astype(np.int32))
    offsets = np.repeat([start for _, _, start in columns], widths)
    return ids, jnp.where(valid, w, 0.0), offsets.astype(np.int32)
  ids, weights = [], []
  for value, rows, start in columns:
    i, w = _column_ids(*value, rows, combiner)
    ids.append(i + start)
    weights.append(w)
  return jnp.concatenate(ids, axis=1), jnp.concatenate(weights, axis=1), None


def multi_hot(ids: jax.Array, weights: jax.Array, num_buckets: int) -> jax.Array:
  """``[B, num_buckets]``: each valid id adds its weight to its slot."""
  valid = ids >= 0
  rows = jnp.arange(ids.shape[0])[:, None]
  return jnp.zeros((ids.shape[0], num_buckets), jnp.float32).at[
      rows, jnp.where(valid, ids, 0)].add(jnp.where(valid, weights, 0.0))


def _encoded(features: Mapping, column: _base.FeatureColumn, name: str) -> Any:
  try:
    return features[name]
  except (KeyError, TypeError):
    keys = sorted(features) if isinstance(features, Mapping) else features
    raise _base.MissingFeatureError(
        f"Column {column.name!r} reads {name!r}, which is not in the features "
        f"({keys!r:.300}). Encode the batch on the host first: features = "
        "estlab.feature_column.encode(feature_columns, features).") from None


def _ids(features: Mapping, column: _base.CategoricalColumn
         ) -> tuple[jax.Array, jax.Array]:
  value = _encoded(features, column, column.name)
  if not isinstance(value, Mapping) or "ids" not in value:
    raise TypeError(
        f"features[{column.name!r}] must be {{'ids': ...[, 'weights': ...]}} "
        f"from estlab.feature_column.encode, got {type(value).__name__}. "
        "Encode the batch on the host first.")
  ids = jnp.asarray(value["ids"])
  if "weights" not in value:  # an unweighted column: 1 per id (see encode)
    return ids, (ids >= 0).astype(jnp.float32)
  return ids, jnp.asarray(value["weights"], jnp.float32)


class _Variables(nn.Module):
  """One column's parameters under its name, like a TF variable scope."""

  @nn.compact
  def __call__(self, specs: Mapping[str, tuple]) -> dict:
    return {name: self.param(name, init, shape, jnp.float32)
            for name, (init, shape) in specs.items()}


def _reject_sequence(columns: Sequence[_base.FeatureColumn], layer: str) -> None:
  """TF's error for a sequence column given to a non-sequence layer."""
  for column in columns:
    if sequence.is_sequence(column):
      raise ValueError(
          f"In {layer}: column {column.name!r} is a sequence column "
          f"({type(column).__name__}). Suggested fix A: if you wish to use "
          f"{layer}, use a non-sequence categorical_column_with_* or "
          "numeric_column. Suggested fix B: if you wish to create sequence "
          "input, use SequenceFeatures (or an RNN estimator's "
          "sequence_feature_columns) instead.")


def _embedding_init(column: Any) -> Callable:
  return column.initializer or _truncated_normal(1.0 / math.sqrt(column.dimension))


def _table(module: nn.Module, column: Any, variables: dict, shared: dict
           ) -> jax.Array:
  """The embedding table of an (shared) embedding column."""
  if isinstance(column, dense.SharedEmbeddingColumn):
    collection = column.shared_embedding_collection_name
    if collection not in shared:  # one parameter per collection and module
      shared[collection] = module.param(
          collection, _embedding_init(column),
          (column.categorical_column.num_buckets, column.dimension), jnp.float32)
    table = shared[collection]
  else:
    table = variables["embedding_weights"]
  if not (column.trainable and module.trainable):
    table = jax.lax.stop_gradient(table)
  return table


def _embedding_specs(column: _base.FeatureColumn) -> dict:
  if isinstance(column, dense.EmbeddingColumn):
    shape = (column.categorical_column.num_buckets, column.dimension)
    return {"embedding_weights": (_embedding_init(column), shape)}
  return {}


def _dense_tensor(module: nn.Module, column: _base.DenseColumn,
                  features: Mapping, variables: dict, shared: dict) -> jax.Array:
  """The ``[B, prod(variable_shape)]`` float32 output of a dense column."""
  if isinstance(column, NumericColumn):
    x = jnp.asarray(_encoded(features, column, column.key), jnp.float32)
    x = x.reshape((x.shape[0],) + tuple(column.shape))
    if column.normalizer_fn is not None:
      x = column.normalizer_fn(x)
    return jnp.asarray(x, jnp.float32).reshape(x.shape[0], -1)
  if isinstance(column, BucketizedColumn):
    return multi_hot(*_ids(features, column), column.num_buckets)
  if isinstance(column, dense.IndicatorColumn):
    categorical = column.categorical_column
    return multi_hot(*_ids(features, categorical), categorical.num_buckets)
  if isinstance(column, (dense.EmbeddingColumn, dense.SharedEmbeddingColumn)):
    table = _table(module, column, variables, shared)
    ids, weights = _ids(features, column.categorical_column)
    return combine(table, ids, weights, column.combiner, column.max_norm)
  raise TypeError(f"Column {column.name!r} ({type(column).__name__}) has no "
                  "dense form in estlab.")


class DenseFeatures(nn.Module):
  """TF's ``tf.keras.layers.DenseFeatures`` as a Flax module: ``[B, D]`` float32.

  Columns are ordered by name (as TF orders them) and concatenated:
  numeric ``normalizer_fn(x)`` flattened; bucketized one-hot; indicator
  multi-hot counts (weights for weighted columns); embeddings combined per
  row. Call it on ``encode(feature_columns, raw_features)``.

  Attributes:
    feature_columns: dense columns (numeric, bucketized, embedding, shared
      embedding, indicator).
    trainable: False stops gradients to every table of this layer.
  """

  feature_columns: Sequence[_base.FeatureColumn]
  trainable: bool = True

  @nn.compact
  def __call__(self, features: Mapping[str, Any]) -> jax.Array:
    columns = _base.normalize_feature_columns(self.feature_columns)
    _reject_sequence(columns, "DenseFeatures")
    for column in columns:
      if not isinstance(column, _base.DenseColumn):
        raise ValueError(
            f"DenseFeatures takes dense columns; {column.name!r} is "
            f"{type(column).__name__}. Wrap it: indicator_column("
            f"{column.name!r} column) or embedding_column({column.name!r} "
            "column, dimension=...).")
    shared: dict = {}
    outputs = []
    for column in columns:
      specs = _embedding_specs(column)
      variables = _Variables(name=column.name)(specs) if specs else {}
      outputs.append(_dense_tensor(self, column, features, variables, shared))
    return jnp.concatenate(outputs, axis=1)


class LinearModel(nn.Module):
  """TF's linear model (``LinearModel``) as a Flax module: ``[B, units]``.

  Per column a zero-initialised weight ``<column name>/weights``: ``[dim,
  units]`` for dense columns (applied to their dense output),
  ``[num_buckets, units]`` for categorical ones (bucketized, crossed and
  weighted included), whose rows are combined over each example's ids with
  ``sparse_combiner`` (``'sum'``, ``'mean'`` or ``'sqrtn'``, weighted); plus
  ``bias_weights`` ``[units]``.

  Attributes:
    feature_columns: any columns.
    units: number of outputs.
    sparse_combiner: how a categorical column's ids in one row combine.
    trainable: False stops gradients to every weight of this model.
  """

  feature_columns: Sequence[_base.FeatureColumn]
  units: int = 1
  sparse_combiner: str = "sum"
  trainable: bool = True

  @nn.compact
  def __call__(self, features: Mapping[str, Any]) -> jax.Array:
    dense.check_combiner(self.sparse_combiner, "LinearModel sparse_combiner")
    zeros = nn.initializers.zeros
    shared: dict = {}
    weights: dict[str, jax.Array] = {}  # name -> [rows, units]
    inputs: dict[str, Any] = {}  # name -> (ids, weights) | [B, rows] values
    columns = _base.normalize_feature_columns(self.feature_columns)
    _reject_sequence(columns, "LinearModel")
    for column in columns:
      if isinstance(column, _base.CategoricalColumn):
        variables = _Variables(name=column.name)(
            {"weights": (zeros, (column.num_buckets, self.units))})
        inputs[column.name] = _ids(features, column)
      else:
        width = math.prod(column.variable_shape)
        variables = _Variables(name=column.name)(
            {**_embedding_specs(column), "weights": (zeros, (width, self.units))})
        inputs[column.name] = _dense_tensor(self, column, features, variables,
                                            shared)
      weights[column.name] = variables["weights"]
    bias = self.param("bias_weights", zeros, (self.units,), jnp.float32)
    weights["bias_weights"] = bias.reshape(1, self.units)
    # Concatenated flat, then reshaped: XLA merges adjacent 1-D slices of one
    # array (the training state's raveled parameters) back into that array.
    table = jnp.concatenate([weights[name].reshape(-1)
                             for name in sorted(weights)]).reshape(-1, self.units)
    return linear_logits(self._maybe_frozen(table), sorted(weights),
                         {n: w.shape[0] for n, w in weights.items()}, inputs,
                         self.sparse_combiner)

  def _maybe_frozen(self, value: jax.Array) -> jax.Array:
    return value if self.trainable else jax.lax.stop_gradient(value)


def _graph_only(function: str, **arguments: Any) -> None:
  """A clear error for TF1 graph arguments that have no JAX meaning."""
  given = {k: v for k, v in arguments.items() if v is not None}
  if given:
    raise TypeError(
        f"{function}({', '.join(f'{k}={v!r:.60}' for k, v in given.items())}):"
        " graph collections and variable maps do not exist on JAX; drop the "
        "argument. The parameters are the Flax module's (Estimator."
        "get_variable_names() lists them after training).")


def input_layer(features: Mapping[str, Any],
                feature_columns: Sequence[_base.FeatureColumn],
                weight_collections: Any = None, trainable: bool = True,
                cols_to_vars: Any = None,
                cols_to_output_tensors: Any = None) -> jax.Array:
  """``tf.compat.v1.feature_column.input_layer``: ``DenseFeatures(columns)
  (features)``, called inside a model_fn (a Flax scope).

  TF1's way to apply dense columns in a custom model_fn: the ``[B, D]``
  float32 concatenation of ``feature_columns`` (ordered by name, as TF).
  Numeric columns read the raw features; categorical ones (bucketized,
  indicator, embedding) read host-encoded ids, so for those encode in the
  input_fn: ``features = estlab.feature_column.encode(columns, features)``
  (strings never enter ``jit``; premade estimators encode for you).
  ``weight_collections``, ``cols_to_vars`` and ``cols_to_output_tensors``
  are TF graph bookkeeping: passing one is a TypeError saying so.

  Example:
    >>> def model_fn(features, labels, mode, params):  # doctest: +SKIP
    ...   net = input_layer(features, params['feature_columns'])
    ...   logits = nn.Dense(3)(nn.relu(nn.Dense(10)(net)))
  """
  _graph_only("input_layer", weight_collections=weight_collections,
              cols_to_vars=cols_to_vars,
              cols_to_output_tensors=cols_to_output_tensors)
  return DenseFeatures(tuple(feature_columns), trainable=trainable)(features)


def linear_model(features: Mapping[str, Any],
                 feature_columns: Sequence[_base.FeatureColumn],
                 units: int = 1, sparse_combiner: str = "sum",
                 weight_collections: Any = None, trainable: bool = True,
                 cols_to_vars: Any = None) -> jax.Array:
  """``tf.compat.v1.feature_column.linear_model``: ``LinearModel(columns,
  units, sparse_combiner)(features)`` inside a model_fn, ``[B, units]``.

  Categorical columns read host-encoded ids (see ``input_layer``); the
  graph arguments are a TypeError as there.
  """
  _graph_only("linear_model", weight_collections=weight_collections,
              cols_to_vars=cols_to_vars)
  return LinearModel(tuple(feature_columns), units=units,
                     sparse_combiner=sparse_combiner,
                     trainable=trainable)(features)
