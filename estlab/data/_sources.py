"""Where elements come from: slices of arrays, one element, a range, a
Python generator, and the zip and concatenation of datasets."""
from __future__ import annotations

from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from estlab.data import _batching, _plan, _shared_tables, _structure
from estlab.data._node import INFINITE, UNKNOWN, Node

__all__ = ["Slices", "Tensors", "Range", "Generator", "Zip", "Concatenate",
           "signature"]


class _Rows:
  """Grain's random-access source over columns: element ``i`` is row ``i``."""

  def __init__(self, leaves: list, treedef: Any, num_rows: int):
    self._leaves, self._treedef, self._num_rows = leaves, treedef, num_rows

  def __len__(self) -> int:
    return self._num_rows

  def __getitem__(self, index: int) -> Any:
    return _structure.unflatten(self._treedef,
                                [leaf[index] for leaf in self._leaves])


class Slices(Node):
  """``from_tensor_slices``: element ``i`` is row ``i`` of every array."""

  name = "from_tensor_slices"

  def __init__(self, tensors: Any):
    super().__init__()
    columns = _structure.map_structure(_structure.to_leaf, tensors)
    leaves, self._treedef = _structure.flatten(columns)
    names = _structure.paths(columns)
    if not leaves:
      raise ValueError(f"from_tensor_slices needs at least one array; got "
                       f"{tensors!r:.200}.")
    for name, leaf in zip(names, leaves):
      if np.ndim(leaf) == 0:
        raise ValueError(
            f"from_tensor_slices slices arrays along their first dimension, "
            f"but {name} is a scalar, {leaf!r:.100}. Pass arrays (one row "
            f"per element), or use from_tensors for a single element.")
    lengths = [len(leaf) for leaf in leaves]
    if len(set(lengths)) > 1:
      listed = ", ".join(f"{n}: {l}" for n, l in zip(names, lengths))
      raise ValueError(
          f"from_tensor_slices needs every array to have the same first "
          f"dimension (one row per element); got lengths {listed}. Pass "
          f"arrays of equal length, e.g. features and labels of the same "
          f"rows.")
    self.columns = columns
    self.num_rows = len(leaves[0])
    self._leaves = leaves
    self._table: Any = False  # not built yet

  def _spec(self) -> Any:
    return _structure.map_structure(
        lambda c: _structure.TensorSpec(np.shape(c)[1:], c.dtype), self.columns)

  def cardinality(self) -> int:
    return self.num_rows

  def plan(self) -> _plan.Plan:
    return _plan.Plan(self, False, lambda: _plan.source_rows(self.num_rows))

  def table(self) -> Optional[_batching.ArrayTable]:
    """The columns as one ``ArrayTable`` (features, labels) when they have
    its form: a dict, or a pair of a dict and an array or a dict of arrays;
    None otherwise. Equal columns share one (``_shared_tables``), so an
    Estimator encodes them once across input_fn calls."""
    if self._table is False:
      self._table = None
      columns = self.columns
      if _is_table(columns):
        make = lambda: _batching.ArrayTable(columns, None)
      elif (type(columns) is tuple and len(columns) == 2  # pylint: disable=unidiomatic-typecheck
            and _is_table(columns[0]) and (
                isinstance(columns[1], np.ndarray) or _is_table(columns[1]))):
        make = lambda: _batching.ArrayTable(columns[0], columns[1])
      else:
        return None
      self._table = _shared_tables.shared(self._treedef, self._leaves, make)
    return self._table

  def _grain(self, planned: bool) -> Any:
    import grain  # pylint: disable=g-import-not-at-top
    return grain.MapDataset.source(
        _Rows(self._leaves, self._treedef, self.num_rows))


def _is_table(value: Any) -> bool:
  return isinstance(value, dict) and all(
      isinstance(v, np.ndarray) for v in value.values())


class Tensors(Node):
  """``from_tensors``: the whole structure as one element."""

  name = "from_tensors"

  def __init__(self, tensors: Any):
    super().__init__()
    self.element = _structure.map_structure(_structure.to_leaf, tensors)

  def _spec(self) -> Any:
    return _structure.spec_of(self.element)

  def cardinality(self) -> int:
    return 1

  def _grain(self, planned: bool) -> Any:
    import grain  # pylint: disable=g-import-not-at-top
    return grain.MapDataset.source([self.element])


class Range(Node):
  """``range``: int64 scalars, as Python's ``range``."""

  def __init__(self, args: Sequence[Any], dtype: Any):
    super().__init__()
    for arg in args:
      if not isinstance(arg, (int, np.integer)) or isinstance(arg, bool):
        raise TypeError(f"range takes integers, as Python's range; got "
                        f"{arg!r} in {tuple(args)!r}. Use from_tensor_slices("
                        f"np.arange(...)) for other steps.")
    self._range = range(*[int(a) for a in args])
    self._dtype = _structure.as_dtype(dtype)
    self.name = f"range{tuple(args)!r}".replace(",)", ")")

  def _spec(self) -> Any:
    return _structure.TensorSpec((), self._dtype)

  def cardinality(self) -> int:
    return len(self._range)

  def _grain(self, planned: bool) -> Any:
    import grain  # pylint: disable=g-import-not-at-top
    r, dtype = self._range, self._dtype.type
    return grain.MapDataset.range(r.start, r.stop, r.step).map(dtype)


def signature(output_signature: Any, output_types: Any,
              output_shapes: Any) -> Any:
  """``from_generator``'s element spec from its signature or types/shapes."""
  if output_signature is not None:
    if output_types is not None or output_shapes is not None:
      raise TypeError("Pass either output_signature or output_types (with "
                      "output_shapes), not both.")
    return _structure.map_structure(_as_spec, output_signature)
  if output_types is None:
    raise TypeError(
        "from_generator needs the structure of its elements: pass "
        "output_signature=estlab.data.TensorSpec(shape=(), dtype=np.int64) "
        "(or a tuple or dict of them), or output_types=np.int64.")
  if output_shapes is None:
    return _structure.map_structure(
        lambda t: _structure.TensorSpec(None, t), output_types)
  types, treedef = _structure.flatten(output_types)
  try:
    shapes = _up_to(treedef, output_shapes)
  except (KeyError, IndexError, TypeError):
    raise ValueError(f"output_shapes {output_shapes!r} does not match the "
                     f"structure of output_types {output_types!r}; give one "
                     f"shape per type, in the same structure.") from None
  return _structure.unflatten(treedef, [
      _structure.TensorSpec(s, t) for s, t in zip(shapes, types)])


def _up_to(treedef: Any, value: Any) -> list:
  """The leaves of ``value`` at the leaves of ``treedef`` (shapes are
  tuples themselves, so they cannot be flattened on their own)."""
  if treedef is None:
    return [value]
  kind, keys, children = treedef
  items = ([value[k] for k in keys] if kind is dict
           else [value[i] for i in range(keys)])
  return [leaf for child, item in zip(children, items)
          for leaf in _up_to(child, item)]


def _as_spec(value: Any) -> _structure.TensorSpec:
  if isinstance(value, _structure.TensorSpec):
    return value
  if hasattr(value, "shape") and hasattr(value, "dtype"):  # a tf.TensorSpec
    return _structure.TensorSpec(value.shape, value.dtype)
  raise TypeError(f"output_signature leaves must be TensorSpec(shape, dtype); "
                  f"got {value!r}.")


class Generator(Node):
  """``from_generator``: each iteration calls the generator afresh.

  With ``convert`` each element is checked against ``spec`` and converted
  to its dtypes; without (make_csv_dataset's batches) it passes as it is.
  """

  def __init__(self, make: Callable[[], Iterator], spec: Any, name: str,
               cardinality: int = UNKNOWN, convert: bool = True):
    super().__init__()
    self._make = make
    self._given_spec = spec
    self._cardinality = cardinality
    self._convert = convert
    self.name = name

  def _spec(self) -> Any:
    return self._given_spec

  def cardinality(self) -> int:
    return self._cardinality

  def _grain(self, planned: bool) -> Any:
    from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
    if not self._convert:
      return _grain_ops.generator(self._make, self.name)
    specs, treedef = _structure.flatten(self.spec)

    def make() -> Iterator:
      for value in self._make():
        yield _conform(value, specs, treedef, self.spec)

    return _grain_ops.generator(make, self.name)


def _conform(value: Any, specs: list, treedef: Any, spec: Any) -> Any:
  """A generator's element converted to ``spec``'s dtypes, or a TypeError."""
  value = _lists_as_tuples(value, spec)
  leaves, other = _structure.flatten(value)
  if other != treedef:
    raise TypeError(
        f"`generator` yielded {value!r:.200}, whose structure does not match "
        f"the output signature {spec!r}. Yield elements of that structure, "
        f"or change output_signature.")
  out = []
  for leaf, leaf_spec in zip(leaves, specs):
    try:
      array = np.asarray(_structure.to_leaf(leaf), dtype=leaf_spec.dtype)
    except (TypeError, ValueError) as err:
      raise TypeError(
          f"`generator` yielded an element that could not be converted to "
          f"the expected type. The expected type was {leaf_spec.dtype}, but "
          f"the yielded element was {leaf!r:.100} ({err}). Yield values of "
          f"that type, or change output_signature.") from None
    if not leaf_spec.is_compatible_with(array):
      raise TypeError(
          f"`generator` yielded an element of shape {array.shape} where an "
          f"element of shape {leaf_spec.shape} was expected: {leaf!r:.100}. "
          f"Yield that shape, or change output_signature (None dimensions "
          f"match any size).")
    out.append(array[()] if array.ndim == 0 else array)
  return _structure.unflatten(treedef, out)


def _lists_as_tuples(value: Any, spec: Any) -> Any:
  """Lists where the spec has tuples, as TF reads a generator's lists."""
  if isinstance(spec, tuple) and isinstance(value, (list, tuple)):
    items = [_lists_as_tuples(v, s) for v, s in zip(value, spec)]
    items += list(value[len(spec):])
    return type(spec)(*items) if hasattr(spec, "_fields") else tuple(items)
  if isinstance(spec, dict) and isinstance(value, dict):
    return {k: _lists_as_tuples(v, spec.get(k)) for k, v in value.items()}
  return value


class Zip(Node):
  """``zip``: elements of several datasets side by side, to the shortest."""

  name = "zip"

  def __init__(self, nodes: Any):
    self._nodes, self._treedef = _structure.flatten(nodes)
    super().__init__(self._nodes)

  def _spec(self) -> Any:
    return _structure.unflatten(self._treedef, [n.spec for n in self._nodes])

  def cardinality(self) -> int:
    sizes = [n.cardinality() for n in self._nodes]
    known = [s for s in sizes if s >= 0]
    if known:
      return min(known) if UNKNOWN not in sizes or min(known) == 0 else UNKNOWN
    return UNKNOWN if UNKNOWN in sizes else INFINITE

  def _grain(self, planned: bool) -> Any:
    import grain  # pylint: disable=g-import-not-at-top
    from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
    parents = [n.grain(planned) for n in self._nodes]
    treedef = self._treedef
    rebuild = lambda items: _structure.unflatten(treedef, list(items))
    if all(isinstance(p, grain.MapDataset) for p in parents):
      length = min(len(p) for p in parents)
      return grain.experimental.ZipMapDataset(
          [p[:length] for p in parents]).map(rebuild)
    return _grain_ops.zip_iter(parents).map(rebuild)


class Concatenate(Node):
  """``concatenate``: the elements of one dataset, then of the other."""

  name = "concatenate"

  def __init__(self, first: Node, second: Node):
    super().__init__((first, second))
    a, b = first.spec, second.spec
    leaves_a, tree_a = _structure.flatten(a)
    leaves_b, tree_b = _structure.flatten(b)
    if tree_a != tree_b or any(x.dtype != y.dtype
                               for x, y in zip(leaves_a, leaves_b)):
      raise TypeError(f"Incompatible dataset elements: {a!r} vs. {b!r}. "
                      f"Concatenate datasets of the same structure and "
                      f"dtypes (convert one with map).")
    self._merged = _structure.unflatten(tree_a, [
        _structure.TensorSpec(_merge_shapes(x.shape, y.shape), x.dtype)
        for x, y in zip(leaves_a, leaves_b)])

  def _spec(self) -> Any:
    return self._merged

  def cardinality(self) -> int:
    sizes = [p.cardinality() for p in self.parents]
    if INFINITE in sizes:
      return INFINITE
    return UNKNOWN if UNKNOWN in sizes else sum(sizes)

  def _grain(self, planned: bool) -> Any:
    import grain  # pylint: disable=g-import-not-at-top
    from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
    parents = [p.grain(planned) for p in self.parents]
    if all(isinstance(p, grain.MapDataset) for p in parents) and all(
        p.cardinality() >= 0 for p in self.parents):
      return grain.MapDataset.concatenate(parents)
    return _grain_ops.concatenate_iter(parents)


def _merge_shapes(a: Any, b: Any) -> Any:
  if a is None or b is None or len(a) != len(b):
    return None
  return tuple(x if x == y else None for x, y in zip(a, b))
