"""Tests for estlab.data._chunks and the chunked ``_encode.prepare_batches``."""
import numpy as np
import pytest

from estlab.data import _chunks
from estlab.data._packing import unpacked
from estlab.data._encode import prepare_batch, prepare_batches
from tests.data.test_pipeline import _Counting


def _batch(i, rows=4):
  features = {"x": np.arange(rows * 2, dtype=np.float32).reshape(rows, 2) + i,
              "word": np.array([f"w{i}-{r}" for r in range(rows)], object)}
  return features, np.full(rows, i % 2, np.int64)


class _Encoder:
  """A row-by-row host transform (words to lengths) that records its calls."""

  def __init__(self):
    self.rows = []

  def __call__(self, features, labels, mode):
    del mode
    self.rows.append(len(features["x"]))
    lengths = np.array([len(w) for w in features["word"]], np.int32)
    return {"x": features["x"] * 2, "length": lengths}, labels


def _prepare(items, chunk_rows, limit=None, transform=None, mode="train"):
  return prepare_batches(iter(items), chunk_rows=chunk_rows, limit=limit,
                         mode=mode, host_transform=transform or _Encoder(),
                         takes_labels=True)


def _assert_same_batches(got, want):
  assert len(got) == len(want)
  for g, w in zip(got, want):
    g_features, g_labels = unpacked(*g)
    w_features, w_labels = unpacked(*w)
    assert sorted(g_features) == sorted(w_features)
    for key in w_features:
      np.testing.assert_array_equal(g_features[key], w_features[key])
      assert g_features[key].dtype == w_features[key].dtype
    np.testing.assert_array_equal(g_labels, w_labels)


# -- _chunks -------------------------------------------------------------------


def test_join_concatenates_rows_of_every_feature_and_the_labels():
  joined = _chunks.join([_batch(0, 2), _batch(1, 3)])
  features, labels = joined
  assert features["x"].shape == (5, 2) and features["word"].shape == (5,)
  assert features["word"][2] == "w1-0"
  np.testing.assert_array_equal(labels, [0, 0, 1, 1, 1])


def test_join_keeps_unlabelled_batches_unlabelled():
  features, labels = _chunks.join([(_batch(0)[0], None), (_batch(1)[0], None)])
  assert labels is None and features["x"].shape == (8, 2)


@pytest.mark.parametrize("change", [
    lambda f: {**f, "extra": f["x"]},                        # other features
    lambda f: {**f, "x": f["x"].astype(np.float64)},         # another dtype
    lambda f: {**f, "x": f["x"].reshape(-1, 1, 2)},          # another shape
    lambda f: {**f, "word": list(f["word"])},                # not numpy
])
def test_join_declines_batches_that_differ(change):
  features, labels = _batch(1)
  assert _chunks.join([_batch(0), (change(features), labels)]) is None


def test_snapshot_copies_arrays_an_input_fn_may_refill():
  features, labels = _batch(0)
  copy = _chunks.snapshot((features, labels))
  features["x"][:] = -1
  labels[:] = 7
  assert copy[0]["x"].min() >= 0 and copy[1].max() == 0
  assert _chunks.snapshot(features)["x"] is not features["x"]
  assert _chunks.snapshot("not a batch") == "not a batch"


def test_row_ranges_are_consecutive():
  assert _chunks.row_ranges([2, 3, 1]) == [slice(0, 2), slice(2, 5),
                                           slice(5, 6)]


# -- prepare_batches -----------------------------------------------------------


def test_chunks_grow_from_one_batch_to_chunk_rows():
  encoder = _Encoder()
  batches = list(_prepare([_batch(i) for i in range(20)], chunk_rows=16,
                          transform=encoder))
  assert len(batches) == 20
  # 1 batch (the first step waits for no more), then 2, then 4 (16 rows).
  assert encoder.rows == [4, 8, 16, 16, 16, 16, 4]


def test_chunked_batches_equal_batches_prepared_one_by_one():
  items = [_batch(i, rows=3 + i % 2) for i in range(11)]
  want = [prepare_batch(item, i, mode="train", host_transform=_Encoder(),
                        takes_labels=True) for i, item in enumerate(items)]
  _assert_same_batches(list(_prepare(items, chunk_rows=64)), want)


def test_without_chunk_rows_each_batch_is_transformed_alone():
  encoder = _Encoder()
  list(_prepare([_batch(i) for i in range(5)], chunk_rows=0, transform=encoder))
  assert encoder.rows == [4] * 5


def test_chunks_never_read_past_the_limit():
  source = _Counting([_batch(i) for i in range(100)])
  got = list(prepare_batches(source, chunk_rows=4096, limit=6, mode="train",
                             host_transform=_Encoder(), takes_labels=True))
  assert len(got) == 6 and source.pulled == 6


def test_an_input_fn_refilling_one_buffer_still_gives_each_batch():
  features, labels = _batch(0)

  def refilled():
    for i in range(6):
      features["x"][:] = i
      labels[:] = i
      yield features, labels
  got = [unpacked(*b) for b in prepare_batches(
      refilled(), chunk_rows=64, limit=None, mode="train",
      host_transform=_Encoder(), takes_labels=True)]
  assert [int(f["x"][0, 0]) for f, _ in got] == [0, 2, 4, 6, 8, 10]
  assert [int(y[0]) for _, y in got] == [0, 1, 2, 3, 4, 5]


def test_batches_that_cannot_be_joined_are_prepared_one_by_one():
  encoder = _Encoder()
  items = [_batch(0), _batch(1)]
  items.append(({**items[1][0], "x": items[1][0]["x"].astype(np.float64)},
                items[1][1]))
  items.append(_batch(3))
  got = list(_prepare(items, chunk_rows=64, transform=encoder))
  assert encoder.rows == [4, 4, 4, 4]  # chunk [1, 2] declined, [3] alone
  assert unpacked(*got[2])[0]["x"].dtype == np.float32  # (x64 is off)


def test_an_error_names_its_own_batch_after_the_batches_before_it():
  items = [_batch(i) for i in range(6)]
  items[4] = ({"x": np.ones((4, 2), np.float32), "word": items[4][0]["word"]},
              np.ones(3))  # 3 labels for 4 rows
  got = []
  with pytest.raises(ValueError, match="Batch 4: arrays disagree"):
    for batch in _prepare(items, chunk_rows=64):
      got.append(batch)
  assert len(got) == 4


def test_a_transform_error_in_a_chunk_is_raised_for_its_batch():
  def transform(features, labels, mode):
    if (features["x"] < 0).any():
      raise ValueError(f"negative x in {len(features['x'])} rows")
    return {"x": features["x"]}, labels
  items = [_batch(i) for i in range(7)]
  items[5][0]["x"][1] = -1
  got = []
  with pytest.raises(ValueError, match="negative x in 4 rows"):
    for batch in _prepare(items, chunk_rows=64, transform=transform):
      got.append(batch)
  assert len(got) == 5


def test_predict_chunks_drop_labels_before_joining():
  seen = []

  def transform(features, labels, mode):
    seen.append((mode, labels))
    return {"x": features["x"]}, labels
  items = [_batch(0), (_batch(1)[0], np.ones((4, 3)))]  # labels of 2 shapes
  got = list(_prepare(items + [_batch(2)], chunk_rows=64, transform=transform,
                      mode="infer"))
  assert seen == [("infer", None), ("infer", None)]
  assert all(unpacked(*b)[1] is None for b in got)
