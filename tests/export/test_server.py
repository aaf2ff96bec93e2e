"""`estlab serve`: TF Serving's REST API as a real process, called over HTTP.

Each server is ``python -m estlab serve ...`` in its own process group, bound
to port 0 (the kernel picks a free port; the printed start line names it),
waited for with a deadline, and ended by its PID. The client is urllib.
"""
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import optax
import pytest

import estlab
import estlab.export
from estlab.export import _server

_X = [1., 2., 3., 4.]
_Y = [1, 1, 0, 0]
_GRID = [0.5 * i for i in range(12)]  # inputs of the concurrent requests
_START_DEADLINE_S = 180
_MAX_BODY = 4096
# No proxy for localhost, whatever the environment says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _call(url, body=None, *, method=None, raw=None, timeout=60):
  """Returns (HTTP status, decoded JSON answer)."""
  data = raw if raw is not None else (
      None if body is None else json.dumps(body).encode())
  request = urllib.request.Request(
      url, data=data, method=method,
      headers={"Content-Type": "application/json"})
  try:
    with _OPENER.open(request, timeout=timeout) as answer:
      return answer.status, json.loads(answer.read())
  except urllib.error.HTTPError as e:
    with e:
      return e.code, json.loads(e.read())


def _train_and_export(estimator, columns, labels, base):
  estimator.train(estlab.inputs.numpy_input_fn(
      {"x": np.array(_X)}, labels, batch_size=4, num_epochs=None,
      shuffle=False), steps=300)
  spec = estlab.feature_column.make_parse_example_spec(columns)
  receiver = estlab.export.build_parsing_serving_input_receiver_fn(spec)
  export_dir = estimator.export_saved_model(str(base), receiver)
  return os.fsdecode(export_dir)


def _predictions(estimator, xs):
  return list(estimator.predict(estlab.inputs.numpy_input_fn(
      {"x": np.array(xs)}, batch_size=len(xs), shuffle=False)))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  """A classifier and a regressor on x=[1,2,3,4] -> [1,1,0,0], exported."""
  root = tmp_path_factory.mktemp("serve")
  config = estlab.RunConfig(progress_bar=False)
  col = estlab.feature_column.numeric_column("x")
  clf = estlab.LinearClassifier([col], model_dir=str(root / "clf"),
                                optimizer=optax.adam(0.1), config=config)
  reg = estlab.LinearRegressor([col], model_dir=str(root / "reg"),
                               optimizer=optax.adam(0.1), config=config)
  clf_dir = _train_and_export(clf, [col], np.array(_Y), root / "clf_export")
  # An older version beside it: serving the base must pick the newest.
  shutil.copytree(clf_dir, root / "clf_export" / "1")
  reg_dir = _train_and_export(reg, [col], np.array(_Y, np.float32),
                              root / "reg_export")
  return {
      "clf": clf, "clf_base": str(root / "clf_export"), "clf_dir": clf_dir,
      "clf_grid": _predictions(clf, _GRID),
      "reg": reg, "reg_dir": reg_dir, "reg_grid": _predictions(reg, _GRID),
      "root": root}


class _Server:
  """``python -m estlab serve ARGS`` in its own process group."""

  def __init__(self, log_path, *args):
    self.log_path = log_path
    self._log = open(log_path, "wb")  # a file, never a pipe that fills up
    self.proc = subprocess.Popen(
        [sys.executable, "-m", "estlab", "serve", *args, "--port", "0"],
        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu"))
    self.line, self.url = self._wait_for_start()

  def log(self):
    with open(self.log_path, errors="replace") as f:
      return f.read()

  def _wait_for_start(self):
    deadline = time.monotonic() + _START_DEADLINE_S
    while time.monotonic() < deadline:
      match = re.search(r"^Serving .* at (http://\S+)$", self.log(), re.M)
      if match:
        url = match[1]
        if _call(url)[0] == 200:
          return match[0], url
      if self.proc.poll() is not None:
        pytest.fail(f"estlab serve exited with {self.proc.returncode}:\n"
                    f"{self.log()[-3000:]}")
      time.sleep(0.2)
    self.kill()
    pytest.fail(f"estlab serve did not start in {_START_DEADLINE_S} s:\n"
                f"{self.log()[-3000:]}")

  def kill(self):
    if self.proc.poll() is None:
      os.killpg(self.proc.pid, signal.SIGKILL)
      self.proc.wait(timeout=30)
    self._log.close()


@pytest.fixture(scope="module")
def clf_server(models):
  server = _Server(models["root"] / "clf_server.log", models["clf_base"],
                   "--model-name", "lin", "--max-body-bytes", str(_MAX_BODY))
  yield server
  server.kill()


def _alive(server):
  status, answer = _call(server.url)
  assert status == 200, (answer, server.log()[-3000:])
  status, answer = _call(server.url + ":predict", {"instances": [{"x": 1.0}]})
  assert status == 200, (answer, server.log()[-3000:])


def test_start_line_names_model_version_dir_and_url(clf_server, models):
  version = os.path.basename(models["clf_dir"])
  assert clf_server.line == (
      f"Serving lin (version {version}) from {models['clf_dir']} at "
      f"{clf_server.url}")
  assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1/models/lin", clf_server.url)


def test_status_serves_the_newest_version(clf_server, models):
  version = os.path.basename(models["clf_dir"])
  ok = {"model_version_status": [{
      "version": version, "state": "AVAILABLE",
      "status": {"error_code": "OK", "error_message": ""}}]}
  assert _call(clf_server.url) == (200, ok)
  assert _call(f"{clf_server.url}/versions/{version}") == (200, ok)
  status, answer = _call(f"{clf_server.url}/versions/1")
  assert status == 404 and version in answer["error"]


def test_metadata_lists_the_signatures(clf_server, models):
  status, answer = _call(clf_server.url + "/metadata")
  assert status == 200
  assert answer["model_spec"] == {
      "name": "lin", "signature_name": "",
      "version": os.path.basename(models["clf_dir"])}
  defs = answer["metadata"]["signature_def"]["signature_def"]
  assert {"serving_default", "predict", "classification"} <= set(defs)
  assert defs["predict"]["method_name"] == "tensorflow/serving/predict"
  assert defs["classification"]["method_name"] == "tensorflow/serving/classify"
  assert defs["serving_default"]["inputs"]["x"]["dtype"] == "DT_FLOAT"
  assert "probabilities" in defs["predict"]["outputs"]


def test_predict_row_format(clf_server, models):
  expected = _predictions(models["clf"], _X)
  status, answer = _call(clf_server.url + ":predict", {
      "signature_name": "predict", "instances": [{"x": x} for x in _X]})
  assert status == 200, answer
  rows = answer["predictions"]
  assert len(rows) == 4
  for row, want in zip(rows, expected):
    np.testing.assert_allclose(row["probabilities"], want["probabilities"],
                               rtol=1e-5, atol=1e-6)
    assert row["class_ids"] == want["class_ids"].tolist()
  assert [row["class_ids"][0] for row in rows] == _Y  # the model learned
  assert rows[0]["classes"] == ["1"]


def test_predict_row_format_with_bare_values_for_the_one_input(clf_server):
  status, answer = _call(clf_server.url + ":predict", {
      "signature_name": "predict", "instances": _X})
  assert status == 200, answer
  assert [row["class_ids"][0] for row in answer["predictions"]] == _Y


def test_predict_columnar_format(clf_server, models):
  expected = _predictions(models["clf"], _X)
  status, answer = _call(clf_server.url + ":predict", {
      "signature_name": "predict", "inputs": {"x": _X}})
  assert status == 200, answer
  outputs = answer["outputs"]
  np.testing.assert_allclose(outputs["probabilities"],
                             [p["probabilities"] for p in expected],
                             rtol=1e-5, atol=1e-6)
  assert [c[0] for c in outputs["class_ids"]] == _Y


def test_classify_answers_label_score_pairs(clf_server, models):
  expected = _predictions(models["clf"], _X)
  status, answer = _call(clf_server.url + ":classify",
                         {"examples": [{"x": x} for x in _X]})
  assert status == 200, answer
  assert len(answer["results"]) == 4
  for result, want in zip(answer["results"], expected):
    assert [label for label, _ in result] == ["0", "1"]
    np.testing.assert_allclose([score for _, score in result],
                               want["probabilities"], rtol=1e-5, atol=1e-6)


def test_classify_with_a_context_shared_by_the_examples(clf_server):
  status, answer = _call(clf_server.url + ":classify",
                         {"context": {"x": 4.0}, "examples": [{}, {}]})
  assert status == 200, answer
  assert len(answer["results"]) == 2
  assert answer["results"][0] == answer["results"][1]


def test_regress_on_the_binary_classifiers_regression_signature(clf_server,
                                                                models):
  expected = _predictions(models["clf"], _X)
  status, answer = _call(clf_server.url + ":regress", {
      "signature_name": "regression", "examples": [{"x": x} for x in _X]})
  assert status == 200, answer
  np.testing.assert_allclose(answer["results"],
                             [p["logistic"][0] for p in expected],
                             rtol=1e-5, atol=1e-6)


def test_concurrent_requests_each_get_their_own_answer(clf_server, models):
  grid = dict(zip(_GRID, models["clf_grid"]))

  def ask(i):
    xs = [_GRID[(i + k) % len(_GRID)] for k in range(1 + i % 4)]
    if i % 2:
      status, answer = _call(clf_server.url + ":predict", {
          "signature_name": "predict", "instances": [{"x": x} for x in xs]})
      got = [row["probabilities"] for row in answer["predictions"]]
    else:
      status, answer = _call(clf_server.url + ":classify",
                             {"examples": [{"x": x} for x in xs]})
      got = [[score for _, score in result] for result in answer["results"]]
    assert status == 200, answer
    return xs, got

  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    answers = list(pool.map(ask, range(32)))
  for xs, got in answers:
    np.testing.assert_allclose(got, [grid[x]["probabilities"] for x in xs],
                               rtol=1e-5, atol=1e-6)


_BAD_REQUESTS = {
    # id: (path ("~" is /v1/models/lin), body (bytes: sent as is), method,
    #      status, words the error must name)
    "malformed_json": ("~:predict", b'{"instances": [{"x": 1.0}', None, 400,
                       ["JSON"]),
    "body_not_an_object": ("~:predict", [1, 2], None, 400, ["object"]),
    "unknown_signature": ("~:predict", {"signature_name": "nope",
                                        "instances": [{"x": 1.0}]}, None, 404,
                          ["nope", "serving_default"]),
    "wrong_feature_type": ("~:predict", {"instances": [{"x": "abc"}]}, None,
                           400, ["x"]),
    "missing_feature": ("~:predict", {"instances": [{"y": 1.0}]}, None, 400,
                        ["x"]),
    # As TF Serving: each example is a tf.train.Example parsed with the
    # export's spec; x has no default_value (y is no feature: ignored).
    "example_missing_a_required_feature": (
        "~:classify", {"examples": [{"x": 1.0}, {"y": 1.0}]}, None, 400,
        ["example 1", "'x'", "default_value"]),
    "context_repeats_a_feature": (
        "~:classify", {"context": {"x": 1.0}, "examples": [{"x": 2.0}]}, None,
        400, ["x", "context"]),
    "instances_and_inputs": ("~:predict", {"instances": [1.0],
                                           "inputs": [1.0]},
                             None, 400, ["instances", "inputs"]),
    "no_instances": ("~:predict", {"signature_name": "predict"}, None, 400,
                     ["instances"]),
    "classify_on_a_predict_signature": (
        "~:classify", {"signature_name": "predict", "examples": [{"x": 1.0}]},
        None, 400, ["classification"]),
    # 1.5 MB, left unread: the answer must still arrive (lingering close).
    "body_over_the_limit": ("~:predict", {"instances": [{"x": 1.0}] * 10**5},
                            None, 413, [str(_MAX_BODY), "--max-body-bytes"]),
    "unknown_verb": ("~:explain", {"instances": [1.0]}, None, 404,
                     ["explain"]),
    "get_on_predict": ("~:predict", None, "GET", 405, ["POST"]),
    "post_on_status": ("~", {"instances": [1.0]}, "POST", 405, ["GET"]),
    "unknown_model": ("/v1/models/other:predict", {"instances": [1.0]}, None,
                      404, ["other", "lin"]),
    "unknown_version": ("~/versions/7:predict", {"instances": [1.0]}, None,
                        404, ["7"]),
    "unknown_url": ("/v2/health", None, None, 404, ["/v1/models/lin"]),
}


@pytest.mark.parametrize("case", sorted(_BAD_REQUESTS))
def test_bad_request_gets_a_json_error_and_the_server_lives_on(clf_server,
                                                               case):
  path, body, method, want_status, words = _BAD_REQUESTS[case]
  root = clf_server.url.split("/v1/")[0]
  url = root + path.replace("~", "/v1/models/lin")
  if isinstance(body, bytes):
    status, answer = _call(url, raw=body, method=method)
  else:
    status, answer = _call(url, body, method=method)
  assert status == want_status, answer
  assert set(answer) == {"error"}
  for word in words:
    assert word in answer["error"], answer
  _alive(clf_server)


def test_a_client_that_hangs_up_does_not_stop_the_server(clf_server):
  import socket  # pylint: disable=g-import-not-at-top
  host, port = re.match(r"http://([^:]+):(\d+)", clf_server.url).groups()
  with socket.create_connection((host, int(port)), timeout=10) as sock:
    sock.sendall(b"POST /v1/models/lin:predict HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: 100\r\n\r\n{\"inst")
  with socket.create_connection((host, int(port)), timeout=10) as sock:
    sock.sendall(b"GARBAGE\r\n\r\n")
    assert sock.recv(4096).startswith(b"HTTP/1.")
  _alive(clf_server)


def test_regressor_from_its_export_dir_then_sigterm_stops_it(models):
  server = _Server(models["root"] / "reg_server.log", models["reg_dir"],
                   "--model-name", "reg")
  try:
    version = os.path.basename(models["reg_dir"])
    assert f"(version {version}) from {models['reg_dir']}" in server.line
    status, answer = _call(server.url + ":regress",
                           {"examples": [{"x": x} for x in _GRID]})
    assert status == 200, answer
    np.testing.assert_allclose(
        answer["results"], [p["predictions"][0] for p in models["reg_grid"]],
        rtol=1e-5, atol=1e-5)
    status, answer = _call(server.url + ":classify",
                           {"examples": [{"x": 1.0}]})
    assert status == 400 and "regress" in answer["error"]
    os.killpg(server.proc.pid, signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0, server.log()[-3000:]
    with pytest.raises(urllib.error.URLError):
      _OPENER.open(server.url, timeout=10)
  finally:
    server.kill()


def test_make_server_in_process(models):
  server = _server.make_server(models["clf_base"], "lin", port=0)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    assert server.version == os.path.basename(models["clf_dir"])
    status, answer = _call(server.url + ":predict", {
        "signature_name": "predict", "inputs": {"x": _X}})
    assert status == 200 and [c[0] for c in answer["outputs"]["class_ids"]] == _Y
  finally:
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)


def test_cli_with_a_missing_directory_says_so(tmp_path):
  out = subprocess.run(
      [sys.executable, "-m", "estlab", "serve", str(tmp_path / "missing")],
      capture_output=True, text=True, timeout=120,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert out.returncode == 2
  assert "missing" in out.stderr and "Traceback" not in out.stderr
