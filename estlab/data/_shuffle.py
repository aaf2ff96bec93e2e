"""tf.data's buffer shuffle, vectorised, and the seeds of its iterations.

``shuffle(buffer_size)`` in tf.data fills a buffer with the first
``buffer_size`` elements, then repeatedly emits a uniformly chosen buffered
element and puts the next input in its place; at the end the buffer is
emptied in random order. Grain has no counterpart (its ``shuffle`` is a
global permutation of a random-access dataset, ``WindowShuffle`` shuffles
fixed windows), so it is written here. ``BufferShuffle`` runs the algorithm
on arrays of values, many inputs per call: the element path shuffles the
positions of its elements, the in-memory path row ids directly, and both
draw the same random numbers because both push inputs in the same
``pull_size`` pieces.
"""
from __future__ import annotations

import itertools
from typing import Any, Optional

import numpy as np

from estlab.data import _seed

__all__ = ["BufferShuffle", "ShuffleSeeds", "pull_size"]


def pull_size(buffer_size: int) -> int:
  """How many inputs a shuffle takes per ``push``: the same in every path,
  so the same seed gives the same order in every path. As many as the
  buffer holds (TF too reads a full buffer first), up to 16384: a push
  costs a few numpy calls whatever its size."""
  return max(1, min(int(buffer_size), 1 << 14))


class BufferShuffle:
  """One iteration of tf.data's buffer shuffle over arrays of values.

  Example:
    >>> shuffle = BufferShuffle(3, np.random.default_rng(0))
    >>> out = [shuffle.push(np.arange(5)), shuffle.finish()]
    >>> sorted(np.concatenate(out).tolist())
    [0, 1, 2, 3, 4]
  """

  def __init__(self, buffer_size: int, rng: np.random.Generator):
    self._size = int(buffer_size)
    self._rng = rng
    self._slots: Optional[np.ndarray] = None

  def push(self, values: np.ndarray) -> np.ndarray:
    """Takes ``values`` (the next inputs, in order); returns what leaves.

    While the buffer fills nothing leaves; then one value leaves per input:
    input ``t`` replaces the value in a random slot ``j_t``, which leaves.
    The value leaving at ``t`` is the input written to ``j_t`` last before
    ``t`` (or the slot's first value): found for all ``t`` at once by a
    stable sort of the slots drawn.
    """
    if self._slots is None:
      self._slots = values[:0]
    free = self._size - len(self._slots)
    if free > 0:
      self._slots = np.concatenate([self._slots, values[:free]])
      values = values[free:]
    if not len(values):
      return values
    slots = self._rng.integers(0, self._size, size=len(values))
    if self._size <= 1 << 16:  # a stable sort of uint16 is a radix sort
      order = np.argsort(slots.astype(np.uint16), kind="stable")
    else:
      order = np.argsort(slots, kind="stable")
    drawn = slots[order]
    first = np.ones(len(drawn), dtype=bool)
    first[1:] = drawn[1:] != drawn[:-1]
    before = np.empty_like(order)  # the input sorted just before each
    before[0], before[1:] = order[0], order[:-1]
    previous = values[before]
    out = np.empty_like(values)
    out[order] = np.where(first, self._slots[drawn], previous)
    last = np.ones(len(drawn), dtype=bool)
    last[:-1] = drawn[:-1] != drawn[1:]
    self._slots[drawn[last]] = values[order[last]]
    return out

  def finish(self) -> np.ndarray:
    """The values left in the buffer, in random order (the input ended)."""
    if self._slots is None:
      return np.empty(0, dtype=np.int64)
    out = self._slots[self._rng.permutation(len(self._slots))]
    self._slots = self._slots[:0]
    return out


class ShuffleSeeds:
  """The random generator of each iteration of one ``shuffle`` dataset.

  With ``reshuffle_each_iteration`` iteration ``k`` (each ``iter()``, each
  epoch of a ``repeat``) draws from ``SeedSequence(seed, spawn_key=(k,))``;
  without, every iteration draws the same order. A None seed is the graph
  seed's next op seed (``_seed``, ``RunConfig.tf_random_seed``) when one is
  active, else fresh entropy, drawn once per ``shuffle`` call.
  """

  def __init__(self, seed: Any, reshuffle_each_iteration: bool):
    if seed is None:
      seed = _seed.op_seed()
    self._entropy = np.random.SeedSequence(seed).entropy
    self._reshuffle = bool(reshuffle_each_iteration)
    self._count = itertools.count()

  def next_rng(self) -> np.random.Generator:
    """The generator of the next iteration."""
    key = next(self._count) if self._reshuffle else 0
    return np.random.default_rng(
        np.random.SeedSequence(self._entropy, spawn_key=(key,)))
