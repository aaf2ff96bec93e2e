"""``make_csv_dataset``: streams batches of CSV rows, as tf.data's does.

Files are read by ``pandas.read_csv`` in chunks of rows, so a file larger than
memory streams; rows are shuffled through a buffer of
``shuffle_buffer_size`` rows and cut into batches of exactly ``batch_size``
(the last batch of a finite dataset keeps what is left). Each column gets
one dtype for the whole dataset, from ``column_defaults`` or inferred from
the first rows, as TF does: int32, int64, float32, float64 or text (object
arrays of ``str``).
"""
from __future__ import annotations

import csv
import dataclasses
import glob
import numbers
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np
import pandas as pd

from estlab.data import _batching, _sources
from estlab.data._csv_lines import CheckedCsv
from estlab.data._errors import CsvParseError
from estlab.data._dataset import Dataset
from estlab.data._node import INFINITE, UNKNOWN
from estlab.data._structure import TensorSpec

# Rows per pandas chunk; a module constant so tests can make it small.
_CHUNK_ROWS = 1 << 16
_REQUIRED = object()  # The default of a column whose missing values are errors.
_TEXT = np.dtype(object)
_DTYPES = tuple(np.dtype(t) for t in (np.int32, np.int64, np.float32,
                                       np.float64, object))
_INT32 = np.iinfo(np.int32)


@dataclasses.dataclass(frozen=True)
class _Column:
  """How to read one selected column: its dtype and default (or _REQUIRED)."""
  name: str
  dtype: np.dtype
  default: Any


def _resolve_files(file_pattern: Any) -> List[str]:
  """Expands a glob, a path, or a list of them, into a list of files."""
  patterns = ([file_pattern] if isinstance(file_pattern, (str, os.PathLike))
              else list(file_pattern))
  if not patterns:
    raise ValueError(f"file_pattern must name at least one file; got "
                     f"{file_pattern!r}.")
  files: List[str] = []
  for pattern in patterns:
    pattern = os.fspath(pattern)
    matches = (sorted(glob.glob(pattern)) if glob.has_magic(pattern)
               else [pattern] if os.path.isfile(pattern) else [])
    if not matches:
      raise FileNotFoundError(
          f"No files match file_pattern {pattern!r}. Check the path, or pass "
          f"a glob such as 'data/*.csv'.")
    files.extend(f for f in matches if f not in files)
  return files


def _scalar_dtype(value: Any) -> Optional[np.dtype]:
  """The dtype of a default value, or None if it is not a scalar."""
  if isinstance(value, (bool, np.bool_)):
    return None
  if isinstance(value, (str, bytes, np.str_, np.bytes_)):
    return _TEXT
  if isinstance(value, np.generic):
    return np.dtype(value.dtype)
  if isinstance(value, numbers.Integral):
    return np.dtype(np.int32 if _INT32.min <= value <= _INT32.max
                    else np.int64)
  if isinstance(value, numbers.Real):
    return np.dtype(np.float32)
  return None


def _parse_default(name: str, value: Any) -> tuple:
  """One ``column_defaults`` item as (dtype or None to infer, default)."""
  if isinstance(value, (list, tuple)) and len(value) <= 1:
    if not value:
      return None, _REQUIRED  # TF's `[]`: required, type inferred.
    value = value[0]
  if isinstance(value, np.ndarray) and value.size == 1:
    value = value.reshape(())[()]
  dtype = _scalar_dtype(value)
  default = value
  if dtype is None:  # Not a scalar: a dtype, so the column is required.
    default = _REQUIRED
    as_numpy = getattr(value, "as_numpy_dtype", value)  # A tf.DType works.
    python = {float: np.float32, int: np.int32, str: object, bytes: object}
    try:
      dtype = np.dtype(python.get(as_numpy, as_numpy))
    except TypeError:
      dtype = None
  if dtype is not None and dtype.kind in "US":
    dtype = _TEXT
  if dtype is None or dtype not in _DTYPES:
    raise ValueError(
        f"column_defaults for column {name!r} must be a default value (a "
        f"number or a string) or one of the dtypes int32, int64, float32, "
        f"float64, str; got {value!r}. E.g. pass 0.0 for an optional float "
        f"column or np.float32 for a required one.")
  if isinstance(default, (bytes, np.bytes_)):
    default = default.decode("utf-8")
  elif default is not _REQUIRED:
    default = str(default) if dtype == _TEXT else default
  return dtype, default


def _infer_dtype(values: pd.Series) -> np.dtype:
  """TF's inference over strings: int32, int64, float32, float64, or text."""
  present = values.dropna()
  if present.empty:
    return _TEXT
  try:
    array = pd.to_numeric(present).to_numpy()
  except (ValueError, TypeError):
    return _TEXT
  if array.dtype.kind in "iu":
    if _INT32.min <= array.min() and array.max() <= _INT32.max:
      return np.dtype(np.int32)
    if array.max() <= np.iinfo(np.int64).max:
      return np.dtype(np.int64)
  if array.dtype.kind not in "iuf":
    return _TEXT
  finite = np.abs(array[np.isfinite(array)].astype(np.float64))
  fits = not finite.size or finite.max() <= np.finfo(np.float32).max
  return np.dtype(np.float32 if fits else np.float64)


class CsvDataset:
  """Batches of CSV rows; each ``iter()`` starts a fresh pass.

  Made by ``make_csv_dataset``, which checks the arguments and wraps it in
  a ``Dataset``; the constructor only stores them.

  Attributes:
    files: the CSV files, in the order of the file patterns.
    column_names: the selected columns, in file order.
    dtypes: column name -> numpy dtype of its arrays (object for text).
  """

  def __init__(self, files: List[str], columns: List[_Column],
               label_name: Optional[str], batch_size: int,
               num_epochs: Optional[int], shuffle: bool,
               shuffle_buffer_size: int, shuffle_seed: Any,
               read_options: Dict[str, Any], lines: "_Lines",
               ignore_errors: bool):
    self.files = files
    self.column_names = [c.name for c in columns]
    self.dtypes = {c.name: c.dtype for c in columns}
    self._columns = columns
    self._label_name = label_name
    self._batch_size = batch_size
    self._num_epochs = num_epochs
    self._shuffle = shuffle
    self._shuffle_buffer_size = shuffle_buffer_size
    self._seeds = np.random.SeedSequence(shuffle_seed)
    self._read_options = read_options
    self._lines = lines
    self._ignore_errors = ignore_errors

  def __repr__(self) -> str:
    return (f"CsvDataset(files={self.files!r}, batch_size={self._batch_size},"
            f" label_name={self._label_name!r}, dtypes={self.dtypes!r})")

  def __iter__(self) -> Iterator:
    rng = np.random.default_rng(self._seeds.spawn(1)[0])
    for batch in _batching.rebatch(self._rows(rng), self._batch_size):
      if self._label_name is None:
        yield batch
      else:
        label = batch.pop(self._label_name)
        yield batch, label

  def _rows(self, rng: np.random.Generator) -> Iterator[_batching.Table]:
    """Row chunks over all epochs, shuffled when asked."""
    for _ in _batching.epochs(self._num_epochs):
      files = self.files
      if self._shuffle:
        files = [files[i] for i in rng.permutation(len(files))]
      chunks = (chunk for path in files for chunk in self._read_file(path))
      if self._shuffle:
        chunks = _batching.shuffle_buffer(chunks, self._shuffle_buffer_size,
                                          rng)
      rows = 0
      for chunk in chunks:
        rows += _batching.num_rows(chunk)
        yield chunk
      if not rows and self._num_epochs is None:
        raise ValueError(
            f"The CSV files {self.files!r} hold no rows, so num_epochs=None "
            f"would loop forever. Check the files or set num_epochs.")

  def _read_file(self, path: str) -> Iterator[_batching.Table]:
    """The rows of one file, chunk by chunk, as numpy columns."""
    with self._lines.open(path, self._ignore_errors) as stream:
      try:
        reader = pd.read_csv(stream, chunksize=_CHUNK_ROWS,
                             **self._read_options)
      except pd.errors.EmptyDataError:
        return  # A file with no bytes has no rows.
      with reader:
        while True:
          try:
            chunk = next(reader)
          except StopIteration:
            return
          except (ValueError, TypeError) as err:
            if isinstance(err, CsvParseError):
              raise
            self._bad_cell(path, err)
          yield self._convert(chunk, path, stream.pop_lines(len(chunk)))

  def _bad_cell(self, path: str, err: Optional[Exception] = None) -> None:
    """Raises CsvParseError for the first cell pandas could not parse.

    pandas' typed parsing fails without naming the cell's line or column,
    so the file is read again as text to find it.
    """
    options = dict(self._read_options, dtype=object)
    with self._lines.open(path, False) as stream:
      for chunk in pd.read_csv(stream, chunksize=_CHUNK_ROWS, **options):
        lines = stream.pop_lines(len(chunk))
        for column in self._columns:
          if column.dtype == _TEXT:
            continue
          cells = chunk[column.name]
          bad = _unparsable(cells, column.dtype)
          if bad.any():
            first = int(np.flatnonzero(bad)[0])
            self._raise_bad_value(column, cells.iloc[first], path,
                                  int(lines[first]))
    raise CsvParseError(
        f"Could not parse {path!r}: {err or 'a bad value'}. The columns are "
        f"read as "
        f"{self.dtypes!r}. Fix the file, pass column_defaults (e.g. '' reads "
        f"a column as text), or pass ignore_errors=True to skip bad rows.",
        path=path) from err

  def _raise_bad_value(self, column: _Column, value: Any, path: str,
                       line: int) -> None:
    raise CsvParseError(
        f"Column {column.name!r} holds {value!r} at line {line} of {path!r}, "
        f"which is not a valid {column.dtype} (the column's dtype, from "
        f"column_defaults or inferred from the first rows). Fix the cell, "
        f"read the column as text (its column_defaults item ''), or pass "
        f"ignore_errors=True to skip such rows.", path=path, line=line,
        column=column.name, value=value)

  def _convert(self, chunk: pd.DataFrame, path: str,
               lines: np.ndarray) -> _batching.Table:
    """A pandas chunk as numpy columns: defaults filled, dtypes applied.

    ``lines`` holds the file line of each row, for errors.
    """
    keep = np.ones(len(chunk), dtype=bool)
    table = {}
    for column in self._columns:
      series = chunk[column.name]
      missing = series.isna().to_numpy()
      bad = np.zeros_like(missing)
      if column.dtype != _TEXT and self._ignore_errors:  # Read as text.
        series = pd.to_numeric(series, errors="coerce")
        bad = series.isna().to_numpy() & ~missing
      if column.default is _REQUIRED:
        if missing.any() and not self._ignore_errors:
          line = int(lines[np.flatnonzero(missing)[0]])
          raise CsvParseError(
              f"Column {column.name!r} is required (its column_defaults item "
              f"is a dtype) but missing at line {line} of {path!r}. Give it "
              f"a default in column_defaults, fix the file, or pass "
              f"ignore_errors=True to skip such rows.", path=path, line=line,
              column=column.name)
        keep &= ~missing
        fill = "" if column.dtype == _TEXT else 0
      else:
        fill = column.default
      if column.dtype == _TEXT:
        table[column.name] = series.to_numpy(dtype=object, na_value=fill)
        continue
      values = series.to_numpy(dtype=np.float64 if column.dtype.kind == "f"
                               or self._ignore_errors else np.int64,
                               na_value=fill)
      if column.dtype.kind == "i":
        if values.dtype.kind == "f":
          bad |= ~missing & ~bad & (values != np.floor(values))
        if column.dtype == np.int32:
          bad |= (values < _INT32.min) | (values > _INT32.max)
        values = np.where(bad, 0, values)
      if bad.any() and not self._ignore_errors:
        self._bad_cell(path)  # Shows the cell as the file writes it.
      keep &= ~bad
      table[column.name] = values.astype(column.dtype, copy=False)
    if not keep.all():
      table = _batching.take(table, np.flatnonzero(keep))
    return table


def _unparsable(cells: pd.Series, dtype: np.dtype) -> np.ndarray:
  """Which text cells (not missing) are not valid values of ``dtype``."""
  missing = cells.isna().to_numpy()
  numbers = pd.to_numeric(cells, errors="coerce").to_numpy(
      dtype=np.float64, na_value=np.nan)
  bad = np.isnan(numbers) & ~missing
  if dtype.kind == "i":
    info = np.iinfo(dtype)
    with np.errstate(invalid="ignore"):
      bad |= ~missing & ~bad & ((numbers != np.floor(numbers))
                                | (numbers < info.min) | (numbers > info.max))
  return bad


@dataclasses.dataclass(frozen=True)
class _Lines:
  """How ``CheckedCsv`` reads the files: delimiter, quotes, columns."""
  delimiter: str
  quoting: bool
  gzipped: bool
  num_fields: Optional[int] = None
  header: bool = False

  def open(self, path: str, skip_bad: bool) -> CheckedCsv:
    return CheckedCsv(path, delimiter=self.delimiter,
                      num_fields=self.num_fields, quoting=self.quoting,
                      header=self.header, skip_bad=skip_bad,
                      gzipped=self.gzipped)


def make_csv_dataset(file_pattern, batch_size, column_names=None,
                     column_defaults=None, label_name=None,
                     select_columns=None, field_delim=",",
                     use_quote_delim=True, na_value="", header=True,
                     num_epochs=None, shuffle=True, shuffle_buffer_size=10000,
                     shuffle_seed=None, prefetch_buffer_size=None,
                     num_parallel_reads=None, sloppy=False,
                     num_rows_for_inference=100, compression_type=None,
                     ignore_errors=False) -> Dataset:
  """Reads CSV files into batches of ``(features, label)``.

  ``tf.data.experimental.make_csv_dataset`` on pandas: the result is an
  ``estlab.data.Dataset`` of batches (so ``.cache().repeat().shuffle(500)``
  work as in TF). Each pass (``iter()``) reads the files again, a chunk of
  rows at a time. Empty fields and ``na_value`` are missing values; a missing value
  takes the column's default (0 or '' for inferred columns, as in TF).
  As TF's reader, every line must be UTF-8 text with one field per column,
  and every cell must be of its column's dtype: else a ``CsvParseError``
  names the file, the line and the bad value (``ignore_errors=True`` skips
  such rows; bytes that are not UTF-8 always raise).

  Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), 'data.csv')
    >>> pd.DataFrame({'age': [31, 42, 25], 'y': [1, 0, 1]}).to_csv(
    ...     path, index=False)
    >>> ds = make_csv_dataset(path, batch_size=2, label_name='y',
    ...                       num_epochs=1, shuffle=False)
    >>> [(f['age'].tolist(), y.tolist()) for f, y in ds]
    [([31, 42], [1, 0]), ([25], [1])]

  Args:
    file_pattern: a path or glob, or a list of them.
    batch_size: rows per batch.
    column_names: the names of the columns, in file order. Required when
      ``header`` is False; otherwise the first file's header gives them.
    column_defaults: one item per selected column: a default value (a
      number or a string; its type sets the column's dtype) makes the column
      optional; a dtype (``np.float32``, ``int``, ``str``...) or ``[]``
      makes it required, so a missing value raises. None infers all dtypes.
    label_name: the column that becomes the label; None yields features only.
    select_columns: the names or indices of the columns to read; None reads
      all of them.
    field_delim: the one-character field separator.
    use_quote_delim: whether double quotes enclose fields (else they are
      ordinary characters).
    na_value: a string that also means a missing value.
    header: whether the first line of each file is a header (and skipped).
    num_epochs: passes over the files; None repeats forever.
    shuffle: whether to shuffle the file order every epoch and the rows
      through a buffer.
    shuffle_buffer_size: rows in the shuffle buffer; the data set's size
      shuffles it fully, at that cost in memory.
    shuffle_seed: seeds the shuffling; each pass draws its own stream.
    prefetch_buffer_size: unused; the engine prefetches batches.
    num_parallel_reads: unused; files are read one after another.
    sloppy: unused; the order is deterministic given ``shuffle_seed``.
    num_rows_for_inference: rows (from the first files) used to infer the
      dtypes of columns without a typed ``column_defaults`` item.
    compression_type: None (or '') for plain files, or 'GZIP'.
    ignore_errors: skip rows that cannot be parsed, miss a required value,
      or have the wrong number of fields, instead of raising.

  Returns:
    A ``Dataset`` whose elements are batches: ``(features, label)`` with
    ``label_name``, else ``features``; ``features`` maps column names to
    arrays (its ``element_spec`` gives their dtypes).

  Raises:
    FileNotFoundError: if a file pattern matches no file.
    CsvParseError: (a ValueError; when the batches are read) if a line is
      not UTF-8 text, a row has the wrong number of fields, a cell is not of
      its column's dtype, or a required value is missing.
    ValueError: if ``label_name`` or a selected column is not a column, the
      column names or defaults do not fit the file, or an argument is bad.
  """
  del prefetch_buffer_size, num_parallel_reads, sloppy  # See the docstring.
  batch_size = _batching.check_batch_size(batch_size)
  num_epochs = _batching.check_num_epochs(num_epochs)
  shuffle = _batching.check_shuffle(shuffle)
  if shuffle:
    shuffle_buffer_size = _batching.check_batch_size(shuffle_buffer_size)
  files = _resolve_files(file_pattern)
  if not isinstance(field_delim, str) or len(field_delim) != 1:
    raise ValueError(f"field_delim must be one character; got "
                     f"{field_delim!r}. Pass e.g. field_delim='\\t'.")
  if compression_type not in (None, "") and str(
      compression_type).upper() != "GZIP":
    raise ValueError(f"compression_type must be None, '' or 'GZIP'; got "
                     f"{compression_type!r}.")
  options = dict(
      sep=field_delim,
      quoting=csv.QUOTE_MINIMAL if use_quote_delim else csv.QUOTE_NONE,
      keep_default_na=False,
      na_values=sorted({"", str(na_value or "")}),
      on_bad_lines="skip" if ignore_errors else "error",
      engine="c")
  lines = _Lines(field_delim, bool(use_quote_delim), bool(compression_type))
  names = _column_names(files[0], column_names, header, options, lines)
  lines = dataclasses.replace(lines, num_fields=len(names), header=header)
  selected = _select(names, select_columns)
  if label_name is not None and label_name not in selected:
    raise ValueError(
        f"label_name {label_name!r} is not among the columns "
        f"{selected!r}. Pass one of them (or add it to select_columns).")
  if column_defaults is None:
    parsed = [(None, None)] * len(selected)
  elif len(column_defaults) != len(selected):
    raise ValueError(
        f"column_defaults has {len(column_defaults)} items but there are "
        f"{len(selected)} (selected) columns {selected!r}; give one item "
        f"per column, e.g. 0.0 or ''.")
  else:
    parsed = [_parse_default(n, v) for n, v in zip(selected, column_defaults)]
  options.update(header=0 if header else None, names=names, usecols=selected)
  to_infer = [n for n, (dtype, _) in zip(selected, parsed) if dtype is None]
  inferred = _infer(files, to_infer, num_rows_for_inference, options, lines,
                    ignore_errors)
  columns = []
  for name, (dtype, default) in zip(selected, parsed):
    dtype = inferred[name] if dtype is None else dtype
    if default is None:
      default = "" if dtype == _TEXT else 0
    columns.append(_Column(name, dtype, default))
  options["dtype"] = {
      c.name: object if c.dtype == _TEXT or ignore_errors
              else "Int64" if c.dtype.kind == "i" else "float64"
      for c in columns}
  reader = CsvDataset(files, columns, label_name, batch_size, num_epochs,
                      shuffle, shuffle_buffer_size, shuffle_seed, options,
                      lines, ignore_errors)
  return Dataset(_sources.Generator(
      reader.__iter__, _spec(columns, label_name),
      f"make_csv_dataset({files[0]!r}{', ...' if len(files) > 1 else ''})",
      cardinality=INFINITE if num_epochs is None else UNKNOWN,
      convert=False))


def _spec(columns: List[_Column], label_name: Optional[str]) -> Any:
  """The element spec of the batches: features (and label)."""
  specs = {c.name: TensorSpec((None,), c.dtype) for c in columns}
  if label_name is None:
    return specs
  label = specs.pop(label_name)
  return specs, label


def _column_names(path: str, column_names: Optional[Sequence[str]],
                  header: bool, options: Dict[str, Any],
                  lines: _Lines) -> List[str]:
  """The names of all columns, checked against the first line of ``path``."""
  if column_names is None and not header:
    raise ValueError("column_names must be given when header=False; pass "
                     "e.g. column_names=['age', 'income', 'label'].")
  try:
    with lines.open(path, False) as stream:
      first = pd.read_csv(stream, header=None, nrows=1, dtype=object,
                          **options)
    fields = first.iloc[0].tolist() if len(first) else []
  except pd.errors.EmptyDataError:
    fields = []
  if column_names is None:
    if not fields or any(not isinstance(f, str) for f in fields):
      raise ValueError(
          f"The header of {path!r} gives no usable column names: "
          f"{fields!r}. Pass column_names=[...].")
    names = fields
  else:
    names = [str(n) for n in column_names]
    if fields and len(fields) != len(names):
      raise ValueError(
          f"column_names has {len(names)} names {names!r} but the first line "
          f"of {path!r} has {len(fields)} fields. Give one name per field.")
  if len(set(names)) != len(names):
    raise ValueError(f"Column names must be unique; got {names!r}.")
  return names


def _select(names: List[str], select_columns: Optional[Sequence[Any]]
            ) -> List[str]:
  """The selected column names, in file order."""
  if select_columns is None:
    return list(names)
  chosen = set()
  for item in select_columns:
    if isinstance(item, numbers.Integral) and not isinstance(item, bool):
      if not 0 <= item < len(names):
        raise ValueError(
            f"select_columns index {item!r} is out of range for the "
            f"{len(names)} columns {names!r}.")
      item = names[item]
    if item not in names:
      raise ValueError(f"select_columns names {item!r}, which is not among "
                       f"the columns {names!r}.")
    chosen.add(item)
  if not chosen:
    raise ValueError(f"select_columns must select at least one of the "
                     f"columns {names!r}; got {select_columns!r}.")
  return [n for n in names if n in chosen]


def _infer(files: List[str], names: List[str], num_rows: int,
           options: Dict[str, Any], lines: _Lines,
           skip_bad: bool) -> Dict[str, np.dtype]:
  """Infers the dtypes of ``names`` from the first ``num_rows`` rows."""
  if not names:
    return {}
  samples = []
  remaining = max(int(num_rows), 0)
  for path in files:
    if remaining <= 0:
      break
    try:
      with lines.open(path, skip_bad) as stream:
        sample = pd.read_csv(stream, nrows=remaining, dtype=object,
                             **options)
    except pd.errors.EmptyDataError:
      continue
    samples.append(sample)
    remaining -= len(sample)
  if not samples:
    return {name: _TEXT for name in names}
  sample = pd.concat(samples, ignore_index=True)
  return {name: _infer_dtype(sample[name]) for name in names}
