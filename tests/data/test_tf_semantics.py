"""Every pipeline of fixtures/tf_data.json yields what tf.data 2.15 yields.

The fixture was written by fixtures/make_tf_fixtures.py with TensorFlow;
each case is an expression over ``D``, built here on estlab.data.Dataset.
Elements must match in values, dtypes and shapes (TF's bytes are str here),
and element_spec and cardinality must match TF's. Each case runs on the
default path and on Grain element by element (``_iterable(planned=False)``).
"""
import json
import pathlib

import numpy as np
import pytest

from estlab.data import Dataset

_FIXTURE = json.loads((pathlib.Path(__file__).parent / "fixtures" /
                       "tf_data.json").read_text())
_ENV = {"D": Dataset, "np": np, "TF": False}


def _encode(value):
  """As the fixture script encodes TF's elements."""
  if isinstance(value, dict):
    return {"dict": {str(k): _encode(v) for k, v in value.items()}}
  if isinstance(value, tuple):
    return {"tuple": [_encode(v) for v in value]}
  array = np.asarray(value)
  if array.dtype.kind in "OSU":
    return {"array": array.tolist(), "dtype": "string",
            "shape": list(array.shape)}
  return {"array": array.tolist(), "dtype": array.dtype.name,
          "shape": list(array.shape)}


def _encode_spec(spec):
  if isinstance(spec, dict):
    return {"dict": {str(k): _encode_spec(v) for k, v in spec.items()}}
  if isinstance(spec, tuple):
    return {"tuple": [_encode_spec(v) for v in spec]}
  return {"shape": None if spec.shape is None else list(spec.shape),
          "dtype": "string" if spec.dtype == object else spec.dtype.name}


@pytest.mark.parametrize("case", _FIXTURE["cases"],
                         ids=[c["source"] for c in _FIXTURE["cases"]])
@pytest.mark.parametrize("planned", [True, False], ids=["default", "grain"])
def test_elements_and_spec_match_tf(case, planned):
  ds = eval(case["source"], dict(_ENV))  # pylint: disable=eval-used
  elements = list(ds._iterable(planned=planned))
  assert [_encode(e) for e in elements] == case["elements"]
  assert _encode_spec(ds.element_spec) == case["element_spec"]


@pytest.mark.parametrize("source", sorted(_FIXTURE["cardinality"]))
def test_cardinality_matches_tf(source):
  ds = eval(source, dict(_ENV))  # pylint: disable=eval-used
  assert ds.cardinality() == _FIXTURE["cardinality"][source]
  assert ds.cardinality().numpy() == _FIXTURE["cardinality"][source]
