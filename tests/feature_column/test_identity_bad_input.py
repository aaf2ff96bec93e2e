"""categorical_column_with_identity on -1, other negatives and ids too large.

TF 2.15's behaviour is in tests/tf_reference/identity_column_tf215.json
(identity_column_tf.py): every id TF gives in [0, num_buckets) (or drops)
estlab gives too. Where TF passes an id outside the range on, estlab raises
FeatureValueError naming it, except -1 in a sparse feature without a
default, which TF's linear and embedding lookups drop, as estlab does.
"""
import json
import pathlib

import numpy as np
import pytest

from estlab import feature_column as fc

_TF = json.loads((pathlib.Path(__file__).resolve().parent.parent /
                  "tf_reference" / "identity_column_tf215.json").read_text())
_N = _TF["num_buckets"]


def _feature(value, layout):
  if layout == "dense":
    return np.array([[1], [value]], dtype=np.int64)
  ragged = np.empty(2, dtype=object)  # TF's SparseTensor: a list per row.
  ragged[:] = [[1], [value]]
  return ragged


def _ids(column, feature):
  """Each row's ids, padding dropped."""
  ids = fc.encode([column], {"x": feature})[column.name]["ids"]
  return [[int(i) for i in row if i >= 0] for row in ids]


@pytest.mark.parametrize("case", sorted(_TF["ids"]))
def test_ids_as_tf_or_an_error_naming_the_value(case):
  value, default, layout = case.split()
  value, default = int(value), eval(default.split("=")[1])  # pylint: disable=eval-used
  column = fc.categorical_column_with_identity("x", _N, default_value=default)
  tf_ids = _TF["ids"][case]
  tf_row = tf_ids[1]
  if tf_row is None or 0 <= tf_row < _N:  # TF dropped it or gave an id.
    assert _ids(column, _feature(value, layout)) == [
        [1], [] if tf_row is None else [tf_row]]
  elif value == -1:  # TF's lookups drop a sparse -1: so does estlab.
    assert _TF["train"]["linear -1"] == "ok"
    assert _ids(column, _feature(value, layout)) == [[1], []]
  else:
    with pytest.raises(fc.FeatureValueError) as raised:
      _ids(column, _feature(value, layout))
    err = raised.value
    assert (err.column, err.value, err.row) == ("x", value, 1)
    assert (f"categorical_column_with_identity 'x' got {value} (row 1 of the "
            f"batch), outside [0, {_N})") in str(err)
    assert "default_value=" in str(err)  # The fix.
    assert isinstance(err, ValueError)


def test_minus_two_is_an_error_not_a_missing_value():
  column = fc.categorical_column_with_identity("x", 10)
  with pytest.raises(fc.FeatureValueError, match=r"got -2 \(row 2"):
    fc.encode([column], {"x": np.array([3, -1, -2, 4])})
  ids = fc.encode([column], {"x": np.array([3, -1, 4])})["x"]["ids"]
  assert ids[:, 0].tolist() == [3, -1, 4]  # -1 stays missing.


def test_nan_is_missing_and_a_float_id_out_of_range_is_named():
  column = fc.categorical_column_with_identity("x", 10)
  ids = fc.encode([column], {"x": np.array([3.0, np.nan])})["x"]["ids"]
  assert ids[:, 0].tolist() == [3, -1]
  with pytest.raises(fc.FeatureValueError, match="got 12"):
    fc.encode([column], {"x": np.array([3.0, 12.0])})


def test_sequence_identity_column_names_the_value_too():
  column = fc.sequence_categorical_column_with_identity("x", 4)
  ragged = np.empty(2, dtype=object)
  ragged[:] = [[1, 2], [3, -5]]
  with pytest.raises(fc.FeatureValueError, match="got -5 .*row 1"):
    fc.encode([column], {"x": ragged})
