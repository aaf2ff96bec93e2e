"""`estlab serve` with several models and versions: TF Serving's model config.

Servers are real ``python -m estlab serve`` processes (port 0, the start line
parsed, a deadline on every wait, killed by process group); clients are
urllib threads to 127.0.0.1. Two versions of one regressor differ in their
weights (trained 5 and 300 steps), so an answer shows which version gave it.
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
from estlab.export import _format
from estlab.export import _model_config, _registry

_X = [1., 2., 3., 4.]
_DEADLINE_S = 180
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_ENV = dict(os.environ, JAX_PLATFORMS="cpu")


def _call(url, body=None, *, timeout=60):
  """(HTTP status, decoded JSON answer)."""
  data = None if body is None else json.dumps(body).encode()
  request = urllib.request.Request(url, data=data,
                                   headers={"Content-Type": "application/json"})
  try:
    with _OPENER.open(request, timeout=timeout) as answer:
      return answer.status, json.loads(answer.read())
  except urllib.error.HTTPError as e:
    with e:
      return e.code, json.loads(e.read())


def _regress(url):
  status, answer = _call(url + ":regress", {"examples": [{"x": x} for x in _X]})
  assert status == 200, answer
  return answer["results"]


def _wait_for(what, condition, server=None):
  """Polls ``condition()`` until true; fails after the deadline."""
  deadline = time.monotonic() + _DEADLINE_S
  while time.monotonic() < deadline:
    if condition():
      return
    time.sleep(0.1)
  log = server.log()[-3000:] if server else ""
  pytest.fail(f"{what} did not happen in {_DEADLINE_S} s\n{log}")


def _copy_version(source, base, version):
  """Copies an export in as ``base/version``, whole (a temp name, renamed)."""
  temp = os.path.join(base, f"copying-{version}")
  shutil.copytree(source, temp)
  os.rename(temp, os.path.join(base, str(version)))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
  """One LinearRegressor exported after 5 and after 300 steps, and its answers."""
  root = tmp_path_factory.mktemp("models")
  col = estlab.feature_column.numeric_column("x")
  est = estlab.LinearRegressor([col], model_dir=str(root / "model"),
                               optimizer=optax.adam(0.1),
                               config=estlab.RunConfig(progress_bar=False))
  receiver = estlab.export.build_parsing_serving_input_receiver_fn(
      estlab.feature_column.make_parse_example_spec([col]))
  found = {}
  for version, steps in ((1, 5), (2, 295)):
    est.train(estlab.inputs.numpy_input_fn(
        {"x": np.array(_X)}, np.array([2., 4., 6., 8.], np.float32),
        batch_size=4, num_epochs=None, shuffle=False), steps=steps)
    path = os.fsdecode(est.export_saved_model(str(root / f"raw{version}"),
                                              receiver))
    found[version] = path
    found[f"answer{version}"] = [p["predictions"][0] for p in est.predict(
        estlab.inputs.numpy_input_fn({"x": np.array(_X)}, batch_size=4,
                                     shuffle=False))]
  assert not np.allclose(found["answer1"], found["answer2"], atol=0.1)
  found["root"] = root
  return found


def _same(answer, want):
  return np.allclose(answer, want, rtol=1e-4, atol=1e-4)


class _Server:
  """``python -m estlab serve ARGS --port 0`` in its own process group."""

  def __init__(self, log_path, *args):
    self.log_path = log_path
    self._log = open(log_path, "wb")
    self.proc = subprocess.Popen(
        [sys.executable, "-m", "estlab", "serve", *args, "--port", "0"],
        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        env=_ENV)
    self.urls = {}
    deadline = time.monotonic() + _DEADLINE_S
    while time.monotonic() < deadline and not self.urls:
      if self.proc.poll() is not None:
        self.kill()
        pytest.fail(f"estlab serve exited with {self.proc.returncode}:\n"
                    f"{self.log()[-3000:]}")
      time.sleep(0.2)
      self.lines = re.findall(r"^Serving (\S+) \(version (\S+)\) from (\S+) "
                              r"at (http://\S+)$", self.log(), re.M)
      if self.lines and _call(self.lines[0][3])[0] == 200:
        self.urls = {name: url for name, _, _, url in self.lines}
    if not self.urls:
      self.kill()
      pytest.fail(f"estlab serve did not start:\n{self.log()[-3000:]}")

  def log(self):
    with open(self.log_path, errors="replace") as f:
      return f.read()

  def kill(self):
    if self.proc.poll() is None:
      os.killpg(self.proc.pid, signal.SIGKILL)
      self.proc.wait(timeout=30)
    self._log.close()


def _status(url):
  status, answer = _call(url)
  assert status == 200, answer
  return {s["version"]: s["state"] for s in answer["model_version_status"]}


_TEXT_CONFIG = """
model_config_list {{
  config {{
    name: "a"
    base_path: "{a}"
    model_platform: "tensorflow"
    model_version_policy {{ all {{}} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
  config {{
    name: "b"
    base_path: "{b}"
    model_version_policy {{ specific {{ versions: 1 }} }}
  }}
}}
"""


def _json_config(a, b):
  return json.dumps({"model_config_list": {"config": [
      {"name": "a", "base_path": a, "model_platform": "tensorflow",
       "model_version_policy": {"all": {}},
       "version_labels": {"stable": 1, "canary": "2"}},
      {"name": "b", "basePath": b,
       "modelVersionPolicy": {"specific": {"versions": ["1"]}}}]}})


@pytest.fixture(scope="module")
def bases(exports):
  """Base ``a`` with versions 1 and 2; base ``b`` with version 1 and 2."""
  root = exports["root"]
  for name in ("a", "b"):
    os.makedirs(root / name)
    _copy_version(exports[1], root / name, 1)
    _copy_version(exports[2], root / name, 2)
  return {"a": str(root / "a"), "b": str(root / "b")}


def test_json_and_text_configs_give_the_same_registry(bases, tmp_path):
  text = tmp_path / "models.config"
  text.write_text(_TEXT_CONFIG.format(**bases))
  as_json = tmp_path / "models.json"
  as_json.write_text(_json_config(**bases))
  configs = _model_config.read_config_file(text)
  assert configs == _model_config.read_config_file(as_json)
  assert configs == [
      _model_config.ModelConfig("a", bases["a"], "all",
                                labels={"stable": 1, "canary": 2}),
      _model_config.ModelConfig("b", bases["b"], "specific", versions=(1,))]
  statuses = []
  for path in (text, as_json):
    registry = _registry.Registry.from_config_file(path)
    registry.start()
    statuses.append([registry.status(n) for n in registry.names])
    assert registry.resolve("a", label="stable").version == "1"
    assert registry.resolve("b").version == "1"
  assert statuses[0] == statuses[1]
  assert [s["state"] for s in statuses[0][0]["model_version_status"]] == [
      "AVAILABLE", "AVAILABLE"]


def test_two_models_versions_and_labels_over_http(exports, bases, tmp_path):
  config = tmp_path / "models.config"
  config.write_text(_TEXT_CONFIG.format(**bases))
  server = _Server(tmp_path / "server.log", "--model_config_file", str(config))
  try:
    assert sorted(server.urls) == ["a", "b"]
    assert [line[1] for line in server.lines] == ["2", "1"]  # newest of each
    a, b = server.urls["a"], server.urls["b"]
    assert _same(_regress(a), exports["answer2"])              # newest
    assert _same(_regress(a + "/versions/1"), exports["answer1"])
    assert _same(_regress(a + "/labels/stable"), exports["answer1"])
    assert _same(_regress(a + "/labels/canary"), exports["answer2"])
    assert _same(_regress(b), exports["answer1"])              # specific: 1
    status, answer = _call(a)
    assert status == 200 and answer == {"model_version_status": [
        {"version": v, "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}}
        for v in ("2", "1")]}
    assert _status(a + "/labels/stable") == {"1": "AVAILABLE"}
    status, answer = _call(a + "/labels/canary/metadata")
    assert status == 200 and answer["model_spec"]["version"] == "2"
    # As TF Serving: an unknown label is INVALID_ARGUMENT (400), an unloaded
    # version or unknown model NOT_FOUND (404).
    status, answer = _call(a + "/labels/nope:regress", {"examples": [{"x": 1.}]})
    assert status == 400
    assert "Unrecognized servable version label: nope" in answer["error"]
    status, answer = _call(b + "/versions/2:regress", {"examples": [{"x": 1.}]})
    assert status == 404 and "Specific(b, 2)" in answer["error"]
    status, answer = _call(b + "/versions/2")
    assert status == 404 and "Could not find version 2 of model b" in answer["error"]
    root = a.split("/v1/")[0]
    status, answer = _call(root + "/v1/models/c:regress", {"examples": [{"x": 1.}]})
    assert status == 404 and "'a'" in answer["error"] and "'b'" in answer["error"]
  finally:
    server.kill()


def test_a_new_version_is_served_under_load_and_no_request_fails(exports, tmp_path):
  base = tmp_path / "base"
  base.mkdir()
  _copy_version(exports[1], base, 1)
  server = _Server(tmp_path / "server.log", str(base), "--model-name", "m",
                   "--file-system-poll-wait-seconds", "0.2")
  stop = threading.Event()
  seen = {"1": 0, "2": 0}
  failures = []

  def hammer():
    for _ in range(20000):  # bounded; ends when stop is set
      if stop.is_set():
        return
      try:
        status, answer = _call(url + ":regress",
                               {"examples": [{"x": x} for x in _X]}, timeout=60)
      except OSError as e:
        failures.append(repr(e))
        continue
      if status != 200:
        failures.append((status, answer))
      elif _same(answer["results"], exports["answer2"]):
        seen["2"] += 1
      elif _same(answer["results"], exports["answer1"]):
        seen["1"] += 1
      else:
        failures.append(("neither version's answer", answer))

  url = server.urls["m"]
  try:
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
      clients = [pool.submit(hammer) for _ in range(3)]
      _wait_for("answers from version 1", lambda: seen["1"] >= 20, server)
      _copy_version(exports[2], base, 2)  # dropped in while clients hammer
      _wait_for("answers from version 2", lambda: seen["2"] >= 20, server)
      stop.set()
      for client in clients:
        client.result(timeout=120)
    assert failures == []
    assert _same(_regress(url), exports["answer2"])
    # latest 1: version 1 is unloaded (END, as TF Serving lists it), not served.
    assert _status(url) == {"2": "AVAILABLE", "1": "END"}
    status, answer = _call(url + "/versions/1:regress", {"examples": [{"x": 1.}]})
    assert status == 404 and "Specific(m, 1)" in answer["error"]
    assert "Loaded model 'm' version 2" in server.log()
  finally:
    stop.set()
    server.kill()


def test_damaged_and_half_written_versions_are_never_served(exports, tmp_path):
  base = tmp_path / "base"
  base.mkdir()
  _copy_version(exports[1], base, 1)
  server = _Server(tmp_path / "server.log", str(base), "--model-name", "m",
                   "--file_system_poll_wait_seconds", "0.2")
  url = server.urls["m"]
  try:
    # Half-written: files copied one by one, the description not yet there.
    half = base / "3"
    shutil.copytree(exports[2], half,
                    ignore=shutil.ignore_patterns(_format.DESCRIPTION))
    # Damaged: a whole copy with one byte of its module flipped.
    damaged = base / "copying-2"
    shutil.copytree(exports[2], damaged)
    module = damaged / _format.MODULE
    data = bytearray(module.read_bytes())
    data[len(data) // 2] ^= 0xFF
    module.write_bytes(bytes(data))
    os.rename(damaged, base / "2")
    _wait_for("version 2 failing to load",
              lambda: _status(url).get("2") == "END", server)
    status, answer = _call(url + "/versions/2")
    assert answer["model_version_status"][0]["status"]["error_code"] == "DATA_LOSS"
    assert "damaged" in answer["model_version_status"][0]["status"]["error_message"]
    assert _status(url) == {"2": "END", "1": "AVAILABLE"}
    assert _same(_regress(url), exports["answer1"])  # the old one still serves
    assert "Loading model 'm' version 2" in server.log()
    # The half-written version completes: it is loaded then, and served.
    shutil.copy(os.path.join(exports[2], _format.DESCRIPTION), half)
    _wait_for("version 3 served",
              lambda: _status(url).get("3") == "AVAILABLE", server)
    assert _same(_regress(url), exports["answer2"])
    assert _status(url)["1"] == "END"
    assert server.proc.poll() is None
  finally:
    server.kill()


def test_the_config_file_is_read_again(exports, bases, tmp_path):
  config = tmp_path / "models.config"
  one = 'model_config_list {{ config {{ name: "{n}" base_path: "{p}" }} }}'
  config.write_text(one.format(n="a", p=bases["a"]))
  server = _Server(tmp_path / "server.log", "--model-config-file", str(config),
                   "--model-config-file-poll-wait-seconds", "0.2")
  try:
    a = server.urls["a"]
    b = a[:-1] + "b"
    assert _same(_regress(a), exports["answer2"])
    temp = tmp_path / "models.config.new"
    temp.write_text("{" + "not a config")  # a bad edit: logged, models kept
    os.replace(temp, config)
    _wait_for("the bad config logged",
              lambda: "Keeping the current models" in server.log(), server)
    assert _same(_regress(a), exports["answer2"])
    temp.write_text(one.format(n="b", p=bases["b"]))
    os.replace(temp, config)
    _wait_for("model b served", lambda: _call(b)[0] == 200 and all(
        s["state"] == "AVAILABLE" for s in _call(b)[1]["model_version_status"]),
              server)
    assert _same(_regress(b), exports["answer2"])
    status, answer = _call(a + ":regress", {"examples": [{"x": 1.}]})
    assert status == 404 and "'b'" in answer["error"]
    assert _status(a) == {"2": "END"}
  finally:
    server.kill()


@pytest.mark.parametrize("text, words", [
    ('model_config_list { config { name: "m" base_path: "/x" '
     'model_platform: "pytorch" } }',
     ["model_config_list.config[0].model_platform", "'pytorch'"]),
    ('model_config_list { config { nme: "m" } }', ["nme"]),
    ('{"model_config_list": {"config": [{"name": "a b", "base_path": "/x"}]}}',
     ["model_config_list.config[0].name", "'a b'"]),
])
def test_a_bad_config_file_is_a_one_line_error(tmp_path, text, words):
  config = tmp_path / "bad.config"
  config.write_text(text)
  out = subprocess.run(
      [sys.executable, "-m", "estlab", "serve", "--model-config-file",
       str(config)], capture_output=True, text=True, timeout=120, env=_ENV)
  assert out.returncode == 2, out.stderr
  (line,) = out.stderr.strip().splitlines()
  assert line.startswith(f"estlab serve: error: {config}: "), line
  for word in words:
    assert word in line


def test_a_model_with_no_version_fails_at_start(tmp_path):
  config = tmp_path / "models.config"
  config.write_text(f'model_config_list {{ config {{ name: "m" base_path: '
                    f'"{tmp_path / "missing"}" }} }}')
  with pytest.raises(_format.NotAnExportError, match="Model 'm'.*missing"):
    _registry.Registry.from_config_file(config).start()


def test_latest_two_unloads_the_oldest_and_a_held_version_still_runs(
    exports, tmp_path):
  base = tmp_path / "base"
  base.mkdir()
  for version in (1, 2):
    _copy_version(exports[version], base, version)
  config = tmp_path / "models.config"
  config.write_text(f'model_config_list {{ config {{ name: "m" base_path: '
                    f'"{base}" model_version_policy {{ latest {{ '
                    'num_versions: 2 } } } }')
  registry = _registry.Registry.from_config_file(
      config, file_system_poll_wait_seconds=0)
  registry.start()
  held = registry.resolve("m", "1")  # a request in flight on version 1
  _copy_version(exports[2], base, 3)
  registry.poll()
  assert [(s["version"], s["state"]) for s in
          registry.status("m")["model_version_status"]] == [
              ("3", "AVAILABLE"), ("2", "AVAILABLE"), ("1", "END")]
  with pytest.raises(_registry.ServableNotFoundError, match="Specific"):
    registry.resolve("m", "1")
  assert registry.resolve("m").version == "3"
  answer = held.imported.signatures["regression"](x=_X)  # finishes on it
  assert _same(answer["outputs"][:, 0], exports["answer1"])


def test_with_batching_each_version_is_warmed_at_load_and_unloading_keeps_answering(
    exports, tmp_path):
  """Batching on: every loaded version has its own Batchers, compiled before
  it is published; an unloaded version's Batcher, still held by a request,
  answers it directly."""
  from estlab.export import _batching  # pylint: disable=g-import-not-at-top

  base = tmp_path / "base"
  base.mkdir()
  _copy_version(exports[1], base, 1)
  registry = _registry.Registry.single(
      str(base), "m", file_system_poll_wait_seconds=0,
      batching=_batching.BatchingParameters(max_batch_size=8))
  registry.start()
  held = registry.resolve("m")
  assert held.batchers and all(b.batch_sizes == set() and b.calls == 0
                               for b in held.batchers.values())
  _copy_version(exports[2], base, 2)
  registry.poll()
  new = registry.resolve("m")
  assert new.version == "2" and new.batchers
  compiled = new.batchers["regression"].signature.cache_size()
  assert compiled == 4  # 1, 2, 4, 8 rows, before the version was published
  answer = new.batchers["regression"]({"x": _X})
  assert _same(answer["outputs"][:, 0], exports["answer2"])
  assert new.batchers["regression"].signature.cache_size() == compiled
  # Version 1 was unloaded (latest 1); a request holding it still answers.
  assert [(s["version"], s["state"]) for s in registry.status("m")[
      "model_version_status"]] == [("2", "AVAILABLE"), ("1", "END")]
  old = held.batchers["regression"]({"x": _X})
  assert _same(old["outputs"][:, 0], exports["answer1"])
  registry.close()
