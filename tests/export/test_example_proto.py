"""Serialized tf.train.Examples parsed without TensorFlow, as tf.io.parse_example.

The Examples and what TF 2.15 parsed from them are fixtures
(tests/tf_reference/example_parse_tf.py wrote example_parse_tf215.json);
estlab's parse of the same bytes must give the same arrays, and refuse what
TF refused, naming the feature, the example and the fix.
"""
import base64
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from estlab.export import (ServingInputError, ServingInputReceiver,
                           ServingInputTypeError)
from estlab.export import _example_proto as ep
from estlab.export import _parsing
from estlab.feature_column import FixedLenFeature

_REFERENCE = json.loads(
    (pathlib.Path(__file__).parents[1] / "tf_reference" /
     "example_parse_tf215.json").read_text())
_ROOT = pathlib.Path(__file__).parents[2]


def _inputs(spec):
  """The export's input description of a TF feature spec (as the JSON holds)."""
  return {name: {"kind": s["kind"], "dtype": s["dtype"],
                 "shape": [None] + (s["shape"] if s["kind"] == "fixed" else
                                    [None]),
                 "default_value": s.get("default_value")}
          for name, s in spec.items()}


_INPUTS = _inputs(_REFERENCE["spec"])


def _bytes(b64s):
  return [base64.b64decode(e) for e in b64s]


def _assert_parsed_like_tf(features, want):
  assert sorted(features) == sorted(want)
  for name, expected in want.items():
    got = features[name]
    desc = _INPUTS[name]
    if desc["kind"] == "varlen":
      got = [list(row) for row in got]
    else:
      got = got.tolist()
    if desc["dtype"] == "float32":  # TF's float32 values, through JSON
      np.testing.assert_array_equal(
          np.asarray(np.concatenate([np.ravel(r) for r in got] or [[]]),
                     np.float32),
          np.asarray(np.concatenate([np.ravel(r) for r in expected] or [[]]),
                     np.float32), err_msg=name)
      assert [len(np.ravel(r)) for r in got] == [
          len(np.ravel(r)) for r in expected], name
    else:
      assert got == expected, name


def test_tf_serialized_examples_parse_as_tf_parsed_them():
  valid = _REFERENCE["valid"]
  features, batch = _parsing.parse(
      _INPUTS, {"examples": _bytes(valid["examples"])})
  assert batch == len(valid["examples"])
  _assert_parsed_like_tf(features, valid["parsed"])
  assert features["age"].dtype == np.float32
  assert features["count"].dtype == np.int64
  assert features["age"].shape == (batch, 1) and features["pair"].shape == (
      batch, 2)


def test_tf_calls_them_inputs_in_classify_signatures_too():
  valid = _REFERENCE["valid"]
  features, _ = _parsing.parse(_INPUTS, {"inputs": _bytes(valid["examples"])})
  _assert_parsed_like_tf(features, valid["parsed"])


# Per case TF refused: words estlab's error must hold (feature, example, fix).
_ERRORS = {
    "missing_required": (ServingInputError, ["'age'", "example 1",
                                             "default_value"]),
    "kind_not_set_required": (ServingInputError, ["'age'", "example 0"]),
    "empty_bytes": (ServingInputError, ["'age'", "example 0"]),
    "int64_for_float": (ServingInputTypeError, ["'age'", "example 0",
                                                "int64_list", "float_list"]),
    "bytes_for_float": (ServingInputTypeError, ["'age'", "bytes_list",
                                                "float_list"]),
    "float_for_int64_varlen": (ServingInputTypeError, ["'ids'", "float_list",
                                                       "int64_list"]),
    "float_for_string": (ServingInputTypeError, ["'city'", "float_list",
                                                 "bytes_list"]),
    "too_many_values": (ServingInputError, ["'pair'", "3 values", "[2]"]),
    "too_few_values": (ServingInputError, ["'pair'", "1 values", "[2]"]),
    "no_values_required": (ServingInputError, ["'age'", "0 values"]),
    "no_values_with_default": (ServingInputError, ["'pair'", "0 values"]),
    "malformed": (ServingInputError, ["Example 1", "SerializeToString"]),
}


def test_every_error_case_of_the_reference_is_covered():
  assert set(_ERRORS) == set(_REFERENCE["errors"])
  assert all(case["error"] is not None
             for case in _REFERENCE["errors"].values())  # TF refused them all


@pytest.mark.parametrize("case", sorted(_ERRORS))
def test_what_tf_refuses_is_a_clear_error(case):
  error, words = _ERRORS[case]
  examples = _bytes(_REFERENCE["errors"][case]["examples"])
  with pytest.raises(error) as info:
    _parsing.parse(_INPUTS, {"examples": examples})
  for word in words:
    assert word in str(info.value), (word, str(info.value))


def _feature(**kind):
  (name, values), = kind.items()
  feature = ep.Feature()
  getattr(feature, name).value.extend(values)
  return feature


def _example(**features):
  example = ep.Example()
  for name, feature in features.items():
    example.features.feature[name].CopyFrom(feature)
  return example


def test_examples_built_with_the_protobuf_messages():
  examples = [
      _example(age=_feature(float_list=[2.5]), city=_feature(
          bytes_list=[b"oslo"]), ids=_feature(int64_list=[4, 5, 6]),
               pair=_feature(float_list=[3.0, 4.0])),
      _example(age=_feature(float_list=[-1.0]), tags=_feature(
          bytes_list=["é".encode(), b"x"]), weights=_feature(float_list=[])),
  ]
  for given in ([e.SerializeToString() for e in examples], examples,
                np.array([e.SerializeToString() for e in examples],
                         dtype=object)):
    features, batch = _parsing.parse(_INPUTS, {"examples": given})
    assert batch == 2
    assert features["age"].tolist() == [[2.5], [-1.0]]
    assert features["pair"].tolist() == [[3.0, 4.0], [0.5, 1.5]]
    assert features["count"].tolist() == [[7], [7]]
    assert features["city"].tolist() == [["oslo"], ["none"]]
    assert list(features["ids"]) == [[4, 5, 6], []]
    assert list(features["tags"]) == [[], ["é", "x"]]
    assert list(features["weights"]) == [[], []]


def test_the_messages_read_what_tf_wrote_field_for_field():
  first = ep.Example.FromString(_bytes(_REFERENCE["valid"]["examples"])[0])
  feature = first.features.feature
  assert list(feature["age"].float_list.value) == [31.5]
  assert list(feature["tags"].bytes_list.value) == [b"a", b"b"]
  assert list(feature["ids"].int64_list.value) == [1, 2]
  assert feature["pair"].WhichOneof("kind") == "float_list"
  assert ep.Example.DESCRIPTOR.full_name == "tensorflow.Example"


@pytest.mark.parametrize("given, words", [
    ("abc", ["list", "SerializeToString"]),
    ([], ["at least one"]),
    ([b"", "text"], ["Example 1", "str", "SerializeToString"]),
    ([b"\x0a\x03\x0a\x01"], ["Example 0", "not a serialized"]),
])
def test_what_is_not_a_batch_of_serialized_examples(given, words):
  with pytest.raises(ServingInputError) as info:
    _parsing.parse(_INPUTS, {"examples": given})
  for word in words:
    assert word in str(info.value), (word, str(info.value))


def test_the_json_form_keeps_working_and_a_feature_named_examples_is_one():
  features, batch = _parsing.parse(_INPUTS, {"age": [1.5], "city": ["rome"],
                                             "tags": [["a"]], "ids": [[]],
                                             "weights": [[]]})
  assert batch == 1 and features["age"].tolist() == [[1.5]]
  inputs = {"examples": {"kind": "fixed", "dtype": "float32",
                         "shape": [None, 1], "default_value": None}}
  features, _ = _parsing.parse(inputs, {"examples": [2.0, 3.0]})
  assert features["examples"].tolist() == [[2.0], [3.0]]


def test_a_raw_export_takes_no_examples():
  inputs = {"x": {"kind": "array", "dtype": "float32", "shape": [None, 1]}}
  with pytest.raises(ServingInputError, match="unknown"):
    _parsing.parse(inputs, {"examples": [b""]})


def test_json_example_objects_become_examples_as_tf_serving_builds_them():
  (example,) = ep.from_json([{
      "age": 3, "unknown_decimal": 1.5, "unknown_whole": 2, "flag": True,
      "city": "rome", "blob": {"b64": base64.b64encode(b"\x00\xff").decode()},
      "ids": [1, 2], "empty": []}], _INPUTS)
  feature = example.features.feature
  kinds = {name: feature[name].WhichOneof("kind") for name in feature}
  assert kinds == {"age": "float_list", "unknown_decimal": "float_list",
                   "unknown_whole": "int64_list", "flag": "int64_list",
                   "city": "bytes_list", "blob": "bytes_list",
                   "ids": "int64_list", "empty": None}
  assert list(feature["age"].float_list.value) == [3.0]  # the spec's kind
  assert list(feature["blob"].bytes_list.value) == [b"\x00\xff"]
  features, _ = _parsing.parse(_INPUTS, {"examples": [example]})
  assert features["city"].tolist() == [["rome"]]
  assert list(features["ids"]) == [[1, 2]]


@pytest.mark.parametrize("obj, error, words", [
    ({"age": None}, ServingInputTypeError, ["'age'", "JSON type"]),
    ({"age": [[1.0]]}, ServingInputTypeError, ["'age'", "JSON type"]),
    ({"tags": ["a", 1]}, ServingInputTypeError, ["'tags'", "mixes"]),
    ({"blob": {"b64": "***"}}, ServingInputError, ["'blob'", "base64"]),
    ({"ids": [2 ** 70]}, ServingInputError, ["'ids'", "int64_list"]),
])
def test_json_values_tf_serving_refuses(obj, error, words):
  with pytest.raises(error) as info:
    ep.from_json([obj], _INPUTS)
  for word in words:
    assert word in str(info.value), (word, str(info.value))


def test_a_string_for_a_float_feature_is_refused_by_kind():
  examples = ep.from_json([{"age": "3.5"}], _INPUTS)
  with pytest.raises(ServingInputTypeError, match="bytes_list.*float_list"):
    _parsing.parse(_INPUTS, {"examples": examples})


_NO_TF = """
import base64, json, sys
sys.modules['tensorflow'] = None  # importing it now fails
from estlab.export import _parsing
from estlab.feature_column import FixedLenFeature
ref = json.load(open(sys.argv[1]))
examples = [base64.b64decode(e) for e in ref['valid']['examples']]
inputs = json.loads(sys.argv[2])
features, batch = _parsing.parse(inputs, {'examples': examples})
print(json.dumps({'batch': batch, 'age': features['age'].tolist(),
                  'tags': [list(t) for t in features['tags']],
                  'tf': sorted(m for m in sys.modules if 'tensorflow' in m
                               and sys.modules[m] is not None)}))
"""


def test_parsing_needs_no_tensorflow():
  done = subprocess.run(
      [sys.executable, "-c", _NO_TF,
       str(_ROOT / "tests" / "tf_reference" / "example_parse_tf215.json"),
       json.dumps(_INPUTS)],
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, PYTHONPATH=os.pathsep.join(
          [str(_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])))
  assert done.returncode == 0, done.stderr[-3000:]
  answer = json.loads(done.stdout.strip().splitlines()[-1])
  assert answer["tf"] == []
  assert answer["batch"] == 5
  assert answer["tags"] == _REFERENCE["valid"]["parsed"]["tags"]
  np.testing.assert_array_equal(
      np.asarray(answer["age"], np.float32),
      np.asarray(_REFERENCE["valid"]["parsed"]["age"], np.float32))


def test_a_parsing_receiver_may_name_tfs_serialized_examples_tensor():
  spec = {"age": FixedLenFeature((1,), "float32")}
  receiver = ServingInputReceiver(spec, {"examples": "serialized"})
  assert receiver.kind == "parsing" and sorted(receiver.features) == ["age"]
  with pytest.raises(ValueError, match="examples"):
    ServingInputReceiver(spec, {"serialized": "serialized"})
