"""``pandas_input_fn``: feeds a pandas DataFrame to an Estimator in batches.

The DataFrame becomes a dict of contiguous numpy columns once, when the
input_fn is made; batching is then ``numpy_input_fn``'s. Column types map as:

* numpy numeric, bool and datetime columns keep their numpy dtype;
* nullable ``Int*``/``UInt*``/``Float*``/``boolean`` columns (and
  pyarrow-backed numbers) become float64 with NaN for missing values
  (``Float32`` becomes float32), so a column's dtype never depends on
  whether a batch happens to hold a missing value;
* object columns of Python numbers become int64 (all integers, none
  missing) or float64 with NaN;
* text (``str``/``StringDtype``, object columns of strings) and categorical
  columns with text categories become object arrays of Python ``str``, with
  ``''`` for missing values, the empty string meaning missing as it does for
  TF's feature columns; categorical columns with numeric categories become
  float64 with NaN.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator

import numpy as np
import pandas as pd

from estlab.data import _batching
from estlab.data._errors import InputTypeError, InvalidInputError, decode_utf8

_NUMBER_KINDS = ("integer", "floating", "mixed-integer-float", "decimal")


def _numbers_to_numpy(name: Any, column: pd.Series, kind: str
                      ) -> np.ndarray:
  """An object column of Python numbers: int64 when all are integers and
  none is missing, else float64 with NaN (as nullable columns)."""
  if kind == "integer" and not column.isna().any():
    try:
      return column.to_numpy(dtype=np.int64)
    except OverflowError:
      big = next(v for v in column if not np.iinfo(np.int64).min <= v
                 <= np.iinfo(np.int64).max)
      raise InvalidInputError(
          f"Column {name!r} holds {big!r}, beyond int64. Convert it first, "
          f"e.g. df[{name!r}] = df[{name!r}].astype(float), or to text with "
          f".astype(str).", column=name, value=big) from None
  return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _text_to_numpy(name: Any, column: pd.Series) -> np.ndarray:
  """A text column as an object array of str, with '' for missing values;
  an object column of numbers as ``_numbers_to_numpy``."""
  if column.dtype == object:
    kind = pd.api.types.infer_dtype(column, skipna=True)
    if kind in _NUMBER_KINDS:
      return _numbers_to_numpy(name, column, kind)
  values = column.to_numpy(dtype=object, na_value="")
  kind = pd.api.types.infer_dtype(values, skipna=False)
  if kind in ("string", "empty"):
    return values
  if kind == "bytes" or kind == "mixed" and all(
      isinstance(v, (str, bytes)) for v in values):
    return decode_utf8(values, f"Column {name!r}")
  raise InputTypeError(
      f"Column {name!r} holds Python objects that are not text "
      f"(inferred {kind!r}), e.g. {values[:3]!r}. Convert it first, e.g. "
      f"df[{name!r}] = df[{name!r}].astype(float) for numbers or "
      f".astype(str) for text.", column=name, value=values[:3])


def _column_to_numpy(name: Any, column: pd.Series) -> np.ndarray:
  """One DataFrame column as a numpy array, following the module's rules."""
  dtype = column.dtype
  if isinstance(dtype, pd.CategoricalDtype):
    categories = dtype.categories.dtype
    if (pd.api.types.is_numeric_dtype(categories)
        and not pd.api.types.is_bool_dtype(categories)):
      return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return _text_to_numpy(name, column.astype(object))
  if isinstance(dtype, np.dtype):
    if dtype.kind in "biufcmM":
      return column.to_numpy()
    if dtype.kind == "O":
      return _text_to_numpy(name, column)
  elif pd.api.types.is_string_dtype(dtype):
    return _text_to_numpy(name, column)
  elif (pd.api.types.is_numeric_dtype(dtype)
        or pd.api.types.is_bool_dtype(dtype)):
    float32 = getattr(dtype, "numpy_dtype", None) == np.float32
    return column.to_numpy(dtype=np.float32 if float32 else np.float64,
                           na_value=np.nan)
  raise InputTypeError(
      f"Column {name!r} has dtype {dtype!r}, which estlab cannot feed. "
      f"Convert it to a number or text first, e.g. "
      f"df[{name!r}] = df[{name!r}].astype(float).", column=name)


def _frame_to_columns(frame: pd.DataFrame) -> Dict[Any, np.ndarray]:
  """A DataFrame as a dict of contiguous numpy columns, converted once."""
  if frame.columns.has_duplicates:
    dup = frame.columns[frame.columns.duplicated()].tolist()
    raise ValueError(f"DataFrame columns must be unique; {dup!r} repeat. "
                     f"Rename them, e.g. with df.columns = [...].")
  return {name: np.ascontiguousarray(_column_to_numpy(name, frame[name]))
          for name in frame.columns}


def pandas_input_fn(x, y=None, batch_size=128, num_epochs=1, shuffle=None,
                    queue_capacity=1000, num_threads=1,
                    target_column="target", *, seed=None
                    ) -> Callable[[], Iterator]:
  """Returns an input_fn that feeds a pandas DataFrame in batches.

  ``tf.compat.v1.estimator.inputs.pandas_input_fn`` on host numpy; see the
  module docstring for how column types map to numpy. Batching, epochs and
  shuffling are ``numpy_input_fn``'s.

  Example:
    >>> df = pd.DataFrame({'age': [31.0, 42.0, 25.0], 'city': ['a', None, 'b']})
    >>> fn = pandas_input_fn(df, pd.Series([1, 0, 1]), batch_size=2,
    ...                      shuffle=False)
    >>> features, labels = next(iter(fn()))
    >>> features['city'].tolist(), labels.tolist()
    (['a', ''], [1, 0])

  Args:
    x: the features, a DataFrame; each column becomes a feature named after
      it.
    y: the labels: a Series (labels are an array), a DataFrame (labels are a
      dict named after its columns) or None. Its index must equal x's.
    batch_size: rows per batch.
    num_epochs: passes over the data; None repeats forever.
    shuffle: required bool; True for training (a fresh random order every
      epoch), False for evaluation and prediction.
    queue_capacity: unused; accepted for compatibility with TF's queue.
    num_threads: unused; accepted for compatibility with TF's queue.
    target_column: TF's name for the label column of a Series y. The labels
      come back as an array, so the name is only checked: it must not be a
      column of x (as in TF). Not used when y is a DataFrame.
    seed: keyword only, optional; seeds the shuffling as in
      ``numpy_input_fn``.

  Returns:
    An input_fn: a callable taking no arguments and returning an iterator
    of ``(features, labels)`` batches, or of ``features`` when y is None.

  Raises:
    ValueError: if shuffle is not a bool, x already has a column named
      ``target_column`` (y a Series), or the indexes of x and y differ.
    TypeError: if x is not a DataFrame or y is not a Series or DataFrame.
    InputTypeError: (a TypeError) if a column's dtype or objects cannot be
      fed.
    InvalidInputError: (a ValueError) if a column holds bytes that are not
      UTF-8 or integers beyond int64.
  """
  del queue_capacity, num_threads  # TF's queue settings; batches need none.
  shuffle = _batching.check_shuffle(shuffle)
  batch_size = _batching.check_batch_size(batch_size)
  num_epochs = _batching.check_num_epochs(num_epochs)
  if not isinstance(x, pd.DataFrame):
    raise TypeError(f"x must be a pandas DataFrame; got a {type(x).__name__}: "
                    f"{x!r:.200}. For dicts of arrays use numpy_input_fn.")
  if len(x.columns) == 0 or len(x) == 0:
    raise ValueError(f"x must have at least one column and one row; got "
                     f"shape {x.shape!r}.")
  labels = None
  if y is not None:
    if not isinstance(y, (pd.Series, pd.DataFrame)):
      raise TypeError(f"y must be a pandas Series, DataFrame or None; got a "
                      f"{type(y).__name__}: {y!r:.200}.")
    if isinstance(y, pd.Series) and target_column in x.columns:
      raise ValueError(
          f"Cannot use name {target_column!r} for the target column: x "
          f"already has a column with that name (columns: "
          f"{list(x.columns)!r}). Pass another target_column=..., or drop "
          f"the label from x.")
    if not x.index.equals(y.index):
      raise ValueError(
          f"Index for x and y are mismatched: x.index is {x.index!r:.300} but "
          f"y.index is {y.index!r:.300}. Align them, e.g. "
          f"y = y.reindex(x.index), or reset both with .reset_index(drop=True).")
    if isinstance(y, pd.DataFrame):
      labels = _frame_to_columns(y)
    else:
      labels = np.ascontiguousarray(_column_to_numpy(y.name, y))
  features = _frame_to_columns(x)
  return _batching.make_array_input_fn(features, labels, batch_size,
                                       num_epochs, shuffle, seed)
