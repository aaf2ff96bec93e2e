"""Tests for numpy_input_fn: epochs, shuffling, batch sizes and errors."""
import itertools

import numpy as np
import pytest

from estlab.inputs import numpy_input_fn


def _labels(input_fn):
  """All labels of one full iteration, concatenated."""
  return np.concatenate([labels for _, labels in input_fn()])


@pytest.mark.parametrize("shuffle", [False, True])
def test_each_example_once_per_epoch(shuffle):
  n, epochs = 23, 3
  fn = numpy_input_fn({"x": np.arange(n) * 10.0}, np.arange(n), batch_size=4,
                      num_epochs=epochs, shuffle=shuffle, seed=0)
  labels = _labels(fn)
  assert len(labels) == n * epochs
  for epoch in labels.reshape(epochs, n):
    np.testing.assert_array_equal(np.sort(epoch), np.arange(n))
  if shuffle:  # A fresh permutation every epoch.
    first, second = labels.reshape(epochs, n)[:2]
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, np.arange(n))
  else:
    np.testing.assert_array_equal(labels, np.tile(np.arange(n), epochs))


def test_features_and_labels_stay_aligned_when_shuffled():
  fn = numpy_input_fn({"x": np.arange(50), "s": np.arange(50).astype(str)},
                      {"y": np.arange(50) * 2}, batch_size=8, shuffle=True)
  for features, labels in fn():
    np.testing.assert_array_equal(labels["y"], features["x"] * 2)
    assert features["s"].tolist() == [str(v) for v in features["x"]]


def test_last_partial_batch_is_yielded():
  fn = numpy_input_fn({"x": np.arange(5)}, np.arange(5), batch_size=2,
                      shuffle=False)
  assert [len(labels) for _, labels in fn()] == [2, 2, 1]


def test_batches_cross_epochs_so_only_the_last_is_partial():
  fn = numpy_input_fn({"x": np.arange(5)}, np.arange(5), batch_size=3,
                      num_epochs=2, shuffle=False)
  assert [labels.tolist() for _, labels in fn()] == [
      [0, 1, 2], [3, 4, 0], [1, 2, 3], [4]]


def test_num_epochs_none_repeats_forever_with_full_batches():
  fn = numpy_input_fn({"x": np.arange(5)}, np.arange(5), batch_size=3,
                      num_epochs=None, shuffle=True)
  batches = list(itertools.islice(fn(), 20))
  assert len(batches) == 20
  assert all(len(labels) == 3 for _, labels in batches)
  labels = np.concatenate([labels for _, labels in batches])
  for epoch in labels.reshape(-1, 5):
    np.testing.assert_array_equal(np.sort(epoch), np.arange(5))


def test_each_call_returns_a_fresh_iterator():
  fn = numpy_input_fn({"x": np.arange(7)}, None, batch_size=3, shuffle=False)
  first = [b["x"].tolist() for b in fn()]
  second = [b["x"].tolist() for b in fn()]
  assert first == second == [[0, 1, 2], [3, 4, 5], [6]]


def test_seed_makes_shuffling_reproducible():
  def run():
    fn = numpy_input_fn({"x": np.arange(30)}, np.arange(30), batch_size=7,
                        num_epochs=2, shuffle=True, seed=3)
    return _labels(fn)
  np.testing.assert_array_equal(run(), run())


def test_unshuffled_batches_are_views_not_copies():
  x = np.arange(12.0)
  fn = numpy_input_fn({"x": x}, batch_size=4, shuffle=False)
  assert all(np.shares_memory(b["x"], x) for b in fn())


def test_array_x_is_fed_as_the_bare_array_as_tf_does():
  # TF 2.15's numpy_input_fn(x=array) gives the model_fn one Tensor, not a
  # dict (_tf215_numpy_array_x.py shows it).
  x = np.arange(24.0).reshape(8, 3)
  fn = numpy_input_fn(x, np.arange(8), batch_size=4, shuffle=False)
  batches = list(fn())
  assert [type(f) for f, _ in batches] == [np.ndarray, np.ndarray]
  np.testing.assert_array_equal(batches[1][0], x[4:])
  assert batches[1][1].tolist() == [4, 5, 6, 7]
  unlabelled = numpy_input_fn(x, batch_size=8, shuffle=False)
  np.testing.assert_array_equal(next(iter(unlabelled())), x)


def test_array_x_shuffled_keeps_rows_and_labels_aligned():
  x = np.arange(20.0)[:, None] * np.ones((1, 3))
  fn = numpy_input_fn(x, np.arange(20) * 10, batch_size=8, num_epochs=2,
                      shuffle=True, seed=1)
  rows = []
  for features, labels in fn():
    np.testing.assert_array_equal(features[:, 0] * 10, labels)
    rows += features[:, 0].tolist()
  assert sorted(rows) == sorted(list(range(20)) * 2)
  assert rows[:20] != list(range(20))  # shuffled


def test_y_none_yields_features_only_and_text_becomes_str_objects():
  fn = numpy_input_fn({"word": np.array(["a", "bc"]),
                       "raw": np.array([b"x", b"y"])}, batch_size=2,
                      shuffle=False)
  (batch,) = list(fn())
  assert isinstance(batch, dict)
  assert batch["word"].dtype == object and batch["word"].tolist() == ["a", "bc"]
  assert batch["raw"].tolist() == ["x", "y"]


def test_shuffle_must_be_explicit():
  with pytest.raises(ValueError, match=r"shuffle=True for training"):
    numpy_input_fn({"x": np.arange(3)}, np.arange(3))


def test_mismatched_lengths_name_the_key():
  with pytest.raises(ValueError, match=r"x\['b'\] has 3 rows but x\['a'\] "
                     r"has 4"):
    numpy_input_fn({"a": np.arange(4), "b": np.arange(3)}, shuffle=False)
  with pytest.raises(ValueError, match=r"y has 2 rows"):
    numpy_input_fn({"a": np.arange(4)}, np.arange(2), shuffle=False)


def test_keys_of_x_and_y_must_not_overlap():
  with pytest.raises(ValueError, match=r"duplicate keys .*\['a'\]"):
    numpy_input_fn({"a": np.arange(3)}, {"a": np.arange(3)}, shuffle=False)


@pytest.mark.parametrize("x, error", [
    ([1, 2, 3], TypeError), ({}, ValueError), (np.array([]), ValueError),
    ({"a": 3.0}, ValueError)])
def test_bad_x_is_rejected(x, error):
  with pytest.raises(error, match="x"):
    numpy_input_fn(x, shuffle=False)


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"num_epochs": 0},
                                    {"batch_size": 2.5}])
def test_bad_sizes_are_rejected(kwargs):
  with pytest.raises(ValueError, match="must be"):
    numpy_input_fn({"a": np.arange(3)}, shuffle=False, **kwargs)
