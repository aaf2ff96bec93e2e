"""Requests to model inputs, on the host: parse with the saved spec, then encode.

The JSON counterpart of ``tf.io.parse_example`` followed by the feature
columns: a request is ``{feature: one value per example}``, or, for a
parsing export, ``{'examples': [serialized tf.train.Example, ...]}`` (decoded
into that form by ``_example_proto``); ``parse`` checks it against the
export's input description (names, types, shapes) and makes numpy arrays; ``transform`` runs the estimator's host step (feature
columns rebuilt from their specs, ``estlab.feature_column.encode``). Every
bad request is a ``ServingInputError`` naming the feature and the fix. Needs
numpy and ``estlab.feature_column`` only: no JAX, no model code.

Example:
  >>> inputs = {'x': {'kind': 'fixed', 'dtype': 'float32', 'shape': [None, 1],
  ...                 'default_value': None}}
  >>> features, batch = parse(inputs, {'x': [1.5, 3.5]})
  >>> features['x'].tolist(), batch
  ([[1.5], [3.5]], 2)
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Mapping

import numpy as np

from estlab import feature_column as fc
from estlab.export import _example_proto
from estlab.export._format import ServingInputError, ServingInputTypeError

__all__ = ["parse", "parse_labels", "transform", "sample_request", "unflatten"]


def _rows(name: str, value: Any) -> list:
  if isinstance(value, np.ndarray):
    if value.ndim == 0:
      raise ServingInputError(f"Feature {name!r} is a scalar {value!r}; give one "
                              "value per example, e.g. [1.5, 3.5].")
    return list(value)
  if not isinstance(value, (list, tuple)):
    raise ServingInputError(
        f"Feature {name!r} must be a list with one value per example, got "
        f"{type(value).__name__}: {value!r:.80}. Send e.g. {{{name!r}: [1.5, 3.5]}}.")
  return list(value)


def _convert(name: str, value: Any, dtype: str, row: int) -> Any:
  """One value to ``dtype``'s Python type, or a ServingInputTypeError."""
  if dtype == "string":
    if isinstance(value, bytes):
      return value.decode("utf-8", errors="replace")
    if isinstance(value, (str, np.str_)):
      return str(value)
    want = "strings"
  elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
    want = "integers" if dtype.startswith(("int", "uint")) else "numbers"
  elif dtype.startswith(("int", "uint")):
    if float(value) == int(value):
      return int(value)
    want = "integers"
  else:
    return float(value)
  raise ServingInputTypeError(
      f"Feature {name!r} expects {want} ({dtype}); example {row} holds "
      f"{value!r:.80} ({type(value).__name__}).")


def _fixed(name: str, desc: dict, rows: list) -> np.ndarray:
  shape, dtype = tuple(desc["shape"][1:]), desc["dtype"]
  size, default = math.prod(shape), desc.get("default_value")
  numpy_dtype = object if dtype == "string" else np.dtype(dtype)
  try:  # fast path: a numeric array of the right size per example
    array = np.asarray(rows)
    if (dtype != "string" and array.dtype.kind in "iuf" and
        array.size == len(rows) * size):
      if array.dtype.kind == "f" and dtype.startswith(("int", "uint")) and (
          array != np.round(array)).any():
        raise ValueError
      return array.astype(numpy_dtype).reshape((len(rows),) + shape)
  except (ValueError, TypeError):
    pass
  out = np.empty((len(rows), size), dtype=object)
  for i, value in enumerate(rows):
    if value is None:
      if default is None:
        raise ServingInputError(
            f"Feature {name!r}: example {i} has no value, and its "
            "FixedLenFeature has no default_value; send a value.")
      value = default
    flat = np.asarray(value, dtype=object).ravel()
    if flat.size == 1 and size > 1 and value is default:
      flat = np.repeat(flat, size)
    if flat.size != size:
      raise ServingInputError(
          f"Feature {name!r}: example {i} has {flat.size} values ({value!r:.60})"
          f", but its shape {list(shape)!r} takes {size} per example.")
    out[i] = [_convert(name, v, dtype, i) for v in flat]
  return out.astype(numpy_dtype).reshape((len(rows),) + shape)


def _varlen(name: str, desc: dict, rows: list) -> np.ndarray:
  out = np.empty(len(rows), dtype=object)
  dtype = desc["dtype"]
  fast = "" if dtype == "string" else (
      "iuf" if np.dtype(dtype).kind in "fc" else "iu")
  for i, value in enumerate(rows):
    if value is None:
      values = []
    elif isinstance(value, np.ndarray) and value.dtype.kind in fast:
      out[i] = value.ravel().astype(desc["dtype"]).tolist()  # decoded Examples
      continue
    elif isinstance(value, (list, tuple, np.ndarray)):
      values = list(np.asarray(value, dtype=object).ravel())
    else:
      values = [value]
    out[i] = [_convert(name, v, desc["dtype"], i) for v in values]
  return out


def _raw(name: str, desc: dict, value: Any) -> np.ndarray:
  try:
    array = np.asarray(value)
  except ValueError:
    raise ServingInputError(f"Feature {name!r} is ragged ({value!r:.80}); every "
                            f"example needs shape {desc['shape'][1:]!r}.") from None
  if array.dtype.kind not in "biuf":
    raise ServingInputTypeError(
        f"Feature {name!r} expects {desc['dtype']} numbers, got "
        f"{array.ravel()[:1].tolist()!r:.80} (dtype {array.dtype}).")
  want = tuple(desc["shape"][1:])
  if array.ndim == 0 or tuple(array.shape[1:]) != want:
    raise ServingInputError(
        f"Feature {name!r} has shape {list(array.shape)!r}; the export takes "
        f"{['batch', *want]!r}.")
  return array.astype(desc["dtype"])


def _flatten_request(request: Mapping) -> dict:
  flat = {}
  for key, value in request.items():
    if not isinstance(key, str):
      raise ServingInputError(f"Feature names must be strings, got {key!r}.")
    if isinstance(value, Mapping):
      flat.update({f"{key}/{k}": v for k, v in _flatten_request(value).items()})
    else:
      flat[key] = value
  return flat


def parse(inputs: Mapping[str, dict], request: Any) -> tuple[dict, int]:
  """``(features as numpy arrays, batch size)`` of a request.

  Args:
    inputs: the export's inputs, ``{name: {kind, dtype, shape, ...}}``.
    request: ``{name: values}``; one value per example. For a parsing
      export also ``{'examples': [serialized tf.train.Example, ...]}``
      (``'inputs'`` too, TF's classify/regress name).

  Raises:
    ServingInputError: not a dict, unknown or missing features, different
      batch sizes, wrong shapes, malformed Examples (ServingInputTypeError:
      wrong types, a feature of the wrong kind in an Example).
  """
  key = _example_proto.examples_key(inputs, request)
  if key is not None:
    request = _example_proto.request(inputs, request[key])
  if not isinstance(request, Mapping):
    raise ServingInputTypeError(
        f"A request must be a dict of feature name -> values, got "
        f"{type(request).__name__}: {request!r:.80}.")
  request = _flatten_request(request)
  unknown = sorted(set(request) - set(inputs))
  missing = sorted(k for k, d in inputs.items() if k not in request and not (
      d["kind"] == "fixed" and d.get("default_value") is not None))
  if unknown or missing:
    raise ServingInputError(
        "Request features do not match the export's inputs "
        f"{sorted(inputs)!r}: " + "; ".join(
            ([f"unknown {unknown!r}"] if unknown else []) +
            ([f"missing {missing!r}"] if missing else [])) + ".")
  sizes = {k: (len(v) if hasattr(v, "__len__") and not isinstance(v, (str, bytes))
               else None) for k, v in request.items()}
  batch = next((s for s in sizes.values() if s is not None), None)
  if not batch or any(s != batch for s in sizes.values()):
    raise ServingInputError(
        "Every feature needs one value per example, and at least one example;"
        f" got lengths {sizes!r}.")
  want = inputs[next(iter(request))]["shape"][0]
  if want is not None and batch != want:
    raise ServingInputError(f"The export takes batches of exactly {want} "
                            f"examples (default_batch_size); got {batch}.")
  features = {}
  for name, desc in inputs.items():
    if desc["kind"] == "array":
      features[name] = _raw(name, desc, request[name])
    elif desc["kind"] == "varlen":
      features[name] = _varlen(name, desc, _rows(name, request[name]))
    else:
      rows = _rows(name, request[name]) if name in request else [None] * batch
      features[name] = _fixed(name, desc, rows)
  return features, batch


def _head_labels(desc: dict, value: Any) -> np.ndarray:
  """A head's ``transform_labels`` from its JSON: shape, vocabulary, dtype."""
  try:
    array = np.asarray(value)
  except ValueError:
    raise ServingInputError(f"Labels are ragged ({value!r:.80}); give one label "
                            "per example.") from None
  dim = desc["shape"][1]
  if array.ndim == 1 and dim == 1:
    array = array[:, None]
  if array.ndim != 2 or array.shape[1] != dim:
    raise ServingInputError(f"Labels have shape {list(np.shape(value))!r}; the "
                            f"export takes [batch, {dim}]" +
                            (" or [batch]." if dim == 1 else "."))
  if array.dtype.kind in "USO":
    names = desc.get("vocabulary")
    if names is None or array.dtype.kind == "O" and not all(
        isinstance(v, (str, bytes)) for v in array.ravel()):
      raise ServingInputTypeError(
          f"Labels {array.ravel()[:3].tolist()!r:.80} are not numbers and the "
          "head has no label_vocabulary; give numeric labels.")
    index = {n: i for i, n in enumerate(names)}
    flat = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in array.ravel()]
    unknown = sorted({v for v in flat if v not in index})
    if unknown:
      raise ServingInputError(f"Labels {unknown[:5]!r} are not in the "
                              f"label_vocabulary {names[:20]!r}.")
    return np.asarray([index[v] for v in flat], desc["dtype"]).reshape(array.shape)
  if array.dtype.kind not in "biuf":
    raise ServingInputTypeError(f"Labels must be numbers, got dtype {array.dtype}.")
  values = array.astype(np.float64)
  low_high = desc.get("range")
  if not np.isfinite(values).all() or (desc.get("integer") and (
      values != np.round(values)).any()) or (low_high is not None and (
          (values < low_high[0]) | (values > low_high[1])).any()):
    raise ServingInputError(
        f"Labels {array.ravel()[:5].tolist()!r:.80} must be finite" +
        (" integers" if desc.get("integer") else "") +
        (f" in [{low_high[0]}, {low_high[1]}]" if low_high else "") + ".")
  return values.astype(desc["dtype"])


def parse_labels(inputs: Mapping[str, dict], request: Any, batch: int
                 ) -> dict[str, np.ndarray]:
  """The module's labels, flat (``'labels'`` or ``'labels/<k>'``), from a request.

  Args:
    inputs: the export's label inputs: ``{'kind': 'array', ...}`` (as they
      are) or ``{'kind': 'head', dtype, shape, vocabulary, range, integer}``
      (the head's host step).
    request: the request's ``'labels'`` (a dict for several).
    batch: the batch size of the features.

  Raises:
    ServingInputError: missing, mis-shaped or unknown labels.
  """
  if request is None:
    raise ServingInputError(f"The eval signature needs 'labels' besides the "
                            f"features; it takes {sorted(inputs)!r}.")
  given = _flatten_request({"labels": request})
  if set(given) != set(inputs):
    raise ServingInputError(f"Labels {sorted(given)!r} do not match the export's"
                            f" {sorted(inputs)!r}.")
  out = {}
  for name, desc in inputs.items():
    value = (_head_labels(desc, given[name]) if desc["kind"] == "head" else
             _raw(name, desc, given[name]))
    if len(value) != batch:
      raise ServingInputError(f"{len(value)} labels for {batch} examples; give "
                              "one label per example.")
    out[name] = value
  return out


def unflatten(flat: Mapping[str, Any]) -> dict:
  """``{'a/b': x}`` -> ``{'a': {'b': x}}`` (the inverse of flatten_features)."""
  out: dict = {}
  for key, value in flat.items():
    *outer, last = key.split("/")
    node = out
    for part in outer:
      node = node.setdefault(part, {})
    node[last] = value
  return out


def transform(description: Mapping, columns: Any, features: dict, batch: int
              ) -> dict:
  """The model_fn's features from parsed ones: the estimator's host step.

  Args:
    description: the export's ``transform`` entry: ``{'kind': 'none' |
      'feature_columns' | 'batch_size', ...}``.
    columns: the feature columns (rebuilt with ``from_spec``), or None.
    features: what ``parse`` returned.
    batch: the batch size.

  Raises:
    ServingInputError: the columns reject a value (ServingInputTypeError for
      a wrong type).
  """
  kind = description["kind"]
  if kind == "batch_size":
    return {description["key"]: np.zeros((batch,), np.int8)}
  if kind == "none":
    return unflatten(features)
  try:
    return fc.encode(columns, features)
  except TypeError as e:
    raise ServingInputTypeError(str(e)) from None
  except (KeyError, ValueError) as e:
    raise ServingInputError(str(e)) from None


def sample_request(inputs: Mapping[str, dict]) -> dict:
  """A request of one example (or ``default_batch_size``) with neutral values."""
  request = {}
  for name, desc in inputs.items():
    batch = desc["shape"][0] or 1
    if desc["kind"] == "varlen":
      request[name] = [[] for _ in range(batch)]
    elif desc["kind"] == "array":
      request[name] = np.zeros([batch] + desc["shape"][1:], desc["dtype"])
    else:
      shape = desc["shape"][1:]
      zero = "" if desc["dtype"] == "string" else 0
      value = desc.get("default_value")
      value = np.full(shape, zero, dtype=object).tolist() if value is None else value
      request[name] = [value] * batch
  return request
