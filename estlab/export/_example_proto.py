"""Serialized ``tf.train.Example`` protos -> the parse path's request, without TF.

An export made with ``build_parsing_serving_input_receiver_fn`` takes what
TF's took: serialized ``tf.train.Example`` protos (``sig(examples=[...])``,
TF's receiver tensor name; ``inputs`` as TF's classify/regress signatures
name it), besides the JSON form ``{feature: values}``. This module decodes
them with the ``protobuf`` package (the messages of TF's ``example.proto`` and
``feature.proto``, declared here in code: no TensorFlow, no generated files)
and turns a batch of them into the request ``_parsing.parse`` takes, with
``tf.io.parse_example``'s rules:

* a feature absent from an example, or present with no kind set, is missing:
  a ``FixedLenFeature`` takes its ``default_value`` (an error without one), a
  ``VarLenFeature`` has no values;
* a feature's kind must be the spec's: ``float_list`` for floats,
  ``int64_list`` for integers, ``bytes_list`` for strings;
* a ``FixedLenFeature`` takes exactly as many values as its shape holds;
* features the spec does not name are ignored.

Each feature's values are joined once per request (one ``np.fromiter`` over
the batch), not converted value by value. ``from_json`` builds Examples from
TF Serving's JSON example objects (``:classify`` / ``:regress``).

Example:
  >>> ex = Example()
  >>> ex.features.feature['x'].float_list.value.append(1.5)
  >>> inputs = {'x': {'kind': 'fixed', 'dtype': 'float32', 'shape': [None, 1],
  ...                 'default_value': None}}
  >>> request(inputs, [ex.SerializeToString()])['x'].tolist()
  [[1.5]]
"""
from __future__ import annotations

import base64
import itertools
import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from estlab.export._format import ServingInputError, ServingInputTypeError

__all__ = ["Example", "Features", "Feature", "BytesList", "FloatList",
           "Int64List", "EXAMPLE_INPUTS", "takes_examples", "examples_key",
           "decode", "request", "from_json"]

# The names a request gives serialized Examples: TF's parsing receiver tensor
# ('examples') and its classify/regress signatures' input ('inputs').
EXAMPLE_INPUTS = ("examples", "inputs")

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
  """TF's example.proto and feature.proto (package ``tensorflow``), in code."""
  file = descriptor_pb2.FileDescriptorProto(
      name="estlab/export/tf_example.proto", package="tensorflow",
      syntax="proto3")

  def message(name, fields, parent=None):
    msg = (parent.nested_type if parent else file.message_type).add(name=name)
    for number, (field, label, kind, type_name) in enumerate(fields, 1):
      added = msg.field.add(name=field, number=number, label=label, type=kind)
      if type_name:
        added.type_name = type_name
    return msg

  repeated, optional = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
  message("BytesList", [("value", repeated, _F.TYPE_BYTES, None)])
  message("FloatList", [("value", repeated, _F.TYPE_FLOAT, None)])
  message("Int64List", [("value", repeated, _F.TYPE_INT64, None)])
  feature = message("Feature", [
      ("bytes_list", optional, _F.TYPE_MESSAGE, ".tensorflow.BytesList"),
      ("float_list", optional, _F.TYPE_MESSAGE, ".tensorflow.FloatList"),
      ("int64_list", optional, _F.TYPE_MESSAGE, ".tensorflow.Int64List")])
  feature.oneof_decl.add(name="kind")
  for field in feature.field:
    field.oneof_index = 0
  features = message("Features", [
      ("feature", repeated, _F.TYPE_MESSAGE,
       ".tensorflow.Features.FeatureEntry")])
  entry = message("FeatureEntry", [
      ("key", optional, _F.TYPE_STRING, None),
      ("value", optional, _F.TYPE_MESSAGE, ".tensorflow.Feature")], features)
  entry.options.map_entry = True
  message("Example", [
      ("features", optional, _F.TYPE_MESSAGE, ".tensorflow.Features")])
  return file


_POOL = descriptor_pool.DescriptorPool()  # private: TF's own pool may hold these
_POOL.Add(_file())


def _message(name: str) -> type:
  return message_factory.GetMessageClass(
      _POOL.FindMessageTypeByName(f"tensorflow.{name}"))


Example = _message("Example")
Features = _message("Features")
Feature = _message("Feature")
BytesList = _message("BytesList")
FloatList = _message("FloatList")
Int64List = _message("Int64List")

_KIND_DTYPE = {"float_list": np.float32, "int64_list": np.int64,
               "bytes_list": object}


def _kind(dtype: str) -> str:
  """The Feature kind a spec dtype parses from (TF: float, int64, string)."""
  if dtype == "string":
    return "bytes_list"
  return "float_list" if np.dtype(dtype).kind in "fc" else "int64_list"


def takes_examples(inputs: Mapping[str, dict]) -> bool:
  """Whether an export's inputs are parsed (a parsing receiver's): Examples fit."""
  return bool(inputs) and all(d["kind"] in ("fixed", "varlen")
                              for d in inputs.values())


def examples_key(inputs: Mapping[str, dict], request: Any) -> str | None:
  """The request's key holding Examples, or None for the JSON feature form.

  A request holds Examples when the export parses its inputs (a parsing
  receiver) and the request is one of ``EXAMPLE_INPUTS`` that is not a
  feature's name.
  """
  if not isinstance(request, Mapping) or len(request) != 1:
    return None
  (key,) = request
  if key not in EXAMPLE_INPUTS or key in inputs or not takes_examples(inputs):
    return None
  return key


def decode(serialized: Any) -> list:
  """Examples from a batch: serialized bytes (or ``Example`` messages).

  Raises:
    ServingInputError: not a list, no examples, or an entry that is no
      serialized Example (its index named); ServingInputTypeError for an
      entry that is not bytes.
  """
  if isinstance(serialized, np.ndarray):
    serialized = serialized.ravel().tolist() if serialized.ndim else [
        serialized.item()]
  if isinstance(serialized, (bytes, str)) or not isinstance(
      serialized, (list, tuple)):
    raise ServingInputTypeError(
        "Serialized Examples come as a list, one bytes string per example "
        f"(example.SerializeToString()); got {type(serialized).__name__}: "
        f"{serialized!r:.80}.")
  if not serialized:
    raise ServingInputError("No Examples: send at least one serialized "
                            "tf.train.Example.")
  out = []
  for i, data in enumerate(serialized):
    if isinstance(data, Example):
      out.append(data)
      continue
    if isinstance(data, Message):  # e.g. TF's own tf.train.Example
      data = data.SerializeToString()
    if not isinstance(data, (bytes, bytearray, memoryview)):
      raise ServingInputTypeError(
          f"Example {i} is {type(data).__name__} {data!r:.80}, not a serialized"
          " tf.train.Example; send example.SerializeToString() (over REST: "
          '{"b64": base64 of it}).')
    try:
      out.append(Example.FromString(bytes(data)))
    except DecodeError as e:
      raise ServingInputError(
          f"Example {i} is not a serialized tf.train.Example ({e}; its "
          f"{len(data)} bytes begin {bytes(data[:16])!r}); send "
          "example.SerializeToString().") from None
  return out


def _what(desc: dict) -> str:
  spec = "VarLenFeature" if desc["kind"] == "varlen" else "FixedLenFeature"
  return f"{desc['dtype']} ({spec})"


def _values(name: str, desc: dict, maps: list) -> tuple[list, str]:
  """Per example, the feature's repeated values (None when missing)."""
  want = _kind(desc["dtype"])
  containers = []
  for i, features in enumerate(maps):
    feature = features[name] if name in features else None
    kind = None if feature is None else feature.WhichOneof("kind")
    if kind is None:
      containers.append(None)
      continue
    if kind != want:
      raise ServingInputTypeError(
          f"Feature {name!r}: example {i} holds {kind} values, but the export "
          f"parses it as {_what(desc)}, which takes {want} values; send the "
          f"feature as a {want}.")
    containers.append(getattr(feature, kind).value)
  return containers, want


def _column(name: str, desc: dict, maps: list) -> Any:
  """One feature of the batch, as ``_parsing.parse`` takes it."""
  containers, kind = _values(name, desc, maps)
  lengths = [-1 if c is None else len(c) for c in containers]
  values = itertools.chain.from_iterable(c for c in containers if c is not None)
  if kind == "bytes_list":  # the feature columns take text
    joined = [v.decode("utf-8", errors="replace") for v in values]
  else:
    joined = np.fromiter(values, _KIND_DTYPE[kind],
                         count=sum(n for n in lengths if n > 0))
  if desc["kind"] == "fixed":
    shape = tuple(desc["shape"][1:])
    if all(n == math.prod(shape) for n in lengths):  # every example, every value
      return np.asarray(joined, dtype=_KIND_DTYPE[kind]).reshape(
          (len(maps),) + shape)
  rows, start = [], 0
  for n in lengths:
    rows.append(None if n < 0 else joined[start:start + n])
    start += max(n, 0)
  return rows


def request(inputs: Mapping[str, dict], serialized: Any) -> dict:
  """``{feature: one value per example}`` for ``_parsing.parse``, from Examples.

  Args:
    inputs: the export's inputs, ``{name: {kind: 'fixed' | 'varlen', dtype,
      shape, default_value}}``.
    serialized: serialized ``tf.train.Example`` protos (bytes), or
      ``Example`` messages.

  Raises:
    ServingInputError: a malformed Example; ServingInputTypeError: a
      feature of the wrong kind (missing features and wrong value counts are
      ``_parsing.parse``'s errors, naming the example).
  """
  maps = [example.features.feature for example in decode(serialized)]
  return {name: _column(name, desc, maps) for name, desc in inputs.items()}


def _add(name: str, value: Any, kind: str | None, feature: Any) -> None:
  """TF Serving's JSON value -> a Feature's list (its json_tensor.cc rules)."""
  if isinstance(value, bool):
    value, got = int(value), "int64_list"
  elif isinstance(value, Mapping) and set(value) == {"b64"}:
    try:
      value, got = base64.b64decode(value["b64"], validate=True), "bytes_list"
    except (TypeError, ValueError):
      raise ServingInputError(f"Feature {name!r}: {value!r:.80} is not valid "
                              "base64.") from None
  elif isinstance(value, str):
    value, got = value.encode("utf-8"), "bytes_list"
  elif isinstance(value, numbers.Real):
    # A number takes the kind the export parses (a whole number for a float
    # feature); elsewhere TF Serving's: decimal -> float_list, whole -> int64.
    if kind in ("float_list", "int64_list") and (
        kind == "float_list" or float(value).is_integer()):
      got = kind
    else:
      got = "float_list" if isinstance(value, float) else "int64_list"
    value = float(value) if got == "float_list" else int(value)
  else:
    raise ServingInputTypeError(
        f"Feature {name!r} has an element {value!r:.80} of an unexpected JSON "
        "type; give a number, a string, {\"b64\": ...} or a list of them.")
  current = feature.WhichOneof("kind")
  if current is not None and current != got:
    raise ServingInputTypeError(
        f"Feature {name!r} mixes {current} and {got} values ({value!r:.40}); "
        "give values of one kind.")
  try:
    getattr(feature, got).value.append(value)
  except (ValueError, TypeError, OverflowError) as e:  # e.g. beyond int64
    raise ServingInputError(f"Feature {name!r}: {value!r:.40} does not fit a "
                            f"{got} ({e}).") from None


def from_json(objects: list, inputs: Mapping[str, dict]) -> list:
  """Examples from TF Serving's JSON example objects (``:classify``'s).

  Each object is ``{feature: value | [values]}``: numbers (a float feature
  takes whole numbers too), strings, ``{"b64": ...}`` bytes, booleans (as
  int64).

  Raises:
    ServingInputError: an object that is no dict, or a value that is none of
      those (null, nested lists, mixed kinds).
  """
  out = []
  for i, obj in enumerate(objects):
    if not isinstance(obj, Mapping):
      raise ServingInputTypeError(f"examples[{i}] must be an object of feature "
                                  f"-> value, not {obj!r:.80}.")
    example = Example()
    for name, value in obj.items():
      desc = inputs.get(name)
      kind = _kind(desc["dtype"]) if desc else None
      feature = example.features.feature[name]
      for v in value if isinstance(value, list) else [value]:
        _add(name, v, kind, feature)
    out.append(example)
  return out
