"""Host batches packed into one buffer per dtype: one device transfer each.

A premade model's batch is ~20 small arrays (a value, ids and weights per
feature column). Putting each on the device has a fixed cost (tens of µs)
that is larger than the whole compiled step of a small model, so the host
concatenates the leaves of each dtype along a last axis (``[rows, k]``) and
the compiled step slices them back apart (static slices, free in XLA).

``Packed`` is a pytree: its buffers are the leaves and its ``Layout`` (the
tree structure, offsets and shapes) is static, so ``jax.jit`` keys its cache
on the layout and scans, ``device_put`` and shardings see plain arrays with
the batch axis first. Packing is written here because JAX has no transfer
batching of this kind (``device_put`` of a list still moves leaf by leaf).

Example:
  >>> import numpy as np
  >>> batch = ({'x': np.ones((4, 2), np.float32), 'n': np.zeros(4, np.int64)},
  ...          np.arange(4))
  >>> packed = pack(batch)
  >>> [b.shape for b in packed.buffers]
  [(4, 2), (4, 2)]
  >>> features, labels = packed.unpack()
  >>> features['x'].shape, labels.tolist()
  ((4, 2), [0, 1, 2, 3])
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

__all__ = ["Layout", "Packed", "pack", "unpacked"]


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where each leaf of a packed tree lives.

  Attributes:
    treedef: the structure of the original tree.
    slots: per leaf ``(buffer index, first column, stop column, trailing
      shape)``; the leaf is ``buffer[..., first:stop]`` reshaped to the
      leading (batch) axes plus its trailing shape.
  """

  treedef: Any
  slots: tuple[tuple[int, int, int, tuple[int, ...]], ...]


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
    for index, first, stop, trailing in self.layout.slots:
      buffer = self.buffers[index]
      leaves.append(buffer[..., first:stop].reshape(
          tuple(buffer.shape[:-1]) + tuple(trailing)))
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
  groups: dict[np.dtype, list[np.ndarray]] = {}
  columns: dict[np.dtype, int] = {}
  slots = []
  for leaf in leaves:
    dtype = np.dtype(jax.dtypes.canonicalize_dtype(leaf.dtype))
    flat = leaf.astype(dtype, copy=False).reshape(lead + (-1,))
    index = list(groups).index(dtype) if dtype in groups else len(groups)
    groups.setdefault(dtype, []).append(flat)
    first = columns.get(dtype, 0)
    columns[dtype] = first + flat.shape[-1]
    slots.append((index, first, columns[dtype], tuple(leaf.shape[batch_axes:])))
  buffers = tuple(np.ascontiguousarray(parts[0]) if len(parts) == 1 else
                  np.concatenate(parts, axis=-1) for parts in groups.values())
  return Packed(buffers, Layout(treedef, tuple(slots)))


def unpacked(features: Any, labels: Any) -> tuple[Any, Any]:
  """``(features, labels)``, unpacking them when ``features`` is ``Packed``."""
  if isinstance(features, Packed):
    return features.unpack()
  return features, labels
