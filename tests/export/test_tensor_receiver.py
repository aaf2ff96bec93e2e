"""TensorServingInputReceiver: a model_fn that takes one bare array, exported,
loaded, and served over REST (in process and by `estlab serve`), as TF's."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import types
import urllib.request

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from estlab.export import _server

_W = np.array([1.0, -2.0, 0.5], np.float32)
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _bare_model_fn(features, labels, mode):
  """Reads ``features`` as one array, as numpy_input_fn(x=array) feeds it."""
  if isinstance(features, dict):
    raise TypeError(f"expected one array, got a dict of {sorted(features)}")
  pred = nn.Dense(1, name="linear")(features)[:, 0]
  if mode == estlab.ModeKeys.PREDICT:
    return estlab.EstimatorSpec(mode, predictions={"y": pred})
  loss = jnp.mean((pred - labels) ** 2)
  return estlab.EstimatorSpec(mode, loss=loss, train_op=optax.sgd(0.1))


def _dict_model_fn(features, labels, mode):
  pred = nn.Dense(1, name="linear")(features["x"])[:, 0]
  if mode == estlab.ModeKeys.PREDICT:
    return estlab.EstimatorSpec(mode, predictions={"y": pred})
  return estlab.EstimatorSpec(mode, loss=jnp.mean((pred - labels) ** 2),
                              train_op=optax.sgd(0.1))


def _post(url, body):
  request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                   headers={"Content-Type": "application/json"})
  with _OPENER.open(request, timeout=60) as answer:
    return answer.status, json.loads(answer.read())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  root = tmp_path_factory.mktemp("tensor_receiver")
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 3)).astype(np.float32)
  y = x @ _W
  estimator = estlab.Estimator(_bare_model_fn, model_dir=str(root / "model"),
                               config=estlab.RunConfig(progress_bar=False))
  estimator.train(estlab.inputs.numpy_input_fn(
      x, y, batch_size=16, num_epochs=None, shuffle=False), steps=60)
  sample = np.zeros((1, 3), np.float32)
  path = estimator.export_saved_model(
      str(root / "export"),
      lambda: estlab.export.TensorServingInputReceiver(sample, {"x": sample}))
  expected = np.array([p["y"] for p in estimator.predict(
      estlab.inputs.numpy_input_fn(x[:5], batch_size=5, shuffle=False))])
  return types.SimpleNamespace(estimator=estimator, x=x, y=y, root=root,
                               path=os.fsdecode(path), expected=expected)


def test_the_model_fn_gets_the_bare_array_and_the_export_predicts_as_it(trained):
  imported = estlab.export.load(trained.path)
  sig = imported.signatures["serving_default"]
  assert list(sig.inputs) == ["x"]  # the receiver tensor's name
  out = sig({"x": trained.x[:5]})
  np.testing.assert_allclose(out["y"], trained.expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["y"], trained.y[:5], atol=0.05)  # it learned
  # Batches of other sizes too (the module's batch is symbolic).
  assert sig({"x": trained.x[:3].tolist()})["y"].shape == (3,)


def test_the_description_names_the_bare_input(trained):
  with open(os.path.join(trained.path, "estlab_export.json")) as f:
    receiver = json.load(f)["receiver"]
  assert receiver["kind"] == "raw" and receiver["tensor"] == "x"
  assert receiver["inputs"] == {"x": {"kind": "array", "dtype": "float32",
                                      "shape": [None, 3]}}


def test_a_bare_receiver_tensor_is_named_input_as_tfs(trained, tmp_path):
  spec = estlab.export.ArraySpec((None, 3), "float32")
  receiver = estlab.export.TensorServingInputReceiver(spec, spec)
  assert receiver.feature_key == "input" and receiver.features == spec
  assert list(receiver.receiver_tensors) == ["input"]
  path = trained.estimator.export_saved_model(str(tmp_path), lambda: receiver)
  out = estlab.export.load(path).signatures["predict"]({"input": trained.x[:5]})
  np.testing.assert_allclose(out["y"], trained.expected, rtol=1e-5, atol=1e-6)


def test_a_fixed_len_feature_is_parsed_per_example_then_given_bare(
    trained, tmp_path):
  receiver_fn = lambda: estlab.export.TensorServingInputReceiver(  # noqa: E731
      estlab.export.FixedLenFeature((3,), "float32", default_value=0.0))
  path = trained.estimator.export_saved_model(str(tmp_path), receiver_fn)
  sig = estlab.export.load(path).signatures["serving_default"]
  rows = trained.x[:2].tolist()
  out = sig({"input": rows + [None]})  # the default for a missing example
  np.testing.assert_allclose(out["y"][:2], trained.expected[:2], rtol=1e-5,
                             atol=1e-6)
  assert abs(out["y"][2] - sig({"input": [[0.0, 0.0, 0.0]]})["y"][0]) < 1e-6


def test_rest_predict_takes_rows_and_columns_of_the_one_input(trained):
  server = _server.make_server(trained.path, "bare", port=0)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    status, answer = _post(server.url + ":predict",
                           {"instances": trained.x[:5].tolist()})
    assert status == 200, answer
    np.testing.assert_allclose(answer["predictions"], trained.expected,
                               rtol=1e-5, atol=1e-6)
    status, answer = _post(server.url + ":predict",
                           {"inputs": {"x": trained.x[:2].tolist()}})
    assert status == 200
    np.testing.assert_allclose(answer["outputs"], trained.expected[:2],
                               rtol=1e-5, atol=1e-6)
  finally:
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)


def test_estlab_serve_cli_serves_it(trained):
  log_path = trained.root / "serve.log"
  with open(log_path, "wb") as log:
    proc = subprocess.Popen(
        [sys.executable, "-m", "estlab", "serve", trained.path, "--model-name",
         "bare", "--port", "0"], stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  try:
    deadline, url = time.monotonic() + 180, None
    while url is None:
      match = re.search(r"^Serving .* at (http://\S+)$", log_path.read_text(),
                        re.M)
      if match:
        url = match[1]
      elif proc.poll() is not None or time.monotonic() > deadline:
        pytest.fail(f"estlab serve did not start:\n{log_path.read_text()}")
      else:
        time.sleep(0.2)
    status, answer = _post(url + ":predict",
                           {"instances": trained.x[:3].tolist()})
    assert status == 200, answer
    np.testing.assert_allclose(answer["predictions"], trained.expected[:3],
                               rtol=1e-5, atol=1e-6)
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.parametrize("args,error,match", [
    (({"x": np.zeros((1, 3))},), ValueError, "not a dict"),
    ((estlab.export.VarLenFeature("float32"),), ValueError, "variable-length"),
    ((estlab.export.FixedLenFeature((1,), "string"),), TypeError, "strings"),
    ((np.zeros((1, 3)), {"a": 1, "b": 2}), ValueError, "must name the one input"),
    ((np.array([["a"]]),), TypeError, "strings"),
])
def test_receiver_checks_its_arguments(args, error, match):
  with pytest.raises(error, match=match):
    estlab.export.TensorServingInputReceiver(*args)


def test_a_dict_model_fn_given_the_bare_array_says_use_serving_input_receiver(
    tmp_path):
  estimator = estlab.Estimator(_dict_model_fn, model_dir=str(tmp_path / "m"),
                               config=estlab.RunConfig(progress_bar=False))
  x = np.ones((4, 3), np.float32)
  estimator.train(estlab.inputs.numpy_input_fn(
      {"x": x}, x[:, 0], batch_size=4, num_epochs=1, shuffle=False))
  with pytest.raises(ValueError, match="ServingInputReceiver\\(\\{name"):
    estimator.export_saved_model(
        str(tmp_path / "e"),
        lambda: estlab.export.TensorServingInputReceiver(x[:1], {"x": x[:1]}))


def test_a_bare_array_model_fn_given_a_dict_says_use_the_tensor_receiver(
    trained, tmp_path):
  with pytest.raises(ValueError, match="TensorServingInputReceiver"):
    trained.estimator.export_saved_model(
        str(tmp_path), estlab.export.build_raw_serving_input_receiver_fn(
            {"x": trained.x[:1]}))


def test_a_premade_estimator_refuses_it(tmp_path):
  col = estlab.feature_column.numeric_column("x")
  estimator = estlab.LinearRegressor([col], model_dir=str(tmp_path / "m"),
                                     config=estlab.RunConfig(progress_bar=False))
  estimator.train(estlab.inputs.numpy_input_fn(
      {"x": np.ones(4, np.float32)}, np.ones(4, np.float32), batch_size=4,
      num_epochs=1, shuffle=False))
  with pytest.raises(ValueError, match="feature columns"):
    estimator.export_saved_model(
        str(tmp_path / "e"), lambda: estlab.export.TensorServingInputReceiver(
            np.zeros((1, 1), np.float32)))
