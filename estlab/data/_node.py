"""The node behind a Dataset: one tf.data step and its inputs.

A node runs in one of two ways. ``grain`` builds the element path: a Grain
``MapDataset`` or ``IterDataset`` of the whole chain (Grain is imported only
then). ``plan`` gives the in-memory path when the chain allows it: a
``_plan.Plan`` of row indices over the source's columns, None otherwise.
``spec`` is the element structure of ``TensorSpec``s, ``cardinality`` the
number of elements as tf.data counts them.
"""
from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

from estlab.data import _plan, _structure

__all__ = ["Node", "INFINITE", "UNKNOWN"]

INFINITE = -1  # tf.data.INFINITE_CARDINALITY
UNKNOWN = -2  # tf.data.UNKNOWN_CARDINALITY


class Node:
  """One step of a Dataset; subclasses set ``name`` and override the rest."""

  name = "dataset"

  def __init__(self, parents: Sequence["Node"] = ()):
    self.parents = tuple(parents)

  @property
  def parent(self) -> "Node":
    return self.parents[0]

  @functools.cached_property
  def spec(self) -> Any:
    """The element structure of ``TensorSpec``s."""
    return self._spec()

  def _spec(self) -> Any:
    return self.parent.spec

  def cardinality(self) -> int:
    """Elements, or ``INFINITE`` / ``UNKNOWN``."""
    return UNKNOWN

  def plan(self) -> Optional[_plan.Plan]:
    """The in-memory index plan of this chain, or None."""
    return None

  def grain(self, planned: bool = True) -> Any:
    """The Grain dataset of this chain; with ``planned``, a batch-level
    in-memory plan is read through its index selections instead."""
    plan = self.plan() if planned else None
    if plan is not None and plan.batched:
      from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
      columns = plan.source.columns
      return _grain_ops.generator(
          lambda: (_structure.gather(columns, rows) for rows in plan.stream()),
          f"rows of {self.describe()}")
    return self._grain(planned)

  def _grain(self, planned: bool) -> Any:
    raise NotImplementedError

  def describe(self) -> str:
    """The chain of steps, e.g. ``from_tensor_slices -> batch(2)``."""
    if not self.parents:
      return self.name
    if len(self.parents) == 1:
      return f"{self.parent.describe()} -> {self.name}"
    inner = ", ".join(p.describe() for p in self.parents)
    return f"{self.name}({inner})"
