"""Serialized tf.train.Examples and what TF 2.15's ``tf.io.parse_example`` made
of them, for tests/export/test_example_proto.py.

Run with the TF reference venv (not at test time):
  /work/tf215/bin/python tests/tf_reference/example_parse_tf.py
writes example_parse_tf215.json next to this file:

* ``spec``: the feature spec (``{name: {kind, dtype, shape, default_value}}``);
* ``valid``: base64 serialized Examples (``examples``) and the parsed
  features (``parsed``): a FixedLenFeature as nested lists, a VarLenFeature
  as one list of values per example (its SparseTensor's rows); strings as
  UTF-8 text;
* ``errors``: per case, the base64 Examples and TF's error (its type and
  message), or ``null`` where TF parsed them (``parsed`` then holds what).
"""
import base64
import json
import os
import re

import numpy as np
import tensorflow as tf

SPEC = {
    "age": tf.io.FixedLenFeature([1], tf.float32),
    "pair": tf.io.FixedLenFeature([2], tf.float32, default_value=[0.5, 1.5]),
    "count": tf.io.FixedLenFeature([1], tf.int64, default_value=[7]),
    "city": tf.io.FixedLenFeature([1], tf.string, default_value=["none"]),
    "tags": tf.io.VarLenFeature(tf.string),
    "ids": tf.io.VarLenFeature(tf.int64),
    "weights": tf.io.VarLenFeature(tf.float32),
}


def floats(*v):
  return tf.train.Feature(float_list=tf.train.FloatList(value=v))


def ints(*v):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=v))


def strings(*v):
  return tf.train.Feature(bytes_list=tf.train.BytesList(
      value=[s.encode() for s in v]))


def example(**features):
  return tf.train.Example(features=tf.train.Features(
      feature=features)).SerializeToString()


VALID = [
    example(age=floats(31.5), pair=floats(1.0, 2.0), count=ints(3),
            city=strings("paris"), tags=strings("a", "b"), ids=ints(1, 2),
            weights=floats(0.25)),
    example(age=floats(-2.0)),  # every other feature missing: defaults, empty
    example(age=floats(0.1), tags=strings("zürich", "", "c"),
            ids=ints(2 ** 40, -3, 0), weights=floats(1e-3, 3.0, -4.5)),
    # present but empty: a Feature with no kind; a bytes_list of no values
    example(age=floats(7.0), pair=tf.train.Feature(), tags=strings(),
            ids=tf.train.Feature()),
    example(age=floats(1e30), unused=strings("ignored"), count=ints(-9)),
]

ERRORS = {
    "missing_required": [example(age=floats(1.0)), example(pair=floats(1, 2))],
    "int64_for_float": [example(age=ints(3))],
    "bytes_for_float": [example(age=strings("3.5"))],
    "float_for_int64_varlen": [example(age=floats(1.0), ids=floats(1.5))],
    "float_for_string": [example(age=floats(1.0), city=floats(2.0))],
    "too_many_values": [example(age=floats(1.0), pair=floats(1, 2, 3))],
    "too_few_values": [example(age=floats(1.0), pair=floats(1))],
    "no_values_required": [example(age=floats())],
    "no_values_with_default": [example(age=floats(1.0), pair=floats())],
    "kind_not_set_required": [example(age=tf.train.Feature())],
    "malformed": [example(age=floats(1.0)), b"\x0a\x05garbage"],
    "empty_bytes": [b""],
}


def b64(examples):
  return [base64.b64encode(e).decode("ascii") for e in examples]


def to_json(parsed):
  out = {}
  for name, value in parsed.items():
    if isinstance(value, tf.SparseTensor):
      rows = [[] for _ in range(int(value.dense_shape[0]))]
      for (row, _), v in zip(value.indices.numpy(), value.values.numpy()):
        rows[row].append(v)
      value = rows
    else:
      value = value.numpy().tolist()
    out[name] = json.loads(json.dumps(value, default=lambda v: (
        v.decode() if isinstance(v, bytes) else np.asarray(v).item())))
  return out


def parse(examples):
  return tf.io.parse_example(tf.constant(examples), SPEC)


def spec_json():
  out = {}
  for name, s in SPEC.items():
    if isinstance(s, tf.io.VarLenFeature):
      out[name] = {"kind": "varlen", "dtype": s.dtype.name}
    else:
      default = s.default_value
      out[name] = {"kind": "fixed", "dtype": s.dtype.name, "shape": list(s.shape),
                   "default_value": None if default is None else
                   json.loads(json.dumps(default, default=lambda v: v.decode()))}
  return out


def main():
  record = {"tensorflow": tf.__version__, "spec": spec_json(),
            "valid": {"examples": b64(VALID), "parsed": to_json(parse(VALID))},
            "errors": {}}
  for case, examples in ERRORS.items():
    try:
      parsed, error = to_json(parse(examples)), None
    except (tf.errors.InvalidArgumentError, ValueError) as e:
      message = re.sub(r"^\{\{function_node [^}]*\}\} |\s*\[Op:\w+\]$", "",
                       str(e).strip().splitlines()[0])
      parsed, error = None, {"type": type(e).__name__, "message": message}
    record["errors"][case] = {"examples": b64(examples), "error": error,
                              "parsed": parsed}
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "example_parse_tf215.json")
  with open(path, "w") as f:
    json.dump(record, f, indent=1, ensure_ascii=False)
    f.write("\n")
  print(json.dumps(record["errors"], indent=1, ensure_ascii=False))


if __name__ == "__main__":
  main()
