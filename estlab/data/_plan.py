"""Whole batches planned as row indices over columns already in memory.

A Dataset that slices in-memory columns (``from_tensor_slices``) and then
only reorders, repeats, cuts or batches them never needs its elements one by
one: its batches are index selections over the columns. A ``Plan`` streams
those indices: row ids (int64 arrays, a chunk at a time) up to the
``batch``, then one selection (a ``slice`` when the rows are contiguous,
else an index array) per batch. The engine gathers rows of columns it
encoded once (``ArrayBatches``); ``Dataset.__iter__`` gathers raw rows. The
shuffle is ``_shuffle.BufferShuffle``, as on the element path, so a seed
gives the same order on both.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Iterator, List, Optional

import numpy as np

from estlab.data import _shuffle

__all__ = ["Plan", "Selections", "source_rows", "take", "skip", "shard",
           "repeat", "shuffle", "cached"]

_CHUNK = 1 << 16  # Row ids per chunk of a source's stream.


@dataclasses.dataclass(frozen=True)
class Plan:
  """The index stream of a Dataset over in-memory columns.

  Attributes:
    source: the ``from_tensor_slices`` node: ``columns`` and ``table()``.
    batched: False while the stream is of row ids (chunks of int64
      arrays), True once it is of batch selections (one item per batch).
    stream: starts one iteration of the stream.
  """
  source: Any
  batched: bool
  stream: Callable[[], Iterator[Any]]


def source_rows(num_rows: int) -> Iterator[np.ndarray]:
  """The row ids ``0 .. num_rows - 1``, in chunks."""
  for start in range(0, num_rows, _CHUNK):
    yield np.arange(start, min(start + _CHUNK, num_rows), dtype=np.int64)


def _pieces(stream: Iterator[Any], size: int, batched: bool) -> Iterator[Any]:
  """Re-cuts a stream (of row id arrays, or of batch selections when
  ``batched``) into pieces (arrays, or lists) of exactly ``size`` items; the
  last piece has what is left."""
  pending: List[Any] = []
  count = 0
  for chunk in stream:
    if batched:
      chunk = [chunk]
    pending.append(chunk)
    count += len(chunk)
    while count >= size:
      joined = _join(pending)
      yield joined[:size]
      rest = joined[size:]
      pending, count = ([rest] if len(rest) else []), len(rest)
  if count:
    yield _join(pending)


def _join(parts: List[Any]) -> Any:
  if len(parts) == 1:
    return parts[0]
  if isinstance(parts[0], list):
    return [item for part in parts for item in part]
  return np.concatenate(parts)


def take(stream: Iterator[Any], count: int, batched: bool) -> Iterator[Any]:
  """The first ``count`` items (all for -1)."""
  if count < 0:
    yield from stream
  elif batched:
    yield from itertools.islice(stream, count)
  else:
    for chunk in stream:
      if count <= 0:
        return
      yield chunk[:count]
      count -= len(chunk)


def skip(stream: Iterator[Any], count: int, batched: bool) -> Iterator[Any]:
  """All but the first ``count`` items (none for -1)."""
  if count < 0:
    return
  if batched:
    yield from itertools.islice(stream, count, None)
    return
  for chunk in stream:
    if count >= len(chunk):
      count -= len(chunk)
      continue
    yield chunk[count:]
    count = 0


def shard(stream: Iterator[Any], num_shards: int, index: int,
          batched: bool) -> Iterator[Any]:
  """The items at positions ``index``, ``index + num_shards``, ..."""
  if batched:
    yield from itertools.islice(stream, index, None, num_shards)
    return
  offset = 0
  for chunk in stream:
    first = (index - offset) % num_shards
    offset += len(chunk)
    if first < len(chunk):
      yield chunk[first::num_shards]


def repeat(start: Callable[[], Iterator[Any]], count: Optional[int],
           batched: bool) -> Iterator[Any]:
  """``count`` passes of a stream (forever for None); an empty pass ends
  it, as tf.data's ``repeat`` of an empty dataset ends."""
  for _ in (range(count) if count is not None else itertools.count()):
    empty = True
    for chunk in start():
      empty = empty and not batched and not len(chunk)
      yield chunk
    if empty:
      return


def shuffle(stream: Iterator[Any], buffer_size: int, rng: np.random.Generator,
            batched: bool) -> Iterator[Any]:
  """tf.data's buffer shuffle (``_shuffle.BufferShuffle``) of a stream."""
  shuffler = _shuffle.BufferShuffle(buffer_size, rng)
  size = _shuffle.pull_size(buffer_size)
  if not batched:
    for piece in _pieces(stream, size, False):
      yield shuffler.push(piece)
    yield shuffler.finish()
    return
  waiting = {}
  seen = 0
  for piece in _pieces(stream, size, True):
    ordinals = np.arange(seen, seen + len(piece))
    waiting.update(zip(ordinals.tolist(), piece))
    seen += len(piece)
    yield from (waiting.pop(o) for o in shuffler.push(ordinals).tolist())
  yield from (waiting.pop(o) for o in shuffler.finish().tolist())


def cached(start: Callable[[], Iterator[Any]], store: Any) -> Iterator[Any]:
  """A stream recorded by its first complete pass, then replayed.

  ``store.chunks`` holds the recording (None until a pass completes)."""
  if store.chunks is not None:
    yield from store.chunks
    return
  recorded = []
  for chunk in start():
    recorded.append(chunk)
    yield chunk
  store.chunks = recorded


class Selections:
  """The rows of each batch, cut from a stream of row ids.

  Iterating yields one selection per batch. ``next_rows(k)`` takes the next
  ``k`` rows at once (the engine takes a training loop's batches so), as
  ``_batching.IndexBatches`` does; with ``drop_remainder`` a short last
  batch is left out either way.
  """

  def __init__(self, rows: Iterator[np.ndarray], batch_size: int,
               drop_remainder: bool):
    self.batch_size = batch_size
    self.owner: Any = None  # whatever must live while these are read
    self._rows = rows
    self._drop = drop_remainder
    self._buffer = np.empty(0, dtype=np.int64)  # rows read, from _position
    self._position = 0

  def next_rows(self, count: int) -> Any:
    """The next ``count`` rows (fewer at the end of the input), or None."""
    buffer, start = self._buffer, self._position
    if len(buffer) - start < count:  # read on; else a view of the buffer
      parts, have = [buffer[start:]], len(buffer) - start
      while have < count:
        chunk = next(self._rows, None)
        if chunk is None:
          break
        parts.append(chunk)
        have += len(chunk)
      buffer, start = np.concatenate(parts), 0
      count = min(count, have)
      if self._drop:
        count -= count % self.batch_size
      self._buffer = buffer
    self._position = start + count
    if not count:
      return None
    return _as_slice(buffer[start:start + count])

  def __iter__(self) -> "Selections":
    return self

  def __next__(self) -> Any:
    rows = self.next_rows(self.batch_size)
    if rows is None:
      raise StopIteration
    return rows


def _as_slice(rows: np.ndarray) -> Any:
  """``rows`` as a slice when they are contiguous (gathering is then a view)."""
  if (len(rows) and rows[-1] - rows[0] == len(rows) - 1 and
      (len(rows) < 3 or bool(np.all(np.diff(rows) == 1)))):
    return slice(int(rows[0]), int(rows[-1]) + 1)
  return rows
