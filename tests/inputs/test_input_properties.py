"""Property tests: random tables through the input functions and encoders.

Random DataFrames and dicts of arrays (missing values, unicode, empty and
huge strings, mixed types, huge and non-finite numbers) go through
pandas_input_fn, numpy_input_fn, Dataset.from_tensor_slices and
feature_column.encode. Each either succeeds or raises one of estlab's
documented errors (``_DOCUMENTED``), whose message names the column; never a
raw KeyError, IndexError or numpy / pandas error.
"""
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from estlab import feature_column as fc
from estlab.data import Dataset, InputTypeError, InvalidInputError
from estlab.inputs import numpy_input_fn, pandas_input_fn

_DOCUMENTED = (InvalidInputError, InputTypeError, fc.FeatureValueError,
               fc.FeatureTypeError, fc.MissingFeatureError)
_SETTINGS = settings(max_examples=50, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow,
                                            HealthCheck.data_too_large])

_TEXT = st.one_of(st.text(max_size=8), st.just(""),
                  st.text(alphabet="ab€😀\u0000\ud7ff", max_size=4),
                  st.just("x" * 20000))
_NUMBER = st.one_of(st.integers(-2, 6), st.integers(-2**63, 2**63 - 1),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0.5, 3.0, -1.0]))
_CELL = st.one_of(_TEXT, _NUMBER, st.none(), st.just(np.nan), st.booleans(),
                  st.just(pd.NA), st.binary(max_size=4))


@st.composite
def _columns(draw):
  """1 to 8 rows of 1 to 3 columns, each homogeneous or mixed."""
  rows = draw(st.integers(1, 8))
  kinds = st.sampled_from(["text", "int", "float", "mixed", "nullable"])
  names = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1,
                        max_size=3, unique=True))
  out = {}
  for name in names:
    kind = draw(kinds)
    if kind == "text":
      values = draw(st.lists(st.one_of(_TEXT, st.none()), min_size=rows,
                             max_size=rows))
    elif kind == "int":
      values = np.array(draw(st.lists(st.integers(-3, 9), min_size=rows,
                                      max_size=rows)), dtype=np.int64)
    elif kind == "float":
      values = np.array(draw(st.lists(_NUMBER, min_size=rows, max_size=rows)),
                        dtype=np.float64)
    elif kind == "nullable":
      values = pd.array(draw(st.lists(st.one_of(st.integers(-3, 9),
                                                st.none()),
                                      min_size=rows, max_size=rows)),
                        dtype="Int64")
    else:
      values = draw(st.lists(_CELL, min_size=rows, max_size=rows))
    out[name] = values
  return out


def _feature_columns():
  """Columns of every family over features 'a', 'b' and 'c'."""
  ident = fc.categorical_column_with_identity("a", 7)
  return [
      fc.numeric_column("a", default_value=0.0),
      fc.bucketized_column(fc.numeric_column("b", default_value=0.0),
                           [0.0, 1.0]),
      fc.categorical_column_with_hash_bucket("b", 11),
      fc.categorical_column_with_hash_bucket("a", 11, dtype="int64"),
      fc.categorical_column_with_vocabulary_list("c", ["x", "", "€"],
                                                 num_oov_buckets=2),
      fc.categorical_column_with_vocabulary_list("a", [1, 2, 3]),
      ident,
      fc.categorical_column_with_identity("c", 7, default_value=0),
      fc.crossed_column(["b", "c"], 13),
      fc.indicator_column(ident),
  ]


def _fails_cleanly(call):
  """Runs ``call``; a raised error must be documented and name its column."""
  try:
    call()
  except _DOCUMENTED as err:
    assert str(err)  # A message, not a bare exception.
    return err
  return None


def _encode_each(features):
  """Each column alone, so one bad column does not hide another."""
  for column in _feature_columns():
    _fails_cleanly(lambda column=column: fc.encode([column], features))


@pytest.mark.filterwarnings("error::RuntimeWarning")  # No silent garbage.
@_SETTINGS
@given(_columns())
def test_pandas_input_fn_then_encode(columns):
  frame = pd.DataFrame({k: pd.Series(v, dtype=object)
                        if isinstance(v, list) else v
                        for k, v in columns.items()})
  batches = []
  err = _fails_cleanly(lambda: batches.extend(pandas_input_fn(
      frame, batch_size=3, shuffle=False)()))
  if err is None:
    assert sum(len(next(iter(b.values()))) for b in batches) == len(frame)
    for batch in batches:
      _encode_each(batch)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # No silent garbage.
@_SETTINGS
@given(_columns())
def test_numpy_input_fn_then_encode(columns):
  arrays = {k: np.array(v, dtype=object) if isinstance(v, list)
            else np.asarray(v, dtype=object) for k, v in columns.items()}
  batches = []
  err = _fails_cleanly(lambda: batches.extend(numpy_input_fn(
      arrays, batch_size=4, shuffle=False)()))
  if err is None:
    for batch in batches:
      _encode_each(batch)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # No silent garbage.
@_SETTINGS
@given(_columns())
def test_from_tensor_slices_then_encode(columns):
  batches = []
  err = _fails_cleanly(lambda: batches.extend(Dataset.from_tensor_slices(
      {k: list(v) for k, v in columns.items()}).batch(5)))
  if err is None:
    for batch in batches:
      _encode_each(batch)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # No silent garbage.
@_SETTINGS
@given(_columns())
def test_encode_raw_features(columns):
  features = {k: np.array(v, dtype=object) if isinstance(v, list) else
              np.asarray(v) for k, v in columns.items()}
  _encode_each(features)
  err = _fails_cleanly(lambda: fc.encode(_feature_columns(), {}))
  assert isinstance(err, fc.MissingFeatureError)


def test_documented_errors_are_value_and_type_errors():
  for error in _DOCUMENTED:
    assert issubclass(error, (ValueError, TypeError)), error
  assert not math.isnan(0.0)


# What the property tests found, kept as plain tests.


def test_pandas_object_column_of_numbers_is_fed_as_numbers():
  frame = pd.DataFrame({"n": pd.Series([1, 2, 3], dtype=object),
                        "m": pd.Series([1, None, 3], dtype=object)})
  (features,) = list(pandas_input_fn(frame, batch_size=3, shuffle=False)())
  assert features["n"].dtype == np.int64 and features["n"].tolist() == [1, 2,
                                                                       3]
  assert features["m"].dtype == np.float64
  assert np.isnan(features["m"][1]) and features["m"][2] == 3.0
  big = pd.DataFrame({"n": pd.Series([1, 2**64], dtype=object)})
  with pytest.raises(InvalidInputError, match=r"'n' holds 18446744073709551616"
                     r", beyond int64"):
    pandas_input_fn(big, batch_size=2, shuffle=False)


@pytest.mark.parametrize("feed", ["pandas", "slices", "encode"])
def test_bytes_that_are_not_utf8_name_the_column(feed):
  values = ["ok", b"\x80abc"]
  if feed == "pandas":
    call = lambda: pandas_input_fn(pd.DataFrame({"t": values}), shuffle=False)
  elif feed == "slices":
    call = lambda: Dataset.from_tensor_slices({"t": values})
  else:
    column = fc.categorical_column_with_hash_bucket("t", 5)
    call = lambda: fc.encode([column], {"t": np.array(values, dtype=object)})
  with pytest.raises(_DOCUMENTED, match=r"not UTF-8 text: b'\\x80abc'"):
    call()


@pytest.mark.parametrize("value", [np.inf, 1e300, -2.0**64])
def test_an_integer_column_names_a_float_beyond_int64(value):
  # Cast to int64 these were garbage ids, without a word.
  column = fc.categorical_column_with_identity("i", 5, default_value=0)
  with pytest.raises(fc.FeatureValueError, match=r"'i' expects integers "
                     r"\(int64\), got"):
    fc.encode([column], {"i": np.array([1.0, value])})
  hashed = fc.categorical_column_with_hash_bucket("i", 5, dtype="int64")
  with pytest.raises(fc.FeatureValueError):
    fc.encode([hashed], {"i": np.array([1.0, value])})


def test_uint64_beyond_int64_and_python_ints_beyond_int64():
  column = fc.categorical_column_with_hash_bucket("i", 5, dtype="int64")
  with pytest.raises(fc.FeatureValueError, match=str(2**63)):
    fc.encode([column], {"i": np.array([1, 2**63], dtype=np.uint64)})
  with pytest.raises(fc.FeatureValueError, match=str(2**70)):
    fc.encode([column], {"i": np.array([1, 2**70], dtype=object)})


def test_numeric_column_names_a_boolean_among_numbers():
  column = fc.numeric_column("a")
  with pytest.raises(fc.FeatureTypeError, match="non-number, False"):
    fc.encode([column], {"a": np.array([0, False], dtype=object)})
