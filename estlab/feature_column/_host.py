"""Host-side helpers: raw feature arrays as cells, missing values, stable hashes.

A feature in a batch is a numpy array with one row per example: 1-D (one
value per example), 2-D (several values, padded with ``''``, ``-1`` or NaN)
or a 1-D object array whose cells are lists, tuples or arrays (any number of
values per example; only these ragged cells are read with a loop per row).
Missing values are ``''``, None, NaN and pandas' NA for text, ``-1`` for
integers and NaN for floats: they are dropped, as TF drops them.

Hashed ids are TF's: ``_fingerprint`` computes TF's FarmHash
``Fingerprint64`` and ``FingerprintCat64`` on the host (integers hashed into
buckets as their decimal strings, as TF's ``as_string``); Python's salted
``hash()`` is never used, so ids are the same in every process and machine.

Example:
  >>> cells = read_cells(np.array([['a', ''], ['b', 'c']], object), 'k')
  >>> as_text(cells, 'k', allow_ints=False)[1].tolist()
  [[True, False], [True, True]]
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping, NamedTuple

import numpy as np
import pandas as pd

from estlab.feature_column._base import (FeatureTypeError, FeatureValueError,
                                         MissingFeatureError)

_SEQUENCES = (list, tuple, np.ndarray)
_NUMBER_KINDS = ("integer", "floating", "mixed-integer-float", "decimal")
_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


def get_feature(features: Mapping, key: str, column: str) -> Any:
  """``features[key]``, or MissingFeatureError naming the column and the keys."""
  try:
    return features[key]
  except KeyError:
    raise MissingFeatureError(
        f"Column {column!r} reads feature {key!r}, which is not in the batch; "
        f"its features are {sorted(map(str, features))!r}. Add {key!r} to the "
        "input_fn's features, or drop the column.") from None


def _infer(values: np.ndarray) -> str:
  """pandas' inferred type of the values, skipping None, NaN and NA."""
  return pd.api.types.infer_dtype(values.ravel(), skipna=True)


def _infer_object(values: np.ndarray) -> str:
  """``_infer``, or ``'string!'`` when all values are str (no None/NaN/NA)."""
  strict = pd.api.types.infer_dtype(values.ravel(), skipna=False)
  return "string!" if strict == "string" else _infer(values)


def _as_array(value: Any) -> np.ndarray:
  if isinstance(value, np.ndarray):
    return value
  try:
    return np.asarray(value)
  except ValueError:  # ragged lists
    cells = list(value)
    arr = np.empty(len(cells), dtype=object)
    arr[:] = cells
    return arr


class Cells(NamedTuple):
  """A feature as ``[B, K]`` cells.

  Attributes:
    values: ``[B, K]`` numbers, or objects (text).
    filled: ``[B, K]`` bool; False only in the padding of ragged rows.
    kind: for object values, pandas' ``infer_dtype`` of the filled cells
      (skipping None and NaN), ``'string!'`` when all are str; None for
      numeric arrays.
  """

  values: np.ndarray
  filled: np.ndarray
  kind: str | None


def read_cells(value: Any, key: str) -> Cells:
  """The cells of one feature: one row per example, padded to ``[B, K]``."""
  return read_cells_and_layout(value, key)[0]


def read_cells_and_layout(value: Any, key: str) -> tuple[Cells, bool]:
  """``(read_cells(value), ragged)``: ragged when cells held lists of values.

  TF would hold a ragged feature as a SparseTensor (as ``VarLenFeature``
  parses it) and a rectangular one as a dense Tensor; ``crossed_column``
  orders and keeps values by that difference.
  """
  arr = _as_array(value)
  if arr.ndim == 0:
    raise FeatureValueError(f"Feature {key!r} is a scalar {arr!r}; features need one "
                     "row per example, e.g. np.array([...]).")
  if arr.dtype.kind == "S":
    arr = _decode(arr, key)
  elif arr.dtype.kind == "U":
    arr = arr.astype(object)
  kind = _infer_object(arr) if arr.dtype == object else None
  if arr.ndim == 1 and kind is not None and kind not in (
      "string!", "string", "empty", "bytes", "boolean", *_NUMBER_KINDS):
    return _ragged(arr), True
  arr = arr.reshape(arr.shape[0], int(np.prod(arr.shape[1:])))
  return Cells(arr, np.ones(arr.shape, dtype=bool), kind), False


def _ragged(arr: np.ndarray) -> Cells:
  """Cells holding lists become rows padded to the longest one."""
  cells = [c if isinstance(c, _SEQUENCES) else (c,) for c in arr]
  lengths = np.fromiter(map(len, cells), dtype=np.int64, count=len(cells))
  width = max(int(lengths.max(initial=0)), 1)
  flat = np.empty(int(lengths.sum()), dtype=object)
  flat[:] = list(itertools.chain.from_iterable(cells))
  rows = np.repeat(np.arange(len(cells)), lengths)
  cols = np.arange(flat.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
  values = np.full((len(cells), width), None, dtype=object)
  filled = np.zeros((len(cells), width), dtype=bool)
  values[rows, cols] = flat
  filled[rows, cols] = True
  return Cells(values, filled, _infer(flat))


def _first(values: np.ndarray, mask: np.ndarray) -> Any:
  return values[mask].ravel()[0]


def _missing_text(values: np.ndarray, kind: str) -> np.ndarray:
  if kind == "string!":  # all str: only '' is missing
    return values == ""
  na = pd.isna(values)
  if na.any():
    values = np.where(na, "", values)
  return na | (values == "")


def is_numeric(cells: Cells) -> bool:
  """Whether the cells hold numbers (or booleans) rather than text."""
  return (cells.values.dtype.kind in "biuf"
          or cells.kind in ("boolean", *_NUMBER_KINDS))


def as_int(cells: Cells, column: str, *, truncate: bool = False,
           keep_minus_one: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """``(int64 values, present)``; -1 and NaN are missing.

  With ``truncate`` floats are cut toward zero (``22.9`` -> 22), as TF's
  ``crossed_column`` casts a float key to int64; else a non-integral float
  is an error. With ``keep_minus_one`` only NaN / None are missing (TF
  crosses a dense feature's -1 as a value).

  Raises:
    TypeError: text, booleans or non-integral floats, naming a sample value.
  """
  values, filled, kind = cells
  missing = ~filled
  if values.dtype.kind == "O":
    na = pd.isna(values) | ~filled
    if kind not in ("empty", *_NUMBER_KINDS):
      bad = np.vectorize(lambda v: isinstance(v, bool) or not isinstance(
          v, (int, float, np.number)), otypes=[bool])(values) & ~na
      sample = _first(values, bad)
      raise FeatureTypeError(
          f"Column {column!r} expects integers, got {sample!r} "
          f"({type(sample).__name__}). Use a string column for text "
          "(categorical_column_with_vocabulary_list or _hash_bucket), or "
          "convert the feature with .astype(int).")
    if kind == "integer":  # exact: no float64 detour (ids past 2**53)
      exact = np.full(values.shape, -1, np.int64)
      try:
        exact[~na] = values[~na].astype(np.int64)
      except OverflowError:
        big = next(v for v in values[~na].ravel() if not _INT64_MIN <= v
                   <= _INT64_MAX)
        _beyond_int64(column, big)
      values, missing = exact, na
    else:
      values = np.where(na, np.nan, values).astype(np.float64)
  if values.dtype.kind == "f":
    nan = np.isnan(values) | ~filled
    missing = nan
    if truncate:
      values = np.trunc(values)
    with np.errstate(invalid="ignore"):
      huge = ~nan & ~(np.abs(values) < 2.0**63)  # inf too
    if huge.any():
      _beyond_int64(column, _first(values, huge))
    fractional = ~nan & (values != np.round(values))
    if fractional.any():
      raise FeatureTypeError(
          f"Column {column!r} expects integers, got "
          f"{_first(values, fractional)!r}. Round or bucketize the feature "
          "(bucketized_column), or use a numeric_column for real values.")
    values = np.where(nan, -1, values)
  elif values.dtype.kind == "u" and values.size and values.max() > _INT64_MAX:
    _beyond_int64(column, values.max())
  elif values.dtype.kind not in "iu":
    raise FeatureTypeError(
        f"Column {column!r} expects integers, got dtype {values.dtype} (e.g. "
        f"{values.ravel()[:1].tolist()!r}). Convert it with .astype(int).")
  ints = values.astype(np.int64)
  if keep_minus_one:
    return ints, ~missing
  return ints, filled & (ints != -1)


def _decode(values: np.ndarray, column: str) -> np.ndarray:
  """Bytes (an ``S`` or object array) as an object array of UTF-8 str."""
  try:
    if values.dtype.kind == "S":
      return np.char.decode(values, "utf-8").astype(object)
    return np.array([v.decode("utf-8") for v in values.ravel()],
                    dtype=object).reshape(values.shape)
  except UnicodeDecodeError as err:
    raise FeatureValueError(
        f"Column {column!r} got bytes that are not UTF-8 text: "
        f"{bytes(err.object)[:40]!r}. Text features are read as UTF-8 (as "
        "TF's string features); decode them first (e.g. b.decode('latin-1'))"
        " or use a column for numbers.", column=column,
        value=bytes(err.object)) from None


def _beyond_int64(column: str, value: Any) -> None:
  raise FeatureValueError(
      f"Column {column!r} expects integers (int64), got {value!r}. Replace "
      "it (NaN or -1 mark a missing value), bucketize the feature "
      "(bucketized_column), or use a numeric_column.", column=column,
      value=value)


def as_text(cells: Cells, column: str, *, allow_ints: bool,
            truncate: bool = False, keep_empty: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
  """``(object array of str, present)``; ``''``, None and NaN are missing.

  With ``allow_ints``, integers become their decimal strings (-1 missing);
  ``truncate`` cuts floats to integers first (``as_int``). With
  ``keep_empty``, ``''`` is a value (TF crosses a dense feature's ``''``).

  Raises:
    TypeError: numbers given to a text-only column, or non-text values.
  """
  values, filled, kind = cells
  if values.dtype.kind in "biuf" or kind in ("boolean", *_NUMBER_KINDS):
    if not allow_ints or values.dtype.kind == "b" or kind == "boolean":
      sample = values[filled].ravel()[:1].tolist()
      raise FeatureTypeError(
          f"Column {column!r} expects strings, got numbers such as {sample!r} "
          f"(dtype {values.dtype}). Convert them with .astype(str), or use an "
          "integer column (categorical_column_with_identity, or a vocabulary "
          "of ints).")
    ints, present = as_int(cells, column, truncate=truncate)
    text = np.full(ints.shape, "", dtype=object)
    text[present] = decimal_strings(ints[present])
    return text, present
  if keep_empty:
    present = filled if kind == "string!" else filled & ~pd.isna(values)
  else:
    present = filled & ~_missing_text(values, kind)
  is_bytes = np.vectorize(lambda v: isinstance(v, bytes), otypes=[bool])
  if kind == "bytes":
    values = values.copy()
    values[present] = _decode(values[present], column)
  elif kind == "mixed" and values.size and all(
      isinstance(v, (str, bytes)) for v in values[present]):
    values = values.copy()
    raw = present & is_bytes(values)
    values[raw] = _decode(values[raw], column)
  elif kind not in ("string!", "string", "empty"):
    bad = np.vectorize(lambda v: not isinstance(v, str), otypes=[bool])(values)
    sample = _first(values, bad & present)
    raise FeatureTypeError(
        f"Column {column!r} expects strings, got {sample!r} "
        f"({type(sample).__name__}). Convert the feature with .astype(str), "
        "or use a column for numbers.")
  return values, present


def as_float(cells: Cells, column: str) -> tuple[np.ndarray, np.ndarray]:
  """``(float32 values, present)``; NaN is missing.

  Raises:
    TypeError: text given where numbers are expected, naming a sample.
  """
  values, filled, kind = cells
  if values.dtype.kind == "O":
    na = pd.isna(values) | ~filled
    if kind not in ("empty", "boolean", *_NUMBER_KINDS):
      bad = np.vectorize(lambda v: isinstance(v, (str, bytes)), otypes=[bool])(
          values) & ~na
      sample = _first(values, bad) if bad.any() else values[~na].ravel()[0]
      raise FeatureTypeError(f"Column {column!r} expects numbers, got {sample!r}. "
                      "Convert the feature with .astype(float).")
    values = np.where(na, np.nan, values)
  elif values.dtype.kind not in "biuf":
    raise FeatureTypeError(f"Column {column!r} expects numbers, got dtype "
                    f"{values.dtype}. Convert it with .astype(float).")
  values = values.astype(np.float32)
  return values, filled & ~np.isnan(values)


def decimal_strings(ints: np.ndarray) -> np.ndarray:
  """Integers as an object array of their decimal strings (one str per value)."""
  codes, uniques = pd.factorize(ints)
  return np.asarray(uniques).astype(str).astype(object)[codes]


def lookup(index: pd.Index, values: np.ndarray) -> np.ndarray:
  """``index.get_indexer(values)`` as int64 (-1: not found), vectorised.

  Asks the index's hash engine directly when it has one (pandas 1.5 to 3):
  ``get_indexer`` first wraps ``values`` in a new Index, which costs more
  than the lookup on small batches. Falls back to the public method.
  """
  engine = getattr(index, "_engine", None)
  if engine is not None and index.is_unique:
    try:
      return np.asarray(engine.get_indexer(values), dtype=np.int64)
    except (TypeError, ValueError, AttributeError):
      pass
  return index.get_indexer(values).astype(np.int64)


def compact(ids: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Moves each row's values to the front: ``(int32 ids, float32 weights)``.

  The width is the most values in a row, rounded up to a power of two (and
  at most the input width), so a compiled step sees few distinct shapes.
  Padding has id -1 and weight 0.
  """
  valid = ids >= 0
  if ids.shape[1] > 1 and not valid.all():
    most = int(valid.sum(axis=1).max(initial=0))
    width = min(1 << max(most - 1, 0).bit_length(), ids.shape[1])
    order = np.argsort(~valid, axis=1, kind="stable")[:, :width]
    ids = np.take_along_axis(ids, order, axis=1)
    weights = np.take_along_axis(weights, order, axis=1)
    valid = np.take_along_axis(valid, order, axis=1)
  return (np.where(valid, ids, -1).astype(np.int32),
          np.where(valid, weights, 0).astype(np.float32))
