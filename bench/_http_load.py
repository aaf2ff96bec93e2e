"""A closed-loop HTTP/1.1 load generator for ``bench/serving.py``.

Each client process keeps ``connections`` keep-alive connections to one
server and drives them from one ``selectors`` loop (no thread per
connection): a connection sends the same pre-encoded request bytes (read once
from a file), waits for the whole answer (status line, ``Content-Length``
body), and sends again at once (closed loop: concurrency = connections). The
loop parses only the status and ``Content-Length``, so one process costs far
less CPU than the server it drives; ``cpu_s`` (the process's own user + system
time while measuring) says how much. Several processes (``load(...,
processes=P)``) split the connections and the request budget between them;
they connect first, then all start on one "go".

Every case is bounded: at most ``requests`` measured requests or ``seconds``
of measuring, whichever ends first (after ``warmup_s`` of unmeasured
traffic), and no answer is awaited longer than ``timeout_s``. A connection
the server closes (``Connection: close``, a reset) is counted under
``connection_errors`` when a request was pending on it, and opened again.

Latencies are those of 200 answers, send to last byte, in milliseconds;
other statuses are counted in ``statuses`` with the first body of each kept
(``samples``, 300 characters) to say why.

Usage (what ``load`` runs in each process; one JSON config argument)::

  python bench/_http_load.py '{"host": "127.0.0.1", "port": 8501,
      "request_file": "/tmp/req.bin", "connections": 8, "requests": 2000,
      "seconds": 10, "warmup_s": 0.5, "timeout_s": 30}'

It prints ``ready`` once connected, waits for a line on stdin, runs, and
prints one JSON line of results.
"""
from __future__ import annotations

import json
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.I)


def request_bytes(path: str, body: bytes, host: str = "127.0.0.1") -> bytes:
  """A complete keep-alive ``POST`` of a JSON body, as bytes to send as is.

  Example::

    data = request_bytes('/v1/models/m:predict', b'{"instances": [1.0]}')
  """
  head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
          "Content-Type: application/json\r\n"
          f"Content-Length: {len(body)}\r\n\r\n").encode("ascii")
  return head + body


class _Conn:
  """One connection's state: what is left to send, what has been read."""

  def __init__(self, sock: socket.socket):
    self.sock = sock
    self.out = memoryview(b"")
    self.inbuf = bytearray()
    self.sent_at = 0.0
    self.pending = False  # a request sent whose answer is not complete
    self.writing = False  # registered for EVENT_WRITE (a send is partial)


def _connect(host: str, port: int, timeout: float) -> socket.socket:
  sock = socket.create_connection((host, port), timeout=timeout)
  sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
  sock.setblocking(False)
  return sock


def _cpu_s() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def run_connections(host: str, port: int, request: bytes, connections: int,
                    requests: int, seconds: float, warmup_s: float = 0.0,
                    timeout_s: float = 30.0, ready=None) -> dict:
  """Drives ``connections`` keep-alive connections in this process.

  Args:
    host, port: the server.
    request: the whole request (``request_bytes``), sent as is each time.
    connections: how many connections, each with one request in flight.
    requests: measured requests at most (0: none).
    seconds: measuring time at most.
    warmup_s: traffic before measuring starts, not counted.
    timeout_s: the longest wait for one answer (then a "timeout" error).
    ready: called once every connection is open, before the first send
      (the process entry point waits there for "go").

  Returns:
    ``{"latencies_ms", "statuses", "samples", "connection_errors",
    "wall_s", "cpu_s", "sent"}``.
  """
  conns = [_Conn(_connect(host, port, timeout_s)) for _ in range(connections)]
  if ready is not None:
    ready()
  sel = selectors.DefaultSelector()
  for conn in conns:
    sel.register(conn.sock, selectors.EVENT_READ, conn)
  latencies: list[float] = []
  statuses: dict[str, int] = {}
  samples: dict[str, str] = {}
  errors: dict[str, int] = {}
  clock = time.perf_counter
  start = clock()
  measure_from = start + warmup_s
  stop_at = measure_from + seconds
  cpu_at_measure = None
  sent = 0  # measured requests sent
  last_done = measure_from

  def send(conn: _Conn, now: float) -> None:
    nonlocal sent
    if now >= measure_from:
      if sent >= requests or now >= stop_at:
        return
      sent += 1
    conn.out = memoryview(request)
    conn.sent_at = now
    conn.pending = True
    flush(conn)

  def flush(conn: _Conn) -> None:
    try:
      n = conn.sock.send(conn.out)
    except (BlockingIOError, InterruptedError):
      n = 0
    except OSError:
      fail(conn, "send_failed")
      return
    conn.out = conn.out[n:]
    if bool(conn.out) != conn.writing:  # a syscall only when it changes
      conn.writing = bool(conn.out)
      sel.modify(conn.sock, selectors.EVENT_READ |
                 (selectors.EVENT_WRITE if conn.writing else 0), conn)

  def fail(conn: _Conn, why: str) -> None:
    """Counts a broken request (if one was pending) and reconnects."""
    if conn.pending and conn.sent_at >= measure_from:
      errors[why] = errors.get(why, 0) + 1
    sel.unregister(conn.sock)
    conn.sock.close()
    conn.sock = None
    conns.remove(conn)
    now = clock()
    if now < stop_at and (now < measure_from or sent < requests):
      try:
        fresh = _Conn(_connect(host, port, timeout_s))
      except OSError:
        errors["connect_failed"] = errors.get("connect_failed", 0) + 1
        return
      conns.append(fresh)
      sel.register(fresh.sock, selectors.EVENT_READ, fresh)
      send(fresh, now)

  def read(conn: _Conn) -> None:
    nonlocal last_done
    try:
      data = conn.sock.recv(1 << 16)
    except (BlockingIOError, InterruptedError):
      return
    except OSError:
      fail(conn, "reset")
      return
    if not data:
      fail(conn, "closed")
      return
    buf = conn.inbuf
    buf += data
    end = buf.find(b"\r\n\r\n")
    if end < 0:
      return
    head = bytes(buf[:end])
    match = _CONTENT_LENGTH.search(head)
    length = int(match[1]) if match else 0
    if len(buf) < end + 4 + length:
      return
    now = clock()
    status = head[9:12].decode("ascii", "replace")
    if conn.sent_at >= measure_from:
      last_done = now
      if status == "200":
        latencies.append(round((now - conn.sent_at) * 1e3, 4))
      statuses[status] = statuses.get(status, 0) + 1
      if status != "200" and status not in samples:
        samples[status] = bytes(buf[end + 4:end + 4 + length])[:300].decode(
            "utf-8", "replace")
    del buf[:end + 4 + length]
    conn.pending = False
    if _CLOSE.search(head):
      fail(conn, "closed")
    else:
      send(conn, now)

  for conn in list(conns):
    send(conn, clock())
  checked = clock()
  while True:
    now = clock()
    if cpu_at_measure is None and now >= measure_from:
      cpu_at_measure = _cpu_s()
    if now - checked > 0.1:  # rarely: the list walks cost per request
      checked = now
      busy = [c for c in conns if c.pending]
      if not busy and (now >= stop_at or (now >= measure_from and
                                          sent >= requests) or not conns):
        break  # (no connections left: every one failed to reopen)
      for conn in busy:
        if now - conn.sent_at > timeout_s:
          fail(conn, "timeout")
    for key, events in sel.select(timeout=0.05):
      conn = key.data
      if conn.sock is None:  # failed earlier in this round
        continue
      if events & selectors.EVENT_WRITE and conn.out:
        flush(conn)
      if events & selectors.EVENT_READ and conn.sock is not None:
        read(conn)
    # A warm-up request answered after the measuring began starts no new
    # one past the budget: send() checks it.
  cpu = _cpu_s() - (cpu_at_measure if cpu_at_measure is not None else _cpu_s())
  for conn in conns:
    sel.unregister(conn.sock)
    conn.sock.close()
  sel.close()
  return {"latencies_ms": latencies, "statuses": statuses, "samples": samples,
          "connection_errors": errors, "sent": sent,
          "wall_s": max(last_done - measure_from, 1e-9), "cpu_s": cpu}


def load(host: str, port: int, request: bytes, connections: int,
         requests: int, seconds: float, processes: int = 1,
         warmup_s: float = 0.0, timeout_s: float = 30.0,
         workdir: str | None = None) -> dict:
  """Runs ``processes`` client processes that share the connections and the
  request budget, started together; merges their results.

  Example::

    result = load('127.0.0.1', port, request_bytes(path, body),
                  connections=32, requests=2000, seconds=10, processes=2)
    result['latencies_ms'], result['statuses'], result['cpu_s']

  Returns:
    ``run_connections``' dict merged: latencies and counts summed, ``wall_s``
    the longest process's, ``cpu_s`` all processes' together,
    ``processes``.
  """
  processes = max(1, min(processes, connections))
  with tempfile.NamedTemporaryFile(dir=workdir, suffix=".http",
                                   delete=False) as f:
    f.write(request)
    request_file = f.name
  procs = []
  try:
    for i in range(processes):
      config = {"host": host, "port": port, "request_file": request_file,
                "connections": connections // processes +
                (i < connections % processes),
                "requests": requests // processes + (i < requests % processes),
                "seconds": seconds, "warmup_s": warmup_s,
                "timeout_s": timeout_s}
      procs.append(subprocess.Popen(
          [sys.executable, os.path.abspath(__file__), json.dumps(config)],
          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for proc in procs:
      line = proc.stdout.readline()
      if line.strip() != "ready":
        raise RuntimeError(f"A load process did not connect (said {line!r}); "
                           f"is the server at {host}:{port} up?")
    for proc in procs:  # all start together
      proc.stdin.write("go\n")
      proc.stdin.flush()
    deadline = warmup_s + seconds + timeout_s + 60
    results = []
    for proc in procs:
      out, _ = proc.communicate(timeout=deadline)
      if proc.returncode:
        raise RuntimeError(f"A load process exited with {proc.returncode}.")
      results.append(json.loads(out.strip().splitlines()[-1]))
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
    os.remove(request_file)
  merged = {"latencies_ms": [], "statuses": {}, "samples": {},
            "connection_errors": {}, "sent": 0, "wall_s": 0.0, "cpu_s": 0.0,
            "processes": processes}
  for result in results:
    merged["latencies_ms"] += result["latencies_ms"]
    for key in ("statuses", "connection_errors"):
      for k, v in result[key].items():
        merged[key][k] = merged[key].get(k, 0) + v
    for k, v in result["samples"].items():
      merged["samples"].setdefault(k, v)
    merged["sent"] += result["sent"]
    merged["wall_s"] = max(merged["wall_s"], result["wall_s"])
    merged["cpu_s"] += result["cpu_s"]
  return merged


def _main() -> int:
  config = json.loads(sys.argv[1])
  with open(config.pop("request_file"), "rb") as f:
    request = f.read()

  def ready():
    print("ready", flush=True)
    sys.stdin.readline()

  result = run_connections(request=request, ready=ready, **config)
  print(json.dumps(result), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(_main())
