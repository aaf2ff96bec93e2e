"""Server-side batching (`estlab serve --enable-batching`), as TF Serving's.

Servers are ``make_server`` in a thread (the Batchers' counters are read in
process) or ``python -m estlab serve`` processes (flags, start-up errors);
clients are real concurrent HTTP connections to 127.0.0.1 with a deadline on
every wait. Requests are joined deterministically where it matters: with a
long ``batch_timeout_micros`` a batch closes only when it is full.
"""
import concurrent.futures
import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

import numpy as np
import optax
import pytest

import estlab
import estlab.export
from estlab.export import _batching, _server

_X = [1., 2., 3., 4.]
_Y = [1, 1, 0, 0]
_WAIT_S = 120  # every wait on a request or a process
_LONG_MICROS = 600_000_000  # a batch closes only when full


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
  """A trained binary LinearClassifier on x=[1,2,3,4] -> [1,1,0,0]."""
  root = tmp_path_factory.mktemp("batching")
  col = estlab.feature_column.numeric_column("x")
  clf = estlab.LinearClassifier([col], model_dir=str(root / "clf"),
                                optimizer=optax.adam(0.1),
                                config=estlab.RunConfig(progress_bar=False))
  clf.train(estlab.inputs.numpy_input_fn(
      {"x": np.array(_X)}, np.array(_Y), batch_size=4, num_epochs=None,
      shuffle=False), steps=200)
  return clf, root


def _export(classifier, base, default_batch_size=None):
  clf, root = classifier
  col = estlab.feature_column.numeric_column("x")
  spec = estlab.feature_column.make_parse_example_spec([col])
  receiver = estlab.export.build_parsing_serving_input_receiver_fn(
      spec, default_batch_size)
  return os.fsdecode(clf.export_saved_model(str(root / base), receiver))


@pytest.fixture(scope="module")
def export_dir(classifier):
  """Its export: predict, classify and regress signatures, any batch."""
  return _export(classifier, "export")


@contextlib.contextmanager
def _running(export_dir, batching):
  server = _server.make_server(export_dir, "lin", port=0, batching=batching)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield server
  finally:
    server.shutdown()
    server.server_close()
    thread.join(timeout=_WAIT_S)


def _post(url, body):
  """(status, headers, JSON answer) of one POST on its own connection."""
  parts = urllib.parse.urlsplit(url)
  conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=_WAIT_S)
  try:
    conn.request("POST", parts.path, json.dumps(body),
                 {"Content-Type": "application/json"})
    answer = conn.getresponse()
    return answer.status, dict(answer.getheaders()), json.loads(answer.read())
  finally:
    conn.close()


def _bodies():
  """Requests of each kind the server batches, 1 to 3 rows each."""
  xs = [0.25 * i for i in range(24)]
  bodies = []
  for i in range(0, 24, 2):
    rows = xs[i:i + 1 + i % 3]
    bodies += [
        (":predict", {"signature_name": "predict",
                      "instances": [{"x": x} for x in rows]}),
        (":predict", {"signature_name": "predict", "inputs": {"x": rows}}),
        (":predict", {"instances": rows}),  # serving_default: classify
        (":classify", {"examples": [{"x": x} for x in rows]}),
        (":regress", {"signature_name": "regression",
                      "examples": [{"x": x} for x in rows]})]
  return bodies


def _answers(url, bodies, threads):
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    futures = [pool.submit(_post, url + verb, body) for verb, body in bodies]
    return [f.result(timeout=_WAIT_S) for f in futures]


# ------------------------------------------------------------- parameters


def test_tf_servings_parameters_file_is_read_with_its_wrappers(tmp_path):
  path = tmp_path / "batching.txt"
  path.write_text("max_batch_size { value: 32 }\n"
                  "batch_timeout_micros { value: 1500 }\n"
                  "max_enqueued_batches { value: 100 }\n"
                  "num_batch_threads { value: 3 }\n"
                  'thread_pool_name { value: "pool" }\n'
                  "allowed_batch_sizes: 8\nallowed_batch_sizes: 32\n"
                  "pad_variable_length_inputs: true\n")
  params = _batching.read_parameters(path)
  assert (params.max_batch_size, params.batch_timeout_micros,
          params.max_enqueued_batches, params.num_batch_threads) == (
              32, 1500, 100, 3)
  assert params.buckets == (8, 32)
  assert params.pad_variable_length_inputs
  # TF Serving's defaults without a file (SharedBatchScheduler's).
  default = _batching.from_flags(True, "")
  assert (default.max_batch_size, default.batch_timeout_micros,
          default.max_enqueued_batches, default.num_batch_threads) == (
              1000, 0, 10, os.cpu_count())
  assert default.buckets == (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)
  assert _batching.from_flags(False, "") is None


@pytest.mark.parametrize("text, names", [
    ("max_batch_size { value: 8 }\nmax_batch_sise { value: 8 }",
     ["2:1", "max_batch_sise"]),
    ("max_batch_size: 8", ["max_batch_size", "{ value: 32 }"]),
    ("max_batch_size { value: 8 }\nallowed_batch_sizes: 4",
     ["allowed_batch_sizes=[4]", "8"]),
    ("num_batch_threads { value: 0 }", ["num_batch_threads=0"]),
])
def test_a_bad_parameters_file_is_an_error_naming_field_and_file(
    tmp_path, text, names):
  path = tmp_path / "bad.txt"
  path.write_text(text)
  with pytest.raises(ValueError) as raised:
    _batching.read_parameters(path)
  message = str(raised.value)
  assert str(path) in message and "\n" not in message
  for name in names:
    assert name in message


def test_cli_a_bad_parameters_file_is_a_one_line_error_at_start(
    tmp_path, export_dir):
  bad = tmp_path / "bad.txt"
  bad.write_text("max_batch_size { value: 8 }\nmax_latency { value: 1 }\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  for flags, wanted in [
      (["--enable_batching=true", "--batching_parameters_file", str(bad)],
       ["max_latency", str(bad)]),
      (["--batching-parameters-file", str(bad)], ["--enable-batching"])]:
    out = subprocess.run(
        [sys.executable, "-m", "estlab", "serve", export_dir, "--port", "0",
         *flags], capture_output=True, text=True, timeout=_WAIT_S, env=env)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("estlab serve: error: ")
    for word in wanted:
      assert word in lines[0]


# ---------------------------------------------------------------- serving


def test_batched_answers_equal_unbatched_row_for_row(export_dir, tmp_path):
  """A real `estlab serve --enable_batching` process against one without."""
  params = tmp_path / "batching.txt"
  params.write_text("max_batch_size { value: 8 }\n"
                    "batch_timeout_micros { value: 20000 }\n"
                    "num_batch_threads { value: 1 }\n")
  log = open(tmp_path / "serve.log", "wb")
  proc = subprocess.Popen(
      [sys.executable, "-m", "estlab", "serve", export_dir, "--model-name",
       "lin", "--port", "0", "--enable_batching",
       "--batching_parameters_file", str(params)],
      stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  try:
    deadline = time.monotonic() + _WAIT_S
    url = None
    while url is None:
      text = (tmp_path / "serve.log").read_text(errors="replace")
      match = re.search(r"^Serving .* at (http://\S+)$", text, re.M)
      url = match and match[1]
      assert proc.poll() is None, text[-3000:]
      assert time.monotonic() < deadline, text[-3000:]
      if url is None:
        time.sleep(0.2)
    bodies = _bodies()
    batched = _answers(url, bodies, threads=16)
    with _running(export_dir, None) as plain:
      unbatched = _answers(plain.url, bodies, threads=4)
    for (verb, body), got, want in zip(bodies, batched, unbatched):
      assert got[0] == 200, (verb, body, got)
      assert got[2] == want[2], (verb, body)
    # The model learned: class 1 below 2.5, class 0 above.
    rows = batched[0][2]["predictions"]
    assert [r["class_ids"][0] for r in rows] == [1]
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGTERM)
      proc.wait(timeout=_WAIT_S)
    log.close()


def test_concurrent_requests_are_joined_into_one_call(export_dir):
  params = _batching.BatchingParameters(
      max_batch_size=8, batch_timeout_micros=_LONG_MICROS, num_batch_threads=1)
  with _running(export_dir, params) as server:
    batcher = server.batchers["predict"]
    bodies = [(":predict", {"signature_name": "predict",
                            "instances": [{"x": 0.5 * i}]}) for i in range(8)]
    answers = _answers(server.url, bodies, threads=8)
    assert batcher.calls == 1 and batcher.requests == 8
    assert batcher.batch_sizes == {8}
    want = server.imported.signatures["predict"]({"x": [[0.5 * i] for i in range(8)]})
    for i, (status, _, answer) in enumerate(answers):
      assert status == 200, answer
      (row,) = answer["predictions"]
      assert row["class_ids"] == want["class_ids"][i].tolist()
      assert row["probabilities"] == json.loads(json.dumps(
          want["probabilities"][i].astype(str).astype(float).tolist()))


def test_no_compile_after_start_only_the_buckets_run(export_dir):
  params = _batching.BatchingParameters(max_batch_size=8, num_batch_threads=2)
  with _running(export_dir, params) as server:
    signatures = server.imported.signatures
    compiled = {name: sig.cache_size() for name, sig in signatures.items()}
    assert compiled["predict"] == 4  # 1, 2, 4, 8 rows
    bodies = _bodies() + [(":predict", {"signature_name": "predict",
                                        "instances": [0.1] * n})
                          for n in (5, 6, 7, 8)]
    answers = _answers(server.url, bodies, threads=16)
    assert all(status == 200 for status, _, _ in answers)
    assert {name: sig.cache_size() for name, sig in signatures.items()} == compiled
    for batcher in server.batchers.values():
      assert batcher.batch_sizes <= {1, 2, 4, 8}
    calls = sum(b.calls for b in server.batchers.values())
    assert calls and sum(b.requests for b in server.batchers.values()) == len(bodies)


def test_a_bad_request_in_a_batch_gets_its_own_400(export_dir):
  params = _batching.BatchingParameters(
      max_batch_size=4, batch_timeout_micros=_LONG_MICROS, num_batch_threads=1)
  with _running(export_dir, params) as server:
    bodies = [(":predict", {"signature_name": "predict",
                            "instances": [{"x": x}]}) for x in (1., 2., 4.)]
    bodies.insert(1, (":predict", {"signature_name": "predict",
                                   "instances": [{"x": "four"}]}))
    answers = _answers(server.url, bodies, threads=4)
    assert [a[0] for a in answers] == [200, 400, 200, 200]
    assert "x" in answers[1][2]["error"]
    assert [a[2]["predictions"][0]["class_ids"][0]
            for a in answers if a[0] == 200] == [1, 1, 0]


def test_a_full_queue_gives_503_with_retry_after_at_once(export_dir):
  params = _batching.BatchingParameters(
      max_batch_size=2, batch_timeout_micros=_LONG_MICROS,
      max_enqueued_batches=1, num_batch_threads=1)
  with _running(export_dir, params) as server, \
      concurrent.futures.ThreadPoolExecutor(2) as pool:
    url = server.url + ":predict"
    # One row opens a batch that waits (up to 10 minutes) for a second row.
    first = pool.submit(_post, url, {"instances": [{"x": 1.0}]})
    deadline = time.monotonic() + _WAIT_S
    while True:  # two rows do not fit it and need a second batch: refused
      status, headers, answer = _post(url, {"instances": [{"x": 2.}, {"x": 3.}]})
      if status == 503 or time.monotonic() > deadline:
        break  # (200 while the first request had not yet opened its batch)
      assert status == 200, answer
    assert status == 503, answer
    assert headers["Retry-After"] == "1"
    assert "queue" in answer["error"] and "max_enqueued_batches" in answer["error"]
    assert not first.done()  # refused without waiting for the open batch
    second = pool.submit(_post, url, {"instances": [{"x": 4.0}]})  # fills it
    assert first.result(timeout=_WAIT_S)[0] == 200
    assert second.result(timeout=_WAIT_S)[0] == 200
    assert server.batchers["serving_default"].batch_sizes >= {2}


def test_a_request_over_max_batch_size_is_refused_as_tf_serving(export_dir):
  params = _batching.BatchingParameters(max_batch_size=4, num_batch_threads=1)
  with _running(export_dir, params) as server:
    status, _, answer = _post(server.url + ":predict",
                              {"instances": [{"x": 1.0}] * 5})
  assert status == 400
  assert "Task size 5 is larger than maximum input batch size 4" in answer["error"]


def test_large_batch_splitting_runs_a_request_over_several_batches(export_dir):
  sig = estlab.export.load(export_dir).signatures["predict"]
  params = _batching.BatchingParameters(
      max_batch_size=16, enable_large_batch_splitting=True,
      max_execution_batch_size=4, num_batch_threads=2)
  batcher = _batching.Batcher(sig, params)
  try:
    assert sig.cache_size() == 3  # 1, 2, 4 rows
    xs = [[0.3 * i] for i in range(11)]
    got = batcher({"x": xs})
    want = sig({"x": xs})
    assert batcher.calls == 3 and batcher.batch_sizes == {4}
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])
  finally:
    batcher.close()


def test_signatures_with_a_fixed_batch_are_served_without_batching(
    classifier):
  fixed = _export(classifier, "fixed_export", default_batch_size=2)
  params = _batching.BatchingParameters(max_batch_size=8)
  assert not any(_batching.batchable(sig) for sig in
                 estlab.export.load(fixed).signatures.values())
  with _running(fixed, params) as server:
    assert server.batchers == {}
    status, _, answer = _post(server.url + ":predict", {
        "signature_name": "predict", "instances": [{"x": 1.0}, {"x": 4.0}]})
  assert status == 200, answer
  assert [row["class_ids"][0] for row in answer["predictions"]] == [1, 0]
