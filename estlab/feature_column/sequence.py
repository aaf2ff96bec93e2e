"""Sequence columns: one value (or id) per time step, as ``tf.feature_column.sequence_*``.

A sequence feature holds, per example, a list of any length: a numpy object
array (or a Python list) of lists/arrays, or a 2-D array whose missing
values (``''``, None, NaN, -1 for integer ids) end the shorter rows. TF
reads such features as SparseTensors; here they are padded on the host.
An example's length is one past its last present value, as TF's
``sequence_length_from_sparse_tensor`` counts it (a missing value inside a
sequence is a step with no value: zeros, or no id).

``encode`` gives each sequence column ``{'ids': int32 [B, T]}`` (categorical;
-1: no id) or ``{'values': float32 [B, T, prod(shape)]}`` (numeric; missing
values are ``default_value``), with ``'sequence_length': int32 [B]``. The
padded length ``T`` is the batch's longest sequence rounded up to a power of
two (``padded_length``), so a compiled step sees one shape per length
bucket, not one per batch. The Flax module ``SequenceFeatures``
(``sequence_layers``) turns them into ``[B, T, D]`` inputs for an RNN;
wrap a sequence categorical column in ``embedding_column`` or
``indicator_column`` (per step, as TF).

Example:
  >>> import numpy as np
  >>> from estlab import feature_column as fc
  >>> tokens = fc.sequence_categorical_column_with_vocabulary_list('tok', ['a', 'b'])
  >>> out = fc.encode([fc.indicator_column(tokens)],
  ...                 {'tok': np.array([['a', 'b', 'a'], ['b']], object)})
  >>> out['tok']['ids'].tolist(), out['tok']['sequence_length'].tolist()
  ([[0, 1, 0, -1], [1, -1, -1, -1]], [3, 1])
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np
import pandas as pd

from estlab.feature_column import _base, _host, categorical, vocabulary

__all__ = ["SequenceCategoricalColumn", "SequenceNumericColumn",
           "sequence_categorical_column_with_identity",
           "sequence_categorical_column_with_hash_bucket",
           "sequence_categorical_column_with_vocabulary_list",
           "sequence_categorical_column_with_vocabulary_file",
           "sequence_numeric_column", "padded_length", "pad_steps",
           "is_sequence"]

SEQUENCE_LENGTH = "sequence_length"


def padded_length(longest: int) -> int:
  """The padded time axis for a batch whose longest sequence is ``longest``:
  the next power of two (at least 1), so lengths 5 to 8 share one shape.

  Example:
    >>> [padded_length(n) for n in (0, 1, 3, 5, 8, 9)]
    [1, 1, 4, 8, 8, 16]
  """
  return 1 << max(int(longest) - 1, 0).bit_length()


def pad_steps(value: Any, steps: int, fill: Any) -> np.ndarray:
  """Per-example lists (or a ``[B, W]`` array) as ``[B, steps]``, cut or
  padded with ``fill``: a per-step label, weight or mask beside padded
  sequence features.

  Example:
    >>> pad_steps([[1, 0, 1], [0]], 4, -1).tolist()
    [[1, 0, 1, -1], [0, -1, -1, -1]]
  """
  arr = _host._as_array(value)  # pylint: disable=protected-access
  if arr.dtype == object and arr.ndim == 1 and any(
      isinstance(c, (list, tuple, np.ndarray)) for c in arr):
    rows = [np.asarray(c if isinstance(c, (list, tuple, np.ndarray)) else [c]
                       ).reshape(-1) for c in arr]
    kind = np.result_type(*[r.dtype for r in rows if r.size] or [type(fill)])
    out = np.full((len(rows), steps), fill,
                  dtype=object if kind == object or kind.kind in "US" else kind)
    for i, r in enumerate(rows):
      out[i, :min(r.size, steps)] = r[:steps]
    return out
  arr = arr.reshape(arr.shape[0], -1)
  return _pad_time(arr, steps, fill)


def _lengths(present: np.ndarray, per_step: int = 1) -> np.ndarray:
  """One past each row's last present value, in steps of ``per_step``."""
  if present.shape[1] == 0:
    return np.zeros(present.shape[0], np.int32)
  last = present.shape[1] - np.argmax(present[:, ::-1], axis=1)
  last = np.where(present.any(axis=1), last, 0)
  return (-(-last // per_step)).astype(np.int32)


def _pad_time(array: np.ndarray, steps: int, fill: Any) -> np.ndarray:
  """``array`` ``[B, W, ...]`` cut or padded with ``fill`` to ``[B, steps, ...]``."""
  if array.shape[1] >= steps:
    return array[:, :steps]
  pad = [(0, 0), (0, steps - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
  return np.pad(array, pad, constant_values=fill)


def _present(cells: _host.Cells) -> np.ndarray:
  """Cells holding a value: not padding, not ``''``/None/NaN/NA, not -1."""
  values, filled, _ = cells
  if values.dtype.kind == "O":
    na = pd.isna(values)
    empty = np.frompyfunc(lambda v: isinstance(v, (str, bytes)) and not v, 1, 1)(
        values).astype(bool)
    ints = np.frompyfunc(lambda v: isinstance(v, (int, np.integer))
                         and not isinstance(v, bool) and v == -1, 1, 1)(
                             values).astype(bool)
    return filled & ~na & ~empty & ~ints
  if values.dtype.kind == "f":
    return filled & ~np.isnan(values)
  if values.dtype.kind in "iu":
    return filled & (values != -1)
  return filled


class SequenceColumn:
  """Mixin: a column with one value or id per time step (``encode`` pads it)."""

  def _host_sequence(self, features: Any, cache: dict) -> dict:
    raise NotImplementedError


def is_sequence(column: Any) -> bool:
  """Whether ``column`` is a sequence column or a dense view of one."""
  inner = getattr(column, "categorical_column", column)
  return isinstance(inner, SequenceColumn) or isinstance(column, SequenceColumn)


@dataclasses.dataclass(frozen=True)
class SequenceCategoricalColumn(SequenceColumn, _base.CategoricalColumn):
  """A categorical column read as a sequence: one id per step, as TF's.

  Built by the ``sequence_categorical_column_with_*`` functions; its name,
  ``num_buckets`` and parsing spec are those of ``categorical_column``.
  """

  categorical_column: _base.CategoricalColumn

  @property
  def name(self) -> str:
    return self.categorical_column.name

  @property
  def parents(self) -> list:
    return [self.categorical_column]

  @property
  def parse_example_spec(self) -> dict:
    return self.categorical_column.parse_example_spec

  @property
  def num_buckets(self) -> int:
    return self.categorical_column.num_buckets

  def _host_ids(self, features: Any, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    return _base.cached_ids(self.categorical_column, features, cache)

  def _host_sequence(self, features: Any, cache: dict) -> dict:
    """``{'ids': int32 [B, T], 'sequence_length': int32 [B]}``, T padded."""
    key = ("sequence", id(self))
    if key not in cache:
      source = self.categorical_column
      raw = getattr(source, "key", None)
      cells = _host.read_cells(
          _host.get_feature(features, raw, self.name), raw)
      ids, _ = _base.cached_ids(source, features, cache)
      if ids.shape != cells.values.shape:
        raise ValueError(
            f"Sequence column {self.name!r} needs one value per step; its "
            f"feature has shape {np.shape(features[raw])!r}. Give a list of "
            "values per example.")
      lengths = _lengths(_present(cells))
      steps = padded_length(lengths.max(initial=0))
      cache[key] = {"ids": _pad_time(ids, steps, -1).astype(np.int32),
                    SEQUENCE_LENGTH: lengths}
    return cache[key]


def sequence_categorical_column_with_identity(
    key: str, num_buckets: int, default_value: int | None = None
) -> SequenceCategoricalColumn:
  """Integer ids per step, as ``tf.feature_column.sequence_categorical_column_with_identity``.

  Example:
    >>> c = sequence_categorical_column_with_identity('watched', 100)
    >>> c.name, c.num_buckets
    ('watched', 100)

  Raises:
    ValueError: as ``categorical_column_with_identity``.
  """
  return SequenceCategoricalColumn(categorical.categorical_column_with_identity(
      key, num_buckets, default_value))


def sequence_categorical_column_with_hash_bucket(
    key: str, hash_bucket_size: int, dtype: Any = "string"
) -> SequenceCategoricalColumn:
  """Hashed ids per step, as TF's function of this name (estlab's stable
  hash, see ``categorical_column_with_hash_bucket``).

  Example:
    >>> sequence_categorical_column_with_hash_bucket('words', 1000).num_buckets
    1000

  Raises:
    ValueError: as ``categorical_column_with_hash_bucket``.
  """
  return SequenceCategoricalColumn(
      categorical.categorical_column_with_hash_bucket(key, hash_bucket_size,
                                                      dtype))


def sequence_categorical_column_with_vocabulary_list(
    key: str, vocabulary_list: Any, dtype: Any = None, default_value: int = -1,
    num_oov_buckets: int = 0) -> SequenceCategoricalColumn:
  """Vocabulary ids per step, as TF's function of this name.

  Example:
    >>> c = sequence_categorical_column_with_vocabulary_list(
    ...     'colors', ['R', 'G', 'B'], num_oov_buckets=2)
    >>> c.num_buckets
    5

  Raises:
    ValueError: as ``categorical_column_with_vocabulary_list``.
  """
  return SequenceCategoricalColumn(
      vocabulary.categorical_column_with_vocabulary_list(
          key, vocabulary_list, dtype, default_value, num_oov_buckets))


def sequence_categorical_column_with_vocabulary_file(
    key: str, vocabulary_file: str, vocabulary_size: int | None = None,
    num_oov_buckets: int = 0, default_value: int | None = None,
    dtype: Any = "string") -> SequenceCategoricalColumn:
  """Ids per step from a vocabulary file, as TF's function of this name
  (arguments in TF's order, which differs from the non-sequence one's).

  Example:
    >>> import tempfile
    >>> path = tempfile.mktemp(); _ = open(path, 'w').write('a\\nb\\n')
    >>> sequence_categorical_column_with_vocabulary_file('tok', path).num_buckets
    2

  Raises:
    VocabularyFileNotFoundError, ValueError: as
      ``categorical_column_with_vocabulary_file``.
  """
  return SequenceCategoricalColumn(
      vocabulary.categorical_column_with_vocabulary_file(
          key, vocabulary_file, vocabulary_size, dtype, default_value,
          num_oov_buckets))


@dataclasses.dataclass(frozen=True)
class SequenceNumericColumn(SequenceColumn, _base.KeyedColumn,
                            _base.DenseColumn):
  """See ``sequence_numeric_column``."""

  key: str
  shape: tuple = (1,)
  default_value: float = 0.0
  dtype: str = "float32"
  normalizer_fn: Callable | None = _base.device_field(default=None)

  @property
  def parse_example_spec(self) -> dict:
    return {self.key: _base.VarLenFeature(self.dtype)}

  @property
  def variable_shape(self) -> tuple:
    return self.shape

  def _host_sequence(self, features: Any, cache: dict) -> dict:
    """``{'values': float32 [B, T, prod(shape)], 'sequence_length': [B]}``."""
    key = ("sequence", id(self))
    if key not in cache:
      cache[key] = self._read(features)
    return cache[key]

  def _read(self, features: Any) -> dict:
    raw = _host.get_feature(features, self.key, self.name)
    arr = _host._as_array(raw)  # pylint: disable=protected-access
    if arr.ndim == 0:
      raise ValueError(f"Feature {self.key!r} is a scalar {arr!r}; a sequence "
                       "feature needs one list of values per example.")
    if arr.dtype == object and arr.ndim == 1:
      rows = [np.asarray(_numbers(c, self.key), np.float32).reshape(-1)
              for c in arr]
      width = max([r.size for r in rows] + [0])
      flat = np.full((len(rows), width), np.nan, np.float32)
      for i, r in enumerate(rows):
        flat[i, :r.size] = r
    else:
      flat = np.asarray(_numbers(arr, self.key), np.float32).reshape(
          arr.shape[0], -1)
    size = math.prod(self.shape)
    present = ~np.isnan(flat)
    lengths = _lengths(present, size)
    steps = padded_length(lengths.max(initial=0))
    flat = _pad_time(flat, steps * size, np.nan)
    flat = np.where(np.isnan(flat), np.float32(self.default_value), flat)
    return {"values": flat.reshape(flat.shape[0], steps, size),
            SEQUENCE_LENGTH: lengths}


def _numbers(value: Any, key: str) -> Any:
  """``value`` as floats (None and NA as NaN), or a TypeError naming the key."""
  try:
    arr = np.asarray(value, dtype=object)
    return np.where(pd.isna(arr), np.nan, arr).astype(np.float64)
  except (TypeError, ValueError):
    raise TypeError(
        f"sequence_numeric_column {key!r} expects numbers per step, got "
        f"{value!r:.80}. Use a sequence categorical column for text, or "
        "convert the values with float().") from None


def sequence_numeric_column(key: str, shape: Any = (1,),
                            default_value: float = 0.0, dtype: Any = np.float32,
                            normalizer_fn: Callable | None = None
                            ) -> SequenceNumericColumn:
  """Real values per step, as ``tf.feature_column.sequence_numeric_column``.

  Each step holds ``prod(shape)`` values: an example's list holds
  ``steps * prod(shape)`` numbers (flat, or nested per step).

  Example:
    >>> temperature = sequence_numeric_column('temperature')
    >>> temperature.name, temperature.variable_shape
    ('temperature', (1,))

  Args:
    key: the feature's name, also the column's name.
    shape: the shape of each step's value.
    default_value: fills missing values and the padding.
    dtype: the feature's type, integer or floating.
    normalizer_fn: applied on the device to the ``[B, T, *shape]`` values.

  Raises:
    TypeError: normalizer_fn is not callable, or a dimension not an int.
    ValueError: a dimension < 1, or dtype not integer or floating.
  """
  key = _base.check_key(key)
  shape = tuple(shape) if isinstance(shape, (list, tuple)) else (shape,)
  if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
             for d in shape):
    raise TypeError(f"shape dimensions must be integers; "
                    f"sequence_numeric_column {key!r} got shape {shape!r}.")
  if not all(d >= 1 for d in shape):
    raise ValueError(f"shape dimensions must be > 0; sequence_numeric_column "
                     f"{key!r} got shape {shape!r}.")
  dtype = _base.canonical_dtype(dtype, key)
  if not (_base.is_integer(dtype) or _base.is_floating(dtype)):
    raise ValueError(f"dtype must be convertible to float; "
                     f"sequence_numeric_column {key!r} got dtype {dtype!r}.")
  if normalizer_fn is not None and not callable(normalizer_fn):
    raise TypeError(f"normalizer_fn must be callable; sequence_numeric_column "
                    f"{key!r} got {normalizer_fn!r}.")
  return SequenceNumericColumn(key, tuple(int(d) for d in shape),
                               float(default_value), dtype, normalizer_fn)
