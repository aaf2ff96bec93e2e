"""Existing clients of a parsing export: serialized tf.train.Examples.

A LinearClassifier on a numeric and a string vocabulary column, exported
with ``build_parsing_serving_input_receiver_fn``, answers
``signatures['predict'](examples=[...])`` (TF's call) as it answers the JSON
form on the same rows; a real ``estlab serve`` (its own process, port 0)
answers TF Serving's requests with Examples: base64 serialized ones on
``:predict``, JSON example objects on ``:classify`` / ``:regress``.
"""
import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import optax
import pytest

import estlab
import estlab.export
from estlab import feature_column as fc
from estlab.export import ServingInputError
from estlab.export import _example_proto as ep

_AGE = [18.0, 25.5, 33.0, 41.0, 52.5, 67.0]
_CITY = ["paris", "rome", "oslo", "paris", "lisbon", "rome"]  # lisbon: OOV
_LABEL = [0, 0, 1, 1, 1, 0]
_START_DEADLINE_S = 180
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _example(age=None, city=None):
  example = ep.Example()
  if age is not None:
    example.features.feature["age"].float_list.value.append(age)
  if city is not None:
    example.features.feature["city"].bytes_list.value.append(city.encode())
  return example.SerializeToString()


_EXAMPLES = [_example(a, c) for a, c in zip(_AGE, _CITY)]
_JSON = {"age": _AGE, "city": _CITY}


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("examples")
  columns = [fc.numeric_column("age"), fc.categorical_column_with_vocabulary_list(
      "city", ["paris", "rome", "oslo"])]
  clf = estlab.LinearClassifier(
      columns, model_dir=str(root / "model"), optimizer=optax.adam(0.1),
      config=estlab.RunConfig(progress_bar=False))
  features = {"age": np.array(_AGE, np.float32),
              "city": np.array(_CITY, dtype=object)}
  clf.train(estlab.inputs.numpy_input_fn(
      features, np.array(_LABEL), batch_size=6, num_epochs=None,
      shuffle=False), steps=50)
  receiver = estlab.export.build_parsing_serving_input_receiver_fn(
      fc.make_parse_example_spec(columns))
  return os.fsdecode(clf.export_saved_model(str(root / "export"), receiver))


@pytest.fixture(scope="module")
def imported(export_dir):
  return estlab.export.load(export_dir)


def _assert_same(got, want):
  assert sorted(got) == sorted(want)
  for key in want:
    if want[key].dtype == object:
      assert got[key].tolist() == want[key].tolist(), key
    else:
      np.testing.assert_allclose(got[key], want[key], rtol=1e-6, err_msg=key)


def test_predict_takes_serialized_examples_as_tf_calls_it(imported):
  sig = imported.signatures["predict"]
  want = sig(_JSON)
  assert len(set(want["class_ids"].ravel().tolist())) == 2  # not constant
  _assert_same(sig(examples=_EXAMPLES), want)
  _assert_same(sig({"examples": _EXAMPLES}), want)
  _assert_same(sig(examples=np.array(_EXAMPLES, dtype=object)), want)
  _assert_same(sig(age=_AGE, city=_CITY), want)  # keywords: the JSON form
  _assert_same(sig({"age": _AGE}, city=_CITY), want)


def test_classification_and_regression_take_examples_as_inputs(imported):
  for name in ("serving_default", "classification", "regression"):
    sig = imported.signatures[name]
    _assert_same(sig(inputs=_EXAMPLES), sig(_JSON))


def test_a_missing_vocabulary_feature_is_no_value_as_in_tf(imported):
  sig = imported.signatures["predict"]
  got = sig(examples=[_example(30.0)])
  want = sig({"age": [30.0], "city": [[]]})
  _assert_same(got, want)


def test_call_errors_name_the_example_and_the_fix(imported):
  sig = imported.signatures["predict"]
  with pytest.raises(ServingInputError, match="'age'.*example 1.*default_value"):
    sig(examples=[_example(1.0, "rome"), _example(city="rome")])
  with pytest.raises(ServingInputError, match="Example 1 is not a serialized"):
    sig(examples=[_EXAMPLES[0], b"\x0a\x05garbage"])
  with pytest.raises(TypeError, match="each feature once"):
    sig({"age": _AGE}, age=_AGE)


# ------------------------------------------------------------- estlab serve


def _call(url, body):
  request = urllib.request.Request(
      url, data=json.dumps(body).encode(), method="POST",
      headers={"Content-Type": "application/json"})
  try:
    with _OPENER.open(request, timeout=60) as answer:
      return answer.status, json.loads(answer.read())
  except urllib.error.HTTPError as e:
    with e:
      return e.code, json.loads(e.read())


def _b64(data):
  return {"b64": base64.b64encode(data).decode("ascii")}


@pytest.fixture(scope="module")
def server(export_dir, tmp_path_factory):
  """``python -m estlab serve`` in its own process group, ended by its PID."""
  log_path = tmp_path_factory.mktemp("serve") / "serve.log"
  with open(log_path, "wb") as log:
    proc = subprocess.Popen(
        [sys.executable, "-m", "estlab", "serve", export_dir, "--model-name",
         "ex", "--port", "0"], stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  try:
    deadline = time.monotonic() + _START_DEADLINE_S
    url = None
    while url is None:
      text = log_path.read_text(errors="replace")
      match = re.search(r"^Serving .* at (http://\S+)$", text, re.M)
      if match:
        url = match[1]
      elif proc.poll() is not None or time.monotonic() > deadline:
        pytest.fail(f"estlab serve did not start:\n{text[-3000:]}")
      else:
        time.sleep(0.2)
    yield url
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait(timeout=30)


def _rows(answer):
  return {k: [row[k] for row in answer["predictions"]]
          for k in answer["predictions"][0]}


def test_serve_predict_with_b64_examples_in_rows_and_columns(server, imported):
  want = imported.signatures["predict"](_JSON)
  status, json_rows = _call(server + ":predict", {
      "signature_name": "predict",
      "instances": [{"age": a, "city": c} for a, c in zip(_AGE, _CITY)]})
  assert status == 200, json_rows
  for body in ({"signature_name": "predict",
                "instances": [_b64(e) for e in _EXAMPLES]},
               {"signature_name": "predict",
                "instances": [{"examples": _b64(e)} for e in _EXAMPLES]}):
    status, answer = _call(server + ":predict", body)
    assert status == 200, answer
    assert answer == json_rows
  np.testing.assert_allclose(_rows(json_rows)["probabilities"],
                             want["probabilities"], rtol=1e-5)
  assert _rows(json_rows)["classes"] == want["classes"].tolist()
  for inputs in ([_b64(e) for e in _EXAMPLES],
                 {"examples": [_b64(e) for e in _EXAMPLES]}):
    status, answer = _call(server + ":predict", {"signature_name": "predict",
                                                  "inputs": inputs})
    assert status == 200, answer
    np.testing.assert_allclose(answer["outputs"]["probabilities"],
                               want["probabilities"], rtol=1e-5)
    assert answer["outputs"]["classes"] == want["classes"].tolist()


def test_serve_classify_and_regress_take_tf_servings_example_objects(
    server, imported):
  probabilities = imported.signatures["predict"](_JSON)["probabilities"]
  examples = [{"age": a, "city": c} for a, c in zip(_AGE, _CITY)]
  status, answer = _call(server + ":classify", {"examples": examples})
  assert status == 200, answer
  assert [[label for label, _ in r] for r in answer["results"]] == [
      ["0", "1"]] * len(_AGE)
  np.testing.assert_allclose([[s for _, s in r] for r in answer["results"]],
                             probabilities, rtol=1e-5)
  status, answer = _call(server + ":regress", {"signature_name": "regression",
                                               "examples": examples})
  assert status == 200, answer
  np.testing.assert_allclose(answer["results"], probabilities[:, 1], rtol=1e-5)


def test_serve_classify_examples_may_leave_out_a_feature_and_share_context(
    server, imported):
  sig = imported.signatures["classification"]
  want = sig(inputs=[_example(20.0, "oslo"), _example(20.0)])["scores"]
  status, answer = _call(server + ":classify", {
      "context": {"age": 20},  # a whole number for a float feature
      "examples": [{"city": ["oslo"]}, {}]})
  assert status == 200, answer
  np.testing.assert_allclose([[s for _, s in r] for r in answer["results"]],
                             want, rtol=1e-5)


@pytest.mark.parametrize("verb, body, words", [
    (":predict", {"instances": [_b64(_EXAMPLES[0]), _b64(b"\x0a\x05garbage")]},
     ["Example 1", "not a serialized"]),
    (":predict", {"inputs": [_b64(_example(1.0, "rome")),
                             _b64(_example(city="rome"))]},
     ["'age'", "example 1", "default_value"]),
    (":classify", {"examples": [{"age": "old", "city": "rome"}]},
     ["'age'", "bytes_list", "float_list"]),
    (":classify", {"examples": [{"city": "rome"}]},
     ["'age'", "example 0", "default_value"]),
    (":classify", {"examples": [{"age": None}]}, ["'age'", "JSON type"]),
])
def test_serve_refuses_bad_examples_with_400(server, verb, body, words):
  status, answer = _call(server + verb, body)
  assert status == 400, answer
  assert set(answer) == {"error"}
  for word in words:
    assert word in answer["error"], answer
  status, _ = _call(server + ":predict", {"instances": [_b64(_EXAMPLES[0])]})
  assert status == 200
