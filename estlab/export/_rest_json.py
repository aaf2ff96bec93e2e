"""TF Serving's REST JSON formats: rows <-> columns, numpy <-> JSON, errors.

The HTTP side is in ``_server``; this module only converts, and raises
``HTTPError`` with the status TF Serving uses for a bad body.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from estlab.export import ServingInputError
from estlab.export._http import HTTPError

_TF_DTYPES = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE",
              "float16": "DT_HALF", "bfloat16": "DT_BFLOAT16", "bool": "DT_BOOL",
              "object": "DT_STRING", "string": "DT_STRING", "str": "DT_STRING"}


def run(sig, name: str, columns: dict) -> dict:
  """Calls a signature; its ServingInputError (bad features) is a 400."""
  try:
    outputs = sig(columns)
  except ServingInputError as e:
    raise HTTPError(400, f"Signature {name!r}: {e}") from None
  return dict(outputs)


# TF Serving reads NaN and +-Infinity bare (JSON extensions Python's json
# reads too) or as these strings; it writes them bare, which is not JSON, so
# ``to_json`` writes the strings.
_NONFINITE = {"NaN": float("nan"), "Infinity": float("inf"),
              "-Infinity": float("-inf")}
QUOTED_NONFINITE = tuple(f'"{k}"'.encode() for k in _NONFINITE)


def nonfinite_inputs(values: dict, specs: Any) -> dict:
  """``{input: values}`` with ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` as
  floats wherever the input (or parsed feature) is a float.

  Example:
    >>> nonfinite_inputs({'x': ['NaN', 1.0]}, {'x': {'dtype': 'float32'}})
    {'x': [nan, 1.0]}
  """
  out = dict(values)
  for key, value in values.items():
    spec = specs.get(key) if isinstance(specs, Mapping) else None
    if isinstance(spec, Mapping) and _is_float(spec.get("dtype")):
      out[key] = _floats(value)
  return out


def _is_float(dtype: Any) -> bool:
  try:
    return np.dtype(dtype).kind == "f"
  except TypeError:
    return str(dtype) == "bfloat16"


def _floats(value: Any) -> Any:
  if isinstance(value, str):
    return _NONFINITE.get(value, value)
  if isinstance(value, list):
    return [_floats(v) for v in value]
  return value


def is_b64(value: Any) -> bool:
  return isinstance(value, dict) and set(value) == {"b64"}


def rows_to_columns(rows: Any, input_names: list[str],
                     field: str = "instances", examples: bool = False
                     ) -> tuple[dict, int]:
  """Row format (a list of objects, or of values for one input) -> columns.

  With ``examples`` (a parsing export), rows that are all ``{"b64": ...}``
  are serialized ``tf.train.Example`` protos, as TF Serving reads them:
  ``{"examples": [bytes, ...]}``.
  """
  if not isinstance(rows, list) or not rows:
    raise HTTPError(400, f'"{field}" must be a non-empty list (one entry per '
                     f"example), not {preview(rows)}.")
  if examples and all(is_b64(r) for r in rows):
    return {"examples": decode_b64(rows)}, len(rows)
  objects = [isinstance(r, dict) and "b64" not in r for r in rows]
  if not any(objects):
    if len(input_names) != 1:
      raise HTTPError(400, f'"{field}" holds bare values, but the signature has'
                       f" {len(input_names)} inputs {input_names!r}; send one "
                       'object per example, e.g. [{"name": value, ...}].')
    return {input_names[0]: [decode_b64(r) for r in rows]}, len(rows)
  keys = None
  for i, row in enumerate(rows):
    if not objects[i]:
      raise HTTPError(400, f"{field}[{i}] is {preview(row)}, but other entries "
                       "are objects; send every example as an object of "
                       "feature -> value.")
    if keys is None:
      keys = list(row)
    elif set(row) != set(keys):
      missing = sorted(set(keys) - set(row))
      extra = sorted(set(row) - set(keys))
      raise HTTPError(400, f"{field}[{i}] has keys {sorted(row)!r} but "
                       f"{field}[0] has {sorted(keys)!r} (missing {missing!r}, "
                       f"extra {extra!r}); every example needs the same "
                       "features.")
  columns = {k: [decode_b64(row[k]) for row in rows] for k in keys}
  return columns, len(rows)


def outputs_to_rows(outputs: dict, count: int) -> list[dict]:
  """Columnar outputs (batch first) -> one dict per example."""
  columns = {}
  for key, value in outputs.items():
    value = to_json(key, value)
    if not isinstance(value, list) or len(value) != count:
      raise RuntimeError(f"Output {key!r} has no batch dimension of {count} "
                         f"(got {preview(value)}); answer in columnar format "
                         'with "inputs".')
    columns[key] = value
  return [{k: v[i] for k, v in columns.items()} for i in range(count)]


def decode_b64(value: Any) -> Any:
  """TF Serving's ``{"b64": "..."}`` binary values -> bytes, recursively."""
  if is_b64(value):
    try:
      return base64.b64decode(value["b64"], validate=True)
    except (TypeError, ValueError):
      raise HTTPError(400, f"{preview(value)} is not valid base64.") from None
  if isinstance(value, list):
    return [decode_b64(v) for v in value]
  return value


def to_json(key: str, value: Any) -> Any:
  """A numpy output -> nested lists; bytes as str (``{"b64"}`` if binary).

  Floats are written shortest (float32 0.1 as 0.1, not 0.10000000149011612);
  NaN and +-inf as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, so
  that an answer is always valid JSON.
  """
  value = np.asarray(value)
  if value.dtype.kind == "f":
    if value.dtype in (np.float16, np.float32):
      value = _shortest(value)
    value = value.astype(np.float64, copy=False)
    finite = np.isfinite(value)
    if finite.all():
      return value.tolist()
    words = np.where(np.isnan(value), "NaN",
                     np.where(value > 0, "Infinity", "-Infinity"))
    return np.where(finite, value.astype(object), words.astype(object)).tolist()
  if value.dtype.kind in "OSU":
    binary = key.endswith("_bytes")
    return np.vectorize(lambda v: _text(v, binary), otypes=[object])(
        value).tolist() if value.ndim else _text(value.item(), binary)
  return value.tolist()


def _shortest(value: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
  """float16/32 -> the float64 of each one's shortest decimal, in chunks (a
  string array of a whole big output would take 128 bytes per number)."""
  flat = value.reshape(-1)
  out = np.empty(flat.shape, np.float64)
  for i in range(0, flat.size, chunk):
    out[i:i + chunk] = flat[i:i + chunk].astype(str).astype(np.float64)
  return out.reshape(value.shape)


def _text(value: Any, binary: bool) -> Any:
  if isinstance(value, bytes):
    if not binary:
      try:
        return value.decode("utf-8")
      except UnicodeDecodeError:
        pass
    return {"b64": base64.b64encode(value).decode("ascii")}
  return value if isinstance(value, str) else str(value)


def tensor_info(name: str, spec: Mapping | None) -> dict:
  """The loader's ``{dtype, shape}`` -> TF's TensorInfo JSON (-1: any size)."""
  info = {"name": name}
  if spec is None:
    return info
  if spec.get("dtype") is not None:
    try:
      dtype = np.dtype(spec["dtype"])
      dname = "object" if dtype.kind in "OSU" else dtype.name
    except TypeError:  # e.g. 'string'
      dname = str(spec["dtype"])
    info["dtype"] = _TF_DTYPES.get(dname, f"DT_{dname.upper()}")  # DT_INT64...
  shape = spec.get("shape")
  if shape is None:
    info["tensor_shape"] = {"unknown_rank": True}
  else:
    info["tensor_shape"] = {"dim": [
        {"size": str(d if isinstance(d, int) else -1), "name": ""}
        for d in shape], "unknown_rank": False}
  return info


def preview(value: Any, limit: int = 80) -> str:
  text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
  return text if len(text) <= limit else text[:limit - 3] + "..."
