"""`estlab serve` under load: a real server process, a real client; JSON lines.

What is measured (issue #24), each case one JSON line on stdout:

* ``in_process``: the reference. ``estlab.export.load(dir).signatures
  ['serving_default']`` called in this process on numpy columns of 1 and of
  ``--rows`` (100) rows, after warm-up calls: calls/s, rows/s, median ms.
* ``load``: per model (a small ``LinearClassifier`` on 4 numeric columns, and
  a ``DNNClassifier`` [32, 16] on the same; trained briefly, exported with a
  parsing receiver, as ``tests/export/test_server.py`` does), one real
  ``python -m estlab serve`` process per configuration: batching off, and
  batching on (``--enable-batching --batching-parameters-file F``, F in TF
  Serving's text format, written here; "unsupported" when ``estlab serve
  --help`` has no such flag). Each server is on port 0 (the start line names
  the URL), waited for with a deadline, killed by process group at the end.
  Cases: ``:predict`` of one row at concurrency ``--concurrency`` (1, 8, 32),
  and of ``--rows`` (100) rows at concurrency 8. The client is
  ``bench/_http_load.py``: keep-alive HTTP/1.1 connections to 127.0.0.1,
  pre-encoded request bytes, one ``selectors`` loop per client process (two
  processes from concurrency 16 on); ``client_cpu_cores`` (its CPU seconds
  over the wall time) says whether it, not the server, was the limit
  (2 cores here: the client and the server share them). Each case: at most
  ``--requests`` measured requests or ``--seconds`` (after ``--warmup-s`` of
  unmeasured traffic). The batching-off and -on servers run side by side and
  the cases alternate between them (the order flips each round,
  ``--rounds``): this VM drifts by the minute. Fields: ``req_per_s``,
  ``rows_per_s``, latencies of the 200 answers (``p50_ms``, ``p99_ms``,
  ``mean_ms``, ``max_ms``), ``statuses`` (every answer by status),
  ``connection_errors``, ``pct_of_in_process`` (served rows/s over the
  in-process rows/s at the same rows per call), ``server_cpu_cores``,
  ``client_cpu_cores``, ``load_avg_1m`` before and after.
* ``memory``: a fresh server (linear, batching off); its RSS (psutil, sampled
  every 20 ms by a thread) at idle, the peak during one ``--memory-body-mb``
  (9.8 MB, under the default 10 MiB cap) ``:predict`` body of many rows, the
  peak during ``--memory-concurrency`` (8) such bodies at once, and
  ``--after-s`` (5) seconds after the last answer.
* ``slowloris``: on the same server, ``--slowloris`` (2,000) connections
  that send half a request and stop (bounded: opened within 30 s, all closed
  after); the server's thread count (``/proc/PID/status``) and open file
  descriptors idle, with them open, and after they close; whether a normal
  one-row request on a fresh connection is still answered (status,
  milliseconds; 10 s at most). "With them open" is read once the count
  reaches one thread per connection or holds still 5 s (20 s at most): past
  the listen backlog (128) the kernel lets connections in as the server
  accepts, so an unbounded server's count creeps up for seconds
  (``threads_settle_s``).

Usage:
  python bench/serving.py [--models linear,dnn] [--requests 2000]
      [--seconds 5] [--concurrency 1,8,32] [--rows 100] [--rounds 1]
      [--batching both|off|on] [--cases load,memory,slowloris]
      [--memory-body-mb 9.8] [--slowloris 2000] [--checkout DIR]

``--checkout DIR`` serves with another estlab checkout (its directory goes
first on the servers' ``PYTHONPATH``; the bench and its exports use this
one), for A/B runs of the server alone. Smoke sizes (seconds, not minutes):
``--models linear --requests 20 --seconds 1 --warmup-s 0.1
--memory-body-mb 0.2 --after-s 0.5 --slowloris 20``.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _http_load  # pylint: disable=wrong-import-position

_FEATURES = ("x0", "x1", "x2", "x3")
_START_LINE = re.compile(r"^Serving .* at (http://\S+)$", re.M)
_BATCHING_FLAG = "--enable-batching"


def _emit(record: dict) -> None:
  print(json.dumps(record), flush=True)


def _log(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


def _load_avg() -> float:
  return round(os.getloadavg()[0], 2)


# ------------------------------------------------------------------ models


def export_model(kind: str, root: str) -> str:
  """Trains a small classifier briefly and exports it; returns the base dir
  (``<root>/<kind>_export``, one timestamped version inside)."""
  import estlab  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  fc = estlab.feature_column
  columns = [fc.numeric_column(name) for name in _FEATURES]
  config = estlab.RunConfig(progress_bar=False, log_step_count_steps=10**9)
  model_dir = os.path.join(root, kind)
  if kind == "linear":
    estimator = estlab.LinearClassifier(columns, model_dir=model_dir,
                                        optimizer=optax.adam(0.05),
                                        config=config)
  elif kind == "dnn":
    estimator = estlab.DNNClassifier([32, 16], columns, model_dir=model_dir,
                                     optimizer=optax.adam(0.01), config=config)
  else:
    raise ValueError(f"--models has {kind!r}; use linear and/or dnn.")
  rng = np.random.default_rng(0)
  x = {name: rng.normal(size=512).astype(np.float32) for name in _FEATURES}
  y = (x["x0"] - 0.5 * x["x1"] + 0.25 * x["x2"] > 0).astype(np.int64)
  estimator.train(estlab.inputs.numpy_input_fn(
      x, y, batch_size=64, num_epochs=None, shuffle=True), steps=50)
  spec = fc.make_parse_example_spec(columns)
  receiver = estlab.export.build_parsing_serving_input_receiver_fn(spec)
  base = os.path.join(root, f"{kind}_export")
  estimator.export_saved_model(base, receiver)
  return base


def rows_of(count: int, seed: int = 1) -> list[dict]:
  rng = np.random.default_rng(seed)
  values = np.round(rng.normal(size=(count, len(_FEATURES))), 4).tolist()
  return [dict(zip(_FEATURES, row)) for row in values]


def predict_body(rows: list[dict]) -> bytes:
  return json.dumps({"instances": rows}).encode()


def big_body(megabytes: float) -> tuple[bytes, int]:
  """A valid ``:predict`` body of about ``megabytes`` MB (10**6 bytes) of
  rows, and its row count."""
  target = int(megabytes * 1e6)
  pool = [json.dumps(row) for row in rows_of(1000, seed=2)]
  size = len('{"instances": []}')
  parts = []
  while True:
    row = pool[len(parts) % len(pool)]
    if size + len(row) + 2 > target:
      break
    parts.append(row)
    size += len(row) + 2
  return ('{"instances": [' + ", ".join(parts) + "]}").encode(), len(parts)


def in_process(export_base: str, rows: int, seconds: float,
               max_calls: int) -> dict:
  """Calls/s and rows/s of the loaded signature itself, on numpy columns."""
  import estlab.export  # pylint: disable=import-outside-toplevel
  sig = estlab.export.load(export_base).signatures["serving_default"]
  rng = np.random.default_rng(3)
  columns = {name: rng.normal(size=rows).astype(np.float32)
             for name in _FEATURES}
  for _ in range(3):
    sig(columns)
  times = []
  end = time.perf_counter() + seconds
  while len(times) < max_calls and time.perf_counter() < end:
    t0 = time.perf_counter()
    sig(columns)
    times.append(time.perf_counter() - t0)
  total = sum(times)
  return {"rows_per_request": rows, "calls": len(times),
          "calls_per_s": round(len(times) / total, 1),
          "rows_per_s": round(rows * len(times) / total, 1),
          "median_ms": round(statistics.median(times) * 1e3, 3)}


# ------------------------------------------------------------------ servers


class Server:
  """``python -m estlab serve ARGS --port 0`` in its own process group.

  ``start()`` returns at once; ``wait()`` waits for the start line and a
  200 on the status URL, with a deadline; ``kill()`` ends the group.
  """

  def __init__(self, export_base: str, name: str, log_path: str, env: dict,
               extra: tuple[str, ...] = ()):
    self.name = name
    self.log_path = log_path
    self._log = open(log_path, "wb")  # a file, never a pipe that fills up
    self.proc = subprocess.Popen(
        [sys.executable, "-m", "estlab", "serve", export_base,
         "--model-name", name, "--port", "0", *extra],
        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        env=env, cwd=env["PYTHONPATH"].split(os.pathsep)[0])  # see _server_env
    self.url = self.port = self.path = None
    self.ps = psutil.Process(self.proc.pid)

  def log(self) -> str:
    with open(self.log_path, errors="replace") as f:
      return f.read()

  def wait(self, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
      match = _START_LINE.search(self.log())
      if match:
        self.url = match[1]
        rest = self.url.split("//", 1)[1]
        hostport, self.path = rest.split("/", 1)
        self.path = "/" + self.path
        self.port = int(hostport.rsplit(":", 1)[1])
        if get_status(self.port, self.path) == 200:
          return
      if self.proc.poll() is not None:
        raise RuntimeError(f"estlab serve exited with {self.proc.returncode}:"
                           f"\n{self.log()[-2000:]}")
      time.sleep(0.1)
    raise RuntimeError(f"estlab serve did not start in {deadline_s} s:\n"
                       f"{self.log()[-2000:]}")

  def threads(self) -> int:
    with open(f"/proc/{self.proc.pid}/status") as f:
      return int(re.search(r"^Threads:\s+(\d+)", f.read(), re.M)[1])

  def open_fds(self) -> int:
    return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

  def cpu_s(self) -> float:
    times = self.ps.cpu_times()
    return times.user + times.system

  def kill(self) -> None:
    if self.proc.poll() is None:
      with contextlib.suppress(ProcessLookupError):
        os.killpg(self.proc.pid, signal.SIGKILL)
      self.proc.wait(timeout=30)
    self._log.close()


def get_status(port: int, path: str, timeout: float = 5.0) -> int | None:
  conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
  try:
    conn.request("GET", path)
    answer = conn.getresponse()
    answer.read()
    return answer.status
  except OSError:
    return None
  finally:
    conn.close()


def post(port: int, path: str, body: bytes, timeout: float = 60.0
         ) -> tuple[int | str, float]:
  """One request on a fresh connection: (status or error name, ms)."""
  conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
  t0 = time.perf_counter()
  try:
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    answer = conn.getresponse()
    answer.read()
    status = answer.status
  except OSError as e:
    status = type(e).__name__
  finally:
    conn.close()
  return status, round((time.perf_counter() - t0) * 1e3, 3)


def batching_supported(env: dict) -> bool:
  """Whether this estlab's ``serve`` takes ``--enable-batching``."""
  out = subprocess.run([sys.executable, "-m", "estlab", "serve", "--help"],
                       env=env, cwd=env["PYTHONPATH"].split(os.pathsep)[0],
                       capture_output=True, text=True, timeout=120,
                       check=False)
  return _BATCHING_FLAG in out.stdout


def write_batching_parameters(path: str, args: argparse.Namespace) -> None:
  """TF Serving's ``--batching_parameters_file`` (BatchingParameters text)."""
  with open(path, "w") as f:
    f.write(f"max_batch_size {{ value: {args.max_batch_size} }}\n"
            f"batch_timeout_micros {{ value: {args.batch_timeout_micros} }}\n"
            f"num_batch_threads {{ value: {args.num_batch_threads} }}\n"
            f"max_enqueued_batches {{ value: {args.max_enqueued_batches} }}\n")


# -------------------------------------------------------------------- cases


def _percentile(values: list[float], q: float) -> float | None:
  return round(float(np.percentile(values, q)), 3) if values else None


def load_case(server: Server, body: bytes, concurrency: int,
              args: argparse.Namespace) -> dict:
  """One bounded closed-loop run against ``server``; the raw result plus
  server CPU and load averages."""
  request = _http_load.request_bytes(server.path + ":predict", body)
  processes = args.client_processes or (1 if concurrency < 16 else 2)
  load_before = _load_avg()
  cpu_before = server.cpu_s()
  result = _http_load.load("127.0.0.1", server.port, request, concurrency,
                           args.requests, args.seconds, processes=processes,
                           warmup_s=args.warmup_s, timeout_s=args.timeout_s)
  result["server_cpu_s"] = server.cpu_s() - cpu_before
  result["load_avg_1m"] = [load_before, _load_avg()]
  return result


def summarize(model: str, batching: bool, rows: int, concurrency: int,
              runs: list[dict], reference: dict | None) -> dict:
  latencies = [v for run in runs for v in run["latencies_ms"]]
  statuses: dict[str, int] = {}
  errors: dict[str, int] = {}
  samples: dict[str, str] = {}
  for run in runs:
    for k, v in run["statuses"].items():
      statuses[k] = statuses.get(k, 0) + v
    for k, v in run["connection_errors"].items():
      errors[k] = errors.get(k, 0) + v
    for k, v in run["samples"].items():
      samples.setdefault(k, v)
  rates = [len(run["latencies_ms"]) / run["wall_s"] for run in runs]
  wall = sum(run["wall_s"] for run in runs)
  req_per_s = statistics.median(rates)
  record = {
      "case": "load", "model": model, "batching": batching, "status": "ok",
      "rows_per_request": rows, "concurrency": concurrency,
      "requests": len(latencies), "req_per_s": round(req_per_s, 1),
      "rows_per_s": round(req_per_s * rows, 1),
      "p50_ms": _percentile(latencies, 50), "p99_ms": _percentile(latencies, 99),
      "mean_ms": round(statistics.fmean(latencies), 3) if latencies else None,
      "max_ms": round(max(latencies), 3) if latencies else None,
      "statuses": statuses, "connection_errors": errors,
      "error_samples": samples,
      "pct_of_in_process": (round(100 * req_per_s * rows /
                                  reference["rows_per_s"], 1)
                            if reference else None),
      "wall_s": round(wall, 2),
      "server_cpu_cores": round(sum(r["server_cpu_s"] for r in runs) / wall, 2),
      "client_cpu_cores": round(sum(r["cpu_s"] for r in runs) / wall, 2),
      "client_processes": runs[0]["processes"],
      "load_avg_1m": [runs[0]["load_avg_1m"][0], runs[-1]["load_avg_1m"][1]]}
  if len(runs) > 1:
    record["per_round_req_per_s"] = [round(r, 1) for r in rates]
  return record


def warm(server: Server, bodies: list[bytes]) -> None:
  """Compiles each request shape before anything is timed."""
  for body in bodies:
    for _ in range(2):
      status, _ = post(server.port, server.path + ":predict", body)
      if status != 200:
        raise RuntimeError(f"Warm-up request answered {status!r}:\n"
                           f"{server.log()[-2000:]}")


def run_load(model: str, base: str, args: argparse.Namespace, env: dict,
             workdir: str, supported: bool, references: dict) -> None:
  configs = {"off": False, "on": True}
  if args.batching != "both":
    configs = {args.batching: args.batching == "on"}
  shapes = [(1, c) for c in args.concurrency] + [(args.rows,
                                                   args.rows_concurrency)]
  bodies = {rows: predict_body(rows_of(rows)) for rows, _ in shapes}
  servers: dict[bool, Server] = {}
  failed: dict[bool, str] = {}
  try:
    for batching in configs.values():
      if batching and not supported:
        failed[batching] = "unsupported"
        continue
      extra = ()
      if batching:
        params = os.path.join(workdir, "batching_parameters.txt")
        write_batching_parameters(params, args)
        extra = (_BATCHING_FLAG, "--batching-parameters-file", params)
      servers[batching] = Server(
          base, model, os.path.join(workdir, f"{model}_{batching}.log"), env,
          extra)
    for batching, server in list(servers.items()):
      try:
        server.wait(args.start_timeout)
        warm(server, list(bodies.values()))
      except RuntimeError as e:
        failed[batching] = f"failed: {e}"
        server.kill()
        del servers[batching]
    runs: dict[tuple, list[dict]] = {}
    order = list(servers)
    for round_ in range(args.rounds):
      for rows, concurrency in shapes:
        for batching in (order if round_ % 2 == 0 else order[::-1]):
          _log(f"{model} batching={batching} rows={rows} c={concurrency} "
               f"round {round_}")
          runs.setdefault((batching, rows, concurrency), []).append(
              load_case(servers[batching], bodies[rows], concurrency, args))
    for rows, concurrency in shapes:
      for batching in configs.values():
        if batching in failed:
          reason = failed[batching]
          _emit({"case": "load", "model": model, "batching": batching,
                 "rows_per_request": rows, "concurrency": concurrency,
                 "status": "unsupported" if reason == "unsupported" else
                 "failed",
                 "reason": ("estlab serve --help has no --enable-batching"
                            if reason == "unsupported" else reason[:2000])})
          continue
        _emit(summarize(model, batching, rows, concurrency,
                        runs[(batching, rows, concurrency)],
                        references.get((model, rows))))
  finally:
    for server in servers.values():
      server.kill()


class RssSampler:
  """Samples a process's RSS every ``interval`` seconds in a thread."""

  def __init__(self, pid: int, interval: float = 0.02):
    self._ps = psutil.Process(pid)
    self._interval = interval
    self.samples: list[tuple[float, int]] = []
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()

  def _run(self) -> None:
    while not self._stop.is_set():
      try:
        self.samples.append((time.monotonic(), self._ps.memory_info().rss))
      except psutil.Error:
        return
      self._stop.wait(self._interval)

  def peak_mb(self, since: float, until: float | None = None) -> float:
    until = time.monotonic() if until is None else until
    window = [rss for t, rss in self.samples if since <= t <= until]
    return round(max(window) / 2**20, 1)

  def now_mb(self) -> float:
    return round(self._ps.memory_info().rss / 2**20, 1)

  def stop(self) -> None:
    self._stop.set()
    self._thread.join(timeout=5)


def memory_case(server: Server, args: argparse.Namespace) -> dict:
  body, rows = big_body(args.memory_body_mb)
  request = _http_load.request_bytes(server.path + ":predict", body)
  sampler = RssSampler(server.proc.pid)
  try:
    t0 = time.monotonic()
    time.sleep(1.0)  # a second of idle samples, not a synchronization
    idle = statistics.median(
        rss for t, rss in sampler.samples if t >= t0) / 2**20
    phases = {}
    for name, concurrency in (("one", 1),
                              ("concurrent", args.memory_concurrency)):
      start = time.monotonic()
      result = _http_load.load("127.0.0.1", server.port, request, concurrency,
                               concurrency, args.timeout_s, warmup_s=0.0,
                               timeout_s=args.timeout_s)
      phases[name] = {"peak_mb": sampler.peak_mb(start),
                      "statuses": result["statuses"],
                      "connection_errors": result["connection_errors"],
                      "error_samples": result["samples"],
                      "wall_s": round(result["wall_s"], 2)}
    done = time.monotonic()
    time.sleep(args.after_s)  # the measurement: RSS this long after
    after = sampler.now_mb()
  finally:
    sampler.stop()
  return {"case": "memory", "model": server.name, "batching": False,
          "body_mb": round(len(body) / 1e6, 2), "rows_per_body": rows,
          "concurrency": args.memory_concurrency,
          "idle_mb": round(idle, 1), "peak_one_mb": phases["one"]["peak_mb"],
          "peak_concurrent_mb": phases["concurrent"]["peak_mb"],
          "peak_concurrent_above_idle_mb": round(
              phases["concurrent"]["peak_mb"] - idle, 1),
          "after_mb": after, "after_s": args.after_s,
          "peak_during_after_mb": sampler.peak_mb(done),
          "one": phases["one"], "concurrent": phases["concurrent"],
          "load_avg_1m": _load_avg()}


def _wait_threads(server: Server, done, deadline_s: float = 20.0,
                  quiet_s: float = 5.0) -> tuple[int, int]:
  """Polls the thread count until ``done(count)``, or until it has held
  still ``quiet_s`` (a bounded server stops short of the target), or the
  deadline; returns (last, peak)."""
  deadline = time.monotonic() + deadline_s
  last = peak = server.threads()
  still_since = time.monotonic()
  while time.monotonic() < deadline and not done(last):
    time.sleep(0.05)
    now = server.threads()
    peak = max(peak, now)
    if now != last:
      last, still_since = now, time.monotonic()
    elif time.monotonic() - still_since >= quiet_s:
      break
  return last, peak


def slowloris_case(server: Server, args: argparse.Namespace,
                   one_row: bytes) -> dict:
  import selectors  # pylint: disable=import-outside-toplevel
  import socket  # pylint: disable=import-outside-toplevel
  threads_idle = server.threads()
  fds_idle = server.open_fds()
  partial = (f"POST {server.path}:predict HTTP/1.1\r\n"
             "Host: 127.0.0.1\r\n").encode()
  socks, connected = [], []
  sel = selectors.DefaultSelector()
  try:
    for _ in range(args.slowloris):
      sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      sock.setblocking(False)
      socks.append(sock)
      sock.connect_ex(("127.0.0.1", server.port))
      sel.register(sock, selectors.EVENT_WRITE)
    deadline = time.monotonic() + 30
    pending = len(socks)
    while pending and time.monotonic() < deadline:
      for key, _ in sel.select(timeout=0.5):
        sock = key.fileobj
        sel.unregister(sock)
        pending -= 1
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
          with contextlib.suppress(OSError):
            sock.send(partial)
            connected.append(sock)
    t0 = time.monotonic()
    threads_open, threads_peak = _wait_threads(
        server, lambda n: n >= threads_idle + len(connected))
    settle_s = time.monotonic() - t0
    fds_open = server.open_fds()
    status, ms = post(server.port, server.path + ":predict", one_row,
                      timeout=10.0)
  finally:
    sel.close()
    for sock in socks:
      sock.close()
  threads_after, _ = _wait_threads(server, lambda n: n <= threads_idle)
  return {"case": "slowloris", "model": server.name, "batching": False,
          "connections_requested": args.slowloris,
          "connections_open": len(connected), "threads_idle": threads_idle,
          "threads_with_connections": threads_open,
          "threads_peak": threads_peak, "threads_settle_s": round(settle_s, 1),
          "fds_idle": fds_idle, "fds_with_connections": fds_open,
          "normal_request_status": status, "normal_request_ms": ms,
          "threads_after_close": threads_after,
          "rss_mb": round(server.ps.memory_info().rss / 2**20, 1),
          "load_avg_1m": _load_avg()}


# --------------------------------------------------------------------- main


def _ints(text: str) -> list[int]:
  return [int(v) for v in text.split(",") if v]


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  p.add_argument("--models", default="linear,dnn")
  p.add_argument("--cases", default="load,memory,slowloris")
  p.add_argument("--batching", choices=["both", "off", "on"], default="both")
  p.add_argument("--requests", type=int, default=2000,
                 help="measured requests per case at most")
  p.add_argument("--seconds", type=float, default=5.0,
                 help="measuring seconds per case at most")
  p.add_argument("--warmup-s", type=float, default=0.5)
  p.add_argument("--timeout-s", type=float, default=60.0,
                 help="the longest wait for one answer")
  p.add_argument("--concurrency", type=_ints, default=[1, 8, 32])
  p.add_argument("--rows", type=int, default=100)
  p.add_argument("--rows-concurrency", type=int, default=8)
  p.add_argument("--rounds", type=int, default=1)
  p.add_argument("--client-processes", type=int, default=0,
                 help="0: 1 below concurrency 16, else 2")
  p.add_argument("--max-batch-size", type=int, default=256)
  p.add_argument("--batch-timeout-micros", type=int, default=1000)
  p.add_argument("--num-batch-threads", type=int, default=2)
  p.add_argument("--max-enqueued-batches", type=int, default=100)
  p.add_argument("--memory-body-mb", type=float, default=9.8)
  p.add_argument("--memory-concurrency", type=int, default=8)
  p.add_argument("--after-s", type=float, default=5.0)
  p.add_argument("--slowloris", type=int, default=2000)
  p.add_argument("--in-process-s", type=float, default=1.5)
  p.add_argument("--start-timeout", type=float, default=180.0)
  p.add_argument("--checkout", default=None,
                 help="serve with the estlab in this directory")
  p.add_argument("--workdir", default=None)
  return p.parse_args(argv)


def _commit(directory: str) -> str | None:
  out = subprocess.run(["git", "-C", directory, "rev-parse", "--short", "HEAD"],
                       capture_output=True, text=True, check=False)
  return out.stdout.strip() or None


def _server_env(checkout: str) -> dict:
  """The servers' environment: ``checkout`` first on ``PYTHONPATH``. They
  also run in ``checkout``: ``python -m`` puts the working directory before
  ``PYTHONPATH``, so another directory's estlab would win."""
  rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
  return dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"),
              PYTHONPATH=os.pathsep.join([checkout] + rest))


def main(argv=None) -> int:
  args = parse_args(argv)
  models = [m for m in args.models.split(",") if m]
  cases = set(args.cases.split(","))
  unknown = cases - {"load", "memory", "slowloris"}
  if unknown:
    raise SystemExit(f"--cases has {sorted(unknown)!r}; use load, memory, "
                     "slowloris.")
  import estlab  # pylint: disable=import-outside-toplevel
  here = os.path.dirname(os.path.dirname(os.path.abspath(estlab.__file__)))
  checkout = os.path.abspath(args.checkout) if args.checkout else here
  env = _server_env(checkout)
  with tempfile.TemporaryDirectory(dir=args.workdir,
                                   prefix="serving_bench_") as workdir:
    supported = batching_supported(env)
    _emit({"case": "config", "server_checkout": checkout,
           "server_commit": _commit(checkout),
           "batching_supported": supported, "cpu_count": os.cpu_count(),
           "requests": args.requests, "seconds": args.seconds,
           "warmup_s": args.warmup_s, "rounds": args.rounds,
           "batching_parameters": {
               "max_batch_size": args.max_batch_size,
               "batch_timeout_micros": args.batch_timeout_micros,
               "num_batch_threads": args.num_batch_threads,
               "max_enqueued_batches": args.max_enqueued_batches},
           "load_avg_1m": _load_avg()})
    if "load" not in cases:
      models = models[:1]
    bases = {}
    for model in models:
      _log(f"training and exporting {model}")
      bases[model] = export_model(model, workdir)
    references = {}
    if "load" in cases:
      for model in models:
        for rows in (1, args.rows):
          ref = in_process(bases[model], rows, args.in_process_s,
                           args.requests)
          references[(model, rows)] = ref
          _emit({"case": "in_process", "model": model, **ref,
                 "load_avg_1m": _load_avg()})
      for model in models:
        run_load(model, bases[model], args, env, workdir, supported,
                 references)
    if cases & {"memory", "slowloris"}:
      model = models[0]
      server = Server(bases[model], model,
                      os.path.join(workdir, "bounds.log"), env)
      try:
        server.wait(args.start_timeout)
        one_row = predict_body(rows_of(1))
        warm(server, [one_row])
        if "memory" in cases:
          _log("memory case")
          _emit(memory_case(server, args))
        if "slowloris" in cases:
          _log("slowloris case")
          _emit(slowloris_case(server, args, one_row))
      finally:
        server.kill()
  return 0


if __name__ == "__main__":
  sys.exit(main())
