"""bench/serving.py and its load generator: they run and report what they claim.

The bench runs at smoke size in a subprocess (its servers are real `estlab
serve` processes it starts and kills); the load generator is checked against a
standard-library HTTP server in a thread that answers 200, answers 503 and
closes, or closes without answering. No speed is asserted anywhere.
"""
import http.server
import json
import os
import subprocess
import sys
import threading

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
_BENCH = os.path.join(_ROOT, "bench")
sys.path.insert(0, _BENCH)
import _http_load  # pylint: disable=wrong-import-position

_SMOKE = ["--models", "linear", "--requests", "12", "--seconds", "1",
          "--warmup-s", "0.1", "--concurrency", "1,4", "--rows", "10",
          "--rows-concurrency", "2", "--memory-body-mb", "0.1",
          "--memory-concurrency", "2", "--after-s", "0.2", "--slowloris",
          "16", "--in-process-s", "0.2"]
_LOAD_KEYS = {"req_per_s", "rows_per_s", "p50_ms", "p99_ms", "mean_ms",
              "max_ms", "statuses", "connection_errors", "pct_of_in_process",
              "server_cpu_cores", "client_cpu_cores", "client_processes",
              "load_avg_1m", "requests", "wall_s"}


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                 if p]), JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, os.path.join(_BENCH, "serving.py"), *_SMOKE,
       "--workdir", str(tmp_path_factory.mktemp("bench"))],
      capture_output=True, text=True, env=env, timeout=900, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  return [json.loads(line) for line in out.stdout.splitlines()]


def test_every_case_is_one_json_line(lines):
  cases = [line["case"] for line in lines]
  assert cases[0] == "config"
  assert cases.count("in_process") == 2  # 1 and --rows rows per call
  assert cases.count("load") == 6  # (c1, c4 one row, c2 ten rows) x batching
  assert cases[-2:] == ["memory", "slowloris"]


def test_in_process_reference(lines):
  refs = {l["rows_per_request"]: l for l in lines if l["case"] == "in_process"}
  assert set(refs) == {1, 10}
  for ref in refs.values():
    assert ref["calls"] >= 1 and ref["rows_per_s"] > 0


def test_load_lines_with_batching_off_answer_every_request(lines):
  loads = [l for l in lines if l["case"] == "load" and not l["batching"]]
  assert {(l["rows_per_request"], l["concurrency"]) for l in loads} == {
      (1, 1), (1, 4), (10, 2)}
  for line in loads:
    assert line["status"] == "ok"
    assert _LOAD_KEYS <= set(line)
    assert line["statuses"] == {"200": line["requests"]}
    assert 1 <= line["requests"] <= 12
    assert line["p50_ms"] <= line["p99_ms"] <= line["max_ms"]
    assert line["pct_of_in_process"] > 0


def test_batching_on_is_measured_or_reported_unsupported(lines):
  supported = lines[0]["batching_supported"]
  loads = [l for l in lines if l["case"] == "load" and l["batching"]]
  assert len(loads) == 3
  for line in loads:
    if supported:
      assert line["status"] == "ok" and _LOAD_KEYS <= set(line)
      assert line["statuses"] == {"200": line["requests"]}
    else:
      assert line["status"] == "unsupported"
      assert "--enable-batching" in line["reason"]


def test_memory_line(lines):
  (memory,) = [l for l in lines if l["case"] == "memory"]
  assert memory["one"]["statuses"] == {"200": 1}
  assert memory["concurrent"]["statuses"] == {"200": 2}
  assert memory["rows_per_body"] > 100 and memory["body_mb"] <= 0.1
  assert 0 < memory["idle_mb"] <= memory["peak_one_mb"]
  assert memory["after_mb"] > 0 and memory["peak_concurrent_mb"] > 0


def test_slowloris_line(lines):
  (slow,) = [l for l in lines if l["case"] == "slowloris"]
  assert slow["connections_open"] == 16
  assert slow["normal_request_status"] == 200
  assert slow["threads_peak"] >= slow["threads_with_connections"] >= 1
  assert slow["threads_idle"] >= 1 and slow["threads_after_close"] >= 1


# ------------------------------------------------------- the load generator


class _Handler(http.server.BaseHTTPRequestHandler):
  protocol_version = "HTTP/1.1"

  def do_POST(self):  # pylint: disable=invalid-name
    self.rfile.read(int(self.headers["Content-Length"]))
    if self.path == "/drop":
      self.close_connection = True  # no answer at all
      return
    busy = self.path == "/busy"
    body = b'{"error": "busy"}' if busy else b'{"predictions": [1]}'
    self.send_response(503 if busy else 200)
    self.send_header("Content-Length", str(len(body)))
    if busy:
      self.send_header("Connection", "close")
      self.close_connection = True
    self.end_headers()
    self.wfile.write(body)

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    pass


@pytest.fixture(scope="module")
def stub_port():
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
  server.daemon_threads = True
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield server.server_address[1]
  server.shutdown()
  server.server_close()
  thread.join(timeout=10)


def _run(port, path, **kwargs):
  request = _http_load.request_bytes(path, b'{"instances": [1.0]}')
  options = dict(connections=3, requests=30, seconds=30, timeout_s=10)
  options.update(kwargs)
  return _http_load.run_connections("127.0.0.1", port, request, **options)


def test_load_generator_counts_answers_and_latencies(stub_port):
  result = _run(stub_port, "/ok")
  assert result["statuses"] == {"200": 30}
  assert len(result["latencies_ms"]) == 30 and result["sent"] == 30
  assert result["connection_errors"] == {}
  assert all(ms > 0 for ms in result["latencies_ms"])


def test_load_generator_counts_refusals_and_reconnects_after_close(stub_port):
  result = _run(stub_port, "/busy")
  assert result["statuses"] == {"503": 30}  # each on a fresh connection
  assert result["latencies_ms"] == []  # latencies are of 200s only
  assert result["samples"] == {"503": '{"error": "busy"}'}
  assert result["connection_errors"] == {}  # closed after a whole answer


def test_load_generator_counts_connections_closed_mid_request(stub_port):
  result = _run(stub_port, "/drop", requests=6)
  assert result["statuses"] == {}
  assert result["connection_errors"] == {"closed": 6}


def test_load_splits_connections_and_requests_across_processes(stub_port):
  request = _http_load.request_bytes("/ok", b"{}")
  result = _http_load.load("127.0.0.1", stub_port, request, connections=4,
                           requests=41, seconds=30, processes=2, timeout_s=10)
  assert result["processes"] == 2
  assert result["statuses"] == {"200": 41} and result["sent"] == 41
  assert len(result["latencies_ms"]) == 41
