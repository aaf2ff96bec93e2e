"""The row stream of array inputs: per batch, or a training loop at once."""
import numpy as np
import pytest

from estlab.data._tables import table_loops, Background
from estlab.data._batching import index_batches


def _rows(selection):
  if isinstance(selection, slice):
    return list(range(selection.start, selection.stop))
  return np.asarray(selection).tolist()


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("num_epochs", [1, 3, None])
def test_next_rows_cuts_the_same_stream_as_batch_by_batch(shuffle, num_epochs):
  def stream():  # same seed: the same permutations
    return index_batches(10, 4, num_epochs,
                         np.random.default_rng(7) if shuffle else None)
  batches = stream()
  by_batch = [r for _ in range(15) for r in _rows(next(batches, slice(0, 0)))]
  chunks, rows = [], stream()
  for _ in range(9):  # 9 x 7 rows: across batch and epoch boundaries
    taken = rows.next_rows(7)
    chunks += [] if taken is None else _rows(taken)
  assert chunks[:60] == by_batch[:60]
  if num_epochs is not None:  # a finite stream ends, then stays ended
    assert len(chunks) == len(by_batch) == 10 * num_epochs
    assert rows.next_rows(7) is None and list(rows) == []
  if shuffle:  # each epoch is a permutation of the rows
    assert sorted(by_batch[:10]) == list(range(10))


def test_in_order_rows_within_an_epoch_stay_a_slice():
  it = index_batches(10, 4, None, None)
  assert it.next_rows(6) == slice(0, 6)
  assert _rows(it.next_rows(6)) == [6, 7, 8, 9, 0, 1]  # crosses an epoch


def test_table_loops_take_a_loop_of_rows_from_the_stream_at_once():
  table = {"x": np.arange(10) * 10}
  stream = index_batches(10, 2, 1, None)          # 5 batches of 2
  out = list(table_loops(Background(lambda: table), stream,
                         steps_per_loop=2, limit=None))
  assert [n for n, _ in out] == [2, 2, 1]
  assert out[0][1]["x"].tolist() == [[0, 10], [20, 30]]
  assert out[1][1]["x"].tolist() == [[40, 50], [60, 70]]
  assert out[2][1]["x"].tolist() == [[80, 90], [80, 90]]  # 1 real, padded


def test_table_loops_end_of_input_and_limit_make_padded_loops():
  table = {"x": np.arange(9)}
  out = list(table_loops(Background(lambda: table),
                         index_batches(9, 2, 1, None), 3, None))
  # 3 batches in a loop, then 2 rows (a loop of 1) and 1 row (a loop of its
  # own shape), each padded to 3 with its last batch.
  assert [(n, b["x"].tolist()) for n, b in out] == [
      (3, [[0, 1], [2, 3], [4, 5]]), (1, [[6, 7], [6, 7], [6, 7]]),
      (1, [[8], [8], [8]])]
  out = list(table_loops(Background(lambda: table),
                         index_batches(9, 2, None, None), 3, limit=5))
  assert [n for n, _ in out] == [3, 2]             # 5 steps, no more
  assert out[-1][1]["x"][:2].tolist() == [[6, 7], [8, 0]]  # across the epoch
