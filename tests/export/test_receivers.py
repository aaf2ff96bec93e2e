"""Receivers and request parsing: specs, types, defaults, ragged values, errors."""
import json
import subprocess
import sys

import numpy as np
import pytest

import estlab
from estlab import feature_column as fc
from estlab.export import _parsing, _receivers

_FLOAT = {"kind": "fixed", "dtype": "float32", "shape": [None, 1],
          "default_value": None}


def _inputs(spec, batch=None):
  return _receivers.describe_features(
      estlab.export.ServingInputReceiver(spec, default_batch_size=batch))


def test_import_estlab_export_loads_no_heavy_library():
  script = ("import estlab.export, json, sys\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
  out = subprocess.run([sys.executable, "-c", script], capture_output=True,
                       text=True, timeout=60, check=True)
  loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
  assert loaded.isdisjoint({"jax", "flax", "optax", "orbax"}), loaded


def test_parsing_receiver_describes_fixed_and_varlen_features():
  spec = fc.make_parse_example_spec([
      fc.numeric_column("x", shape=2, default_value=0.5),
      fc.categorical_column_with_vocabulary_list("city", ["a", "b"])])
  receiver = estlab.export.build_parsing_serving_input_receiver_fn(spec)()
  assert receiver.kind == "parsing"
  assert _receivers.describe_features(receiver) == {
      "city": {"kind": "varlen", "dtype": "string", "shape": [None, None]},
      "x": {"kind": "fixed", "dtype": "float32", "shape": [None, 2],
            "default_value": [0.5, 0.5]}}


@pytest.mark.parametrize("spec", [{}, {"x": 1.0}, [fc.numeric_column("x")]])
def test_parsing_receiver_needs_a_parse_spec(spec):
  with pytest.raises(ValueError, match="make_parse_example_spec"):
    estlab.export.build_parsing_serving_input_receiver_fn(spec)


def test_raw_receiver_keeps_shapes_after_the_batch_and_flattens_nesting():
  encoded = fc.encode([fc.indicator_column(
      fc.categorical_column_with_vocabulary_list("city", ["a", "b"]))],
      {"city": np.array(["a", "b"], object)})
  receiver = estlab.export.build_raw_serving_input_receiver_fn(
      {**encoded, "x": np.zeros((2, 3), np.float32)}, default_batch_size=4)()
  assert receiver.kind == "raw"
  assert receiver.features == {
      "city/ids": estlab.export.ArraySpec((4, 1), "int32"),
      "x": estlab.export.ArraySpec((4, 3), "float32")}


def test_raw_receiver_refuses_strings():
  with pytest.raises(TypeError, match="'s' holds strings.*parsing"):
    estlab.export.build_raw_serving_input_receiver_fn(
        {"s": np.array(["a"], object)})


@pytest.mark.parametrize("kwargs, match", [
    (dict(features={"x": fc.FixedLenFeature((1,), "float32"),
                    "y": np.zeros(1)}), "mix"),
    (dict(features={"x": np.zeros(1)}, receiver_tensors={"y": 1}), "name the"),
    (dict(features={"x": np.zeros(1)}, receiver_tensors_alternatives={}),
     "not supported"),
    (dict(features={"x": np.zeros(1)}, default_batch_size=0), ">= 1"),
    (dict(features={}), "non-empty"),
])
def test_serving_input_receiver_checks_its_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    estlab.export.ServingInputReceiver(**kwargs)


def test_fixed_len_features_fill_defaults_and_check_sizes():
  inputs = _inputs({"x": fc.FixedLenFeature((2,), "float32", 0.0),
                    "n": fc.FixedLenFeature((1,), "int64")})
  features, batch = _parsing.parse(inputs, {"n": [1, 2.0], })
  assert batch == 2
  assert features["x"].tolist() == [[0.0, 0.0], [0.0, 0.0]]
  assert features["n"].dtype == np.int64 and features["n"].tolist() == [[1], [2]]
  features, _ = _parsing.parse(inputs, {"n": [1], "x": [None]})
  assert features["x"].tolist() == [[0.0, 0.0]]
  with pytest.raises(estlab.export.ServingInputTypeError,
                     match="'n' expects integers.*1.5"):
    _parsing.parse(inputs, {"n": [1, 1.5]})
  with pytest.raises(estlab.export.ServingInputError, match="lengths"):
    _parsing.parse(inputs, {"n": [1, 2], "x": [[1., 2.]]})


def test_var_len_features_take_lists_scalars_and_none():
  inputs = _inputs({"tags": fc.VarLenFeature("string"),
                    "ids": fc.VarLenFeature("int64")})
  features, batch = _parsing.parse(inputs, {
      "tags": [["a", b"b"], [], "c", None], "ids": [[1, 2.0], 3, [], None]})
  assert batch == 4
  assert features["tags"].tolist() == [["a", "b"], [], ["c"], []]
  assert features["ids"].tolist() == [[1, 2], [3], [], []]
  with pytest.raises(estlab.export.ServingInputTypeError, match="'tags'.*7"):
    _parsing.parse(inputs, {"tags": [[7]], "ids": [[]]})


def test_transform_errors_of_the_columns_are_serving_input_errors():
  column = fc.categorical_column_with_identity("id", 3)
  inputs = _inputs(fc.make_parse_example_spec([column]))
  features, batch = _parsing.parse(inputs, {"id": [[1], [5]]})
  with pytest.raises(estlab.export.ServingInputError, match="'id' got 5"):
    _parsing.transform({"kind": "feature_columns"}, [column], features, batch)


def test_sample_request_parses_and_encodes():
  columns = [fc.numeric_column("x", shape=(2,)),
             fc.crossed_column(["a", "b"], 10),
             fc.weighted_categorical_column(
                 fc.categorical_column_with_identity("id", 4), "w")]
  inputs = _inputs(fc.make_parse_example_spec(columns), batch=3)
  features, batch = _parsing.parse(inputs, _parsing.sample_request(inputs))
  encoded = _parsing.transform({"kind": "feature_columns"}, columns, features,
                               batch)
  assert batch == 3
  assert encoded["x"].shape == (3, 2)
  assert encoded["a_X_b"]["ids"].tolist() == [[-1]] * 3
  assert encoded["id_weighted_by_w"]["ids"].shape == (3, 1)
