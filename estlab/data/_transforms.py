"""The tf.data transformations: one node each, on both paths.

Steps that only reorder, repeat or cut (shuffle, repeat, batch, unbatch,
take, skip, shard, cache, prefetch) keep a chain's in-memory ``plan``;
``map`` and ``filter`` run Python on elements, so a chain with one is
planned only up to it (a ``map`` after ``batch`` gets planned batches).
"""
from __future__ import annotations

import os
import pickle
from typing import Any, Callable, Optional

import numpy as np

from estlab.data import _plan, _shuffle, _structure
from estlab.data._node import INFINITE, UNKNOWN, Node

__all__ = ["Map", "Filter", "Batch", "Unbatch", "Shuffle", "Repeat", "Take",
           "Skip", "Shard", "Cache", "Prefetch"]


def _call(fn: Callable, element: Any) -> Any:
  """``fn`` of an element; a tuple is unpacked into arguments, as in TF."""
  if isinstance(element, tuple):
    return fn(*element)
  return fn(element)


def _is_map_dataset(ds: Any) -> bool:
  import grain  # pylint: disable=g-import-not-at-top
  return isinstance(ds, grain.MapDataset)


class Map(Node):
  """``map(fn)``: ``fn`` of each element (of each batch after ``batch``)."""

  def __init__(self, parent: Node, fn: Callable):
    super().__init__((parent,))
    if not callable(fn):
      raise TypeError(f"map takes a function of an element; got {fn!r}.")
    self._fn = fn
    self._treedef: Any = None  # of the first output: every output's
    self.name = f"map({getattr(fn, '__name__', type(fn).__name__)})"

  def apply(self, element: Any, index: Optional[int] = None) -> Any:
    """``fn`` of one element, checked and converted (lists become tuples,
    Python numbers numpy, as TF converts a map function's outputs)."""
    out = _call(self._fn, element)
    if out is None:
      raise TypeError(
          f"The map function {self.name} returned None for the element "
          f"{element!r:.200}. Return the new element, e.g. `return "
          f"features, label`.")
    out = _structure.map_structure(_structure.to_leaf, _tuples(out))
    _, treedef = _structure.flatten(out)
    if self._treedef is None:
      self._treedef, self._first = treedef, out
    elif treedef != self._treedef:
      where = "" if index is None else f" (element {index})"
      raise TypeError(
          f"The map function {self.name} returned {out!r:.200}{where}, whose "
          f"structure differs from its first output, {self._first!r:.200}. "
          f"Return the same structure (dict keys, tuple lengths) for every "
          f"element.")
    return out

  def _spec(self) -> Any:
    """Found by running ``fn`` on the parent's first element (TF traces
    it); a batch dimension the parent leaves unknown stays unknown."""
    first = next(iter(_element_iter(self.parent)), None)
    if first is None:
      raise ValueError(f"Cannot tell the element_spec of {self.describe()}: "
                       f"its input has no elements to run the function on.")
    parent_leaves, _ = _structure.flatten(self.parent.spec)
    batched = bool(parent_leaves) and all(
        s.shape and s.shape[0] is None for s in parent_leaves)
    return _structure.spec_of(self.apply(first), batched=batched)

  def cardinality(self) -> int:
    return self.parent.cardinality()

  def _grain(self, planned: bool) -> Any:
    return self.parent.grain(planned).map(self.apply)


def _tuples(value: Any) -> Any:
  """Lists in a map function's output as tuples (TF's structure rule)."""
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  if isinstance(value, tuple) and not hasattr(value, "_fields"):
    return tuple(_tuples(v) for v in value)
  return value


def _element_iter(node: Node) -> Any:
  from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
  return _grain_ops.as_iter(node.grain(True))


class Filter(Node):
  """``filter(predicate)``: the elements for which it is True."""

  def __init__(self, parent: Node, predicate: Callable):
    super().__init__((parent,))
    if not callable(predicate):
      raise TypeError(f"filter takes a function of an element returning a "
                      f"bool; got {predicate!r}.")
    self._predicate = predicate
    self.name = (f"filter({getattr(predicate, '__name__', '')})")

  def keep(self, element: Any) -> bool:
    """The predicate of one element, which must be a scalar bool."""
    out = _call(self._predicate, element)
    if np.ndim(out) != 0 or np.asarray(out).dtype != bool:
      raise TypeError(
          f"The filter predicate {self.name} must return a scalar bool; it "
          f"returned {out!r:.100} for {element!r:.200}. For a batch, filter "
          f"before batch() or reduce it (np.all / np.any).")
    return bool(out)

  def cardinality(self) -> int:
    return INFINITE if self.parent.cardinality() == INFINITE else UNKNOWN

  def _grain(self, planned: bool) -> Any:
    from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
    return _grain_ops.as_iter(self.parent.grain(planned)).filter(self.keep)


class Batch(Node):
  """``batch(batch_size, drop_remainder)``: consecutive elements stacked."""

  def __init__(self, parent: Node, batch_size: int, drop_remainder: bool):
    super().__init__((parent,))
    self.batch_size = _positive(batch_size, "batch_size")
    self.drop_remainder = bool(drop_remainder)
    self.name = (f"batch({batch_size}" +
                 (", drop_remainder=True)" if drop_remainder else ")"))

  def _spec(self) -> Any:
    size = self.batch_size if self.drop_remainder else None
    return _structure.map_structure(
        lambda s: _structure.TensorSpec(
            None if s.shape is None else (size,) + s.shape, s.dtype),
        self.parent.spec)

  def cardinality(self) -> int:
    n = self.parent.cardinality()
    if n < 0:
      return n
    return n // self.batch_size if self.drop_remainder else -(-n //
                                                             self.batch_size)

  def plan(self) -> Optional[_plan.Plan]:
    parent = self.parent.plan()
    if parent is None or parent.batched:
      return None
    return _plan.Plan(parent.source, True, lambda: _plan.Selections(
        parent.stream(), self.batch_size, self.drop_remainder))

  def _grain(self, planned: bool) -> Any:
    return self.parent.grain(planned).batch(
        self.batch_size, drop_remainder=self.drop_remainder,
        batch_fn=_structure.stack)


class Unbatch(Node):
  """``unbatch``: the rows of each element, one element each."""

  name = "unbatch"

  def _spec(self) -> Any:
    def row(spec):
      if spec.shape is not None and not spec.shape:
        raise ValueError(f"Cannot unbatch an input with scalar components: "
                         f"{self.parent.spec!r}. Unbatch batches, e.g. the "
                         f"output of batch().")
      return _structure.TensorSpec(
          None if spec.shape is None else spec.shape[1:], spec.dtype)
    return _structure.map_structure(row, self.parent.spec)

  def plan(self) -> Optional[_plan.Plan]:
    parent = self.parent.plan()
    if parent is None or not parent.batched:
      return None

    def rows():
      for selection in parent.stream():
        yield (np.arange(selection.start, selection.stop)
               if isinstance(selection, slice) else selection)

    return _plan.Plan(parent.source, False, rows)

  def cardinality(self) -> int:
    return INFINITE if self.parent.cardinality() == INFINITE else UNKNOWN

  def _grain(self, planned: bool) -> Any:
    from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
    return _grain_ops.unbatch(self.parent.grain(planned))


class Shuffle(Node):
  """``shuffle(buffer_size, seed, reshuffle_each_iteration)``: tf.data's
  buffer shuffle (``_shuffle``), on both paths."""

  def __init__(self, parent: Node, buffer_size: int, seed: Any,
               reshuffle_each_iteration: bool):
    super().__init__((parent,))
    self.buffer_size = _positive(buffer_size, "buffer_size")
    self.seeds = _shuffle.ShuffleSeeds(seed, reshuffle_each_iteration)
    self.name = f"shuffle({buffer_size})"

  def cardinality(self) -> int:
    return self.parent.cardinality()

  def plan(self) -> Optional[_plan.Plan]:
    parent = self.parent.plan()
    if parent is None:
      return None
    return _plan.Plan(parent.source, parent.batched, lambda: _plan.shuffle(
        parent.stream(), self.buffer_size, self.seeds.next_rng(),
        parent.batched))

  def _grain(self, planned: bool) -> Any:
    from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
    return _grain_ops.buffer_shuffle(self.parent.grain(planned),
                                     self.buffer_size, self.seeds)


class Repeat(Node):
  """``repeat(count)``: ``count`` passes (None or -1: forever)."""

  def __init__(self, parent: Node, count: Optional[int]):
    super().__init__((parent,))
    if count is not None and (not isinstance(count, (int, np.integer)) or
                              isinstance(count, bool) or count < -1):
      raise ValueError(f"repeat takes a count >= 0, or None or -1 for "
                       f"forever; got {count!r}.")
    self.count = None if count is None or count == -1 else int(count)
    self.name = f"repeat({'' if self.count is None else self.count})"

  def cardinality(self) -> int:
    n = self.parent.cardinality()
    if n == 0 or self.count == 0:
      return 0
    if self.count is None:
      return UNKNOWN if n == UNKNOWN else INFINITE
    return n * self.count if n > 0 else n

  def plan(self) -> Optional[_plan.Plan]:
    parent = self.parent.plan()
    if parent is None:
      return None
    return _plan.Plan(parent.source, parent.batched, lambda: _plan.repeat(
        parent.stream, self.count, parent.batched))

  def _grain(self, planned: bool) -> Any:
    from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
    parent = self.parent.grain(planned)
    if (_is_map_dataset(parent) and self.count and
        0 < len(parent) and self.parent.cardinality() >= 0):
      return parent.repeat(self.count)  # random access kept
    return _grain_ops.repeat_iter(parent, self.count)


class Take(Node):
  """``take(count)``: the first ``count`` elements (-1: all)."""

  def __init__(self, parent: Node, count: int):
    super().__init__((parent,))
    self.count = _count(count, "take")
    self.name = f"take({count})"

  def cardinality(self) -> int:
    n = self.parent.cardinality()
    if self.count < 0 or n == UNKNOWN:
      return n
    return self.count if n == INFINITE else min(n, self.count)

  def plan(self) -> Optional[_plan.Plan]:
    parent = self.parent.plan()
    if parent is None:
      return None
    return _plan.Plan(parent.source, parent.batched, lambda: _plan.take(
        parent.stream(), self.count, parent.batched))

  def _grain(self, planned: bool) -> Any:
    import grain  # pylint: disable=g-import-not-at-top
    from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
    parent = self.parent.grain(planned)
    if self.count < 0:
      return parent
    if _is_map_dataset(parent):
      return parent[:self.count]
    if self.count == 0:
      return _grain_ops.generator(lambda: iter(()), "take(0)")
    return grain.experimental.LimitIterDataset(parent, self.count)


class Skip(Node):
  """``skip(count)``: all but the first ``count`` elements (-1: none)."""

  def __init__(self, parent: Node, count: int):
    super().__init__((parent,))
    self.count = _count(count, "skip")
    self.name = f"skip({count})"

  def cardinality(self) -> int:
    n = self.parent.cardinality()
    if self.count < 0:
      return 0
    return max(n - self.count, 0) if n >= 0 else n

  def plan(self) -> Optional[_plan.Plan]:
    parent = self.parent.plan()
    if parent is None:
      return None
    return _plan.Plan(parent.source, parent.batched, lambda: _plan.skip(
        parent.stream(), self.count, parent.batched))

  def _grain(self, planned: bool) -> Any:
    from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
    parent = self.parent.grain(planned)
    if _is_map_dataset(parent) and self.parent.cardinality() >= 0:
      return parent[len(parent) if self.count < 0 else self.count:]
    return _grain_ops.skip_iter(parent, self.count)


class Shard(Node):
  """``shard(num_shards, index)``: every ``num_shards``-th element from
  ``index`` on (a worker's part of the input)."""

  def __init__(self, parent: Node, num_shards: int, index: int):
    super().__init__((parent,))
    self.num_shards = _positive(num_shards, "num_shards")
    if (not isinstance(index, (int, np.integer)) or isinstance(index, bool)
        or not 0 <= index < num_shards):
      raise ValueError(f"Index must be between 0 and {num_shards - 1} "
                       f"(currently index = {index!r}); pass e.g. "
                       f"shard(input_context.num_input_pipelines, "
                       f"input_context.input_pipeline_id).")
    self.index = int(index)
    self.name = f"shard({num_shards}, {index})"

  def cardinality(self) -> int:
    n = self.parent.cardinality()
    if n < 0:
      return n
    return n // self.num_shards + (1 if self.index < n % self.num_shards
                                   else 0)

  def plan(self) -> Optional[_plan.Plan]:
    parent = self.parent.plan()
    if parent is None:
      return None
    return _plan.Plan(parent.source, parent.batched, lambda: _plan.shard(
        parent.stream(), self.num_shards, self.index, parent.batched))

  def _grain(self, planned: bool) -> Any:
    from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
    parent = self.parent.grain(planned)
    if _is_map_dataset(parent) and self.parent.cardinality() >= 0:
      return parent[self.index::self.num_shards]
    return _grain_ops.shard_iter(parent, self.num_shards, self.index)


class _Store:
  """What a ``cache`` keeps across iterations: the elements of the first
  complete pass (or of its file), and the row ids of its plan."""

  def __init__(self, filename: str):
    self.filename = os.fspath(filename)
    self.elements = None
    self.chunks = None

  def load(self) -> Any:
    if not self.filename or not os.path.exists(self.filename):
      return None
    with open(self.filename, "rb") as f:
      return pickle.load(f)

  def save(self, elements: list) -> None:
    if self.filename:
      with open(self.filename + ".tmp", "wb") as f:
        pickle.dump(elements, f, protocol=pickle.HIGHEST_PROTOCOL)
      os.replace(self.filename + ".tmp", self.filename)


class Cache(Node):
  """``cache(filename='')``: the first complete pass, replayed after.

  In memory, or pickled to ``filename`` (read back, if it exists, by any
  later dataset with that filename; TF's own file format is not read).
  """

  def __init__(self, parent: Node, filename: Any):
    super().__init__((parent,))
    self.store = _Store(filename)
    self.name = f"cache({self.store.filename!r})" if filename else "cache()"

  def cardinality(self) -> int:
    return self.parent.cardinality()

  def plan(self) -> Optional[_plan.Plan]:
    parent = self.parent.plan()
    if parent is None or self.store.filename:
      return None
    return _plan.Plan(parent.source, parent.batched,
                      lambda: _plan.cached(parent.stream, self.store))

  def _grain(self, planned: bool) -> Any:
    from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
    return _grain_ops.cache(self.parent.grain(planned), self.store)


class Prefetch(Node):
  """``prefetch(n)``: Grain's thread prefetch on the element path; a no-op
  for an estimator's input (the engine prefetches batches itself)."""

  def __init__(self, parent: Node, buffer_size: int):
    super().__init__((parent,))
    if (not isinstance(buffer_size, (int, np.integer)) or
        isinstance(buffer_size, bool) or buffer_size < -1):
      raise ValueError(f"prefetch takes a buffer size >= 0 or "
                       f"estlab.data.AUTOTUNE; got {buffer_size!r}.")
    self.buffer_size = 2 if buffer_size == -1 else int(buffer_size)
    self.name = f"prefetch({buffer_size})"

  def cardinality(self) -> int:
    return self.parent.cardinality()

  def plan(self) -> Optional[_plan.Plan]:
    return self.parent.plan()

  def _grain(self, planned: bool) -> Any:
    from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
    parent = self.parent.grain(planned)
    if not self.buffer_size:
      return parent
    return _grain_ops.prefetch(parent, self.buffer_size)


def _positive(value: Any, name: str) -> int:
  if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
      or value < 1):
    raise ValueError(f"{name} must be a positive integer; got {value!r}.")
  return int(value)


def _count(value: Any, name: str) -> int:
  if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
      or value < -1):
    raise ValueError(f"{name} takes a count >= 0, or -1 for all; got "
                     f"{value!r}.")
  return int(value)
