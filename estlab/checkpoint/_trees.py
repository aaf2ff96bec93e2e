"""Pytree helpers for checkpoints: '/'-joined names, abstract targets, checks.

Split from ``estlab.checkpoint._checkpointer`` so that module holds only the
on-disk contract; imports JAX but not Orbax.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

__all__ = ["CheckpointMismatchError", "flatten_names", "abstract_like",
           "reassemble_like", "check_variables"]


class CheckpointMismatchError(ValueError):
  """A checkpoint's variables do not match the model restoring it."""


def flatten_names(tree: Any) -> dict[str, Any]:
  """Flattens a pytree into ``{'/'-joined path: leaf}``, in leaf order.

  Dict keys, NamedTuple fields and sequence indices all become path parts, so
  a Flax params dict gives tf.estimator-like variable names.

  Args:
    tree: a pytree, typically Flax params.

  Returns:
    A dict from names such as ``'Net_0/Dense_0/kernel'`` to leaves.

  Example:
    >>> flatten_names({'Dense_0': {'bias': 1, 'kernel': 2}})
    {'Dense_0/bias': 1, 'Dense_0/kernel': 2}
  """
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {'/'.join(key_name(k) for k in path): leaf for path, leaf in flat}


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs with the leaves' shardings, else the default device."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

  def leaf(x):
    sharding = getattr(x, 'sharding', None)
    if not isinstance(sharding, jax.sharding.Sharding):
      sharding = device
    return jax.ShapeDtypeStruct(np.shape(x), dtype_of(x), sharding=sharding)

  return jax.tree.map(leaf, tree)


def reassemble_like(target: Any, restored: Any) -> Any:
  """Re-assembles ``restored`` into ``target``'s exact treedef, by path."""
  by_name = flatten_names(restored)
  names = flatten_names(target)
  return jax.tree.unflatten(
      jax.tree.structure(target), [by_name[name] for name in names])


def check_variables(
    saved: Mapping[str, tuple[int, ...]], params: Any, where: str
) -> None:
  """Raises CheckpointMismatchError unless names and shapes agree."""
  wanted = {name: tuple(np.shape(x)) for name, x in flatten_names(params).items()}
  missing = sorted(set(wanted) - set(saved))
  unexpected = sorted(set(saved) - set(wanted))
  shapes = sorted(
      f'{name!r}: checkpoint {saved[name]} vs model {wanted[name]}'
      for name in set(saved) & set(wanted)
      if saved[name] != wanted[name]
  )
  if not (missing or unexpected or shapes):
    return
  lines = [f"The checkpoint {where!r} does not match the model's variables:"]
  if missing:
    lines.append(f'  missing from the checkpoint: {missing!r}')
  if unexpected:
    lines.append(f'  unexpected (in the checkpoint only): {unexpected!r}')
  if shapes:
    lines.append('  shape mismatch: ' + '; '.join(shapes))
  lines.append(
      'Fix: the model changed since this checkpoint was written. Train in a '
      'new model_dir, or start a new model_dir with warm_start_from='
      f'{where!r} to load only the variables that match.'
  )
  raise CheckpointMismatchError('\n'.join(lines))


def key_name(key: Any) -> str:
  for attr in ('key', 'name', 'idx'):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def dtype_of(x: Any) -> np.dtype:
  return np.dtype(x.dtype) if hasattr(x, 'dtype') else np.asarray(x).dtype
