"""classifier/regressor_parse_example_spec against TF 2.15's outputs.

The fixture is tests/tf_reference/parse_example_spec_tf215.json, written by
tests/tf_reference/parse_example_spec_tf.py (TF's reference venv).
"""
import json
import pathlib
import types

import numpy as np
import pytest

import estlab
from estlab import feature_column as fc

_CASES = json.loads((pathlib.Path(__file__).resolve().parent.parent /
                     "tf_reference" / "parse_example_spec_tf215.json"
                     ).read_text())["cases"]
# The cases' dtypes, as the names estlab takes (TF's: tf.string, ...).
_DT = types.SimpleNamespace(string="string", int32="int32", int64="int64",
                            float32="float32", float64="float64")


def _json(spec):
  out = {}
  for key, value in sorted(spec.items()):
    if isinstance(value, fc.FixedLenFeature):
      default = value.default_value
      out[key] = {"kind": "fixed", "shape": list(value.shape),
                  "dtype": value.dtype, "default_value":
                  list(default) if isinstance(default, tuple) else default}
    else:
      assert isinstance(value, fc.VarLenFeature), value
      out[key] = {"kind": "varlen", "dtype": value.dtype}
  return out


@pytest.mark.parametrize("case", _CASES, ids=[c["name"] for c in _CASES])
def test_parse_spec_is_tfs(case):
  namespace = {"fc": fc, "dt": _DT}
  columns = eval(case["columns"], namespace)  # pylint: disable=eval-used
  kwargs = eval(case["kwargs"], namespace)  # pylint: disable=eval-used
  function = getattr(estlab, case["function"])
  if "error" in case:
    with pytest.raises({"ValueError": ValueError,
                        "TypeError": TypeError}[case["error"]]):
      function(columns, **kwargs)
  else:
    assert _json(function(columns, **kwargs)) == case["spec"]


def test_the_spec_parses_a_premade_classifiers_records_and_its_label():
  # The records an input_fn reads: features and label parsed by one spec,
  # then the label popped, as TF's docstring shows.
  columns = [fc.numeric_column("age"),
             fc.categorical_column_with_vocabulary_list("city", ["a", "b"])]
  spec = estlab.classifier_parse_example_spec(
      columns, label_key="clicked", label_default=0)
  inputs = estlab.export.build_parsing_serving_input_receiver_fn(spec)()
  from estlab.export import _parsing, _receivers  # pylint: disable=g-import-not-at-top
  parsed, batch = _parsing.parse(_receivers.describe_features(inputs), {
      "age": [31.0, 42.0], "city": [["a"], []], "clicked": [1, None]})
  assert batch == 2
  labels = parsed.pop("clicked")
  assert labels.tolist() == [[1], [0]]  # label_default for the second record
  encoded = fc.encode(columns, parsed)
  assert encoded["city"]["ids"].tolist() == [[0], [-1]]


def test_label_dtype_takes_numpy_dtypes_and_labels_may_be_strings():
  spec = estlab.classifier_parse_example_spec(
      [fc.numeric_column("x")], "y", label_dtype=np.str_)
  assert spec["y"] == fc.FixedLenFeature((1,), "string", None)
  spec = estlab.regressor_parse_example_spec(
      [fc.numeric_column("x")], "y", label_dtype=np.float64, label_dimension=2,
      weight_column=fc.numeric_column("w", dtype="float64"))
  assert spec["y"] == fc.FixedLenFeature((2,), "float64", None)
  assert spec["w"] == fc.FixedLenFeature((1,), "float64", None)


@pytest.mark.parametrize("kwargs,match", [
    (dict(label_key=None), "label_key=None"),
    (dict(label_key="x"), "label should not be used as a feature"),
    (dict(label_key="y", weight_column="y"), "weight should not be used"),
    (dict(label_key="y", label_dimension=0), "label_dimension=0"),
])
def test_bad_arguments_say_the_fix(kwargs, match):
  with pytest.raises(ValueError, match=match):
    estlab.regressor_parse_example_spec([fc.numeric_column("x")], **kwargs)


def test_docstring_examples_and_tf1_path():
  import doctest  # pylint: disable=g-import-not-at-top
  from estlab.compat.v1 import estimator as v1  # pylint: disable=g-import-not-at-top
  from estlab.feature_column import parsing  # pylint: disable=g-import-not-at-top
  result = doctest.testmod(parsing)
  assert result.attempted > 0 and result.failed == 0
  # tf.compat.v1.estimator.X: the same function (TF 1's differs only in
  # taking TF 1's columns).
  assert v1.classifier_parse_example_spec is estlab.classifier_parse_example_spec
  assert v1.regressor_parse_example_spec is estlab.regressor_parse_example_spec
