"""Tests for pandas_input_fn: column types, one conversion, index checks."""
import numpy as np
import pandas as pd
import pytest

from estlab.inputs import pandas_input_fn


def _frame(n=10):
  return pd.DataFrame({"num": np.arange(n, dtype=np.float32),
                       "flag": np.arange(n) % 2 == 0},
                      index=np.arange(100, 100 + n))


@pytest.mark.parametrize("shuffle", [False, True])
def test_each_row_once_per_epoch_with_labels_aligned(shuffle):
  x = _frame(13)
  y = pd.Series(np.arange(13) * 3, index=x.index)
  fn = pandas_input_fn(x, y, batch_size=4, num_epochs=2, shuffle=shuffle,
                       seed=0)
  batches = list(fn())
  assert [len(labels) for _, labels in batches] == [4] * 6 + [2]
  nums = np.concatenate([f["num"] for f, _ in batches])
  labels = np.concatenate([labels for _, labels in batches])
  np.testing.assert_array_equal(labels, nums * 3)
  for epoch in nums.reshape(2, 13):
    np.testing.assert_array_equal(np.sort(epoch), np.arange(13))
  assert (not np.array_equal(nums[:13], np.arange(13))) == shuffle


def test_column_types_map_to_numpy():
  x = pd.DataFrame({
      "text": pd.Series(["a", None, "c"], dtype="str"),
      "string": pd.Series(["x", pd.NA, "z"], dtype="string"),
      "obj": pd.Series(["p", np.nan, "r"], dtype=object),
      "cat": pd.Categorical(["u", None, "w"]),
      "nullable_int": pd.array([1, None, 3], dtype="Int64"),
      "nullable_float": pd.array([0.5, None, 1.5], dtype="Float32"),
      "int": np.array([1, 2, 3], dtype=np.int32),
      "flag": [True, False, True],
  })
  fn = pandas_input_fn(x, batch_size=3, shuffle=False)
  (batch,) = list(fn())
  for name in ("text", "string", "obj", "cat"):
    assert batch[name].dtype == object, name
    assert batch[name].tolist()[1] == "", name
    assert all(type(v) is str for v in batch[name]), name
  assert batch["nullable_int"].dtype == np.float64
  np.testing.assert_array_equal(batch["nullable_int"], [1.0, np.nan, 3.0])
  assert batch["nullable_float"].dtype == np.float32
  assert np.isnan(batch["nullable_float"][1])
  assert batch["int"].dtype == np.int32
  assert batch["flag"].dtype == np.bool_


def test_dataframe_is_converted_once(monkeypatch):
  x = pd.DataFrame({"num": np.arange(8.0), "text": list("abcdefgh")})
  calls = []
  for cls in (pd.DataFrame, pd.Series):
    original = cls.to_numpy

    def counting(self, *args, _original=original, **kwargs):
      calls.append(type(self).__name__)
      return _original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "to_numpy", counting)
  fn = pandas_input_fn(x, batch_size=3, num_epochs=2, shuffle=False)
  assert calls  # Converted when the input_fn was made ...
  calls.clear()
  first, second = list(fn()), list(fn())
  assert calls == []  # ... and never again while batching.
  # Both passes slice the same cached arrays.
  assert np.shares_memory(first[0]["num"], second[0]["num"])
  assert np.shares_memory(first[0]["text"], second[0]["text"])


def test_dataframe_y_gives_a_dict_of_labels():
  x = _frame(4)
  y = pd.DataFrame({"a": np.arange(4), "b": np.arange(4) * 2.0},
                   index=x.index)
  fn = pandas_input_fn(x, y, batch_size=4, shuffle=False)
  (_, labels), = list(fn())
  assert set(labels) == {"a", "b"}
  np.testing.assert_array_equal(labels["b"], [0.0, 2.0, 4.0, 6.0])


def test_index_mismatch_is_an_error():
  x = _frame(4)
  with pytest.raises(ValueError, match=r"Index for x and y are mismatched"):
    pandas_input_fn(x, pd.Series(np.arange(4)), shuffle=False)


def test_target_column_must_not_clash_with_x():
  x = _frame(4)
  y = pd.Series(np.arange(4), index=x.index)
  with pytest.raises(ValueError, match=r"'num'.*already has a column"):
    pandas_input_fn(x, y, shuffle=False, target_column="num")


def test_shuffle_must_be_explicit():
  with pytest.raises(ValueError, match=r"shuffle=True for training"):
    pandas_input_fn(_frame(4))


def test_unfeedable_columns_name_the_column():
  x = pd.DataFrame({"mixed": pd.Series([1, "a", 2.5], dtype=object)})
  with pytest.raises(TypeError, match=r"'mixed'.*astype"):
    pandas_input_fn(x, shuffle=False)
