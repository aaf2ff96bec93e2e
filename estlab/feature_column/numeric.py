"""Numeric columns: ``numeric_column`` and ``bucketized_column``, as TF's.

On the host a numeric feature becomes float32 ``[B, prod(shape)]`` with NaN
replaced by ``default_value``; ``normalizer_fn`` runs on the device (in
``DenseFeatures`` / ``LinearModel``, under ``jit``). Bucketizing runs on the
host with ``np.searchsorted``: bucket ``i`` holds ``[b[i-1], b[i])``.

Example:
  >>> from estlab import feature_column as fc
  >>> age = fc.bucketized_column(fc.numeric_column('age'), [18, 65])
  >>> fc.encode([age], {'age': np.array([17., 18., 70.])})['age_bucketized']['ids'].ravel().tolist()
  [0, 1, 2]
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np
import pandas as pd

from estlab.feature_column import _base, _host

__all__ = ["NumericColumn", "BucketizedColumn", "numeric_column",
           "bucketized_column"]


@dataclasses.dataclass(frozen=True)
class NumericColumn(_base.KeyedColumn, _base.DenseColumn):
  """See ``numeric_column``."""

  key: str
  shape: tuple = (1,)
  default_value: Any = None
  dtype: str = "float32"
  normalizer_fn: Callable | None = _base.device_field(default=None)

  @property
  def parse_example_spec(self) -> dict:
    return {self.key: _base.FixedLenFeature(self.shape, self.dtype,
                                            self.default_value)}

  @property
  def variable_shape(self) -> tuple:
    return self.shape

  def _host_values(self, features: Any, cache: dict) -> np.ndarray:
    """float32 ``[B, prod(shape)]``, NaN replaced by ``default_value``."""
    key = ("values", id(self))
    if key not in cache:
      cache[key] = self._read(features)
    return cache[key]

  def _read(self, features: Any) -> np.ndarray:
    arr = _host._as_array(_host.get_feature(features, self.key, self.name))  # pylint: disable=protected-access
    if arr.ndim == 0:
      raise _base.FeatureValueError(f"Feature {self.key!r} is a scalar {arr!r}; features "
                       "need one row per example, e.g. np.array([...]).")
    if arr.dtype.kind in "OUS":
      values = arr.astype(object)
      na = pd.isna(values)
      numbers = pd.api.types.infer_dtype(values[~na].ravel(), skipna=True)
      if numbers not in ("integer", "floating", "mixed-integer-float",
                         "boolean", "decimal", "empty"):
        present = values[~na].ravel()
        sample = next((v for v in present if isinstance(v, bool) or
                       not isinstance(v, (int, float, np.number))),
                      present[0])
        raise _base.FeatureTypeError(
            f"numeric_column {self.key!r} got a non-number, {sample!r} "
            f"({type(sample).__name__}). Use a categorical column for text "
            "(e.g. categorical_column_with_vocabulary_list), or convert the "
            "feature with .astype(float).")
      arr = np.where(na, np.nan, values)
    size = math.prod(self.shape)
    with np.errstate(over="ignore"):  # float32's inf, as TF's cast
      flat = arr.reshape(arr.shape[0], math.prod(arr.shape[1:])).astype(
          np.float32)
    if flat.shape[1] != size:
      raise _base.FeatureValueError(
          f"numeric_column {self.key!r} has shape {self.shape!r} ({size} values "
          f"per example), but the feature has shape {arr.shape!r}. Pass "
          f"numeric_column({self.key!r}, shape={arr.shape[1:] or (1,)!r}).")
    nan = np.isnan(flat)
    if nan.any():
      if self.default_value is None:
        row = int(np.argwhere(nan)[0][0])
        raise _base.FeatureValueError(
            f"numeric_column {self.key!r} has a missing value (NaN) in row "
            f"{row} of the batch and no default. Pass numeric_column("
            f"{self.key!r}, default_value=...) or fill the feature first.")
      default = np.asarray(self.default_value, np.float32).reshape(1, size)
      flat = np.where(nan, default, flat)
    return flat


def _check_default_value(shape: tuple, default_value: Any, dtype: str,
                         key: str) -> Any:
  """TF's rule: a number fills ``shape``; a nested sequence must match it."""
  if default_value is None:
    return None
  if hasattr(default_value, "tolist"):
    default_value = default_value.tolist()
  if isinstance(default_value, (int, float)):
    if isinstance(default_value, float) and _base.is_integer(dtype):
      raise TypeError(f"numeric_column {key!r}: default_value {default_value!r} "
                      f"is not compatible with dtype {dtype!r}.")
    filled = np.full(shape, default_value).tolist()
  elif isinstance(default_value, (list, tuple)):
    if np.shape(default_value) != tuple(shape):
      raise ValueError(
          f"numeric_column {key!r}: default_value {default_value!r} has shape "
          f"{np.shape(default_value)!r}, but shape is {tuple(shape)!r}.")
    filled = np.asarray(default_value).tolist()
  else:
    raise TypeError(f"numeric_column {key!r}: default_value {default_value!r} "
                    f"must be a number or a nested sequence of shape {shape!r}.")
  return _tuples(filled)


def _tuples(value: Any) -> Any:
  return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def numeric_column(key: str, shape: Any = (1,), default_value: Any = None,
                   dtype: Any = np.float32,
                   normalizer_fn: Callable | None = None) -> NumericColumn:
  """Real-valued features, as ``tf.feature_column.numeric_column``.

  Example:
    >>> price = numeric_column('price', default_value=0.0,
    ...                        normalizer_fn=lambda x: (x - 3.0) / 4.2)
    >>> price.name, price.default_value
    ('price', (0.0,))

  Args:
    key: the feature's name, also the column's name.
    shape: an int or a tuple of ints; each example has ``prod(shape)`` values.
    default_value: replaces NaN (missing) values: a number (every element) or
      a nested sequence of ``shape``. None: a NaN is an error.
    dtype: the feature's type; integer or floating (a numpy dtype, a name
      such as ``'float32'``, or ``tf.float32``).
    normalizer_fn: applied on the device to ``[B, *shape]`` values before
      they are used, e.g. ``lambda x: (x - 3.0) / 4.2`` (jnp-compatible).

  Raises:
    TypeError: a dimension is not an int, normalizer_fn is not callable, or
      default_value does not fit dtype.
    ValueError: a dimension is < 1, or dtype is not integer or floating.
  """
  key = _base.check_key(key)
  shape = tuple(shape) if isinstance(shape, (list, tuple)) else (shape,)
  for dim in shape:
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
      raise TypeError(f"shape dimensions must be integers; numeric_column "
                      f"{key!r} got shape {shape!r}.")
    if dim < 1:
      raise ValueError(f"shape dimensions must be > 0; numeric_column {key!r} "
                       f"got shape {shape!r}.")
  shape = tuple(int(d) for d in shape)
  dtype = _base.canonical_dtype(dtype, key)
  if not (_base.is_integer(dtype) or _base.is_floating(dtype)):
    raise ValueError(f"dtype must be convertible to float; numeric_column "
                     f"{key!r} got dtype {dtype!r}. Use e.g. 'float32'.")
  if normalizer_fn is not None and not callable(normalizer_fn):
    raise TypeError(f"normalizer_fn must be callable; numeric_column {key!r} "
                    f"got {normalizer_fn!r}.")
  return NumericColumn(key, shape, _check_default_value(shape, default_value,
                                                        dtype, key),
                       dtype, normalizer_fn)


@dataclasses.dataclass(frozen=True)
class BucketizedColumn(_base.DenseColumn, _base.CategoricalColumn):
  """See ``bucketized_column``."""

  source_column: NumericColumn
  boundaries: tuple

  @property
  def name(self) -> str:
    return f"{self.source_column.name}_bucketized"

  @property
  def parents(self) -> list:
    return [self.source_column]

  @property
  def parse_example_spec(self) -> dict:
    return self.source_column.parse_example_spec

  @property
  def variable_shape(self) -> tuple:
    return tuple(self.source_column.shape) + (len(self.boundaries) + 1,)

  @property
  def num_buckets(self) -> int:
    return (len(self.boundaries) + 1) * self.source_column.shape[0]

  def _host_ids(self, features: Any, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    source = self.source_column
    values = source._host_values(features, cache)  # pylint: disable=protected-access
    if source.normalizer_fn is not None:  # TF bucketizes normalized values
      shaped = values.reshape((values.shape[0],) + tuple(source.shape))
      values = np.asarray(source.normalizer_fn(shaped), np.float32).reshape(
          values.shape)
    boundaries = np.asarray(self.boundaries, dtype=np.float32)
    ids = np.searchsorted(boundaries, values, side="right").astype(np.int64)
    ids += np.arange(values.shape[1]) * (len(self.boundaries) + 1)
    return ids, np.ones(ids.shape, np.float32)


def bucketized_column(source_column: NumericColumn, boundaries: Any
                      ) -> BucketizedColumn:
  """Buckets of a numeric column, as ``tf.feature_column.bucketized_column``.

  ``boundaries=[0., 1., 2.]`` makes buckets ``(-inf, 0)``, ``[0, 1)``,
  ``[1, 2)`` and ``[2, inf)``: a value equal to a boundary goes to the bucket
  on its right. Element ``j`` of a shape ``(n,)`` column uses ids
  ``j * (len(boundaries) + 1) + bucket``. A ``normalizer_fn`` on the source
  is applied (on the host) before bucketizing, as in TF.

  Example:
    >>> b = bucketized_column(numeric_column('price'), [0., 1., 2.])
    >>> b.name, b.num_buckets
    ('price_bucketized', 4)

  Raises:
    ValueError: source_column is not a one-dimensional numeric_column, or
      boundaries are empty, not a list/tuple, or not sorted ascending.
  """
  if not isinstance(source_column, NumericColumn):
    raise ValueError(f"source_column must be a column made with "
                     f"numeric_column(); got {source_column!r}.")
  if len(source_column.shape) > 1:
    raise ValueError(f"source_column must be one-dimensional; "
                     f"{source_column.key!r} has shape {source_column.shape!r}. "
                     f"Use numeric_column({source_column.key!r}, "
                     f"shape={math.prod(source_column.shape)}) instead.")
  if not isinstance(boundaries, (list, tuple)) or not boundaries:
    raise ValueError(f"boundaries of bucketized_column({source_column.key!r}) "
                     f"must be a non-empty sorted list; got {boundaries!r}.")
  boundaries = tuple(float(b) for b in boundaries)
  if any(a >= b for a, b in zip(boundaries, boundaries[1:])):
    raise ValueError(f"boundaries of bucketized_column({source_column.key!r}) "
                     f"must be sorted ascending, without repeats; got "
                     f"{boundaries!r}. Pass sorted(set(boundaries)).")
  return BucketizedColumn(source_column, boundaries)
