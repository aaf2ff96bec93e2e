"""Vocabulary columns: ids from an in-memory list or a file, as TF's.

Lookups run on the host, vectorised with ``pandas.Index.get_indexer``. A value
not in the vocabulary gets ``default_value`` (-1, the default, drops it) or,
with ``num_oov_buckets > 0``, ``vocabulary_size + Fingerprint64(value) %
num_oov_buckets``, TF's ``to_hash_bucket_fast`` as its lookup tables use it
(FarmHash, see ``_fingerprint``; integers hashed as their decimal strings),
so OOV ids equal TF's. ``''`` and -1 are missing values and are always
dropped.

Example:
  >>> from estlab import feature_column as fc
  >>> colors = fc.categorical_column_with_vocabulary_list('color', ['R', 'G', 'B'])
  >>> fc.encode([colors], {'color': np.array(['G', 'X', ''], object)})['color']['ids'].ravel().tolist()
  [1, -1, -1]
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import numpy as np
import pandas as pd

from estlab.feature_column import _base, _fingerprint, _host

__all__ = ["VocabularyListCategoricalColumn", "VocabularyFileCategoricalColumn",
           "VocabularyFileNotFoundError",
           "categorical_column_with_vocabulary_list",
           "categorical_column_with_vocabulary_file"]


class VocabularyFileNotFoundError(FileNotFoundError, ValueError):
  """The vocabulary file does not exist (TF raised a ValueError here)."""


class _Lookup(_base.KeyedColumn, _base.CategoricalColumn):
  """Host lookup shared by both vocabulary columns (``_vocabulary`` ids)."""

  @property
  def _vocabulary(self) -> tuple:
    raise NotImplementedError

  @functools.cached_property
  def _index(self) -> pd.Index:
    dtype = object if self.dtype == "string" else np.int64
    return pd.Index(np.asarray(self._vocabulary, dtype=dtype))

  @property
  def parse_example_spec(self) -> dict:
    return {self.key: _base.VarLenFeature(self.dtype)}

  @property
  def num_buckets(self) -> int:
    return len(self._vocabulary) + self.num_oov_buckets

  def _values(self, features: Any) -> tuple[np.ndarray, np.ndarray]:
    cells = _host.read_cells(
        _host.get_feature(features, self.key, self.name), self.key)
    if self.dtype == "string":
      return _host.as_text(cells, self.name, allow_ints=False)
    return _host.as_int(cells, self.name)

  def _cross_ids(self, features: Any, cache: dict
                 ) -> tuple[np.ndarray, np.ndarray]:
    """An unknown value's ``default_value`` -1 is crossed too, as TF does:
    its lookup keeps the -1 id, and only missing values are dropped."""
    ids, _ = _base.cached_ids(self, features, cache)
    if self.default_value != -1 or self.num_oov_buckets:
      return ids, ids >= 0
    return ids, self._values(features)[1]

  def _host_ids(self, features: Any, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    del cache
    values, present = self._values(features)
    wanted = values[present]
    found = _host.lookup(self._index, wanted)
    oov = found < 0
    if oov.any():
      if self.num_oov_buckets:
        found[oov] = len(self._vocabulary) + _fingerprint.hash_bucket(
            wanted[oov], self.num_oov_buckets)
      else:
        found[oov] = self.default_value
    ids = np.full(values.shape, -1, dtype=np.int64)
    ids[present] = found
    return ids, np.ones(ids.shape, dtype=np.float32)


def _check_oov(key: str, default_value: int, num_oov_buckets: int,
               vocabulary_size: int) -> None:
  if not isinstance(num_oov_buckets, (int, np.integer)) or num_oov_buckets < 0:
    raise ValueError(f"Invalid num_oov_buckets {num_oov_buckets!r} in column "
                     f"{key!r}; it must be an int >= 0.")
  if num_oov_buckets and default_value != -1:
    raise ValueError(
        f"Can't specify both num_oov_buckets={num_oov_buckets!r} and "
        f"default_value={default_value!r} in column {key!r}: out-of-vocabulary "
        "values go to either the OOV buckets or default_value. Drop one.")
  if not -1 <= default_value < vocabulary_size:
    raise ValueError(
        f"default_value {default_value!r} of column {key!r} is not -1 (drop "
        f"unknown values) or an id in [0, {vocabulary_size}).")


def _vocabulary_dtype(values: tuple, dtype: Any, key: str) -> str:
  inferred = pd.api.types.infer_dtype(np.asarray(values, dtype=object))
  if inferred not in ("string", "integer"):
    raise ValueError(f"Vocabulary of column {key!r} must be all strings or all "
                     f"integers; got {values[:5]!r} ({inferred}).")
  vocab_dtype = "string" if inferred == "string" else "int64"
  if dtype is None:
    return vocab_dtype
  dtype = _base.canonical_dtype(dtype, key)
  if dtype != "string" and not _base.is_integer(dtype):
    raise ValueError(f"dtype of column {key!r} must be string or integer; "
                     f"got {dtype!r}.")
  if (dtype == "string") != (vocab_dtype == "string"):
    raise ValueError(f"dtype {dtype!r} and the vocabulary's dtype "
                     f"{vocab_dtype!r} do not match in column {key!r}.")
  return dtype


def _check_unique(values: tuple, key: str) -> None:
  seen = pd.Index(values)
  if seen.has_duplicates:
    repeated = seen[seen.duplicated()].tolist()[:5]
    raise ValueError(f"Duplicate keys in the vocabulary of column {key!r}: "
                     f"{repeated!r}. Each value needs one id.")


@dataclasses.dataclass(frozen=True)
class VocabularyListCategoricalColumn(_Lookup):
  """See ``categorical_column_with_vocabulary_list``."""

  key: str
  vocabulary_list: tuple
  dtype: str
  default_value: int = -1
  num_oov_buckets: int = 0

  @property
  def _vocabulary(self) -> tuple:
    return self.vocabulary_list


def categorical_column_with_vocabulary_list(
    key: str, vocabulary_list: Any, dtype: Any = None, default_value: int = -1,
    num_oov_buckets: int = 0) -> VocabularyListCategoricalColumn:
  """Ids from an in-memory vocabulary, as TF's function of this name.

  Example:
    >>> c = categorical_column_with_vocabulary_list(
    ...     'color', ('R', 'G', 'B', 'Y'), num_oov_buckets=2)
    >>> c.num_buckets, c.dtype
    (6, 'string')

  Args:
    key: the feature's name, also the column's name.
    vocabulary_list: strings or ints; value ``i`` gets id ``i``.
    dtype: the feature's type; None infers it from the vocabulary.
    default_value: id of values not in the vocabulary; -1 drops them.
    num_oov_buckets: hash unknown values into this many extra ids.

  Raises:
    ValueError: an empty or repeating vocabulary, a dtype that is not string
      or integer or does not match it, or both default_value and
      num_oov_buckets given.
  """
  key = _base.check_key(key)
  if vocabulary_list is None or len(vocabulary_list) < 1:
    raise ValueError(f"vocabulary_list {vocabulary_list!r} of column {key!r} "
                     "must be non-empty.")
  values = tuple(v.decode("utf-8") if isinstance(v, bytes) else
                 v.item() if isinstance(v, np.generic) else v
                 for v in vocabulary_list)
  dtype = _vocabulary_dtype(values, dtype, key)
  _check_unique(values, key)
  _check_oov(key, default_value, num_oov_buckets, len(values) + num_oov_buckets)
  return VocabularyListCategoricalColumn(key, values, dtype, int(default_value),
                                         int(num_oov_buckets))


@dataclasses.dataclass(frozen=True)
class VocabularyFileCategoricalColumn(_Lookup):
  """See ``categorical_column_with_vocabulary_file``.

  ``vocabulary`` holds the file's first ``vocabulary_size`` lines, read once
  when the column is made, so ``spec()`` needs no file to rebuild it.
  """

  key: str
  vocabulary_file: str
  vocabulary_size: int | None = None
  num_oov_buckets: int = 0
  dtype: str = "string"
  default_value: int = -1
  vocabulary: tuple = dataclasses.field(default=(), repr=False)

  def __post_init__(self):
    if not self.vocabulary:
      values = _read_vocabulary(self.vocabulary_file, self.vocabulary_size,
                                self.dtype, self.key)
      object.__setattr__(self, "vocabulary", values)
      object.__setattr__(self, "vocabulary_size", len(values))

  @property
  def _vocabulary(self) -> tuple:
    return self.vocabulary


def read_vocabulary_file(path: Any, what: str) -> list[str]:
  """The lines of a vocabulary file (TF's format: one entry per line).

  Raises:
    VocabularyFileNotFoundError: ``path`` does not exist; the message names
      it as ``what`` (e.g. ``"new_vocab"``).
  """
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().split("\n")
  except FileNotFoundError:
    raise VocabularyFileNotFoundError(
        f"{what}={os.fspath(path)!r} does not exist. Pass the path of a text "
        "file with one vocabulary entry per line.") from None
  if lines and lines[-1] == "":
    lines.pop()
  return lines


def _read_vocabulary(path: str, size: int | None, dtype: str, key: str) -> tuple:
  """The first ``size`` lines of ``path`` (all when None), one entry each."""
  lines = read_vocabulary_file(path, f"Column {key!r}'s vocabulary_file")
  size = len(lines) if size is None else size
  if size < 1 or size > len(lines):
    raise ValueError(f"Invalid vocabulary_size {size!r} in column {key!r}: "
                     f"{path!r} has {len(lines)} lines; pass a size in [1, "
                     f"{len(lines)}] or None.")
  values = lines[:size]
  if dtype != "string":
    try:
      values = [int(v) for v in values]
    except ValueError:
      bad = next(v for v in values if not v.strip().lstrip("-").isdigit())
      raise ValueError(f"Column {key!r} has integer dtype {dtype!r}, but "
                       f"{path!r} holds {bad!r}; pass dtype='string'.") from None
  _check_unique(tuple(values), key)
  return tuple(values)


def categorical_column_with_vocabulary_file(
    key: str, vocabulary_file: str, vocabulary_size: int | None = None,
    dtype: Any = "string", default_value: int | None = None,
    num_oov_buckets: int = 0) -> VocabularyFileCategoricalColumn:
  """Ids from a vocabulary file (one entry per line), as TF's function.

  The file is read when the column is made; line ``i`` gets id ``i``.

  Example:
    >>> import tempfile
    >>> path = tempfile.mktemp(); _ = open(path, 'w').write('CA\\nNY\\nTX\\n')
    >>> states = categorical_column_with_vocabulary_file(
    ...     'state', path, num_oov_buckets=5)
    >>> states.vocabulary_size, states.num_buckets
    (3, 8)

  Args:
    key: the feature's name, also the column's name.
    vocabulary_file: path of the file.
    vocabulary_size: use the first this many lines; None uses all.
    dtype: the feature's type, string or integer.
    default_value: id of values not in the vocabulary; None (-1) drops them.
    num_oov_buckets: hash unknown values into this many extra ids.

  Raises:
    VocabularyFileNotFoundError: (a ValueError) the file does not exist.
    ValueError: bad vocabulary_size, num_oov_buckets or dtype, repeated
      entries, or both default_value and num_oov_buckets given.
  """
  key = _base.check_key(key)
  if not vocabulary_file:
    raise ValueError(f"Missing vocabulary_file in column {key!r}.")
  dtype = _base.canonical_dtype(dtype, key)
  if dtype != "string" and not _base.is_integer(dtype):
    raise ValueError(f"dtype of column {key!r} must be string or integer; "
                     f"got {dtype!r}.")
  if num_oov_buckets and default_value is not None:
    _check_oov(key, default_value, num_oov_buckets, 2 ** 62)
  default_value = -1 if default_value is None else int(default_value)
  column = VocabularyFileCategoricalColumn(
      key, os.fspath(vocabulary_file), vocabulary_size, int(num_oov_buckets),
      dtype, default_value)
  _check_oov(key, default_value, column.num_oov_buckets, column.num_buckets)
  return column
