"""Elements as nested structures: dicts and tuples of numpy arrays, and specs.

A tf.data element is a structure (dicts, tuples, namedtuples) whose leaves
are tensors. Here the leaves are numpy arrays (or numpy scalars); text is an
object array of ``str`` where TF has ``tf.string`` and yields ``bytes``.
Written by hand rather than with ``jax.tree``: ``estlab.data`` stays free of
JAX, and TF's conversions (Python ints to int32, lists to arrays) are its own.
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

from estlab.data import _errors

__all__ = ["TensorSpec", "flatten", "unflatten", "paths", "map_structure", "to_leaf",
           "spec_of", "as_dtype", "stack", "gather", "leading_dim"]

_TEXT = np.dtype(object)


@dataclasses.dataclass(frozen=True, repr=False)
class TensorSpec:
  """The shape and dtype of one leaf of an element (``tf.TensorSpec``).

  ``shape`` is a tuple whose unknown dimensions are None, or None for an
  unknown rank; ``dtype`` a numpy dtype (object for text). Any dtype
  ``np.dtype`` takes is accepted, and ``str`` (or a ``tf.DType``).

  Example:
    >>> TensorSpec((None, 3), np.float32)
    TensorSpec(shape=(None, 3), dtype=float32)
  """
  shape: Optional[Tuple[Optional[int], ...]]
  dtype: Any = np.float32
  name: Optional[str] = None

  def __post_init__(self):
    shape = getattr(self.shape, "as_list", lambda: self.shape)()  # tf shapes
    if shape is not None:
      shape = tuple(None if d is None else int(d) for d in shape)
    object.__setattr__(self, "shape", shape)
    object.__setattr__(self, "dtype", as_dtype(self.dtype))

  def __repr__(self) -> str:
    dtype = "string" if self.dtype == _TEXT else self.dtype.name
    name = "" if self.name is None else f", name={self.name!r}"
    return f"TensorSpec(shape={self.shape}, dtype={dtype}{name})"

  def is_compatible_with(self, value: Any) -> bool:
    """Whether ``value``'s shape fits this spec's (None matches any)."""
    shape = np.shape(value)
    return self.shape is None or (len(shape) == len(self.shape) and all(
        want is None or want == got for want, got in zip(self.shape, shape)))


def as_dtype(dtype: Any) -> np.dtype:
  """A numpy dtype from numpy, Python (``str``, ``int``) or TF dtypes."""
  dtype = getattr(dtype, "as_numpy_dtype", dtype)  # a tf.DType, if given one
  if dtype in (str, bytes, "string"):
    return _TEXT
  dtype = np.dtype(dtype)
  return _TEXT if dtype.kind in "USO" else dtype


def _is_namedtuple(value: Any) -> bool:
  return isinstance(value, tuple) and hasattr(value, "_fields")


def flatten(value: Any) -> Tuple[List[Any], Any]:
  """``(leaves, treedef)``: leaves in order and a hashable structure."""
  leaves: List[Any] = []
  return leaves, _flatten(value, leaves)


def _flatten(value: Any, leaves: List[Any]) -> Any:
  if isinstance(value, dict):
    return (dict, tuple(value), tuple(_flatten(v, leaves)
                                      for v in value.values()))
  if isinstance(value, tuple):
    return (type(value), len(value), tuple(_flatten(v, leaves)
                                           for v in value))
  leaves.append(value)
  return None


def paths(value: Any, prefix: str = "") -> List[str]:
  """The name of each leaf (``[0]['x']``), in ``flatten``'s order."""
  if isinstance(value, dict):
    return [p for k, v in value.items() for p in paths(v, f"{prefix}[{k!r}]")]
  if isinstance(value, tuple):
    return [p for i, v in enumerate(value) for p in paths(v, f"{prefix}[{i}]")]
  return [prefix or "the value"]


def unflatten(treedef: Any, leaves: List[Any]) -> Any:
  """The inverse of ``flatten``."""
  return _unflatten(treedef, iter(leaves))


def _unflatten(treedef: Any, leaves: Any) -> Any:
  if treedef is None:
    return next(leaves)
  kind, keys, children = treedef
  values = [_unflatten(c, leaves) for c in children]
  if kind is dict:
    return dict(zip(keys, values))
  if kind is tuple:
    return tuple(values)
  return kind(*values)  # a namedtuple


def map_structure(fn: Callable[[Any], Any], value: Any) -> Any:
  """``fn`` of every leaf, in the same structure."""
  if isinstance(value, dict):
    return {k: map_structure(fn, v) for k, v in value.items()}
  if isinstance(value, tuple):
    children = [map_structure(fn, v) for v in value]
    return type(value)(*children) if _is_namedtuple(value) else tuple(children)
  return fn(value)


def to_leaf(value: Any) -> Any:
  """A leaf as numpy, converted as TF converts values to tensors.

  numpy arrays and scalars keep their dtype; Python ints become int32 and
  floats float32 (TF's defaults; ints beyond int32 stay int64); lists
  become arrays; pandas Series their values; text an object array of
  ``str`` (``bytes`` are decoded as UTF-8).
  """
  if isinstance(value, np.ndarray):
    if value.dtype.kind == "U":
      return value.astype(object)
    if value.dtype.kind == "S":
      return _errors.decode_utf8(value, "A text array")
    return value
  if isinstance(value, np.generic):
    return value
  if isinstance(value, str):
    return value
  if isinstance(value, bytes):
    return _errors.decode_utf8(value, "A text value")
  if hasattr(value, "to_numpy"):  # pandas Series or Index
    return to_leaf(value.to_numpy())
  if hasattr(value, "numpy") and callable(value.numpy):  # a TF tensor
    return to_leaf(value.numpy())
  try:
    array = np.asarray(value)
  except UnicodeError:  # str and non-ASCII bytes mixed in one list
    array = np.empty(len(value), dtype=object)
    array[:] = list(value)
  if array.dtype.kind in "USO" and array.dtype != _TEXT:
    return to_leaf(array)
  if array.dtype.kind == "O" and any(isinstance(v, bytes)
                                     for v in array.flat):
    return _errors.decode_utf8(array, "A list of text")
  if array.dtype == np.int64 and _python_numbers(value, numbers.Integral):
    info = np.iinfo(np.int32)
    if not array.size or (array.min() >= info.min and array.max() <= info.max):
      array = array.astype(np.int32)
  elif array.dtype == np.float64 and _python_numbers(value, numbers.Real):
    with np.errstate(over="ignore"):  # Beyond float32: inf, as TF's.
      array = array.astype(np.float32)
  return array[()] if array.ndim == 0 else array


def _python_numbers(value: Any, kind: type) -> bool:
  """Whether ``value`` is a Python number or (nested) list of them."""
  if isinstance(value, (list, tuple)):
    return all(_python_numbers(v, kind) for v in value)
  return isinstance(value, kind) and not isinstance(value, np.generic)


def spec_of(value: Any, batched: bool = False) -> Any:
  """The ``TensorSpec`` structure of an element; with ``batched`` the
  leading dimension is unknown (None)."""
  def one(leaf):
    dtype = _TEXT if isinstance(leaf, str) else np.result_type(leaf)
    shape = np.shape(leaf)
    if batched and shape:
      shape = (None,) + shape[1:]
    return TensorSpec(shape, dtype)
  return map_structure(one, value)


def leading_dim(leaf: Any) -> Optional[int]:
  """The first dimension of a leaf, or None for a scalar."""
  shape = np.shape(leaf)
  return shape[0] if shape else None


def stack(elements: List[Any]) -> Any:
  """Elements of one structure stacked on a new first axis (a batch).

  Raises:
    TypeError: if the elements differ in structure.
    ValueError: if a leaf differs in shape.
  """
  first_leaves, treedef = flatten(elements[0])
  columns: List[List[Any]] = [[leaf] for leaf in first_leaves]
  for index, element in enumerate(elements[1:], 1):
    leaves, other = flatten(element)
    if other != treedef:
      raise TypeError(
          f"Cannot batch elements of different structures: element {index} "
          f"of the batch is {element!r:.200} but element 0 is "
          f"{elements[0]!r:.200}. Make every element (e.g. each map "
          f"function's return value) the same structure of arrays.")
    for column, leaf in zip(columns, leaves):
      column.append(leaf)
  stacked = []
  for number, column in enumerate(columns):
    shapes = {np.shape(leaf) for leaf in column}
    if len(shapes) > 1:
      shape0 = np.shape(column[0])
      index = next(i for i, leaf in enumerate(column)
                   if np.shape(leaf) != shape0)
      raise ValueError(
          f"Cannot batch arrays of different shapes in component {number}: "
          f"element 0 has shape {shape0} and element {index} has shape "
          f"{np.shape(column[index])} ({column[index]!r:.100}). Give every "
          f"element the same shape (pad or crop it in a map) or use "
          f"batch(1).")
    if isinstance(column[0], str) or (isinstance(column[0], np.ndarray) and
                                      column[0].dtype == _TEXT):
      array = np.empty((len(column),) + np.shape(column[0]), dtype=object)
      for i, leaf in enumerate(column):
        array[i] = leaf
      stacked.append(array)
    else:
      stacked.append(np.stack(column))
  return unflatten(treedef, stacked)


def gather(columns: Any, rows: Any) -> Any:
  """Rows (a slice or an index array) of every leaf of a structure."""
  if isinstance(rows, slice):
    return map_structure(lambda c: c[rows], columns)
  return map_structure(lambda c: np.take(c, rows, axis=0), columns)
