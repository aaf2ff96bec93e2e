"""The element path on Grain, and the few steps Grain has no counterpart for.

Random-access sources (``from_tensor_slices``, ``range``) are Grain
``MapDataset``s, and stay so through ``map``, ``batch``, ``take``, ``skip``,
``shard`` and ``repeat``; the rest is a Grain ``IterDataset``. Written here,
each as a Python generator in an ``IterDataset`` (``PyIterDataset``), are
the tf.data steps whose semantics Grain does not have: a Python generator
source; the buffer ``shuffle`` (Grain's shuffles are global or by window);
``repeat`` of an ``IterDataset`` that iterates its input afresh each epoch
(so a shuffle above it reshuffles; Grain's resets its input's state);
``skip``, ``shard`` and ``concatenate`` of iterables; ``unbatch``; and a
``cache`` that outlives one iterator (Grain's ``CacheIterDataset`` caches
within one). Their iterators do not checkpoint a position: estlab, like
tf.estimator, restarts the input_fn on each ``train`` call.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import grain
import numpy as np

from estlab.data import _shuffle, _structure

__all__ = ["PyIterDataset", "as_iter", "buffer_shuffle", "repeat_iter",
           "unbatch", "READ_INLINE"]

# Elements are read in the consumer's thread: Python functions over numpy
# gain nothing from Grain's default 16 reader threads on a few cores.
READ_INLINE = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)


class PyIterDataset(grain.IterDataset):
  """An ``IterDataset`` whose iterator is a Python generator.

  Args:
    parents: the Grain datasets ``make`` reads (for Grain's graph).
    make: starts one iteration: a function returning an iterator.
    name: the step, for ``str()``.
  """

  def __init__(self, parents: Sequence[Any], make: Callable[[], Iterator],
               name: str):
    super().__init__(list(parents))
    self._make = make
    self._name = name

  def __iter__(self) -> grain.DatasetIterator:
    return _PyIterator(self._make())

  def __str__(self) -> str:
    return f"PyIterDataset({self._name})"


class _PyIterator(grain.DatasetIterator):
  """Steps a Python iterator; its position is a count, not restorable."""

  def __init__(self, iterator: Iterator):
    super().__init__()
    self._iterator = iterator
    self._position = 0

  def __next__(self) -> Any:
    value = next(self._iterator)
    self._position += 1
    return value

  def get_state(self) -> dict:
    return {"position": self._position}

  def set_state(self, state: dict) -> None:
    raise NotImplementedError(
        f"estlab.data iterators do not restore a position (asked for "
        f"{state!r}); start a new iterator with iter(dataset) instead.")


def as_iter(ds: Any) -> Any:
  """``ds`` as an ``IterDataset`` (a ``MapDataset`` read inline)."""
  if isinstance(ds, grain.MapDataset):
    return ds.to_iter_dataset(READ_INLINE)
  return ds


def _pull(iterator: Iterator, count: int) -> list:
  """Up to ``count`` next items of ``iterator``."""
  items = []
  for item in iterator:
    items.append(item)
    if len(items) == count:
      break
  return items


def buffer_shuffle(parent: Any, buffer_size: int,
                   seeds: _shuffle.ShuffleSeeds) -> PyIterDataset:
  """tf.data's ``shuffle(buffer_size)``: each iteration draws from
  ``seeds.next_rng()`` and shuffles the positions of its elements through
  ``_shuffle.BufferShuffle``, as the in-memory path shuffles row ids."""
  parent = as_iter(parent)
  size = _shuffle.pull_size(buffer_size)

  def make() -> Iterator:
    shuffler = _shuffle.BufferShuffle(buffer_size, seeds.next_rng())
    waiting = {}
    seen = 0
    source = iter(parent)
    while True:
      items = _pull(source, size)
      if not items:
        break
      ordinals = np.arange(seen, seen + len(items))
      waiting.update(zip(ordinals.tolist(), items))
      seen += len(items)
      yield from (waiting.pop(o) for o in shuffler.push(ordinals).tolist())
      if len(items) < size:
        break
    yield from (waiting.pop(o) for o in shuffler.finish().tolist())

  return PyIterDataset([parent], make, f"shuffle({buffer_size})")


def repeat_iter(parent: Any, count: Any) -> PyIterDataset:
  """``count`` passes (None: forever), each a new iteration of ``parent``;
  a pass with no elements ends it."""
  parent = as_iter(parent)

  def make() -> Iterator:
    epoch = 0
    while count is None or epoch < count:
      empty = True
      for element in parent:
        empty = False
        yield element
      if empty:
        return
      epoch += 1

  return PyIterDataset([parent], make, f"repeat({count})")


def unbatch(parent: Any) -> PyIterDataset:
  """tf.data's ``unbatch``: the rows of each batch, one element each."""
  parent = as_iter(parent)

  def make() -> Iterator:
    for index, batch in enumerate(parent):
      leaves, treedef = _structure.flatten(batch)
      sizes = {_structure.leading_dim(leaf) for leaf in leaves}
      if None in sizes or len(sizes) != 1:
        raise ValueError(
            f"Cannot unbatch element {index}, {batch!r:.200}: every "
            f"array needs the same first dimension (got "
            f"{[np.shape(leaf) for leaf in leaves]}). Unbatch batches, "
            f"e.g. the output of batch().")
      for row in range(sizes.pop()):
        yield _structure.unflatten(treedef, [leaf[row] for leaf in leaves])

  return PyIterDataset([parent], make, "unbatch")


def skip_iter(parent: Any, count: int) -> PyIterDataset:
  """All but the first ``count`` elements (none for -1)."""
  parent = as_iter(parent)

  def make() -> Iterator:
    if count < 0:
      return
    iterator = iter(parent)
    for _ in range(count):
      if next(iterator, _END) is _END:
        return
    yield from iterator

  return PyIterDataset([parent], make, f"skip({count})")


def shard_iter(parent: Any, num_shards: int, index: int) -> PyIterDataset:
  """Elements ``index``, ``index + num_shards``, ..."""
  parent = as_iter(parent)

  def make() -> Iterator:
    for position, element in enumerate(parent):
      if position % num_shards == index:
        yield element

  return PyIterDataset([parent], make, f"shard({num_shards}, {index})")


def concatenate_iter(parents: Sequence[Any]) -> PyIterDataset:
  """The elements of each parent in turn."""
  parents = [as_iter(p) for p in parents]

  def make() -> Iterator:
    for parent in parents:
      yield from parent

  return PyIterDataset(parents, make, "concatenate")


def zip_iter(parents: Sequence[Any]) -> PyIterDataset:
  """Tuples of the parents' elements, up to the shortest."""
  parents = [as_iter(p) for p in parents]
  return PyIterDataset(parents, lambda: zip(*parents), "zip")


def generator(make: Callable[[], Iterator], name: str) -> PyIterDataset:
  """A source: each iteration calls ``make`` for a fresh iterator."""
  return PyIterDataset([], make, name)


def cache(parent: Any, store: Any) -> PyIterDataset:
  """Elements recorded by the first complete pass, then replayed.

  ``store`` keeps the recording across iterations: ``store.elements`` (None
  until a pass completes) and ``store.load()`` / ``store.save(elements)``
  for a file, which it may hold.
  """
  parent = as_iter(parent)

  def make() -> Iterator:
    elements = store.elements if store.elements is not None else store.load()
    if elements is not None:
      store.elements = elements
      yield from elements
      return
    recorded = []
    for element in parent:
      recorded.append(element)
      yield element
    store.save(recorded)
    store.elements = recorded

  return PyIterDataset([parent], make, "cache")


def prefetch(parent: Any, buffer_size: int) -> Any:
  """Grain's thread prefetch of ``buffer_size`` elements."""
  return grain.experimental.ThreadPrefetchIterDataset(
      as_iter(parent), prefetch_buffer_size=buffer_size)


_END = object()
