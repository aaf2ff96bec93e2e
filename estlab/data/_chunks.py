"""Several input batches as one, so the host encoding runs once per chunk.

An input_fn that yields batches one by one (a generator, a tf.data
iterator) has each batch encoded on the host by the feature columns. On
small batches that is mostly fixed cost per call, about forty numpy and
pandas calls per batch: the census Linear columns took 1.57 ms per batch of
256 rows encoded alone against 0.38 ms per 256 rows encoded 16 batches at a
time (DNN columns: 1.08 against 0.33 ms). Feature columns and heads
transform row by row (the array path already relies on it: it encodes a
whole table once and gathers rows), so the batches of a chunk are joined,
transformed and packed once, and cut again, each batch keeping its own
rows.

Pure helpers over host pytrees; ``_encode.prepare_batches`` uses them.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import numpy as np

__all__ = ["snapshot", "join", "row_ranges"]


def _copied(value: Any) -> Any:
  return value.copy() if isinstance(value, np.ndarray) else value


def snapshot(item: Any) -> Any:
  """``item`` (one input_fn batch) with its numpy arrays copied.

  A chunk reads several batches before transforming them, and an input_fn
  may refill one buffer for every batch it yields.
  """
  if isinstance(item, tuple) and len(item) == 2:
    features, labels = item
    if isinstance(labels, Mapping):
      labels = {k: _copied(v) for k, v in labels.items()}
    else:
      labels = _copied(labels)
    return snapshot(features), labels
  if isinstance(item, Mapping):
    return {k: _copied(v) for k, v in item.items()}
  return _copied(item)  # features as one array (or not arrays: as they are)


def _stackable(a: Any, b: Any) -> bool:
  return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and
          a.ndim == b.ndim and a.ndim >= 1 and a.shape[1:] == b.shape[1:] and
          a.dtype == b.dtype)


def join(batches: Sequence[Any]) -> Any | None:
  """The batches (pytrees of numpy arrays) with their rows concatenated.

  None when they cannot be joined as they are: different structures or
  feature names, arrays of different dtypes or per-row shapes, or leaves
  that are not numpy arrays.
  """
  flat = [jax.tree.flatten(batch) for batch in batches]
  leaves0, treedef = flat[0]
  if any(td != treedef or not all(map(_stackable, leaves0, leaves))
         for leaves, td in flat[1:]):
    return None
  if not all(isinstance(leaf, np.ndarray) for leaf in leaves0):
    return None
  return jax.tree.unflatten(
      treedef, [np.concatenate(column) for column in
                zip(*(leaves for leaves, _ in flat))])


def row_ranges(rows: Sequence[int]) -> list[slice]:
  """Consecutive slices of ``rows`` rows each, from row 0."""
  ends = np.cumsum(rows, dtype=np.int64)
  return [slice(int(end - n), int(end)) for n, end in zip(rows, ends)]
