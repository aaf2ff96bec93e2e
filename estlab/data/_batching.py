"""Batching, shuffling and epochs shared by the numpy, pandas and CSV inputs.

Two sources need batches: columns already in memory (numpy, pandas), which
are batched by index, and row chunks streamed from files (CSV), which are
shuffled through a buffer and re-cut into batches. Both cut one row stream
that runs across epoch boundaries, as ``tf.data``'s ``repeat().batch()``
does, so every batch is full except the last one of a finite input.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Union

import numpy as np

from estlab.data import _seed

Table = Dict[Any, np.ndarray]
Selection = Union[slice, np.ndarray]


def check_shuffle(shuffle: Any) -> bool:
  """Returns ``shuffle`` if it is a bool; raises TF's error otherwise."""
  if not isinstance(shuffle, (bool, np.bool_)):
    raise ValueError(
        f"shuffle must be provided and explicitly set as a boolean; got "
        f"{shuffle!r}. Pass shuffle=True for training and shuffle=False for "
        f"evaluation and prediction.")
  return bool(shuffle)


def check_batch_size(batch_size: Any) -> int:
  """Returns ``batch_size`` as an int if it is a positive integer."""
  if (isinstance(batch_size, (bool, np.bool_))
      or not isinstance(batch_size, numbers.Integral) or batch_size < 1):
    raise ValueError(
        f"batch_size must be a positive integer; got {batch_size!r}. "
        f"Pass e.g. batch_size=128.")
  return int(batch_size)


def check_num_epochs(num_epochs: Any) -> Optional[int]:
  """Returns ``num_epochs`` if it is None (forever) or a positive integer."""
  if num_epochs is None:
    return None
  if (isinstance(num_epochs, (bool, np.bool_))
      or not isinstance(num_epochs, numbers.Integral) or num_epochs < 1):
    raise ValueError(
        f"num_epochs must be None (repeat forever) or a positive integer; "
        f"got {num_epochs!r}.")
  return int(num_epochs)


def epochs(num_epochs: Optional[int]) -> Iterable[int]:
  """Counts epochs: ``range(num_epochs)``, or forever when it is None."""
  if num_epochs is not None:
    yield from range(num_epochs)
    return
  epoch = 0
  while True:
    yield epoch
    epoch += 1


def index_batches(num_rows: int, batch_size: int, num_epochs: Optional[int],
                  rng: Optional[np.random.Generator]) -> "IndexBatches":
  """Yields the rows of each batch, over ``num_epochs`` passes of the data.

  Without ``rng`` the rows come in order and a batch inside one epoch is a
  ``slice`` (so taking it is a view, not a copy); with ``rng`` every epoch
  is a fresh permutation and a batch is an index array. A batch that spans
  an epoch boundary is an index array either way.

  Args:
    num_rows: rows in one epoch, at least 1.
    batch_size: rows per batch.
    num_epochs: passes over the data; None repeats forever.
    rng: shuffles each epoch when given.

  Returns:
    An ``IndexBatches`` iterator: a ``slice`` or an int64 array per batch;
    only the last of a finite input has fewer than ``batch_size`` rows.

  Example:
    >>> [s for s in index_batches(3, 2, 1, None)]
    [slice(0, 2, None), slice(2, 3, None)]
  """
  if num_rows < 1:
    raise ValueError(f"Cannot batch an input with no rows (num_rows="
                     f"{num_rows!r}); pass at least one example.")
  return IndexBatches(num_rows, batch_size, num_epochs, rng)


class IndexBatches:
  """The row stream of ``index_batches``: epochs of rows (each a fresh
  permutation with an ``rng``) cut into batches. ``next_rows(k)`` takes the
  next ``k`` rows of the same stream at once, e.g. a training loop's worth
  of batches, without a Python step per batch."""

  def __init__(self, num_rows: int, batch_size: int,
               num_epochs: Optional[int], rng: Optional[np.random.Generator]):
    self.num_rows, self.batch_size = num_rows, batch_size
    self._epochs = iter(epochs(num_epochs))
    self._rng = rng
    self._order: Optional[np.ndarray] = None
    self._position = num_rows  # the (not yet drawn) epoch 0 starts here

  def next_rows(self, count: int) -> Optional[Selection]:
    """The next ``count`` rows (fewer at the end of the input), or None."""
    parts: List[Selection] = []
    taken = 0
    while taken < count:
      if self._position == self.num_rows:
        if next(self._epochs, None) is None:
          break
        self._order = (self._rng.permutation(self.num_rows)
                       if self._rng is not None else None)
        self._position = 0
      stop = min(self.num_rows, self._position + count - taken)
      parts.append(_part(self._order, self._position, stop))
      taken += stop - self._position
      self._position = stop
    return _join(parts) if parts else None

  def __iter__(self) -> "IndexBatches":
    return self

  def __next__(self) -> Selection:
    rows = self.next_rows(self.batch_size)
    if rows is None:
      raise StopIteration
    return rows


def _part(order: Optional[np.ndarray], start: int, stop: int) -> Selection:
  """Rows ``start:stop`` of an epoch: a slice in order, else indices."""
  return slice(start, stop) if order is None else order[start:stop]


def _join(parts: List[Selection]) -> Selection:
  """One selection of the rows of several."""
  if len(parts) == 1:
    return parts[0]
  return np.concatenate([np.arange(p.start, p.stop) if isinstance(p, slice)
                         else p for p in parts])


def take(columns: Table, rows: Selection) -> Table:
  """Gathers ``rows`` (a slice or index array) from every column."""
  if isinstance(rows, slice):
    return {key: col[rows] for key, col in columns.items()}
  return {key: np.take(col, rows, axis=0) for key, col in columns.items()}


def num_rows(table: Table) -> int:
  """The number of rows of a table (a dict of equally long columns)."""
  return len(next(iter(table.values()))) if table else 0


def concat(tables: List[Table]) -> Table:
  """Concatenates tables with the same keys, row-wise."""
  if len(tables) == 1:
    return tables[0]
  return {key: np.concatenate([t[key] for t in tables]) for key in tables[0]}


def shuffle_buffer(tables: Iterable[Table], buffer_size: int,
                   rng: np.random.Generator) -> Iterator[Table]:
  """Shuffles a stream of row chunks through a buffer, like tf.data's shuffle.

  Up to ``buffer_size`` rows wait in the buffer; each incoming chunk joins
  them and as many rows as the chunk brought leave, drawn at random from the
  whole buffer. At the end the buffer is emptied in random order. Every row
  comes out exactly once. Written by hand: pandas streams chunks but does not
  shuffle across them.

  Args:
    tables: chunks of rows, dicts of equally long columns with the same keys.
    buffer_size: rows held back for mixing; 1 or less does not shuffle.
    rng: the source of randomness.

  Yields:
    Chunks of shuffled rows.

  Example:
    >>> rng = np.random.default_rng(0)
    >>> chunks = ({'x': np.arange(i, i + 2)} for i in (0, 2, 4))
    >>> out = np.concatenate([c['x'] for c in shuffle_buffer(chunks, 3, rng)])
    >>> sorted(out.tolist())
    [0, 1, 2, 3, 4, 5]
  """
  buffer: Optional[Table] = None
  for table in tables:
    pool = table if buffer is None else concat([buffer, table])
    extra = num_rows(pool) - buffer_size
    if extra <= 0:
      buffer = pool
      continue
    order = rng.permutation(num_rows(pool))
    yield take(pool, order[:extra])
    buffer = take(pool, order[extra:])
  if buffer is not None and num_rows(buffer):
    yield take(buffer, rng.permutation(num_rows(buffer)))


def rebatch(tables: Iterable[Table], batch_size: int) -> Iterator[Table]:
  """Cuts a stream of row chunks into batches of exactly ``batch_size`` rows.

  The last batch has the rows left over, if any.

  Example:
    >>> chunks = [{'x': np.arange(3)}, {'x': np.arange(3, 5)}]
    >>> [b['x'].tolist() for b in rebatch(chunks, 2)]
    [[0, 1], [2, 3], [4]]
  """
  rest: List[Table] = []
  rest_rows = 0
  for table in tables:
    rows = num_rows(table)
    if not rows:
      continue
    if rest_rows + rows < batch_size:
      rest.append(table)
      rest_rows += rows
      continue
    table = concat(rest + [table])
    rows += rest_rows
    start = 0
    while rows - start >= batch_size:
      yield take(table, slice(start, start + batch_size))
      start += batch_size
    rest = [take(table, slice(start, rows))] if start < rows else []
    rest_rows = rows - start
  if rest_rows:
    yield concat(rest)


class ArrayTable:
  """In-memory columns an array input_fn batches; one object per input_fn.

  Estimators key their cache of encoded columns on this object (weakly), so
  a DataFrame is encoded once however many times its input_fn is called.

  Attributes:
    features: name -> array, all with the same first dimension.
    labels: None, an array, or name -> array, with that first dimension.
  """

  def __init__(self, features: Table, labels: Union[None, np.ndarray, Table]):
    self.features = features
    self.labels = labels
    self.num_rows = num_rows(features)

  def rows(self, selection: Selection) -> Any:
    """The batch of ``selection``: ``(features, labels)`` or ``features``."""
    features = take(self.features, selection)
    if self.labels is None:
      return features
    if isinstance(self.labels, dict):
      return features, take(self.labels, selection)
    return features, take({None: self.labels}, selection)[None]

  def whole(self) -> Any:
    """Every row as one batch, in the form ``rows`` returns."""
    return self.rows(slice(None))


class ArrayBatches:
  """The iterator an array input_fn returns: batches of rows of a table.

  Iterating yields ``(features, labels)`` (or ``features``) batches, as any
  input_fn does. An Estimator may instead read ``table`` and consume
  ``selections`` (the rows of each batch), to gather rows of columns it
  encoded once; the two ways must not be mixed on one iterator.
  """

  def __init__(self, table: ArrayTable, selections: Iterator[Selection]):
    self.table = table
    self.selections = selections

  def __iter__(self) -> "ArrayBatches":
    return self

  def __next__(self) -> Any:
    return self.table.rows(next(self.selections))


def make_array_input_fn(features: Table, labels: Union[None, np.ndarray, Table],
                        batch_size: int, num_epochs: Optional[int],
                        shuffle: bool, seed: Any) -> Callable[[], ArrayBatches]:
  """Returns an input_fn over in-memory columns, already numpy and checked.

  Each call of the input_fn returns a fresh ``ArrayBatches`` iterator over
  the same ``ArrayTable``. With ``shuffle`` the calls draw independent,
  reproducible (given ``seed``) random streams.

  Args:
    features: name -> array, all with the same first dimension.
    labels: None, an array, or name -> array, with that same first dimension.
    batch_size: rows per batch.
    num_epochs: passes over the data; None repeats forever.
    shuffle: whether each epoch visits the rows in a fresh random order.
    seed: seeds ``numpy.random.SeedSequence``; None draws fresh entropy,
      or, while an Estimator calls the input_fn with
      ``RunConfig(tf_random_seed=...)``, the graph seed's (``_seed``).

  Returns:
    A callable taking no arguments and returning an iterator of
    ``(features, labels)`` batches, or of ``features`` when labels is None.

  Example:
    >>> fn = make_array_input_fn({'x': np.arange(3)}, None, 2, 1, False, None)
    >>> [b['x'].tolist() for b in fn()]
    [[0, 1], [2]]
  """
  table = ArrayTable(features, labels)
  seeds = np.random.SeedSequence(seed)

  def input_fn() -> ArrayBatches:
    rng = None
    if shuffle:  # seed None: the graph seed's, if the Estimator set one
      graph = _seed.op_seed() if seed is None else None
      rng = np.random.default_rng(seeds.spawn(1)[0] if graph is None else
                                  np.random.SeedSequence(graph))
    return ArrayBatches(
        table, index_batches(table.num_rows, batch_size, num_epochs, rng))

  return input_fn
