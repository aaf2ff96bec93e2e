"""Dense views of categorical columns: embeddings and indicators, as TF's.

These columns hold configuration only: on the host they reuse their
categorical column's ids; on the device ``DenseFeatures`` / ``LinearModel``
(``layers``) look the ids up in a Flax parameter table (embeddings) or count
them (indicators). Initializers are JAX ones, ``init(key, shape, dtype)``;
the default is TF's ``truncated_normal(stddev=1/sqrt(dimension))``.

Example:
  >>> from estlab import feature_column as fc
  >>> color = fc.categorical_column_with_vocabulary_list('color', ['R', 'G'])
  >>> fc.embedding_column(color, 8).name, fc.indicator_column(color).variable_shape
  ('color_embedding', (1, 2))
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from estlab.feature_column import _base
from estlab.feature_column.categorical import WeightedCategoricalColumn

__all__ = ["EmbeddingColumn", "SharedEmbeddingColumn", "IndicatorColumn",
           "embedding_column", "shared_embeddings", "indicator_column"]

_COMBINERS = ("mean", "sqrtn", "sum")


def check_combiner(combiner: str, what: str) -> None:
  if combiner not in _COMBINERS:
    raise ValueError(f"{what}: combiner {combiner!r} is not one of "
                     f"{_COMBINERS!r}.")


def _check_categorical(column: object, what: str) -> None:
  if not isinstance(column, _base.CategoricalColumn):
    raise ValueError(f"{what} needs a categorical column (made with "
                     f"categorical_column_with_*, bucketized_column or "
                     f"crossed_column); got {column!r}.")


def _check_embedding_args(dimension: int, combiner: str, initializer: Callable,
                          ckpt_to_load_from: str, tensor_name_in_ckpt: str,
                          what: str) -> None:
  if not isinstance(dimension, int) or dimension < 1:
    raise ValueError(f"Invalid dimension {dimension!r} for {what}; it must be "
                     "an int >= 1.")
  check_combiner(combiner, what)
  if initializer is not None and not callable(initializer):
    raise ValueError(f"initializer of {what} must be callable, e.g. "
                     f"flax.linen.initializers.normal(0.01); got {initializer!r}.")
  if (ckpt_to_load_from is None) != (tensor_name_in_ckpt is None):
    raise ValueError(f"{what}: must specify both ckpt_to_load_from and "
                     "tensor_name_in_ckpt or none of them.")
  if ckpt_to_load_from is not None:
    raise NotImplementedError(
        f"{what}: ckpt_to_load_from is not supported; warm-start the table "
        "instead: Estimator(..., warm_start_from=estlab.WarmStartSettings("
        "ckpt, vars_to_warm_start='.*embedding_weights')).")


@dataclasses.dataclass(frozen=True)
class EmbeddingColumn(_base.WrapsCategorical, _base.DenseColumn):
  """See ``embedding_column``."""

  categorical_column: _base.CategoricalColumn
  dimension: int
  combiner: str = "mean"
  initializer: Callable | None = _base.device_field(default=None)
  ckpt_to_load_from: str | None = None
  tensor_name_in_ckpt: str | None = None
  max_norm: float | None = None
  trainable: bool = True
  use_safe_embedding_lookup: bool = True

  @property
  def name(self) -> str:
    return f"{self.categorical_column.name}_embedding"

  @property
  def variable_shape(self) -> tuple:
    return (self.dimension,)


def embedding_column(categorical_column: _base.CategoricalColumn, dimension: int,
                     combiner: str = "mean", initializer: Callable | None = None,
                     ckpt_to_load_from: str | None = None,
                     tensor_name_in_ckpt: str | None = None,
                     max_norm: float | None = None, trainable: bool = True,
                     use_safe_embedding_lookup: bool = True) -> EmbeddingColumn:
  """A learned ``[num_buckets, dimension]`` table, as TF's ``embedding_column``.

  A row's embedding combines the rows of its ids: ``'sum'`` (weighted sum),
  ``'mean'`` (divided by the sum of weights) or ``'sqrtn'`` (by the root of
  the sum of squared weights); a row with no ids gives zeros. The table is the
  Flax parameter ``<column name>/embedding_weights``.

  Example:
    >>> from estlab import feature_column as fc
    >>> ids = fc.categorical_column_with_identity('video', 1000)
    >>> fc.embedding_column(ids, 16, combiner='sqrtn').name
    'video_embedding'

  Args:
    categorical_column: the ids to embed.
    dimension: width of each embedding.
    combiner: ``'mean'``, ``'sqrtn'`` or ``'sum'``.
    initializer: a JAX initializer ``init(key, shape, dtype)``; None is
      truncated normal with stddev ``1/sqrt(dimension)`` (TF's default).
    ckpt_to_load_from, tensor_name_in_ckpt: not supported (use
      ``estlab.WarmStartSettings``); both None.
    max_norm: clip each looked-up embedding to this L2 norm before combining.
    trainable: False stops gradients to the table.
    use_safe_embedding_lookup: accepted for compatibility; lookups always
      drop invalid ids (and non-positive weights unless ``'sum'``), as TF's
      safe lookup does.

  Raises:
    ValueError: a bad dimension, combiner or initializer, or a
      non-categorical column.
  """
  what = f"embedding_column({getattr(categorical_column, 'name', categorical_column)!r})"
  _check_categorical(categorical_column, what)
  _check_embedding_args(dimension, combiner, initializer, ckpt_to_load_from,
                        tensor_name_in_ckpt, what)
  return EmbeddingColumn(categorical_column, dimension, combiner, initializer,
                         ckpt_to_load_from, tensor_name_in_ckpt, max_norm,
                         bool(trainable), bool(use_safe_embedding_lookup))


@dataclasses.dataclass(frozen=True)
class SharedEmbeddingColumn(_base.WrapsCategorical, _base.DenseColumn):
  """See ``shared_embeddings``; one of the columns sharing a table."""

  categorical_column: _base.CategoricalColumn
  dimension: int
  combiner: str = "mean"
  initializer: Callable | None = _base.device_field(default=None)
  shared_embedding_collection_name: str = ""
  max_norm: float | None = None
  trainable: bool = True
  use_safe_embedding_lookup: bool = True

  @property
  def name(self) -> str:
    return f"{self.categorical_column.name}_shared_embedding"

  @property
  def variable_shape(self) -> tuple:
    return (self.dimension,)


def _unweighted(column: _base.CategoricalColumn) -> _base.CategoricalColumn:
  while isinstance(column, WeightedCategoricalColumn):
    column = column.categorical_column
  return column


def shared_embeddings(categorical_columns: list, dimension: int,
                      combiner: str = "mean", initializer: Callable | None = None,
                      shared_embedding_collection_name: str | None = None,
                      ckpt_to_load_from: str | None = None,
                      tensor_name_in_ckpt: str | None = None,
                      max_norm: float | None = None, trainable: bool = True,
                      use_safe_embedding_lookup: bool = True) -> list:
  """Embedding columns sharing one table, as ``tf.feature_column.shared_embeddings``.

  The table is one Flax parameter named ``shared_embedding_collection_name``
  (by default the sorted column names joined by ``_`` plus
  ``_shared_embedding``), shared by every column of the list within one
  ``DenseFeatures`` or ``LinearModel``. Arguments are ``embedding_column``'s.

  Example:
    >>> from estlab import feature_column as fc
    >>> a = fc.categorical_column_with_identity('watched', 100)
    >>> b = fc.categorical_column_with_identity('impressed', 100)
    >>> pair = fc.shared_embeddings([a, b], 8)
    >>> [c.name for c in pair], pair[0].shared_embedding_collection_name
    (['watched_shared_embedding', 'impressed_shared_embedding'], 'impressed_watched_shared_embedding')

  Returns:
    A list of ``SharedEmbeddingColumn``, in the order of ``categorical_columns``.

  Raises:
    ValueError: the columns are not categorical, of different types or
      numbers of buckets, or other arguments are bad.
  """
  columns = list(categorical_columns or ())
  what = f"shared_embeddings({[getattr(c, 'name', c) for c in columns]!r})"
  if not columns:
    raise ValueError(f"{what}: categorical_columns must not be empty.")
  for column in columns:
    _check_categorical(column, what)
  _check_embedding_args(dimension, combiner, initializer, ckpt_to_load_from,
                        tensor_name_in_ckpt, what)
  ordered = sorted(columns, key=lambda c: c.name)
  first = ordered[0]
  for column in ordered[1:]:
    if type(_unweighted(column)) is not type(_unweighted(first)):
      raise ValueError(
          f"{what}: all categorical_columns must have the same type (or be "
          f"weighted columns of it); {column.name!r} is "
          f"{type(_unweighted(column)).__name__}, {first.name!r} is "
          f"{type(_unweighted(first)).__name__}.")
    if column.num_buckets != first.num_buckets:
      raise ValueError(
          f"{what}: all categorical_columns must have the same number of "
          f"buckets; {column.name!r} has {column.num_buckets}, {first.name!r} "
          f"has {first.num_buckets}.")
  name = shared_embedding_collection_name or (
      "_".join(c.name for c in ordered) + "_shared_embedding")
  return [SharedEmbeddingColumn(c, dimension, combiner, initializer, name,
                                max_norm, bool(trainable),
                                bool(use_safe_embedding_lookup))
          for c in columns]


@dataclasses.dataclass(frozen=True)
class IndicatorColumn(_base.WrapsCategorical, _base.DenseColumn):
  """See ``indicator_column``."""

  categorical_column: _base.CategoricalColumn

  @property
  def name(self) -> str:
    return f"{self.categorical_column.name}_indicator"

  @property
  def variable_shape(self) -> tuple:
    return (1, self.categorical_column.num_buckets)  # TF's [1, num_buckets]


def indicator_column(categorical_column: _base.CategoricalColumn) -> IndicatorColumn:
  """Multi-hot counts ``[B, num_buckets]``, as ``tf.feature_column.indicator_column``.

  Each id adds 1 to its slot (its weight, for a weighted column): ``['bob',
  'bob']`` gives 2 in bob's slot.

  Example:
    >>> from estlab import feature_column as fc
    >>> name = fc.categorical_column_with_vocabulary_list('name', ['bob', 'wanda'])
    >>> fc.indicator_column(name).name
    'name_indicator'

  Raises:
    ValueError: categorical_column is not a categorical column.
  """
  _check_categorical(categorical_column, "indicator_column")
  return IndicatorColumn(categorical_column)
