"""Per-replica input batches grouped into global batches, as tf.distribute reads them.

Under a strategy tf.estimator's input_fn yields per-replica batches, and one
step takes one batch per replica: ``num_replicas_in_sync`` consecutive
batches (in a multi-process run each process's input_fn those of its local
replicas). Here a step's batches are concatenated into its global batch,
which the strategy then splits over the devices (``Strategy.put_batch``):
with equal batches replica ``i`` trains on the step's batch ``i``; the loss
is the mean over the global batch, and the gradients are one device's on
the concatenated batches. The last step of a finite input takes the batches
that are left (fewer, or a short one) and runs, as in TF2's distributed
datasets (tf.estimator's own iterator, ``InputFunctionIterator`` without
``get_next_as_optional``, ends the input before such a step).

Example:
  >>> import numpy as np
  >>> batches = [({'x': np.arange(i, i + 2)}, np.arange(2)) for i in (0, 2, 4)]
  >>> [f['x'].tolist() for f, _ in group_batches(iter(batches), 2,
  ...                                               split=lambda b, i: b)]
  [[0, 1, 2, 3], [4, 5]]
"""
from __future__ import annotations

import copy
import itertools
from typing import Any, Callable, Iterator

import jax
import numpy as np

from estlab.data._batching import ArrayBatches
from estlab.spec import ModeKeys

__all__ = ["batches_per_step", "group_replica_batches", "group_batches",
           "group_selections"]


def batches_per_step(mode: str, config: Any) -> int:
  """Input batches one step of ``mode`` takes, as tf.estimator has it.

  Training under ``train_distribute`` and evaluation under
  ``eval_distribute`` take one batch per local replica
  (``Strategy.batches_per_step``). Everything else takes one: tf.estimator
  evaluates without ``eval_distribute`` on one device (estlab still splits
  that batch over ``train_distribute``'s devices, which changes no result)
  and never distributes ``predict``.
  """
  strategy = {ModeKeys.TRAIN: config.train_distribute,
              ModeKeys.EVAL: config.eval_distribute}.get(mode)
  return 1 if strategy is None else strategy.batches_per_step


def group_replica_batches(source: Iterator, per_step: int, *,
                          split: Callable[[Any, int], tuple]) -> Iterator:
  """``source`` (an input_fn's batches) with ``per_step`` batches joined
  into each item.

  An array input_fn's batches (``ArrayBatches``: ``selections``, the rows
  of each batch of a table that estimators encode once) stay rows of their
  table: a copy whose selections are joined (``group_selections``), so the
  fast path over the encoded table is kept. Other batches are joined
  (``group_batches``).

  Args:
    source: an iterator of input_fn batches.
    per_step: batches per item (``batches_per_step``); 1 returns ``source``.
    split: ``(batch, index) -> (features, labels)``, checking one batch
      (``_input_fn.split_batch``).
  """
  if per_step == 1:
    return source
  if isinstance(source, ArrayBatches):
    grouped = copy.copy(source)
    grouped.selections = group_selections(source.selections, per_step,
                                          source.table.num_rows)
    return grouped
  return group_batches(source, per_step, split=split)


def group_batches(batches: Iterator, per_step: int, *,
                  split: Callable[[Any, int], tuple]) -> Iterator[tuple]:
  """``(features, labels)`` of ``per_step`` consecutive batches, their rows
  concatenated in order; the last item has the batches left over.

  Each batch is checked by ``split`` under its own index (errors name the
  input_fn's batch) and copied if it is not the step's last (an input_fn may
  refill one buffer for every batch it yields).

  Raises:
    ValueError: the batches of one step differ in structure, or in the shape
      or dtype of a feature beyond the batch axis.
  """
  index = 0
  while True:
    pairs = []
    for item in itertools.islice(batches, per_step):
      pair = split(item, index)
      if len(pairs) < per_step - 1:  # copied before the next batch is read
        pair = jax.tree.map(np.array, pair)
      pairs.append(pair)
      index += 1
    if not pairs:
      return
    yield _join(pairs, index - len(pairs))


def _join(pairs: list[tuple], first: int) -> tuple:
  """One ``(features, labels)`` of several, rows concatenated."""
  if len(pairs) == 1:
    return pairs[0]
  flat = [jax.tree.flatten(pair) for pair in pairs]
  leaves0, treedef = flat[0]
  for offset, (leaves, other) in enumerate(flat[1:], 1):
    if other != treedef:
      raise ValueError(
          f"Batches {first} and {first + offset} of input_fn go to one step "
          f"(one batch per replica) but differ in structure: {treedef} vs "
          f"{other}. Yield batches with the same features and labels.")
    for a, b in zip(leaves0, leaves):
      if np.shape(a)[1:] != np.shape(b)[1:] or np.result_type(a) != np.result_type(b):
        raise ValueError(
            f"Batches {first} and {first + offset} of input_fn go to one step "
            f"(one batch per replica) but an array differs: shape "
            f"{np.shape(a)} {np.result_type(a)} vs {np.shape(b)} "
            f"{np.result_type(b)}. The replicas of a step need one shape and "
            "dtype beyond the batch axis: pad features to a fixed shape.")
  return jax.tree.unflatten(treedef, [
      np.concatenate(column) for column in zip(*(l for l, _ in flat))])


def group_selections(selections: Iterator, per_step: int,
                     num_rows: int) -> Iterator:
  """Row selections (slices or index arrays of a ``num_rows`` table),
  ``per_step`` consecutive ones joined into each.

  A row stream that hands out rows by count (``next_rows``, as
  ``IndexBatches``; it cuts its batches so) is read ``per_step`` batches at
  a time: the same rows, with no Python step per batch.
  """
  if hasattr(selections, "next_rows") and hasattr(selections, "batch_size"):
    return _WiderStream(selections, per_step)
  return _joined_selections(selections, per_step, num_rows)


def _joined_selections(selections: Iterator, per_step: int,
                       num_rows: int) -> Iterator:
  while True:
    parts = list(itertools.islice(selections, per_step))
    if not parts:
      return
    yield _join_rows(parts, num_rows)


def _join_rows(parts: list, num_rows: int) -> Any:
  """One selection of the rows of ``parts``, in order (a slice when they
  are adjacent slices)."""
  if len(parts) == 1:
    return parts[0]
  if all(isinstance(p, slice) and p.step in (None, 1) for p in parts):
    bounds = [p.indices(num_rows)[:2] for p in parts]
    if all(stop == start for (_, stop), (start, _) in zip(bounds, bounds[1:])):
      return slice(bounds[0][0], bounds[-1][1])
  return np.concatenate([
      np.arange(*p.indices(num_rows)) if isinstance(p, slice)
      else np.asarray(p, np.int64) for p in parts])


class _WiderStream:
  """A row stream (``next_rows``, ``batch_size``) cut into ``per_step``
  times wider batches: each is the rows of ``per_step`` of its batches."""

  def __init__(self, stream: Any, per_step: int):
    self._stream = stream
    self.batch_size = stream.batch_size * per_step

  def next_rows(self, count: int) -> Any:
    return self._stream.next_rows(count)

  def __iter__(self) -> "_WiderStream":
    return self

  def __next__(self) -> Any:
    rows = self._stream.next_rows(self.batch_size)
    if rows is None:
      raise StopIteration
    return rows
