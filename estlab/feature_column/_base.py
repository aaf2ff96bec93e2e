"""Base classes of feature columns, parsing specs, dtype names and errors.

Every column is a frozen dataclass holding configuration only. Host-side
methods (``_host_*``) turn a batch of raw features into numbers; the Flax
modules in ``layers`` read those numbers on the device. ``spec()`` and
``from_spec()`` round-trip the host-side configuration through JSON.

Example:
  >>> from estlab import feature_column as fc
  >>> col = fc.numeric_column('age', default_value=0.0)
  >>> fc.from_spec(col.spec()) == col
  True
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import numpy as np

__all__ = ["FeatureColumn", "DenseColumn", "CategoricalColumn",
           "FixedLenFeature", "VarLenFeature", "MissingFeatureError",
           "FeatureValueError", "FeatureTypeError",
           "canonical_dtype", "from_spec", "normalize_feature_columns"]

_STRING_ALIASES = ("string", "str", "object", "bytes", "unicode")
_REGISTRY: dict[str, type] = {}


class MissingFeatureError(KeyError, ValueError):
  """A feature a column reads is not in the batch (a KeyError and a ValueError)."""

  def __str__(self) -> str:  # KeyError would repr() the message
    return str(self.args[0]) if self.args else ""


class FeatureValueError(ValueError):
  """A feature holds a value its column cannot take (a ValueError): an
  identity id out of range, a missing value without a default, a shape that
  does not fit the column.

  Attributes:
    column: the column's name, or None.
    value: the offending value, or None.
    row: the row of the batch holding it, or None.
  """

  def __init__(self, message: str, *, column: Any = None, value: Any = None,
               row: Any = None):
    super().__init__(message)
    self.column, self.value, self.row = column, value, row


class FeatureTypeError(TypeError):
  """A feature has the wrong type for its column (a TypeError): text for a
  numeric column, numbers for a text column, Python objects that are
  neither.

  Attributes:
    column: the column's name, or None.
    value: a sample of the offending values, or None.
  """

  def __init__(self, message: str, *, column: Any = None, value: Any = None):
    super().__init__(message)
    self.column, self.value = column, value


@dataclasses.dataclass(frozen=True)
class FixedLenFeature:
  """TF's ``tf.io.FixedLenFeature``: a dense feature of a fixed shape."""

  shape: tuple
  dtype: str
  default_value: Any = None


@dataclasses.dataclass(frozen=True)
class VarLenFeature:
  """TF's ``tf.io.VarLenFeature``: a feature with any number of values."""

  dtype: str


def canonical_dtype(dtype: Any, key: str) -> str:
  """A dtype's name: ``'string'``, ``'int64'``, ``'float32'``, ...

  Accepts numpy dtypes and types, Python ``str``/``int``/``float``, names and
  anything with a ``.name`` (such as ``tf.string``).

  Example:
    >>> canonical_dtype(str, 'city'), canonical_dtype(np.float32, 'age')
    ('string', 'float32')
  """
  if isinstance(dtype, type) and dtype in (str, bytes, object, np.str_,
                                           np.bytes_, np.object_):
    return "string"
  name = dtype if isinstance(dtype, str) else getattr(dtype, "name", None)
  if isinstance(name, str) and name.lower() in _STRING_ALIASES:
    return "string"
  try:
    parsed = np.dtype(name if isinstance(name, str) else dtype)
  except TypeError:
    raise TypeError(f"Column {key!r}: dtype {dtype!r} is not a dtype; use e.g. "
                    "'string', 'int64' or 'float32'.") from None
  if parsed.kind in "OUS":
    return "string"
  return parsed.name


def is_integer(dtype: str) -> bool:
  return dtype.startswith(("int", "uint"))


def is_floating(dtype: str) -> bool:
  return dtype.startswith(("float", "bfloat"))


def check_key(key: Any, what: str = "key") -> str:
  if not isinstance(key, str) or not key:
    raise ValueError(f"{what} must be a non-empty string, got {key!r}.")
  return key


def device_field(**kwargs) -> Any:
  """A field that runs on the device (a callable): left out of ``spec()``."""
  return dataclasses.field(metadata={"device": True}, **kwargs)


class FeatureColumn:
  """A feature column: configuration of how one input becomes model input.

  Subclasses are frozen dataclasses; ``name`` is TF's column name.
  """

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    _REGISTRY[cls.__name__] = cls

  @property
  def name(self) -> str:
    raise NotImplementedError

  @property
  def parents(self) -> list:
    """Columns or feature keys this column is built on, as TF's ``parents``."""
    raise NotImplementedError

  @property
  def parse_example_spec(self) -> dict:
    """``{feature key: FixedLenFeature | VarLenFeature}``, as TF's."""
    raise NotImplementedError

  def spec(self) -> dict:
    """A JSON-serializable description of everything host-side.

    Callables (``normalizer_fn``, ``initializer``) run on the device, inside
    the compiled function, and are left out; ``from_spec`` gives None there.
    """
    config = {}
    for f in dataclasses.fields(self):
      if not f.metadata.get("device"):
        config[f.name] = _to_json(getattr(self, f.name))
    return {"class_name": type(self).__name__, "config": config}

  def __lt__(self, other: Any) -> bool:
    return str(self) < str(other)


class KeyedColumn:
  """Mixin: a column read from one raw feature ``key``, named after it."""

  @property
  def name(self) -> str:
    return self.key

  @property
  def parents(self) -> list:
    return [self.key]


class WrapsCategorical:
  """Mixin: a column over ``categorical_column`` (embedding, indicator)."""

  @property
  def parents(self) -> list:
    return [self.categorical_column]

  @property
  def parse_example_spec(self) -> dict:
    return self.categorical_column.parse_example_spec


class DenseColumn(FeatureColumn):
  """A column that is a dense float tensor per example (``variable_shape``)."""

  @property
  def variable_shape(self) -> tuple:
    raise NotImplementedError


class CategoricalColumn(FeatureColumn):
  """A column whose values are integer ids in ``[0, num_buckets)``."""

  @property
  def num_buckets(self) -> int:
    raise NotImplementedError

  def _host_ids(self, features: Any, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(ids int64 [B, K], weights float32 [B, K])``; ``ids == -1``: no value.

    Positions follow the input cells (not compacted), so a weight feature of
    the same layout lines up with them.
    """
    raise NotImplementedError

  def _cross_ids(self, features: Any, cache: dict
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, present)`` as TF's ``crossed_column`` crosses this column."""
    ids, _ = cached_ids(self, features, cache)
    return ids, ids >= 0


def cached_ids(column: CategoricalColumn, features: Any, cache: dict
               ) -> tuple[np.ndarray, np.ndarray]:
  """``column._host_ids`` computed once per ``encode`` call."""
  key = ("ids", id(column))
  if key not in cache:
    cache[key] = column._host_ids(features, cache)  # pylint: disable=protected-access
  return cache[key]


def _to_json(value: Any) -> Any:
  if isinstance(value, FeatureColumn):
    return value.spec()
  if isinstance(value, (tuple, list)):
    return [_to_json(v) for v in value]
  if isinstance(value, np.generic):
    return value.item()
  return value


def _from_json(value: Any) -> Any:
  if isinstance(value, dict) and "class_name" in value:
    return from_spec(value)
  if isinstance(value, list):
    return tuple(_from_json(v) for v in value)
  return value


def from_spec(spec: dict) -> FeatureColumn:
  """Rebuilds a column from ``column.spec()`` (e.g. after ``json.loads``).

  Raises:
    ValueError: the spec names no known column class.
  """
  try:
    cls = _REGISTRY[spec["class_name"]]
  except (KeyError, TypeError):
    raise ValueError(f"{spec!r:.200} is not a feature column spec; pass what "
                     "column.spec() returned.") from None
  config = {k: _from_json(v) for k, v in spec["config"].items()}
  return cls(**config)


def normalize_feature_columns(feature_columns: Any, *,
                              unique_names: bool = True) -> list:
  """The columns as a list sorted by name, as TF's DenseFeatures orders them.

  Equal columns given twice are kept once. ``unique_names=False`` also keeps
  different columns of one name (e.g. the linear and DNN parts of a combined
  model, encoded together).

  Raises:
    ValueError: not columns, none at all, or (with ``unique_names``) two
      different columns share a name.
  """
  if isinstance(feature_columns, FeatureColumn):
    feature_columns = [feature_columns]
  if isinstance(feature_columns, dict):
    raise ValueError("Expected feature_columns to be iterable, found dict; "
                     "pass list(columns.values()).")
  columns = list(feature_columns) if isinstance(feature_columns, Iterable) else [
      feature_columns]
  for column in columns:
    if not isinstance(column, FeatureColumn):
      raise ValueError(f"Items of feature_columns must be feature columns; got "
                       f"{column!r} ({type(column).__name__}). Make them with "
                       "estlab.feature_column.numeric_column(...) etc.")
  if not columns:
    raise ValueError("feature_columns must not be empty.")
  if not unique_names:
    by_id = {id(column): column for column in columns}  # hashing is O(vocab)
    return sorted(by_id.values(), key=lambda c: c.name)
  by_name: dict[str, FeatureColumn] = {}
  for column in columns:
    if column.name in by_name and by_name[column.name] != column:
      raise ValueError(
          f"Duplicate feature column name {column.name!r}: {column!r} and "
          f"{by_name[column.name]!r}. Drop one, or feed the feature under a "
          "second key and build the second column on it.")
    by_name[column.name] = column
  return sorted(by_name.values(), key=lambda c: c.name)
