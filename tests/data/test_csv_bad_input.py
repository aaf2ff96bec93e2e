"""Bad CSV files: each failure is a CsvParseError naming the file and line.

TF 2.15's behaviour on the same files is in fixtures/csv_errors_tf215.json
(fixtures/make_csv_errors_tf.py): where TF raises, estlab raises
CsvParseError; where TF reads, estlab reads the same values.
"""
import gzip
import json
import pathlib

import numpy as np
import pytest

from estlab.data import CsvParseError, InvalidInputError
from estlab.data import _csv_lines
from estlab.inputs import make_csv_dataset

_TF = json.loads((pathlib.Path(__file__).parent / "fixtures" /
                  "csv_errors_tf215.json").read_text())


def _read(path, **kwargs):
  """One pass over a CSV file as {column: list}."""
  kwargs = {"batch_size": 10, "num_epochs": 1, "shuffle": False, **kwargs}
  columns = {}
  for batch in make_csv_dataset(str(path), **kwargs):
    for key, value in batch.items():
      columns.setdefault(key, []).extend(value.tolist())
  return columns


@pytest.mark.parametrize("case", sorted(_TF))
def test_fails_where_tf_fails_and_reads_what_tf_reads(case, tmp_path):
  expected = _TF[case]
  path = tmp_path / f"{case}.csv"
  path.write_bytes(expected["text"].encode("latin-1"))
  if "error" in expected:
    with pytest.raises(CsvParseError) as raised:
      _read(path, **expected["kwargs"])
    assert raised.value.path == str(path)
    assert raised.value.line == 3  # Every bad case is bad at line 3.
    message = str(raised.value)
    assert repr(str(path)) in message and "ine 3 " in message
  else:
    assert _read(path, **expected["kwargs"]) == expected["columns"]


@pytest.mark.parametrize("text, got", [
    ("a,b,c\n1,2,3\n4,5\n6,7,8\n", 2),
    ("a,b,c\n1,2,3\n4,5,6,7\n6,7,8\n", 4),
])
def test_a_row_with_the_wrong_field_count_names_file_line_and_counts(
    tmp_path, text, got):
  path = tmp_path / "rows.csv"
  path.write_text(text)
  with pytest.raises(CsvParseError) as raised:
    _read(path, column_defaults=[0, 0, 0])
  message = str(raised.value)
  assert f"Line 3 of {str(path)!r} has {got} fields but the file has 3 " \
         "columns" in message
  assert "ignore_errors=True" in message  # The fix.
  assert isinstance(raised.value, ValueError)


def test_extra_fields_are_caught_when_only_some_columns_are_selected(
    tmp_path):
  # pandas drops fields past the selected columns without a word.
  path = tmp_path / "d.csv"
  path.write_text("a,b,c\n1,2,3\n4,5,6,7\n")
  with pytest.raises(CsvParseError, match="Line 3 .* has 4 fields"):
    _read(path, select_columns=["a"])


def test_ignore_errors_skips_rows_with_the_wrong_field_count(tmp_path):
  path = tmp_path / "d.csv"
  path.write_text("a,b\n1,2\n3\n4,5,6\n7,8\n")
  assert _read(path, ignore_errors=True) == {"a": [1, 7], "b": [2, 8]}


def test_quoted_fields_may_hold_delimiters_and_newlines(tmp_path):
  path = tmp_path / "d.csv"
  path.write_text('a,b,c\n1,"x,\ny",3\n4,"z",6\n7,"q"\n')
  with pytest.raises(CsvParseError) as raised:
    _read(path)
  assert raised.value.line == 5  # The quoted field spans lines 2 and 3.
  path.write_text('a,b,c\n1,"x,\ny",3\n4,"z",6\n')
  assert _read(path) == {"a": [1, 4], "b": ["x,\ny", "z"], "c": [3, 6]}


def test_blank_lines_are_no_rows(tmp_path):
  path = tmp_path / "d.csv"
  path.write_text("a,b\n1,2\n\n  \n3,4\n")
  assert _read(path) == {"a": [1, 3], "b": [2, 4]}


def test_the_line_is_counted_across_blocks_and_in_gzip(tmp_path,
                                                       monkeypatch):
  monkeypatch.setattr(_csv_lines, "_BLOCK", 7)  # Lines cross blocks.
  rows = "".join(f"{i},{i * 2}\n" for i in range(40))
  path = tmp_path / "d.csv.gz"
  with gzip.open(path, "wt") as f:
    f.write("a,b\n" + rows + "40\n")
  with pytest.raises(CsvParseError) as raised:
    _read(path, compression_type="GZIP")
  assert raised.value.line == 42 and raised.value.value == "40"


def test_a_binary_file_names_the_file_and_line(tmp_path):
  path = tmp_path / "image.csv"
  path.write_bytes(b"a,b\n1,2\n" + bytes(range(128, 256)) + b"\n")
  for kwargs in ({}, {"column_defaults": [0, 0]}, {"ignore_errors": True}):
    with pytest.raises(CsvParseError) as raised:
      _read(path, **kwargs)
    message = str(raised.value)
    assert f"{str(path)!r} is not UTF-8 text: line 3 holds the byte 0x80" \
        in message
    assert raised.value.line == 3
  path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")  # Bad in the first line.
  with pytest.raises(CsvParseError, match=r"image.csv' is not UTF-8 text: "
                     r"line 1 holds the byte 0x89"):
    _read(path)


@pytest.mark.parametrize("cell, dtype", [("x5", "int32"), ("2.5", "int32"),
                                         ("9999999999", "int32"),
                                         ("n/a", "float32")])
def test_a_bad_number_shows_the_cell_column_file_and_line(tmp_path, cell,
                                                           dtype):
  path = tmp_path / "d.csv"
  path.write_text(f"a,b\n1,2\n3,4\n5,{cell}\n")
  default = 0 if dtype == "int32" else 0.0
  with pytest.raises(CsvParseError) as raised:
    _read(path, column_defaults=[0, default])
  err = raised.value
  assert (err.path, err.line, err.column, err.value) == (str(path), 4, "b",
                                                         cell)
  assert (f"Column 'b' holds {cell!r} at line 4 of {str(path)!r}, which is "
          f"not a valid {dtype}") in str(err)
  assert isinstance(err, InvalidInputError)


def test_a_bad_number_after_the_rows_used_for_inference(tmp_path):
  path = tmp_path / "d.csv"
  path.write_text("a\n" + "1\n" * 5 + "\n" + "2\n" * 5 + "seven\n")
  with pytest.raises(CsvParseError, match=r"'seven' at line 13 .*int32"):
    _read(path, num_rows_for_inference=3)
  with pytest.raises(CsvParseError, match=r"'seven' at line 13"):
    _read(path, num_rows_for_inference=3, batch_size=2)


def test_a_missing_required_value_names_the_line(tmp_path):
  path = tmp_path / "d.csv"
  path.write_text("a,b\n1,2\n\n3,\n")  # Line 3 is blank: no row.
  with pytest.raises(CsvParseError, match=r"'b' is required .* line 4 of"):
    _read(path, column_defaults=[0, np.int32])
