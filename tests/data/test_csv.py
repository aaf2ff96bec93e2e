"""Tests for make_csv_dataset: round trips, shuffling, streaming and errors."""
import itertools

import numpy as np
import pandas as pd
import pytest

from estlab.data import _csv as csv_io
from estlab.inputs import make_csv_dataset


def _write(path, start, n, **kwargs):
  frame = pd.DataFrame({"id": np.arange(start, start + n),
                        "score": np.arange(start, start + n) / 4,
                        "name": [f"n{i}" for i in range(start, start + n)]})
  frame.to_csv(path, index=False, **kwargs)
  return frame


def _dtypes(dataset):
  features, label = dataset.element_spec
  return {**{k: s.dtype for k, s in features.items()}, "label": label.dtype}


def _ids(dataset):
  """The ids of one full pass, in order, checking batch sizes on the way."""
  batches = list(dataset)
  sizes = [len(features["id"]) for features, _ in batches]
  assert len(set(sizes[:-1])) <= 1 and sizes[-1] <= sizes[0]
  return np.concatenate([features["id"] for features, _ in batches])


def test_round_trip_of_a_pandas_file(tmp_path):
  frame = pd.DataFrame({"age": [31, 42, 25, 60, 18],
                        "income": [1.5, np.nan, 3.25, 4.0, 0.5],
                        "city": ["paris", None, "oslo", "rome", "lima"],
                        "label": [1, 0, 1, 1, 0]})
  frame.to_csv(tmp_path / "d.csv", index=False)
  ds = make_csv_dataset(str(tmp_path / "d.csv"), batch_size=2,
                        label_name="label", num_epochs=1, shuffle=False)
  assert _dtypes(ds) == {"age": np.int32, "income": np.float32,
                       "city": object, "label": np.int32}
  batches = list(ds)
  assert [len(y) for _, y in batches] == [2, 2, 1]
  features = {k: np.concatenate([f[k] for f, _ in batches]) for k in
              batches[0][0]}
  np.testing.assert_array_equal(features["age"], frame["age"])
  np.testing.assert_array_equal(features["income"], [1.5, 0, 3.25, 4, 0.5])
  assert features["city"].tolist() == ["paris", "", "oslo", "rome", "lima"]
  np.testing.assert_array_equal(np.concatenate([y for _, y in batches]),
                                frame["label"])


def test_shuffled_files_and_buffer_yield_every_row_once_per_epoch(
    tmp_path, monkeypatch):
  monkeypatch.setattr(csv_io, "_CHUNK_ROWS", 4)
  for i in range(3):
    _write(tmp_path / f"part{i}.csv", 10 * i, 10)
  ds = make_csv_dataset(str(tmp_path / "part*.csv"), batch_size=7,
                        label_name="name", num_epochs=3, shuffle=True,
                        shuffle_buffer_size=5, shuffle_seed=0)
  ids = _ids(ds)
  assert len(ids) == 90
  epochs = ids.reshape(3, 30)
  for epoch in epochs:
    np.testing.assert_array_equal(np.sort(epoch), np.arange(30))
  assert not np.array_equal(epochs[0], np.arange(30))
  assert not np.array_equal(epochs[0], epochs[1])
  again = _ids(ds)  # Re-iterable, with a fresh shuffle.
  np.testing.assert_array_equal(np.sort(again[:30]), np.arange(30))
  assert not np.array_equal(again, ids)


def test_multi_file_glob_and_list_in_order(tmp_path):
  _write(tmp_path / "a.csv", 0, 3)
  _write(tmp_path / "b.csv", 3, 4)
  by_glob = make_csv_dataset(str(tmp_path / "*.csv"), batch_size=5,
                             label_name="score", num_epochs=1, shuffle=False)
  by_list = make_csv_dataset([str(tmp_path / "b.csv"), str(tmp_path / "a.csv")],
                             batch_size=5, label_name="score", num_epochs=1,
                             shuffle=False)
  assert _ids(by_glob).tolist() == list(range(7))
  assert _ids(by_list).tolist() == [3, 4, 5, 6, 0, 1, 2]


def test_bad_value_names_the_file_line_and_dtypes(tmp_path):
  (tmp_path / "d.csv").write_text("a,b\n1,2\n2,3\noops,4\n")
  ds = make_csv_dataset(str(tmp_path / "d.csv"), batch_size=2, num_epochs=1,
                        shuffle=False, num_rows_for_inference=2)
  with pytest.raises(ValueError, match=r"Column 'a' holds 'oops' at line 4 "
                     r"of '.*d.csv', which is not a valid int32"):
    list(ds)


def test_gzip(tmp_path):
  _write(tmp_path / "d.csv.gz", 0, 6, compression="gzip")
  ds = make_csv_dataset(str(tmp_path / "d.csv.gz"), batch_size=4,
                        label_name="score", num_epochs=1, shuffle=False,
                        compression_type="GZIP")
  assert _ids(ds).tolist() == list(range(6))


def test_a_file_larger_than_a_chunk_is_streamed(tmp_path, monkeypatch):
  _write(tmp_path / "d.csv", 0, 25)
  monkeypatch.setattr(csv_io, "_CHUNK_ROWS", 4)
  calls = []
  read_csv = pd.read_csv

  def spy(*args, **kwargs):
    calls.append(kwargs)
    return read_csv(*args, **kwargs)

  monkeypatch.setattr(pd, "read_csv", spy)
  ds = make_csv_dataset(str(tmp_path / "d.csv"), batch_size=10,
                        label_name="score", num_epochs=1, shuffle=False,
                        num_rows_for_inference=5)
  # Setting up reads a few rows only, never the whole file.
  assert all(kwargs.get("nrows") is not None for kwargs in calls)
  calls.clear()
  chunk_rows = []
  convert = csv_io.CsvDataset._convert

  def counting_convert(self, chunk, *args):
    chunk_rows.append(len(chunk))
    return convert(self, chunk, *args)

  monkeypatch.setattr(csv_io.CsvDataset, "_convert", counting_convert)
  assert _ids(ds).tolist() == list(range(25))
  assert [kwargs.get("chunksize") for kwargs in calls] == [4]
  assert chunk_rows == [4] * 6 + [1]


def test_num_epochs_none_repeats(tmp_path):
  _write(tmp_path / "d.csv", 0, 5)
  ds = make_csv_dataset(str(tmp_path / "d.csv"), batch_size=3,
                        label_name="score", shuffle=True, shuffle_seed=1)
  batches = list(itertools.islice(ds, 10))
  assert all(len(features["id"]) == 3 for features, _ in batches)
  ids = np.concatenate([features["id"] for features, _ in batches])
  for epoch in ids.reshape(-1, 5):
    np.testing.assert_array_equal(np.sort(epoch), np.arange(5))


def test_label_name_missing_lists_the_columns(tmp_path):
  _write(tmp_path / "d.csv", 0, 3)
  with pytest.raises(ValueError, match=r"'target'.*\['id', 'score', 'name'\]"):
    make_csv_dataset(str(tmp_path / "d.csv"), batch_size=2,
                     label_name="target")


def test_no_matching_file_names_the_pattern(tmp_path):
  pattern = str(tmp_path / "nothing*.csv")
  with pytest.raises(FileNotFoundError, match="nothing"):
    make_csv_dataset(pattern, batch_size=2)


def test_column_defaults_fill_and_required_columns_raise(tmp_path):
  (tmp_path / "d.csv").write_text("a,b,c\n1,,x\n,2.5,\n3,4,z\n")
  ds = make_csv_dataset(str(tmp_path / "d.csv"), batch_size=3, num_epochs=1,
                        shuffle=False, column_defaults=[-1, 9.0, "?"])
  (batch,) = list(ds)
  assert batch["a"].tolist() == [1, -1, 3] and batch["a"].dtype == np.int32
  assert batch["b"].tolist() == [9.0, 2.5, 4.0]
  assert batch["c"].tolist() == ["x", "?", "z"]
  strict = make_csv_dataset(str(tmp_path / "d.csv"), batch_size=3,
                            num_epochs=1, shuffle=False,
                            column_defaults=[np.int64, 0.0, str])
  with pytest.raises(ValueError, match=r"Column 'a' is required.*line 3"):
    list(strict)


def test_ignore_errors_skips_bad_rows(tmp_path):
  (tmp_path / "d.csv").write_text("a,b\n1,x\noops,y\n3,z\n")
  ds = make_csv_dataset(str(tmp_path / "d.csv"), batch_size=5, num_epochs=1,
                        shuffle=False, column_defaults=[0, ""],
                        ignore_errors=True)
  (batch,) = list(ds)
  assert batch["a"].tolist() == [1, 3]
  assert batch["b"].tolist() == ["x", "z"]


def test_headerless_file_with_selected_columns(tmp_path):
  (tmp_path / "d.tsv").write_text("1\tx\t0.5\n2\ty\t1.5\n")
  ds = make_csv_dataset(str(tmp_path / "d.tsv"), batch_size=2,
                        column_names=["a", "b", "c"], select_columns=[0, "c"],
                        label_name="c", field_delim="\t", header=False,
                        num_epochs=1, shuffle=False)
  ((features, label),) = list(ds)
  assert list(features) == ["a"]
  assert features["a"].tolist() == [1, 2] and label.tolist() == [0.5, 1.5]
