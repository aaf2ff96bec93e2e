"""The in-memory path: planned index batches agree with Grain's elements.

A Dataset over in-memory columns followed only by shuffle, repeat, batch,
unbatch, take, skip, shard, cache and prefetch is read as index selections
over its columns. These tests check it yields what the element-by-element
Grain path yields (same seed, same order), hands an Estimator an
``ArrayBatches`` whose table is one object for equal columns, and cuts a
training loop's rows (``next_rows``) as it cuts batches.
"""
import itertools

import numpy as np
import pandas as pd
import pytest

from estlab.data import Dataset
from estlab.data._batching import ArrayBatches


def _source(n=23):
  return Dataset.from_tensor_slices(
      ({"x": np.arange(n, dtype=np.float32),
        "s": np.array([f"r{i}" for i in range(n)], dtype=object)},
       np.arange(n) * 10))


_CHAINS = {
    "batch": lambda d: d.batch(4),
    "batch_drop": lambda d: d.batch(4, drop_remainder=True),
    "shuffle_batch": lambda d: d.shuffle(7, seed=1).batch(5),
    "shuffle_repeat_batch": lambda d: d.shuffle(100, seed=2).repeat(3).batch(8),
    "repeat_shuffle_batch": lambda d: d.repeat(2).shuffle(9, seed=3).batch(6),
    "take_skip": lambda d: d.skip(3).take(15).batch(4),
    "shard": lambda d: d.shard(3, 2).batch(2),
    "cache_repeat": lambda d: d.shuffle(23, seed=4).cache().repeat(2).batch(5),
    "batch_shuffle": lambda d: d.batch(3).shuffle(4, seed=5),
    "batch_repeat_take": lambda d: d.batch(5).repeat().take(11),
    "batch_skip_shard": lambda d: d.batch(2).skip(1).shard(2, 1),
    "unbatch_rebatch": lambda d: d.batch(3).unbatch().batch(7),
    "prefetch": lambda d: d.shuffle(5, seed=6).batch(4).prefetch(2),
    "reshuffle_off": lambda d: d.shuffle(
        6, seed=7, reshuffle_each_iteration=False).repeat(2).batch(9),
}


def _rows(batches):
  """(features, labels) batches as comparable lists."""
  return [(b[0]["x"].tolist(), b[0]["s"].tolist(), b[1].tolist())
          for b in batches]


@pytest.mark.parametrize("name", sorted(_CHAINS))
def test_planned_batches_equal_grain_elements(name):
  chain = _CHAINS[name]
  grain = _rows(chain(_source())._iterable(planned=False))
  planned = chain(_source())
  source = planned._input_source()
  assert isinstance(source, ArrayBatches)
  assert _rows(source) == grain
  assert _rows(chain(_source())) == grain  # __iter__ reads the plan too
  assert grain  # not vacuous


@pytest.mark.parametrize("name", ["shuffle_batch", "shuffle_repeat_batch"])
def test_same_seed_same_order_on_both_paths_over_iterations(name):
  planned, elements = _CHAINS[name](_source()), _CHAINS[name](_source())
  for _ in range(3):  # each iteration reshuffles, identically on both
    assert _rows(planned._input_source()) == _rows(
        elements._iterable(planned=False))


def test_map_after_a_planned_batch_sees_gathered_batches():
  calls = []

  def scale(features, label):
    calls.append(len(label))
    return {"x": features["x"] * 2}, label

  ds = _source(10).shuffle(10, seed=0).batch(4).map(scale)
  out = list(ds._input_source())
  assert calls == [4, 4, 2] and sum(len(y) for _, y in out) == 10
  assert sorted(np.concatenate([f["x"] for f, _ in out]).tolist()) == [
      2.0 * i for i in range(10)]


@pytest.mark.parametrize("drop", [False, True])
@pytest.mark.parametrize("count", [1, 3, 7])
def test_next_rows_cuts_the_same_stream_as_batch_by_batch(drop, count):
  def selections():
    ds = Dataset.from_tensor_slices({"x": np.arange(50)}).shuffle(
        20, seed=9).repeat(2).batch(4, drop_remainder=drop)
    return ds._input_source().selections

  one = [np.arange(50)[s].tolist() for s in selections()]
  stream, loops = selections(), []
  while (rows := stream.next_rows(count * 4)) is not None:
    loops.extend(np.arange(50)[rows].tolist())
  assert loops == list(itertools.chain(*one))
  assert all(len(b) == 4 for b in (one if drop else one[:-1]))


def test_unshuffled_batches_are_slices():
  source = _source(10).batch(4)._input_source()
  assert list(source.selections) == [slice(0, 4), slice(4, 8), slice(8, 10)]


def test_one_table_for_equal_columns_a_new_one_for_changed_data():
  df = pd.DataFrame({"a": np.arange(6.0), "c": list("xyzxyz")})
  y = np.arange(6)
  make = lambda: Dataset.from_tensor_slices((dict(df), y)).shuffle(6).batch(2)
  first, second = make()._input_source(), make()._input_source()
  assert first.table is second.table
  assert first.table.features["c"].tolist() == list("xyzxyz")
  df.loc[2, "c"] = "q"
  changed = make()._input_source().table
  assert changed is not first.table
  assert changed.features["c"].tolist() == list("xyqxyz")
  df["a"] = df["a"] + 1
  assert make()._input_source().table.features["a"].tolist() == [
      1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_features_only_and_dict_labels_make_tables():
  source = Dataset.from_tensor_slices({"x": np.arange(4)}).batch(2)
  assert next(source._input_source())["x"].tolist() == [0, 1]
  labelled = Dataset.from_tensor_slices(
      ({"x": np.arange(4)}, {"a": np.arange(4), "b": -np.arange(4)})).batch(3)
  features, labels = next(labelled._input_source())
  assert labels["b"].tolist() == [0, -1, -2]


def test_other_structures_are_gathered_batches():
  ds = Dataset.from_tensor_slices((np.arange(6.0)[:, None], np.arange(6)))
  source = ds.shuffle(6, seed=0).batch(4)._input_source()
  assert not isinstance(source, ArrayBatches)
  batches = list(source)
  assert [b[0].shape for b in batches] == [(4, 1), (2, 1)]
  assert sorted(np.concatenate([b[1] for b in batches]).tolist()) == list(
      range(6))


def test_unplanned_chains_read_elements():
  ds = _source(6).map(lambda f, y: (f, y + 1)).batch(4)
  source = ds._input_source()
  assert not isinstance(source, ArrayBatches)
  assert [y.tolist() for _, y in source] == [[1, 11, 21, 31], [41, 51]]
