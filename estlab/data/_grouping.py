"""Grouping for ``steps_per_loop`` and padding: batches as the steps take them.

Training batches are grouped ``steps_per_loop`` at a time and stacked on a
new axis 0, padded to a full loop (``group_for_loops``, ``stack_loop``,
``pad_loop``): ``CompiledSteps.train_loop`` trains on the real ones.
Evaluation and prediction batches shorter than the first are padded to its
size (``pad_short_batches``), so one compiled step serves them all. (An
array input_fn's table groups row indices instead: ``_tables.table_loops``.)

Example:
  >>> import numpy as np
  >>> batches = [{'x': np.full(2, i)} for i in range(3)]
  >>> [(n, b['x'].tolist()) for n, b in group_for_loops(iter(batches), 2, None)]
  [(2, [[0, 0], [1, 1]]), (1, [[2, 2], [2, 2]])]
"""
from __future__ import annotations

import itertools
from typing import Any, Iterator

import jax
import numpy as np

from estlab.data._packing import rows_of, take_rows

__all__ = ["group_for_loops", "stack_loop", "pad_loop", "pad_short_batches"]


def group_for_loops(batches: Iterator, steps_per_loop: int,
                    limit: int | None) -> Iterator[tuple[int, Any]]:
  """Yields ``(n, batch)``: with ``steps_per_loop`` 1 single batches (n=1),
  else ``n`` batches stacked on a new axis 0 and padded to ``steps_per_loop``
  (``stack_loop``) for ``CompiledSteps.train_loop``, which trains on the
  first ``n``: a call's tail, a finite input's end and a shape change run in
  the loop program too.

  Stops pulling from ``batches`` once ``limit`` steps are covered. Batches of
  a different shape than those pending are never stacked together.
  """
  if steps_per_loop == 1:
    yield from ((1, batch) for batch in itertools.islice(batches, limit))
    return
  remaining = limit
  pending: list = []
  for batch in batches:
    if pending and _signature(pending[0]) != _signature(batch):
      yield len(pending), stack_loop(pending, steps_per_loop)
      pending = []
    pending.append(batch)
    if remaining is not None:
      remaining -= 1
    if len(pending) == steps_per_loop or remaining == 0:
      yield len(pending), stack_loop(pending, steps_per_loop)
      pending = []
      if remaining == 0:
        return
  if pending:
    yield len(pending), stack_loop(pending, steps_per_loop)


def _signature(batch: Any) -> Any:
  leaves, treedef = jax.tree.flatten(batch)
  return treedef, tuple((np.shape(a), np.result_type(a)) for a in leaves)


def stack_loop(batches: list, steps_per_loop: int) -> Any:
  """``batches`` stacked on a new axis 0, padded to ``steps_per_loop`` with
  copies of the last (``pad_loop``)."""
  return jax.tree.map(lambda *xs: pad_loop(np.stack(xs), steps_per_loop),
                      *batches)


def pad_loop(stack: np.ndarray, steps_per_loop: int) -> np.ndarray:
  """``[n, ...]`` -> ``[steps_per_loop, ...]``, the last entry repeated (a
  loop's padding: ``CompiledSteps.train_loop`` never trains on it)."""
  missing = steps_per_loop - len(stack)
  if not missing:
    return stack
  return np.concatenate([stack, np.repeat(stack[-1:], missing, axis=0)])


def pad_short_batches(batches: Iterator, pad: bool = True
                      ) -> Iterator[tuple[Any, int | None]]:
  """Yields ``(batch, valid)``; a batch shorter than the first is padded.

  Padding repeats the batch's first row up to the first batch's size, so the
  last batch of an evaluation or prediction runs in the step already
  compiled for the others; ``valid`` is its real row count (None when the
  batch was not padded), for masking metrics and slicing predictions.
  Without ``pad`` every batch passes as it is, with ``valid`` None.
  """
  size = None
  for batch in batches:
    if not pad:
      yield batch, None
      continue
    rows = rows_of(batch)
    size = rows if size is None else size
    if rows >= size:
      yield batch, None
      continue
    index = np.concatenate([np.arange(rows), np.zeros(size - rows, np.int64)])
    yield take_rows(batch, index), rows
