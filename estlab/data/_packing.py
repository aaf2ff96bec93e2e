"""Host batches packed into one buffer per word size: one transfer each.

A premade model's batch is ~20 small arrays (a value or ids, and weights
for weighted columns, per feature column). Putting each on the device has a fixed cost (tens of µs)
that is larger than the whole compiled step of a small model, so the host
concatenates the leaves along a last axis (``[rows, k]``) and the compiled
step slices them back apart (static slices, free in XLA). Leaves of one
word size (float32 values, int32 ids) share a buffer, stored as unsigned
words and bit-cast back (free too): a row of a table is then one contiguous
record, and gathering rows of an encoded table (``np.take``) touches one
place in memory per row, not one per dtype.

``Packed`` is a pytree: its buffers are the leaves and its ``Layout`` (the
tree structure, offsets and shapes) is static, so ``jax.jit`` keys its cache
on the layout and scans, ``device_put`` and shardings see plain arrays with
the batch axis first. Packing is written here because JAX has no transfer
batching of this kind (``device_put`` of a list still moves leaf by leaf).

A packed (or, where it cannot be packed, plain) batch is what the later
stages and the compiled steps take: ``take_rows`` gathers its rows and
``rows_of`` counts them.

Example:
  >>> import numpy as np
  >>> batch = ({'x': np.ones((4, 2), np.float32), 'n': np.zeros(4, np.int64)},
  ...          np.arange(4))
  >>> packed = pack(batch)
  >>> [(b.shape, b.dtype.name) for b in packed.buffers]
  [((4, 4), 'uint32')]
  >>> features, labels = packed.unpack()
  >>> features['x'].shape, labels.tolist()
  ((4, 2), [0, 1, 2, 3])
"""
from __future__ import annotations

import dataclasses
from typing import Any
import weakref

import jax
import numpy as np

__all__ = ["Layout", "Packed", "pack", "unpacked", "take_rows", "rows_of"]


@dataclasses.dataclass(frozen=True, eq=False)
class Layout:
  """Where each leaf of a packed tree lives.

  ``jax.jit`` compares (and hashes) a ``Packed`` argument's layout with its
  cached one on every call, so ``pack`` interns layouts (equal ones are one
  object), equality checks identity first and the hash is computed once:
  ~10 us a step under the profiler before.

  Attributes:
    treedef: the structure of the original tree.
    slots: per leaf ``(buffer index, first column, stop column, trailing
      shape, dtype)``; the leaf is ``buffer[..., first:stop]`` bit-cast to
      its dtype and reshaped to the leading (batch) axes plus its trailing
      shape.
  """

  treedef: Any
  slots: tuple[tuple[int, int, int, tuple[int, ...], np.dtype], ...]

  def __post_init__(self):
    object.__setattr__(self, "_hash", hash((self.treedef, self.slots)))

  def __eq__(self, other: Any) -> bool:
    if self is other:
      return True
    if not isinstance(other, Layout):
      return NotImplemented
    return self.treedef == other.treedef and self.slots == other.slots

  def __hash__(self) -> int:
    return self._hash

  def __reduce__(self):  # the hash is per process (str hashes are salted)
    return Layout, (self.treedef, self.slots)


# Equal layouts made by ``pack``, one object each (see ``Layout``).
_LAYOUTS: "weakref.WeakValueDictionary[Layout, Layout]" = (
    weakref.WeakValueDictionary())


@jax.tree_util.register_pytree_node_class
class Packed:
  """Buffers ``[*batch_axes, k]`` (one per dtype) and their ``Layout``."""

  def __init__(self, buffers: tuple, layout: Layout):
    self.buffers = tuple(buffers)
    self.layout = layout

  def tree_flatten(self):
    return self.buffers, self.layout

  @classmethod
  def tree_unflatten(cls, layout, buffers):
    return cls(buffers, layout)

  def unpack(self) -> Any:
    """The original tree; works on numpy and on traced arrays alike."""
    leaves = []
    for index, first, stop, trailing, dtype in self.layout.slots:
      buffer = self.buffers[index]
      leaf = buffer[..., first:stop]
      if leaf.dtype != dtype:
        leaf = (leaf.view(dtype) if isinstance(leaf, np.ndarray)
                else jax.lax.bitcast_convert_type(leaf, dtype))
      leaves.append(leaf.reshape(tuple(buffer.shape[:-1]) + tuple(trailing)))
    return jax.tree.unflatten(self.layout.treedef, leaves)

  def __repr__(self):
    shapes = [(tuple(b.shape), str(b.dtype)) for b in self.buffers]
    return f"Packed({shapes}, {len(self.layout.slots)} leaves)"


def pack(tree: Any, batch_axes: int = 1) -> Packed | None:
  """Packs a tree of numpy arrays sharing ``batch_axes`` leading axes.

  Dtypes are first made what JAX would make them (int64 to int32 unless
  x64 is on), so labels share the ids' buffer. Returns None when a leaf is
  not a numpy array with those axes (e.g. already on the device); the
  caller then sends the tree as it is.
  """
  leaves, treedef = jax.tree.flatten(tree)
  if not leaves or not all(isinstance(a, np.ndarray) and a.ndim >= batch_axes
                           for a in leaves):
    return None
  lead = leaves[0].shape[:batch_axes]
  if any(a.shape[:batch_axes] != lead for a in leaves):
    return None
  groups: dict[Any, list[np.ndarray]] = {}
  columns: dict[Any, int] = {}
  slots = []
  for leaf in leaves:
    dtype = np.dtype(jax.dtypes.canonicalize_dtype(leaf.dtype))
    flat = leaf.astype(dtype, copy=False).reshape(lead + (-1,))
    key = _word(dtype)
    index = list(groups).index(key) if key in groups else len(groups)
    groups.setdefault(key, []).append(flat)
    first = columns.get(key, 0)
    columns[key] = first + flat.shape[-1]
    slots.append((index, first, columns[key], tuple(leaf.shape[batch_axes:]),
                  dtype))
  buffers = tuple(_concatenate(parts) for parts in groups.values())
  layout = Layout(treedef, tuple(slots))
  return Packed(buffers, _LAYOUTS.setdefault(layout, layout))


def _word(dtype: np.dtype) -> Any:
  """The buffer a dtype goes to: one per word size (bool, complex and
  non-numeric dtypes keep their own)."""
  if dtype.kind in "iuf" and dtype.itemsize in (1, 2, 4, 8):
    return dtype.itemsize
  return dtype


def _concatenate(parts: list[np.ndarray]) -> np.ndarray:
  """One ``[..., k]`` buffer of ``parts``; as unsigned words if they differ
  in dtype (a view of each part, bits unchanged)."""
  if len({p.dtype for p in parts}) > 1:
    word = np.dtype(f"u{parts[0].dtype.itemsize}")
    parts = [p.view(word) for p in parts]
  if len(parts) == 1:
    return np.ascontiguousarray(parts[0])
  return np.concatenate(parts, axis=-1)


def unpacked(features: Any, labels: Any) -> tuple[Any, Any]:
  """``(features, labels)``, unpacking them when ``features`` is ``Packed``."""
  if isinstance(features, Packed):
    return features.unpack()
  return features, labels


def take_rows(batch: Any, rows: Any) -> Any:
  """Rows (a slice or index array) of every array in a prepared batch."""
  # Every training step: no tree walk for a Packed batch, alone or as
  # ``prepare_batch`` returns it, ``(Packed, None)``.
  if isinstance(batch, Packed):
    return _take_packed(batch, rows)
  if (type(batch) is tuple and len(batch) == 2  # pylint: disable=unidiomatic-typecheck
      and isinstance(batch[0], Packed) and batch[1] is None):
    return _take_packed(batch[0], rows), None
  return jax.tree.map(lambda a: _take(a, rows), batch)


def _take_packed(batch: Packed, rows: Any) -> Packed:
  return Packed(tuple(_take(b, rows) for b in batch.buffers), batch.layout)


def _take(array: Any, rows: Any) -> Any:
  return array[rows] if isinstance(rows, slice) else np.take(array, rows, axis=0)


def rows_of(batch: Any) -> int:
  """The batch size of a prepared batch (its first array's leading axis)."""
  return int(np.shape(jax.tree.leaves(batch)[0])[0])
