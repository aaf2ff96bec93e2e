"""TextLineDataset yields the lines tf.data 2.15's does (as str).

fixtures/text_line.json was written by fixtures/make_text_line_fixtures.py
with TensorFlow: each case's lines, element_spec and cardinality, and the
lines after ``skip(1)`` (the r1 CSV input_fns' header skip).
"""
import gzip
import json
import os
import pathlib
import zlib

import numpy as np
import pytest

from estlab import data

_FIXTURE = json.loads((pathlib.Path(__file__).parent / "fixtures" /
                       "text_line.json").read_text(encoding="utf-8"))


@pytest.fixture
def folder(tmp_path):
  """The fixture's files, compressed as their names say (as the script)."""
  for name, text in _FIXTURE["files"].items():
    raw = text.encode("utf-8")
    if name.endswith(".gz"):
      raw = gzip.compress(raw)
    elif name.endswith(".z"):
      raw = zlib.compress(raw)
    (tmp_path / name).write_bytes(raw)
  return tmp_path


def _build(folder, kwargs):
  kwargs = dict(kwargs)
  names = kwargs["filenames"]
  kwargs["filenames"] = (str(folder / names) if isinstance(names, str)
                         else [str(folder / n) for n in names])
  return data.TextLineDataset(**kwargs)


@pytest.mark.parametrize("case", _FIXTURE["cases"],
                         ids=[json.dumps(c["kwargs"]) for c in
                              _FIXTURE["cases"]])
def test_lines_match_tf(folder, case):
  ds = _build(folder, case["kwargs"])
  lines = list(ds)
  assert lines == case["lines"]
  assert all(type(line) is str for line in lines)  # pylint: disable=unidiomatic-typecheck
  spec = ds.element_spec
  assert [list(spec.shape), "string" if spec.dtype == object else
          spec.dtype.name] == case["element_spec"]
  assert ds.cardinality() == case["cardinality"]
  assert list(ds.skip(1)) == case["skip1"]


def test_each_iteration_reads_the_files_afresh(tmp_path):
  path = tmp_path / "a.txt"
  path.write_text("1\n2\n")
  ds = data.TextLineDataset(str(path))
  assert list(ds.repeat(2)) == ["1", "2", "1", "2"]
  path.write_text("3\n")
  assert list(ds) == ["3"]


def test_path_objects_and_a_dataset_of_names(tmp_path):
  (tmp_path / "a.txt").write_text("a1\na2\n")
  (tmp_path / "b.txt").write_text("b1\n")
  assert list(data.TextLineDataset(tmp_path / "a.txt")) == ["a1", "a2"]
  names = data.Dataset.from_tensor_slices(
      [str(tmp_path / "b.txt"), str(tmp_path / "a.txt")])
  assert list(data.TextLineDataset(names)) == ["b1", "a1", "a2"]
  assert list(data.TextLineDataset(
      np.array([str(tmp_path / "a.txt")]))) == ["a1", "a2"]


def test_the_r1_csv_input_fn_pipeline(tmp_path):
  path = tmp_path / "iris.csv"
  path.write_text("120,4,setosa,versicolor,virginica\n"
                  "6.4,2.8,5.6,2.2,2\n5.0,2.3,3.3,1.0,1\n4.9,2.5,4.5,1.7,2\n")

  def parse(line):
    *x, y = line.split(",")
    return {"x": np.asarray(x, np.float32)}, np.int32(y)

  ds = data.TextLineDataset(str(path)).skip(1).map(parse).batch(2)
  batches = list(ds)
  assert [b[1].tolist() for b in batches] == [[2, 1], [2]]
  np.testing.assert_allclose(batches[0][0]["x"][1], [5.0, 2.3, 3.3, 1.0])
  assert ds.element_spec[0]["x"].shape == (None, 4)


def test_a_missing_file_is_named(tmp_path):
  (tmp_path / "a.txt").write_text("a\n")
  missing = str(tmp_path / "nope.csv")
  with pytest.raises(FileNotFoundError, match="nope.csv"):
    data.TextLineDataset([str(tmp_path / "a.txt"), missing])
  names = data.Dataset.from_tensor_slices([missing])
  with pytest.raises(FileNotFoundError, match="nope.csv"):
    list(data.TextLineDataset(names))


def test_bad_arguments_say_what_to_pass(tmp_path):
  path = tmp_path / "a.txt"
  path.write_text("a\n")
  with pytest.raises(ValueError, match="compression_type 'BZ2'.*'GZIP'"):
    data.TextLineDataset(str(path), compression_type="BZ2")
  with pytest.raises(TypeError, match="file names must be strings"):
    data.TextLineDataset([str(path), 3])
  with pytest.raises(TypeError, match="file name or a list"):
    data.TextLineDataset(3)
  with pytest.raises(ValueError, match="num_parallel_reads"):
    data.TextLineDataset(str(path), num_parallel_reads=0)


def test_unreadable_content_names_the_file(tmp_path):
  plain = tmp_path / "plain.txt"
  plain.write_text("not compressed\n")
  with pytest.raises(ValueError, match="plain.txt.*'GZIP'"):
    list(data.TextLineDataset(str(plain), compression_type="GZIP"))
  with pytest.raises(ValueError, match="plain.txt.*'ZLIB'"):
    list(data.TextLineDataset(str(plain), compression_type="ZLIB"))
  latin = tmp_path / "latin.txt"
  latin.write_bytes("caf\u00e9\n".encode("latin-1"))
  with pytest.raises(ValueError, match="latin.txt.*UTF-8"):
    list(data.TextLineDataset(str(latin)))


def test_is_a_dataset():
  assert issubclass(data.TextLineDataset, data.Dataset)
