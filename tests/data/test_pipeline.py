"""The input path's stages: calling input_fns and checking batches
(estlab.data._input_fn), encoding (_encode), grouping (_grouping), prefetch
(_device) and feed (_pipeline)."""
import inspect
import itertools
import threading

import jax
import numpy as np
import pandas as pd
import pytest

from estlab.data import _packing
from estlab.data._device import Prefetcher, prefetch_ahead
from estlab.data._encode import prepare_batch
from estlab.data._grouping import group_for_loops, pad_short_batches
from estlab.data._input_fn import (OneBatch, call_input_fn, check_no_strings,
                                   split_batch)
from estlab.data._pipeline import feed


def _batch(i, n=2, dtype=np.float32):
  return {"x": np.full((n, 3), i, dtype)}, np.full((n,), i, dtype)


class _Counting:
  """An iterator over ``items`` that records how many were pulled from it."""

  def __init__(self, items):
    self._items = iter(items)
    self.pulled = 0

  def __iter__(self):
    return self

  def __next__(self):
    item = next(self._items)
    self.pulled += 1
    return item


# -- call_input_fn -------------------------------------------------------------


def _call(input_fn):
  return call_input_fn(input_fn, mode="train", params={"lr": 1},
                       config="cfg", input_context="ctx")


@pytest.mark.parametrize("names", [
    (), ("mode",), ("params",), ("config",), ("input_context",),
    ("params", "config"), ("mode", "params", "config", "input_context"),
    ("config", "mode"),
])
def test_call_input_fn_passes_only_the_arguments_the_input_fn_takes(names):
  received = {}

  def input_fn(**kwargs):
    received.update(kwargs)
    return [_batch(0)]

  input_fn.__signature__ = inspect.Signature(
      [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
       for n in names])
  _call(input_fn)
  expected = {"mode": "train", "params": {"lr": 1}, "config": "cfg",
              "input_context": "ctx"}
  assert received == {n: expected[n] for n in names}


def test_call_input_fn_leaves_other_defaulted_arguments_alone():
  received = {}

  def input_fn(mode, batch_size=32):
    received.update(mode=mode, batch_size=batch_size)
    return [_batch(0)]

  _call(input_fn)
  assert received == {"mode": "train", "batch_size": 32}


def test_call_input_fn_returns_an_iterator_over_the_batches():
  batches = [_batch(i) for i in range(3)]
  result = _call(lambda: batches)
  assert list(result) == batches


def test_call_input_fn_reads_a_tf_data_like_dataset_through_as_numpy_iterator():
  batches = [_batch(i) for i in range(3)]

  class FakeDataset:
    """Has as_numpy_iterator and, like tf.data in graph code, no __iter__."""

    def as_numpy_iterator(self):
      return iter(batches)

  assert list(_call(lambda: FakeDataset())) == batches


_X = np.zeros((3, 2), np.float32)


@pytest.mark.parametrize("single", [
    {"x": _X},
    ({"x": _X}, np.zeros(3)),
    ({"x": _X}, {"a": np.zeros(3), "b": np.zeros(3)}),
    ({"x": _X}, None),
    _X,
    (_X, np.zeros(3)),
    (jax.numpy.zeros((3, 2)), np.zeros(3)),
    (pd.DataFrame(_X), pd.Series(np.zeros(3))),
], ids=["features_dict", "features_labels", "labels_dict", "labels_none",
        "array", "array_labels", "jax_array_labels", "pandas"])
def test_call_input_fn_reads_one_batch_returned_directly(single):
  result = _call(lambda: single)
  assert isinstance(result, OneBatch)
  assert result.item is single


@pytest.mark.parametrize("batches", [
    [({"x": _X}, np.zeros(3))],  # a list: batches, even of one
    [{"x": _X}, {"x": _X}],
    ((_X, np.zeros(3)), (_X, np.zeros(3))),  # its first item is a tuple
    ({"x": _X}, {"x": _X}, {"x": _X}),  # a tuple of three
], ids=["list_of_one", "list_of_dicts", "tuple_of_tuples", "tuple_of_three"])
def test_call_input_fn_reads_lists_and_other_tuples_as_batches(batches):
  result = _call(lambda: batches)
  assert not isinstance(result, OneBatch)
  assert list(result) == list(batches)


def test_call_input_fn_documents_its_one_batch_rule():
  doc = inspect.getdoc(call_input_fn)
  for words in ("one batch", "a tuple of two", "a list", "generator",
                "as_numpy_iterator"):
    assert words in doc


def test_call_input_fn_rejects_a_non_iterable_result():
  with pytest.raises(TypeError, match="not iterable") as info:
    _call(lambda: 3)
  assert "int 3" in str(info.value)
  assert "(features, labels) batch" in str(info.value)  # the fix


def test_call_input_fn_rejects_a_non_callable():
  with pytest.raises(TypeError, match="callable"):
    _call([_batch(0)])


def test_call_input_fn_does_not_pull_from_a_generator_input_fn():
  source = _Counting(_batch(i) for i in range(3))
  batches = _call(lambda: source)
  assert source.pulled == 0
  next(batches)
  assert source.pulled == 1


# -- split_batch ---------------------------------------------------------------


def test_split_batch_splits_a_features_labels_tuple():
  features, labels = split_batch(({"x": [[1.0], [2.0]]}, [0, 1]), 0)
  assert isinstance(features["x"], np.ndarray)
  np.testing.assert_array_equal(features["x"], [[1.0], [2.0]])
  np.testing.assert_array_equal(labels, [0, 1])


def test_split_batch_takes_a_features_dict_as_unlabelled():
  features, labels = split_batch({"x": np.zeros(4)}, 0)
  assert labels is None
  assert list(features) == ["x"]


def test_split_batch_converts_pandas_series_to_numpy():
  frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
  features, labels = split_batch(({"a": frame["a"]}, frame["y"]), 0)
  assert isinstance(features["a"], np.ndarray)
  assert isinstance(labels, np.ndarray)
  np.testing.assert_array_equal(features["a"], [1.0, 2.0, 3.0])
  np.testing.assert_array_equal(labels, [0, 1, 0])


def test_split_batch_keeps_a_labels_dict_as_a_dict_of_arrays():
  features, labels = split_batch(
      ({"x": np.zeros(2)}, {"a": [1, 2], "b": pd.Series([3, 4])}), 0)
  assert set(labels) == {"a", "b"}
  assert all(isinstance(v, np.ndarray) for v in labels.values())
  np.testing.assert_array_equal(labels["b"], [3, 4])
  assert features["x"].shape == (2,)


def test_split_batch_makes_python_strings_object_arrays():
  features, _ = split_batch({"word": ["a", "bb"]}, 0)
  assert features["word"].dtype == object


def test_split_batch_rejects_a_scalar_feature_and_names_it():
  with pytest.raises(ValueError, match="'age'.*leading batch dimension"):
    split_batch(({"age": 3.0}, np.zeros(1)), 0)


def test_split_batch_rejects_scalar_labels():
  with pytest.raises(ValueError, match="labels is a scalar.*leading batch dimension"):
    split_batch(({"x": np.zeros(1)}, 1.0), 0)


def test_split_batch_batch_size_mismatch_names_keys_and_sizes():
  with pytest.raises(ValueError, match="Batch 7") as info:
    split_batch(({"x": np.zeros(3), "y": np.zeros(4)}, np.zeros(3)), 7)
  message = str(info.value)
  assert "features['x']" in message and "features['y']" in message
  assert "labels" in message
  assert ": 4" in message and ": 3" in message


def test_split_batch_mismatch_in_a_labels_dict_names_the_label():
  with pytest.raises(ValueError) as info:
    split_batch(({"x": np.zeros(3)}, {"a": np.zeros(3), "b": np.zeros(2)}), 0)
  assert "labels['b']" in str(info.value)
  assert ": 2" in str(info.value)


def test_split_batch_checks_a_feature_named_labels_against_the_labels():
  # A feature key must not collide with the labels' entry in the size check.
  with pytest.raises(ValueError, match="batch size") as info:
    split_batch(({"labels": np.zeros(3)}, np.zeros(4)), 0)
  assert "features['labels']" in str(info.value)


@pytest.mark.parametrize("item", [[{"x": np.zeros(2)}, np.zeros(2)], 3,
                                  ({"x": np.zeros(2)}, np.zeros(2), None)],
                         ids=["list", "int", "triple"])
def test_split_batch_rejects_other_containers(item):
  with pytest.raises(TypeError, match="Batch 2 .*\\(features, labels\\)"):
    split_batch(item, 2)


def test_split_batch_takes_features_as_one_array_and_keeps_it_bare():
  x = np.arange(6.0).reshape(3, 2)
  features, labels = split_batch((x, [0, 1, 2]), 0)
  assert features is x
  assert labels.tolist() == [0, 1, 2]
  features, labels = split_batch(x, 0)  # features alone
  assert features is x and labels is None
  images = jax.numpy.zeros((3, 28, 28, 1))
  features, labels = split_batch((images, {"a": np.zeros(3)}), 0)
  assert features is images and list(labels) == ["a"]


def test_split_batch_rejects_features_neither_a_dict_nor_an_array():
  with pytest.raises(TypeError, match="features must be a dict of arrays or "
                     "one array, got list.*np.asarray") as info:
    split_batch(([[1.0], [2.0]], np.zeros(2)), 0)
  assert "[[1.0], [2.0]]" in str(info.value)  # the value


def test_split_batch_checks_the_batch_size_of_bare_features():
  with pytest.raises(ValueError, match="'features': 3, 'labels': 2"):
    split_batch((np.zeros((3, 2)), np.zeros(2)), 0)
  with pytest.raises(ValueError, match="features is a scalar"):
    split_batch((np.float32(1.0), np.zeros(1)), 0)


# -- check_no_strings ----------------------------------------------------------


@pytest.mark.parametrize("value", [np.array(["a", "b"], dtype=object),
                                   np.array(["a", "b"]),
                                   np.array([b"a", b"b"])],
                         ids=["object", "unicode", "bytes"])
def test_check_no_strings_names_the_feature_and_shows_a_value(value):
  with pytest.raises(TypeError, match="'city'.*strings") as info:
    check_no_strings({"x": np.zeros(2), "city": value})
  assert "feature_column" in str(info.value)


def test_check_no_strings_in_features_that_are_one_array():
  with pytest.raises(TypeError, match="The features \\(one array\\) hold "
                     "strings.*'a'"):
    check_no_strings(np.array([["a"], ["b"]], dtype=object))
  check_no_strings(np.zeros((2, 28, 28, 1)))


def test_check_no_strings_accepts_numbers():
  check_no_strings({"x": np.zeros(2), "ids": np.arange(2), "flag": np.ones(2, bool)})


# -- group_for_loops -----------------------------------------------------------


def test_group_for_loops_with_one_step_per_loop_passes_batches_through():
  batches = [_batch(i) for i in range(4)]
  grouped = list(group_for_loops(iter(batches), 1, None))
  assert [n for n, _ in grouped] == [1, 1, 1, 1]
  assert [b for _, b in grouped] == batches


def test_group_for_loops_stacks_batches_on_a_new_leading_axis():
  grouped = list(group_for_loops(iter([_batch(i) for i in range(6)]), 3, None))
  assert [n for n, _ in grouped] == [3, 3]
  features, labels = grouped[1][1]
  assert features["x"].shape == (3, 2, 3)
  assert labels.shape == (3, 2)
  np.testing.assert_array_equal(labels[:, 0], [3, 4, 5])
  np.testing.assert_array_equal(features["x"][:, 0, 0], [3, 4, 5])


def test_group_for_loops_pads_the_tail_to_a_whole_loop_of_its_last_batch():
  grouped = list(group_for_loops(iter([_batch(i) for i in range(8)]), 3, None))
  assert [n for n, _ in grouped] == [3, 3, 2]
  features, labels = grouped[2][1]
  assert features["x"].shape == (3, 2, 3)  # the loop program's shape
  np.testing.assert_array_equal(labels[:, 0], [6, 7, 7])


@pytest.mark.parametrize("steps_per_loop", [1, 2, 3, 4])
@pytest.mark.parametrize("limit", [None, 1, 3, 5, 6, 7, 20])
@pytest.mark.parametrize("available", [4, 10])
def test_group_for_loops_covers_min_of_limit_and_input_without_pulling_more(
    steps_per_loop, limit, available):
  source = _Counting(_batch(i) for i in range(available))
  grouped = list(group_for_loops(source, steps_per_loop, limit))
  covered = min(available, limit) if limit is not None else available
  assert sum(n for n, _ in grouped) == covered
  assert source.pulled == covered  # nothing pulled past the limit
  # Every step is there once, in order: the first n of each loop.
  if steps_per_loop == 1:
    steps = [int(labels[0]) for _, (_, labels) in grouped]
  else:
    assert all(labels.shape == (steps_per_loop, 2) for _, (_, labels) in grouped)
    steps = [int(step) for n, (_, labels) in grouped for step in labels[:n, 0]]
  assert steps == list(range(covered))


@pytest.mark.parametrize("steps_per_loop,limit,expected", [
    (2, 5, [2, 2, 1]),
    (3, 6, [3, 3]),
    (3, 4, [3, 1]),
    (4, 9, [4, 4, 1]),
    (3, 2, [2]),
])
def test_group_for_loops_uses_full_loops_whenever_the_limit_allows(
    steps_per_loop, limit, expected):
  source = _Counting(_batch(i) for i in range(100))
  grouped = list(group_for_loops(source, steps_per_loop, limit))
  assert [n for n, _ in grouped] == expected


def test_group_for_loops_stacks_each_shape_apart_on_a_shape_change():
  batches = [_batch(0, n=2), _batch(1, n=3), _batch(2, n=3), _batch(3, n=3)]
  grouped = list(group_for_loops(iter(batches), 2, None))
  assert [n for n, _ in grouped] == [1, 2, 1]
  assert grouped[0][1][0]["x"].shape == (2, 2, 3)
  assert grouped[1][1][0]["x"].shape == (2, 3, 3)
  np.testing.assert_array_equal(grouped[1][1][1][:, 0], [1, 2])
  np.testing.assert_array_equal(grouped[2][1][1][:, 0], [3, 3])


def test_group_for_loops_never_stacks_batches_of_different_dtypes():
  batches = [_batch(0), _batch(1, dtype=np.float64), _batch(2, dtype=np.float64)]
  grouped = list(group_for_loops(iter(batches), 2, None))
  assert [n for n, _ in grouped] == [1, 2]
  assert grouped[0][1][1].dtype == np.float32
  assert grouped[1][1][1].dtype == np.float64


# -- Prefetcher ----------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 3])
def test_prefetcher_preserves_order_and_stays_exhausted(size):
  with Prefetcher(iter(range(50)), size) as prefetcher:
    assert list(prefetcher) == list(range(50))
    with pytest.raises(StopIteration):
      next(prefetcher)


@pytest.mark.parametrize("size", [1, 3])
def test_prefetcher_runs_at_most_size_items_ahead_of_the_consumer(size):
  progress = threading.Condition()
  consumed = [0]  # next() calls begun by the consumer
  requested = []  # indices the source was asked for
  overruns = []

  def source():
    for j in itertools.count():
      with progress:
        # Item j may be produced once j - size + 1 items were handed out.
        if j >= consumed[0] + size:
          overruns.append((j, consumed[0]))
        requested.append(j)
        progress.notify_all()
      yield j

  prefetcher = Prefetcher(source(), size)
  try:
    got = []
    for _ in range(6):
      with progress:
        # Let the producer fill its buffer before consuming the next item.
        assert progress.wait_for(
            lambda: len(requested) >= consumed[0] + size, timeout=30)
        consumed[0] += 1
      got.append(next(prefetcher))
    assert got == list(range(6))
  finally:
    prefetcher.close()
  assert not overruns, (
      f"Prefetcher(size={size}) pulled item j while the consumer had asked for "
      f"only c items, (j, c) = {overruns}")


class _SourceError(Exception):
  pass


@pytest.mark.parametrize("size", [0, 2])
def test_prefetcher_reraises_the_source_error_in_the_consumer(size):
  def source():
    yield 0
    yield 1
    raise _SourceError("row 2 is corrupt: 'abc'")

  with Prefetcher(source(), size) as prefetcher:
    assert next(prefetcher) == 0
    assert next(prefetcher) == 1
    with pytest.raises(_SourceError) as info:
      next(prefetcher)
  assert str(info.value) == "row 2 is corrupt: 'abc'"


def test_prefetcher_close_stops_the_thread_of_an_infinite_source():
  record = {}

  def source():
    record["thread"] = threading.current_thread()
    try:
      yield from itertools.count()
    finally:
      record["closed"] = True

  prefetcher = Prefetcher(source(), 2)
  assert [next(prefetcher) for _ in range(3)] == [0, 1, 2]
  prefetcher.close()
  assert record["thread"] is not threading.current_thread()
  assert not record["thread"].is_alive()
  assert record.get("closed")  # the source is closed too (files released)


def test_prefetcher_leaving_a_with_block_early_stops_the_thread():
  record = {}

  def source():
    record["thread"] = threading.current_thread()
    yield from itertools.count()

  with Prefetcher(source(), 1) as prefetcher:
    for item in prefetcher:
      if item == 5:
        break
  assert not record["thread"].is_alive()


def test_prefetcher_size_zero_runs_inline_in_the_consumer_thread():
  threads = []

  def source():
    for i in range(3):
      threads.append(threading.current_thread())
      yield i

  counting = _Counting(source())
  prefetcher = Prefetcher(counting, 0)
  assert counting.pulled == 0  # nothing runs ahead
  assert next(prefetcher) == 0
  assert counting.pulled == 1
  assert list(prefetcher) == [1, 2]
  assert threads == [threading.current_thread()] * 3
  prefetcher.close()


@pytest.mark.parametrize("setting,strategy,ahead", [
    (None, None, 0),        # the CPU (these tests' backend): inline
    (None, object(), 2),    # a strategy: a thread, 2 ahead
    (3, None, 3), (0, object(), 0), (1, None, 1),  # an int as given
])
def test_prefetch_ahead_resolves_the_run_configs_setting(setting, strategy,
                                                         ahead):
  assert jax.default_backend() == "cpu"
  assert prefetch_ahead(setting, strategy) == ahead


# -- prepare_batch, table_batches, pad_short_batches, feed ---------------------


def _identity_transform(features, labels, mode):
  del mode
  return features, labels


def test_prepare_batch_packs_features_and_labels_into_one_buffer_per_dtype():
  item = ({"x": np.ones((4, 2), np.float32), "n": np.arange(4)}, np.zeros(4))
  features, labels = prepare_batch(item, 0, mode="train",
                                   host_transform=_identity_transform,
                                   takes_labels=True)
  assert isinstance(features, _packing.Packed) and labels is None
  got_features, got_labels = features.unpack()
  np.testing.assert_array_equal(got_features["n"], np.arange(4))
  assert got_labels.shape == (4,)


def test_prepare_batch_drops_labels_in_predict_mode_before_the_transform():
  seen = []

  def transform(features, labels, mode):
    seen.append((mode, labels))
    return features, labels
  item = ({"x": np.ones((2, 1), np.float32)}, np.ones(2))
  features, _ = prepare_batch(item, 0, mode="infer", host_transform=transform,
                              takes_labels=True)
  assert seen == [("infer", None)]
  assert features.unpack()[1] is None


def test_prepare_batch_rejects_labels_a_model_fn_cannot_take():
  with pytest.raises(ValueError, match="no `labels` argument"):
    prepare_batch(({"x": np.ones(2)}, np.ones(2)), 0, mode="train",
                  host_transform=_identity_transform, takes_labels=False)


def test_pad_short_batches_without_pad_passes_batches_through():
  batches = [{"x": np.arange(4)}, {"x": np.arange(1)}]
  out = list(pad_short_batches(iter(batches), pad=False))
  assert [(b["x"].tolist(), v) for b, v in out] == [([0, 1, 2, 3], None),
                                                     ([0], None)]


def test_feed_yields_train_batches_and_eval_batches_with_their_valid_rows():
  host = [{"x": np.arange(4)}, {"x": np.arange(2)}]
  train = list(feed(iter(host), put=lambda b, n: b, train=True,
                    steps_per_loop=1, limit=None, pad=True, ahead=0))
  assert [(n, b["x"].tolist()) for n, b in train] == [(1, [0, 1, 2, 3]),
                                                      (1, [0, 1])]
  evals = list(feed(iter(host), put=lambda b, n: b, train=False,
                    steps_per_loop=1, limit=None, pad=True, ahead=1))
  assert [(n, b["x"].tolist(), v) for n, (b, v) in evals] == [
      (1, [0, 1, 2, 3], None), (1, [0, 1, 0, 0], 2)]
