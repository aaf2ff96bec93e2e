"""Rows of an encoded table: loops of row gathers and the background encode."""
import threading
import weakref

import jax
import numpy as np
import pytest

from estlab.data._packing import Packed, pack, take_rows
from estlab.data._tables import (Background, EncodedTables, table_batches,
                                 table_loops)


def test_table_batches_encodes_once_and_only_when_a_batch_is_needed():
  calls = []

  def encode():
    calls.append(threading.current_thread().name)
    return {"x": np.arange(10)}
  encoded = Background(encode)
  assert list(table_batches(encoded, iter([]))) == []
  assert calls == []
  out = list(table_batches(encoded, iter([slice(0, 3), np.array([9, 1])])))
  assert calls == [threading.current_thread().name]  # here: nothing started it
  assert [b["x"].tolist() for b in out] == [[0, 1, 2], [9, 1]]


def test_table_loops_gathers_a_loop_of_batches_at_once_and_pads_the_rest():
  table = {"x": np.arange(20) * 10}
  selections = iter([slice(0, 2), slice(2, 4), np.array([9, 8]),
                     np.array([7, 6]), np.array([5])])
  out = list(table_loops(Background(lambda: table), selections,
                         steps_per_loop=2, limit=None))
  assert [n for n, _ in out] == [2, 2, 1]
  assert out[0][1]["x"].tolist() == [[0, 10], [20, 30]]
  assert out[1][1]["x"].tolist() == [[90, 80], [70, 60]]
  # The short last batch: its own loop of one real step, padded to two.
  assert out[2][1]["x"].tolist() == [[50], [50]]


def test_table_loops_with_one_step_per_loop_gives_single_batches():
  table = {"x": np.arange(20) * 10}
  out = list(table_loops(Background(lambda: table),
                         iter([slice(0, 2), np.array([9, 8]), np.array([5])]),
                         steps_per_loop=1, limit=2))
  assert [(n, b["x"].tolist()) for n, b in out] == [(1, [0, 10]), (1, [90, 80])]


def test_table_loops_prepares_the_first_rows_directly_and_the_table_behind():
  prepared = []
  release = threading.Event()

  def encode():  # the whole table: waits until the first item is out
    assert release.wait(10)
    prepared.append(("table", threading.current_thread().name))
    return {"x": np.arange(20) * 10}

  def first(rows):
    prepared.append(("rows", np.asarray(rows).tolist()))
    return {"x": np.asarray(rows) * 10}
  encoded = Background(encode)
  loops = table_loops(encoded, iter([np.array([3, 1]), np.array([4, 0]),
                                     np.array([5, 6]), np.array([7, 8]),
                                     np.array([9, 2])]),
                      steps_per_loop=2, limit=None, first=first)
  n, batch = next(loops)
  assert (n, batch["x"].tolist()) == (2, [[30, 10], [40, 0]])
  assert prepared == [("rows", [3, 1, 4, 0])]  # the table is not needed yet
  release.set()
  n, batch = next(loops)
  assert (n, batch["x"].tolist()) == (2, [[50, 60], [70, 80]])
  assert prepared[1] == ("table", "estlab-encode")
  n, batch = next(loops)  # a partial loop: padded with its last batch
  assert (n, batch["x"].tolist()) == (1, [[90, 20], [90, 20]])
  assert list(loops) == []


def test_table_loops_prepares_only_the_first_loops_real_rows_directly():
  prepared = []

  def first(rows):
    prepared.append(np.asarray(rows).tolist())
    return {"x": np.asarray(rows) * 10}
  loops = table_loops(Background(lambda: {"x": np.arange(20) * 10}),
                      iter([np.array([3, 1]), np.array([4, 0])]),
                      steps_per_loop=4, limit=None, first=first)
  assert [(n, b["x"].tolist()) for n, b in loops] == [
      (2, [[30, 10], [40, 0], [40, 0], [40, 0]])]
  assert prepared == [[3, 1, 4, 0]]  # not the padding


def test_a_background_computation_raises_its_error_where_it_is_needed():
  def fail():
    raise ValueError("bad row 7")
  encoded = Background(fail)
  encoded.start()
  with pytest.raises(ValueError, match="bad row 7"):
    encoded.get()
  assert encoded.done()
  with pytest.raises(ValueError, match="bad row 7"):  # and on every later get
    encoded.get()


def test_rows_of_a_packed_table_are_the_rows_of_its_tree():
  tree = ({"a": np.arange(12, dtype=np.float32).reshape(6, 2),
           "b": np.arange(6, dtype=np.int32)}, np.arange(6.0, dtype=np.float32))
  packed = pack(tree)
  assert isinstance(packed, Packed)
  for rows in (slice(1, 4), np.array([5, 0, 2]), np.array([[1, 2], [3, 4]])):
    got = take_rows(packed, rows)
    assert isinstance(got, Packed) and got.layout is packed.layout
    want = jax.tree.map(lambda a, r=rows: a[r], tree)
    jax.tree.map(np.testing.assert_array_equal, got.unpack(), want)


def test_rows_of_a_prepared_batch_keep_its_packed_form():
  # prepare_batch's ``(Packed, None)``, as every table-fed training step sees.
  tree = ({"a": np.arange(12, dtype=np.float32).reshape(6, 2)},
          np.arange(6, dtype=np.int32))
  packed, labels = take_rows((pack(tree), None), np.array([5, 0]))
  assert isinstance(packed, Packed) and labels is None
  want = jax.tree.map(lambda a: a[[5, 0]], tree)
  jax.tree.map(np.testing.assert_array_equal, packed.unpack(), want)
  # Other trees are gathered leaf by leaf.
  plain = take_rows(tree, slice(2, 4))
  np.testing.assert_array_equal(plain[1], [2, 3])


# -- EncodedTables -------------------------------------------------------------


class _Table:
  """A table object as an array input_fn returns (``ArrayTable``-like)."""

  def __init__(self, values):
    self.values = np.asarray(values)

  def whole(self):
    return {"x": self.values}

  def __eq__(self, other):  # equal values: still another table
    return isinstance(other, _Table) and np.array_equal(self.values,
                                                        other.values)

  __hash__ = None  # a value-comparing table need not be hashable


def _encode(calls):
  def compute(table):
    calls.append(table.values.tolist())
    return table.whole()
  return compute


def test_encoded_tables_encode_a_table_once_per_mode():
  import gc  # pylint: disable=g-import-not-at-top
  tables, calls = EncodedTables(), []
  table = _Table([1, 2])
  for _ in range(3):
    encoded = tables.encoded(table, "eval", _encode(calls))
    assert encoded.get()["x"].tolist() == [1, 2]
  tables.encoded(table, "train", _encode(calls)).get()
  assert calls == [[1, 2], [1, 2]]  # once for eval, once for train
  assert len(tables) == 1
  del encoded  # a pipeline's handle keeps its table alive while it runs
  gc.collect()
  assert len(tables) == 1
  del table
  gc.collect()
  assert len(tables) == 0  # the entry went with its table


def test_encoded_tables_never_serve_one_tables_encoding_for_another():
  tables, calls = EncodedTables(), []
  first, second = _Table([1, 2]), _Table([1, 2])  # equal, not the same
  tables.encoded(first, "eval", _encode(calls)).get()
  tables.encoded(second, "eval", _encode(calls)).get()
  assert len(calls) == 2 and len(tables) == 2
  for _ in range(20):  # a new table per call, as a lambda making one does
    fresh = _Table([len(calls)])
    assert (tables.encoded(fresh, "eval", _encode(calls)).get()["x"].tolist()
            == fresh.values.tolist())


def test_an_encoding_keeps_no_reference_to_its_table():
  import gc  # pylint: disable=g-import-not-at-top
  tables = EncodedTables()
  table = _Table([3])
  handle = tables.encoded(table, "infer", _encode([]))
  handle.start()  # in the background thread
  assert handle.get()["x"].tolist() == [3]
  ref = weakref.ref(table)
  del table, handle
  gc.collect()
  assert ref() is None and len(tables) == 0


def test_a_table_that_cannot_be_referenced_weakly_is_encoded_per_call():
  class Slotted:
    __slots__ = ("values",)

    def __init__(self):
      self.values = np.arange(2)

    def whole(self):
      return {"x": self.values}
  tables, calls = EncodedTables(), []
  table = Slotted()
  for _ in range(2):
    encoded = tables.encoded(table, "eval", _encode(calls))
    assert encoded.get()["x"].tolist() == [0, 1]
  assert len(calls) == 2 and len(tables) == 0
