"""Identity, hash-bucket and weighted categorical columns, as TF's.

All run on the host and give integer ids: identity passes integers through,
hash buckets are TF's ``tf.strings.to_hash_bucket_fast``
(``Fingerprint64(value) % hash_bucket_size`` with FarmHash, see
``_fingerprint``; integers hashed as their decimal strings), so ids equal
TF's, and a weighted column pairs another column's ids with the values of a
weight feature.

Example:
  >>> from estlab import feature_column as fc
  >>> words = fc.categorical_column_with_hash_bucket('words', 100)
  >>> ids = fc.encode([words], {'words': np.array(['a', 'b', 'a'], object)})['words']['ids']
  >>> bool(ids[0, 0] == ids[2, 0])
  True
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from estlab.feature_column import _base, _fingerprint, _host

__all__ = ["IdentityCategoricalColumn", "HashedCategoricalColumn",
           "WeightedCategoricalColumn", "categorical_column_with_identity",
           "categorical_column_with_hash_bucket", "weighted_categorical_column"]


@dataclasses.dataclass(frozen=True)
class IdentityCategoricalColumn(_base.KeyedColumn,
                                _base.CategoricalColumn):
  """See ``categorical_column_with_identity``."""

  key: str
  number_buckets: int
  default_value: int | None = None

  @property
  def parse_example_spec(self) -> dict:
    return {self.key: _base.VarLenFeature("int64")}

  @property
  def num_buckets(self) -> int:
    return self.number_buckets

  def _host_ids(self, features: Any, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    del cache
    cells, ragged = _host.read_cells_and_layout(
        _host.get_feature(features, self.key, self.name), self.key)
    # TF drops a dense feature's -1 before the default; a ragged feature is
    # TF's SparseTensor, whose -1 is a value and takes the default.
    values, present = _host.as_int(
        cells, self.name,
        keep_minus_one=ragged and self.default_value is not None)
    ids = np.where(present, values, -1)
    out_of_range = present & ((values < 0) | (values >= self.number_buckets))
    if out_of_range.any():
      if self.default_value is None:
        row, _ = np.argwhere(out_of_range)[0]
        value = int(values[out_of_range][0])
        raise _base.FeatureValueError(
            f"categorical_column_with_identity {self.key!r} got {value!r} "
            f"(row {int(row)} of the batch), outside [0, "
            f"{self.number_buckets}); -1 and NaN mark a missing value. Pass "
            f"categorical_column_with_identity({self.key!r}, num_buckets=..., "
            f"default_value=...) to map such values to one id, a larger "
            f"num_buckets, or replace them with -1 to drop them.",
            column=self.name, value=value, row=int(row))
      ids[out_of_range] = self.default_value
    return ids, np.ones(ids.shape, dtype=np.float32)


def categorical_column_with_identity(key: str, num_buckets: int,
                                     default_value: int | None = None
                                     ) -> IdentityCategoricalColumn:
  """Integer features used as their own ids, as TF's function of this name.

  Values in ``[0, num_buckets)`` are their own id; -1 (and NaN) is missing
  and dropped. Other values become ``default_value`` (in a ragged feature,
  TF's SparseTensor, -1 does too, as in TF). Without ``default_value``, any
  other value is a ``FeatureValueError`` naming it: TF 2.15 drops negative
  values silently (and ids ``>= num_buckets`` fail only in linear and
  embedding columns, deep in the step).

  Example:
    >>> video = categorical_column_with_identity('video_id', 1000, default_value=0)
    >>> video.name, video.num_buckets
    ('video_id', 1000)

  Raises:
    ValueError: num_buckets < 1, or default_value outside [0, num_buckets).
      (When a batch is encoded: ``FeatureValueError``, a ValueError, for a
      value outside [0, num_buckets) without ``default_value``.)
  """
  key = _base.check_key(key)
  if not isinstance(num_buckets, (int, np.integer)) or num_buckets < 1:
    raise ValueError(f"num_buckets {num_buckets!r} < 1, column {key!r}; pass "
                     "the number of distinct ids (an int >= 1).")
  if default_value is not None and not 0 <= default_value < num_buckets:
    raise ValueError(f"default_value {default_value!r} not in range [0, "
                     f"{num_buckets}), column {key!r}.")
  return IdentityCategoricalColumn(
      key, int(num_buckets), None if default_value is None else int(default_value))


@dataclasses.dataclass(frozen=True)
class HashedCategoricalColumn(_base.KeyedColumn,
                              _base.CategoricalColumn):
  """See ``categorical_column_with_hash_bucket``."""

  key: str
  hash_bucket_size: int
  dtype: str = "string"

  @property
  def parse_example_spec(self) -> dict:
    return {self.key: _base.VarLenFeature(self.dtype)}

  @property
  def num_buckets(self) -> int:
    return self.hash_bucket_size

  def _host_ids(self, features: Any, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    del cache
    cells = _host.read_cells(
        _host.get_feature(features, self.key, self.name), self.key)
    if self.dtype == "string" and not _host.is_numeric(cells):
      values, present = _host.as_text(cells, self.name, allow_ints=False)
    else:  # hashed as decimal strings (TF's as_string), factorized first
      values, present = _host.as_int(cells, self.name)
    ids = np.full(values.shape, -1, dtype=np.int64)
    ids[present] = _fingerprint.hash_bucket(values[present],
                                            self.hash_bucket_size)
    return ids, np.ones(ids.shape, dtype=np.float32)


def categorical_column_with_hash_bucket(key: str, hash_bucket_size: int,
                                        dtype: Any = "string"
                                        ) -> HashedCategoricalColumn:
  """Ids by hashing, ``hash(value) % hash_bucket_size``, as TF's function.

  The ids are TF's: ``Fingerprint64(value) % hash_bucket_size`` with
  FarmHash (``tf.strings.to_hash_bucket_fast``), the same in every process
  and machine; integers are hashed as their decimal strings, as TF's
  ``as_string``, so ``7`` and ``'7'`` share an id.

  Example:
    >>> keywords = categorical_column_with_hash_bucket('keywords', 10_000)
    >>> keywords.num_buckets
    10000

  Raises:
    ValueError: hash_bucket_size is None or < 1, or dtype is neither string
      nor integer.
  """
  key = _base.check_key(key)
  if hash_bucket_size is None:
    raise ValueError(f"hash_bucket_size must be set; column {key!r}.")
  if not isinstance(hash_bucket_size, (int, np.integer)) or hash_bucket_size < 1:
    raise ValueError(f"hash_bucket_size must be at least 1; column {key!r} got "
                     f"{hash_bucket_size!r}.")
  dtype = _base.canonical_dtype(dtype, key)
  if dtype != "string" and not _base.is_integer(dtype):
    raise ValueError(f"dtype of column {key!r} must be string or integer; got "
                     f"{dtype!r}.")
  return HashedCategoricalColumn(key, int(hash_bucket_size), dtype)


@dataclasses.dataclass(frozen=True)
class WeightedCategoricalColumn(_base.CategoricalColumn):
  """See ``weighted_categorical_column``."""

  categorical_column: _base.CategoricalColumn
  weight_feature_key: str
  dtype: str = "float32"

  @property
  def name(self) -> str:
    return f"{self.categorical_column.name}_weighted_by_{self.weight_feature_key}"

  @property
  def parents(self) -> list:
    return [self.categorical_column, self.weight_feature_key]

  @property
  def parse_example_spec(self) -> dict:
    config = dict(self.categorical_column.parse_example_spec)
    if self.weight_feature_key in config:
      raise ValueError(f"Parse config {config[self.weight_feature_key]!r} "
                       f"already exists for {self.weight_feature_key!r}.")
    config[self.weight_feature_key] = _base.VarLenFeature(self.dtype)
    return config

  @property
  def num_buckets(self) -> int:
    return self.categorical_column.num_buckets

  def _host_ids(self, features: Any, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    ids, _ = _base.cached_ids(self.categorical_column, features, cache)
    cells = _host.read_cells(
        _host.get_feature(features, self.weight_feature_key, self.name),
        self.weight_feature_key)
    weights, present = _host.as_float(cells, self.name)
    if weights.shape != ids.shape:
      raise _base.FeatureValueError(
          f"Column {self.name!r}: weights {self.weight_feature_key!r} have "
          f"shape {weights.shape!r} per batch, but the ids of "
          f"{self.categorical_column.name!r} have {ids.shape!r}; give one "
          "weight per value, in the same layout.")
    unweighted = (ids >= 0) & ~present
    if unweighted.any():
      row = int(np.argwhere(unweighted)[0][0])
      raise _base.FeatureValueError(
          f"Column {self.name!r}: row {row} has a value of "
          f"{self.categorical_column.name!r} without a weight (NaN or absent "
          f"in {self.weight_feature_key!r}). Give every value a weight.")
    keep = (ids >= 0) & (weights != 0)  # TF drops zero weights
    return np.where(keep, ids, -1), np.where(keep, weights, 0).astype(np.float32)


def weighted_categorical_column(categorical_column: _base.CategoricalColumn,
                                weight_feature_key: str, dtype: Any = "float32"
                                ) -> WeightedCategoricalColumn:
  """Gives each id of a categorical column a weight, as TF's function.

  The feature ``weight_feature_key`` holds one number per value of the
  categorical feature, in the same layout (same shape, or the same list
  lengths). Zero weights drop their value.

  Example:
    >>> terms = categorical_column_with_hash_bucket('terms', 1000)
    >>> weighted_categorical_column(terms, 'frequencies').name
    'terms_weighted_by_frequencies'

  Raises:
    ValueError: categorical_column is not categorical, or dtype is not an
      integer or floating type.
  """
  if not isinstance(categorical_column, _base.CategoricalColumn):
    raise ValueError(f"categorical_column must be a categorical column (made "
                     f"with categorical_column_with_*); got {categorical_column!r}.")
  weight_feature_key = _base.check_key(weight_feature_key, "weight_feature_key")
  dtype = _base.canonical_dtype(dtype, weight_feature_key)
  if not (_base.is_integer(dtype) or _base.is_floating(dtype)):
    raise ValueError(f"dtype {dtype!r} of weighted column "
                     f"{categorical_column.name!r} is not convertible to float.")
  return WeightedCategoricalColumn(categorical_column, weight_feature_key, dtype)
