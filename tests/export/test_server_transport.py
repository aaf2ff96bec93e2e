"""`estlab serve`'s transport (issue #24): bounded, quick, always valid JSON.

Servers are ``make_server`` in a thread (to count their threads and read
their queue) or a real ``python -m estlab serve`` process (for SIGTERM);
clients are raw sockets or http.client to 127.0.0.1, every wait bounded by a
deadline.
"""
import http.client
import json
import math
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import optax
import pytest

import estlab
import estlab.export
from estlab.export import _rest_json
from estlab.export import _server

_DEADLINE_S = 60


@pytest.fixture(scope="module")
def export_base(tmp_path_factory):
  """A LinearClassifier on x=[1,2,3,4] -> [1,1,0,0] (weight < 0), exported."""
  root = tmp_path_factory.mktemp("transport")
  col = estlab.feature_column.numeric_column("x")
  clf = estlab.LinearClassifier([col], model_dir=str(root / "clf"),
                                optimizer=optax.adam(0.1),
                                config=estlab.RunConfig(progress_bar=False))
  clf.train(estlab.inputs.numpy_input_fn(
      {"x": np.array([1., 2., 3., 4.])}, np.array([1, 1, 0, 0]), batch_size=4,
      num_epochs=None, shuffle=False), steps=100)
  spec = estlab.feature_column.make_parse_example_spec([col])
  receiver = estlab.export.build_parsing_serving_input_receiver_fn(spec)
  clf.export_saved_model(str(root / "export"), receiver)
  return str(root / "export")


class _Running:
  """``make_server(...)`` serving in a thread; stopped on exit."""

  def __init__(self, export_base, **kwargs):
    self.server = _server.make_server(export_base, "lin", port=0, **kwargs)
    self.port = self.server.server_address[1]
    self.thread = threading.Thread(target=self.server.serve_forever,
                                   daemon=True)

  def __enter__(self):
    self.thread.start()
    return self

  def __exit__(self, *exc):
    self.server.shutdown()
    self.server.server_close()
    self.thread.join(timeout=_DEADLINE_S)

  def connect(self):
    return socket.create_connection(("127.0.0.1", self.port), timeout=30)

  def request(self, method, path, body=None, headers=None):
    """(status, headers, raw body) on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
    try:
      conn.request(method, path, body, headers or {})
      answer = conn.getresponse()
      return answer.status, dict(answer.getheaders()), answer.read()
    finally:
      conn.close()

  def predict(self, body, content_type="application/json"):
    headers = {} if content_type is None else {"Content-Type": content_type}
    if not isinstance(body, bytes):  # the "predict" signature: class_ids, ...
      body = json.dumps({"signature_name": "predict", **body}).encode()
    status, _, raw = self.request("POST", "/v1/models/lin:predict", body,
                                  headers)
    return status, _strict_json(raw)


def _strict_json(raw: bytes):
  """json.loads as JSON.parse: NaN, Infinity and -Infinity tokens refused."""
  def refuse(token):
    raise ValueError(f"not JSON: {token}")
  return json.loads(raw, parse_constant=refuse)


def _wait_for(condition, what):
  deadline = time.monotonic() + _DEADLINE_S
  while not condition():
    if time.monotonic() > deadline:
      pytest.fail(f"Timed out waiting for {what}")
    time.sleep(0.01)


def _read_until_closed(sock) -> bytes:
  """Everything the server sends until it closes (deadline: _DEADLINE_S)."""
  data = b""
  deadline = time.monotonic() + _DEADLINE_S
  while time.monotonic() < deadline:
    readable, _, _ = select.select([sock], [], [], 0.5)
    if readable:
      chunk = sock.recv(65536)
      if not chunk:
        return data
      data += chunk
  pytest.fail(f"The server did not close the connection; got {data!r}")


def _assert_refused_at_once(sock, word):
  answer = _read_until_closed(sock)
  head, _, body = answer.partition(b"\r\n\r\n")
  assert head.startswith(b"HTTP/1.1 503 "), answer
  assert b"\r\nRetry-After: 1\r\n" in head, answer
  assert word in _strict_json(body)["error"]
  sock.close()


_HEAD = (b"POST /v1/models/lin:predict HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 100\r\n\r\n")


def test_requests_past_pool_and_queue_get_503_and_threads_stay_bounded(
    export_base):
  with _Running(export_base, num_threads=2, max_queued=2,
                body_timeout_s=600) as running:
    server = running.server
    assert running.predict({"instances": [1.0]})[0] == 200
    threads = threading.active_count()
    held = []
    # Two requests whose body stalls hold both handler threads; two more
    # wait in the queue.
    for want in ((1, 0), (2, 0), (2, 1), (2, 2)):
      sock = running.connect()
      sock.sendall(_HEAD + b'{"inst')
      held.append(sock)
      _wait_for(lambda w=want: (server.held(), server.queued()) == w,
                f"(held, queued) connections == {want}")
    # Every request past pool + queue is answered 503 at once.
    for _ in range(20):
      with running.connect() as sock:
        sock.sendall(b"GET /v1/models/lin HTTP/1.1\r\nHost: x\r\n\r\n")
        _assert_refused_at_once(sock, "handler threads")
    assert threading.active_count() <= threads  # no thread per connection
    for sock in held:
      sock.close()
    _wait_for(lambda: (server.held(), server.queued()) == (0, 0),
              "the closed connections to leave pool and queue")
    # Once they hang up, the server answers again.
    status, answer = running.predict({"instances": [4.0]})
    assert status == 200 and answer["predictions"][0]["class_ids"] == [0]


def test_half_sent_request_heads_cost_no_thread(export_base):
  """Slowloris: connections that send half a request head and stop wait in
  the accepting thread (at most max_pending), not in handler threads."""
  with _Running(export_base, num_threads=2, max_pending=50,
                idle_timeout_s=600) as running:
    server = running.server
    assert running.predict({"instances": [1.0]})[0] == 200
    threads = threading.active_count()
    slow = []
    for _ in range(50):
      sock = running.connect()
      sock.sendall(b"POST /v1/models/lin:predict HTTP/1.1\r\nHost: x\r\n")
      slow.append(sock)
    _wait_for(lambda: server.pending() == 50, "50 pending connections")
    assert threading.active_count() <= threads
    for _ in range(10):
      _assert_refused_at_once(running.connect(), "sending their request")
    slow.pop().close()  # one frees a place: a whole request is answered
    _wait_for(lambda: server.pending() == 49, "49 pending connections")
    status, answer = running.predict({"instances": [4.0]})
    assert status == 200 and answer["predictions"][0]["class_ids"] == [0]
    for sock in slow:
      sock.close()


def test_an_idle_keep_alive_connection_is_closed(export_base):
  with _Running(export_base, idle_timeout_s=0.2) as running:
    with running.connect() as sock:
      sock.sendall(b"GET /v1/models/lin HTTP/1.1\r\nHost: x\r\n\r\n")
      answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"Connection: close" not in answer  # kept alive, then timed out


def test_head_is_answered_wherever_get_is(export_base):
  with _Running(export_base) as running:
    for path in ("/v1/models/lin", "/v1/models/lin/metadata"):
      get_status, get_headers, get_body = running.request("GET", path)
      status, headers, body = running.request("HEAD", path)
      assert (status, body) == (200, b"")
      assert get_status == 200 and get_body
      assert headers["Content-Length"] == str(len(get_body))
      assert headers["Content-Type"] == get_headers["Content-Type"]
    status, headers, _ = running.request("HEAD", "/v1/models/lin:predict")
    assert status == 405 and headers["Allow"] == "POST"
    status, headers, _ = running.request("POST", "/v1/models/lin")
    assert status == 405 and headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("content_type", [
    None, "application/json", "application/json; charset=utf-8",
    "application/vnd.api+json", "application/x-www-form-urlencoded"])
def test_json_content_types_are_accepted(export_base, content_type):
  with _Running(export_base) as running:
    status, answer = running.predict({"instances": [{"x": 1.0}]},
                                     content_type=content_type)
    assert status == 200 and answer["predictions"][0]["class_ids"] == [1]


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data"])
def test_other_content_types_get_415(export_base, content_type):
  with _Running(export_base) as running:
    status, answer = running.predict({"instances": [{"x": 1.0}]},
                                     content_type=content_type)
    assert status == 415
    assert content_type in answer["error"]
    assert "application/json" in answer["error"]


def test_a_body_that_ends_early_gets_400_with_both_counts(export_base):
  with _Running(export_base) as running:
    with running.connect() as sock:
      sock.sendall(b"POST /v1/models/lin:predict HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: 100\r\n\r\n{\"inst")
      sock.shutdown(socket.SHUT_WR)  # EOF: the client sends no more
      answer = _read_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert "after 6 of the 100 bytes" in _strict_json(body)["error"]
    assert running.predict({"instances": [1.0]})[0] == 200


def test_a_stalled_body_gets_400_after_the_body_timeout(export_base):
  with _Running(export_base, body_timeout_s=0.3) as running:
    with running.connect() as sock:
      sock.sendall(b"POST /v1/models/lin:predict HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: 100\r\n\r\n{\"inst")
      answer = _read_until_closed(sock)  # the socket stays open
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    error = _strict_json(body)["error"]
    assert "after 6 of the 100 bytes" in error and "0.3 s" in error


def test_non_finite_numbers_in_and_out(export_base):
  with _Running(export_base) as running:
    answers = {}
    for name, raw in (("quoted", b'{"signature_name": "predict", "instances":'
                                 b' [{"x": "Infinity"}, {"x": "-Infinity"}, '
                                 b'{"x": 1.0}]}'),
                      ("bare", b'{"signature_name": "predict", "instances": '
                               b'[{"x": Infinity}, {"x": -Infinity}, '
                               b'{"x": 1.0}]}')):
      status, answers[name] = running.predict(raw)  # strict JSON back
      assert status == 200, answers[name]
    assert answers["quoted"] == answers["bare"]
    rows = answers["quoted"]["predictions"]
    # The weight is negative: x=+inf gives logit -inf, x=-inf gives +inf.
    assert rows[0]["logits"] == ["-Infinity"]
    assert rows[1]["logits"] == ["Infinity"]
    assert rows[0]["class_ids"] == [0] and rows[1]["class_ids"] == [1]
    assert math.isfinite(rows[2]["logits"][0])
    status, answer = _call_classify(running, b'{"examples": [{"x": "-Infinity"'
                                    b'}, {"x": -Infinity}]}')
    assert status == 200 and answer["results"][0] == answer["results"][1]


def _call_classify(running, raw):
  status, _, body = running.request("POST", "/v1/models/lin:classify", raw)
  return status, _strict_json(body)


def test_to_json_writes_non_finite_numbers_as_strings():
  values = np.array([[np.nan, np.inf], [-np.inf, 0.1]], np.float32)
  assert _rest_json.to_json("scores", values) == [["NaN", "Infinity"],
                                                  ["-Infinity", 0.1]]
  assert _rest_json.to_json("v", np.float64(-np.inf)) == "-Infinity"


def test_a_computation_past_the_timeout_gets_504(export_base):
  with _Running(export_base, timeout_ms=1) as running:
    # 50,000 rows of a batch size not seen before: over a millisecond.
    status, answer = running.predict({"inputs": {"x": [1.5] * 50_000}})
    assert status == 504
    assert "--rest-api-timeout-in-ms=1" in answer["error"]
    status, _, _ = running.request("GET", "/v1/models/lin")
    assert status == 200


def test_a_10mb_body_is_answered_and_the_server_stays_up(export_base):
  # Long decimals: 10 MB in 190,000 rows (~50 bytes each).
  rows = ", ".join('{"x": %.40f}' % (i % 40 / 10) for i in range(190_000))
  body = ('{"signature_name": "predict", "instances": [' + rows + "]}").encode()
  assert 9e6 < len(body) <= _server.DEFAULT_MAX_BODY_BYTES
  with _Running(export_base) as running:
    status, answer = running.predict(body)
    assert status == 200, answer
    assert len(answer["predictions"]) == 190_000
    assert answer["predictions"][10]["class_ids"] == [1]  # x=1.0
    assert answer["predictions"][39]["class_ids"] == [0]  # x=3.9
    assert running.predict({"instances": [1.0]})[0] == 200


def test_sigterm_finishes_the_request_in_flight_and_exits_0(export_base,
                                                            tmp_path):
  log_path = tmp_path / "serve.log"
  with open(log_path, "wb") as log:
    proc = subprocess.Popen(
        [sys.executable, "-m", "estlab", "serve", export_base, "--model-name",
         "lin", "--port", "0"], stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  try:
    deadline = time.monotonic() + 180
    port = None
    while port is None:
      match = re.search(r"^Serving .* at http://127\.0\.0\.1:(\d+)/",
                        log_path.read_text(errors="replace"), re.M)
      if match:
        port = int(match[1])
      elif proc.poll() is not None or time.monotonic() > deadline:
        pytest.fail(f"estlab serve did not start:\n{log_path.read_text()}")
      else:
        time.sleep(0.1)
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    busy = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for conn in (idle, busy):  # both accepted and kept alive
      conn.request("GET", "/v1/models/lin")
      assert conn.getresponse().read()
    body = json.dumps({"instances": [{"x": 1.0}] * 20_000})
    busy.request("POST", "/v1/models/lin:predict", body,
                 {"Content-Type": "application/json"})
    os.killpg(proc.pid, signal.SIGTERM)
    answer = busy.getresponse()
    assert answer.status == 200
    assert answer.getheader("Connection") == "close"
    assert len(json.loads(answer.read())["predictions"]) == 20_000
    assert proc.wait(timeout=60) == 0, log_path.read_text()
    with pytest.raises((http.client.HTTPException, OSError)):
      idle.request("GET", "/v1/models/lin")
      idle.getresponse()
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait(timeout=30)
