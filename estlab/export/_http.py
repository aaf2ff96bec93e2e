"""The HTTP transport of ``estlab serve``: a bounded pool over ``http.server``.

The standard library parses HTTP (``http.server.BaseHTTPRequestHandler``);
this module decides who runs it and how answers leave:

* The accepting thread waits (``selectors``) until a connection's request
  head (request line and headers) has come; only then does the connection
  go to the queue (at most ``max_queued``) of a fixed pool of ``num_threads``
  handler threads. Past the queue the accepting thread answers ``503`` with
  ``Retry-After: 1`` and closes at once. A connection that sends nothing or
  half a head (slowloris) costs a socket, never a thread: at most
  ``max_pending`` wait so (then 503), each closed after ``idle_timeout_s``.
* Between requests a keep-alive connection goes back to the accepting
  thread ("parked") and waits there for its next request head, closed after
  ``idle_timeout_s`` of silence: idle connections never pin the pool.
* Every accepted socket has ``TCP_NODELAY``, and an answer (status line,
  headers and body) leaves in one ``sendall`` (a body over 64 KiB: head and
  body unjoined, two sends, no delay under ``TCP_NODELAY``): before, headers
  and body left apart and Nagle's algorithm held the body back until the
  client's delayed ACK, ~40 ms per request.
* A request body is read in chunks under ``body_timeout_s`` of silence: a
  body shorter than its ``Content-Length`` is a 400 that names both counts.
* Memory: the bodies being answered at once may sum to at most
  ``bodies_in_flight_bytes`` (a request waits up to ``body_wait_s`` for
  room, then 503; its body stays unread meanwhile), and after a big body the
  heap is handed back to the system (``malloc_trim``, glibc).
* ``drain`` (graceful stop): stop accepting, answer the queued connections
  503, let the requests being answered finish, close idle keep-alive
  connections, stop the pool.

Example::

  class Hello(JSONRequestHandler):
    def answer(self, method):
      return 200, {'hello': method}, {}

  server = PooledHTTPServer(('127.0.0.1', 0), Hello, num_threads=4,
                            max_queued=16)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  ...
  server.shutdown(); server.drain(timeout=30.0)
"""
from __future__ import annotations

import collections
import contextlib
import email.utils
import http
import http.server
import json
import logging
import os
import queue
import resource
import select
import selectors
import socket
import threading
import time
import traceback
from typing import Any

from estlab.export import _heap

_log = logging.getLogger("estlab.serve")

DEFAULT_IDLE_TIMEOUT_S = 5.0
DEFAULT_BODY_TIMEOUT_S = 5.0
DEFAULT_BODY_WAIT_S = 5.0
_TRIM_AFTER_BYTES = 1 << 20  # malloc_trim once idle after a body this big
_POLL_S = 0.25  # how often waiting connections are checked for a deadline
_LINGER_S = 0.02  # a handler waits this long for a keep-alive's next request
_RECHECK_S = 0.05  # how often a connection with half a request head is read
_MAX_HEAD = 1 << 16  # http.server refuses longer lines; let it say so
_CHUNK = 1 << 16


def default_num_threads() -> int:
  """``max(16, 4 * CPUs)``: TF Serving's ``4 * CPUs``, at least 16."""
  return max(16, 4 * (os.cpu_count() or 1))


class HTTPError(Exception):
  """An answer other than 200: ``status`` and a message for ``{"error": ...}``."""

  def __init__(self, status: int, message: str, headers: dict | None = None):
    super().__init__(message)
    self.status = status
    self.message = message
    self.headers = headers or {}


def response_bytes(status: int, answer: Any, headers: dict | None = None, *,
                   close: bool = False, head: bool = False) -> list[bytes]:
  """A whole HTTP/1.1 answer with a JSON body: [head + body], or [head, body]
  for a big body (not copied; with TCP_NODELAY two sends cost no delay).

  ``allow_nan=False``: an answer is always valid JSON (non-finite numbers
  must have been written as strings before; a bug here is a 500).
  """
  body = json.dumps(answer, allow_nan=False).encode()
  try:
    phrase = http.HTTPStatus(status).phrase
  except ValueError:
    phrase = "Error"
  lines = [f"HTTP/1.1 {status} {phrase}", "Server: estlab-serve",
           f"Date: {email.utils.formatdate(usegmt=True)}"]
  lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
  lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
  if close:
    lines.append("Connection: close")
  head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
  if head:
    return [head_bytes]
  return [head_bytes + body] if len(body) < _CHUNK else [head_bytes, body]


class PooledHTTPServer(http.server.HTTPServer):
  """An HTTP server whose connections are served by a fixed pool of threads.

  Args (beyond ``HTTPServer``'s):
    num_threads: handler threads (connections served at once).
    max_queued: accepted connections waiting for a handler; more get 503.
    idle_timeout_s: a keep-alive connection silent this long is closed.
    body_timeout_s: a request whose body stalls this long is a 400.
    bodies_in_flight_bytes: request bodies being read, parsed and answered
      at once (their ``Content-Length`` summed); a request that would pass it
      waits up to ``body_wait_s`` for others to finish, then gets 503. A lone
      request is always let in. The JSON of a body expands ~10x in Python
      objects: this bounds the memory big concurrent requests take.
    body_wait_s: see ``bodies_in_flight_bytes``.
    max_body_bytes: larger request bodies are refused with 413 (unread).
    max_pending: connections accepted whose request head has not all come
      (they wait in the accepting thread, not in a handler); more get 503.
      Default: 4096, less if the open-files limit is lower.
  """
  allow_reuse_address = True
  request_queue_size = 128  # the kernel's backlog, before accept

  def __init__(self, address, handler_class, *, num_threads: int,
               max_queued: int, idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
               body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
               bodies_in_flight_bytes: int = 1 << 62,
               body_wait_s: float = DEFAULT_BODY_WAIT_S,
               max_body_bytes: int = 10 * 1024 * 1024,
               max_pending: int | None = None):
    if num_threads < 1:
      raise ValueError(f"num_threads={num_threads!r} must be at least 1, e.g. "
                       f"{default_num_threads()}.")
    if max_queued < 1:
      raise ValueError(f"max_queued={max_queued!r} must be at least 1, e.g. "
                       f"{4 * num_threads}.")
    self.num_threads = num_threads
    self.idle_timeout_s = idle_timeout_s
    self.body_timeout_s = body_timeout_s
    self.bodies_in_flight_bytes = bodies_in_flight_bytes
    self.body_wait_s = body_wait_s
    self.max_body_bytes = max_body_bytes
    self._body_bytes = 0  # Content-Length of the requests let in, summed
    self._big_done = False  # a big body finished: trim the heap when idle
    self._queue: queue.Queue = queue.Queue(maxsize=max_queued)
    self._stopping = threading.Event()
    self._busy = 0  # requests being answered
    self._held = 0  # connections the handler threads hold
    self._shutdown_asked = threading.Event()
    self._pending = {}
    # Keep-alive connections handed back by the pool between requests: an
    # idle one costs a socket in the accepting thread, not a handler thread.
    self._parked: collections.deque = collections.deque()
    self._wake_r, self._wake_w = socket.socketpair()
    self._wake_r.setblocking(False)
    self._wake_w.setblocking(False)
    self._is_down = threading.Event()
    self._is_down.set()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    self.max_pending = max_pending or max(
        16, min(4096, (soft if soft > 0 else 4096) - 4 * num_threads - 64))
    self._idle = threading.Condition()
    super().__init__(address, handler_class)
    self._workers = [
        threading.Thread(target=self._work, name=f"estlab-http-{i}",
                         daemon=True) for i in range(num_threads)]
    for worker in self._workers:
      worker.start()

  # ------------------------------------------------------------ accepting

  def serve_forever(self, poll_interval: float = 0.5) -> None:
    """Accepts connections and hands each to the pool once its request
    head (request line and headers) has come, until ``shutdown()``.

    A connection that sends nothing, or half a head (slowloris), waits here
    at the cost of a socket, never of a thread, and is closed after
    ``idle_timeout_s``; at most ``max_pending`` wait so.
    """
    self._is_down.clear()
    sel = selectors.DefaultSelector()
    sel.register(self.socket, selectors.EVENT_READ, None)
    sel.register(self._wake_r, selectors.EVENT_READ, "wake")
    # socket -> (client address, deadline, its handler or None if new)
    pending = self._pending = {}
    later = set()  # sockets with half a head: looked at again at recheck_at
    recheck_at = scan_at = 0.0
    try:
      while not self._shutdown_asked.is_set():
        now = time.monotonic()
        wake = min(recheck_at if later else now + poll_interval,
                   scan_at if pending else now + poll_interval)
        events = sel.select(max(0.0, wake - now))
        now = time.monotonic()
        for key, _ in events:
          if key.data is None:
            self._accept(sel, pending, now)
            continue
          if key.data == "wake":  # keep-alive connections back from the pool
            with contextlib.suppress(BlockingIOError):
              self._wake_r.recv(4096)
            while self._parked:
              sock, address, handler = self._parked.popleft()
              pending[sock] = (address, now + self.idle_timeout_s, handler)
              sel.register(sock, selectors.EVENT_READ, True)
            continue
          sock = key.fileobj
          sel.unregister(sock)
          state = self.head_state(sock)
          if state == "whole":
            address, _, handler = pending.pop(sock)
            self._dispatch(sock, address, handler)
          elif state == "closed":
            self._close(sock, pending.pop(sock)[2])
          else:  # unread bytes keep it readable: wait before looking again
            if not later:
              recheck_at = now + _RECHECK_S
            later.add(sock)
        if later and now >= recheck_at:
          for sock in later:
            sel.register(sock, selectors.EVENT_READ, True)
          later.clear()
        if pending and now >= scan_at:
          scan_at = now + _POLL_S
          for sock, (_, deadline, _) in list(pending.items()):
            if now > deadline:  # silent too long: closed without a word
              if sock in later:
                later.discard(sock)
              else:
                sel.unregister(sock)
              self._close(sock, pending.pop(sock)[2])
    finally:
      for sock, (_, _, handler) in pending.items():
        self._close(sock, handler)
      pending.clear()
      sel.close()
      self._shutdown_asked.clear()
      self._is_down.set()

  def shutdown(self) -> None:
    """Stops ``serve_forever`` (from another thread) and waits for it."""
    self._shutdown_asked.set()
    self._is_down.wait()

  def _accept(self, sel, pending: dict, now: float) -> None:
    try:
      sock, address = self.socket.accept()
    except OSError:
      return
    with contextlib.suppress(OSError):
      sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if self._stopping.is_set() or len(pending) >= self.max_pending:
      self.refuse(sock, "The server is busy: "
                  f"{len(pending)} connections are sending their request; "
                  "retry after a second.")
      return
    sock.setblocking(False)
    if self.head_state(sock) == "whole":  # the usual case: at once
      self._dispatch(sock, address, None)
      return
    pending[sock] = (address, now + self.idle_timeout_s, None)
    sel.register(sock, selectors.EVENT_READ, True)

  @staticmethod
  def head_state(sock: socket.socket) -> str:
    """'whole' (a request head came), 'partial' or 'closed' (EOF, error)."""
    try:
      data = sock.recv(_MAX_HEAD, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
      return "partial"
    except OSError:
      return "closed"
    if not data:
      return "closed"
    if b"\n\r\n" in data or b"\n\n" in data or len(data) >= _MAX_HEAD:
      return "whole"
    # A peek shows the bytes, not the FIN behind them: ask for a hang-up.
    rdhup = getattr(select, "POLLRDHUP", 0)
    if rdhup:
      poll = select.poll()
      poll.register(sock, rdhup)
      if poll.poll(0):
        return "closed"
    return "partial"

  def _dispatch(self, sock: socket.socket, address, handler) -> None:
    """Queues a connection for a handler thread, or refuses it (503)."""
    sock.setblocking(True)
    try:
      if self._stopping.is_set():
        raise queue.Full
      self._queue.put_nowait((sock, address, handler))
    except queue.Full:
      self.refuse(sock, "The server is busy: all "
                  f"{self.num_threads} handler threads are serving "
                  "connections and the queue of waiting ones is full; retry "
                  "after a second.")

  def refuse(self, sock: socket.socket, message: str) -> None:
    """Answers 503 with ``Retry-After: 1`` and closes, without blocking.

    What the client already sent is read first (without waiting), so that
    closing does not reset the connection before the answer is read.
    """
    try:
      sock.setblocking(False)
      with contextlib.suppress(BlockingIOError, InterruptedError):
        for _ in range(16):
          if not sock.recv(_CHUNK):
            break
      sock.settimeout(1.0)
      (data,) = response_bytes(503, {"error": message}, {"Retry-After": "1"},
                               close=True)
      sock.sendall(data)
      sock.shutdown(socket.SHUT_WR)
    except OSError:
      pass
    finally:
      sock.close()

  def queued(self) -> int:
    """Connections waiting in the queue for a handler thread."""
    return self._queue.qsize()

  def pending(self) -> int:
    """Connections accepted whose request head has not all come."""
    return len(self._pending)

  def held(self) -> int:
    """Connections being served by the handler threads."""
    return self._held

  # ----------------------------------------------------------- the pool

  def _work(self) -> None:
    while True:
      item = self._queue.get()
      if item is None:
        return
      sock, address, handler = item
      with self._idle:
        self._held += 1
      park = False
      try:
        if handler is None:
          handler = self.RequestHandlerClass.open(sock, address, self)
        park = handler.serve_requests()
      except Exception:  # pylint: disable=broad-except
        self.handle_error(sock, address)
      finally:
        with self._idle:
          self._held -= 1
        if park and not self._stopping.is_set():
          self._parked.append((sock, address, handler))
          with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")
        else:
          self._close(sock, handler)

  @contextlib.contextmanager
  def answering(self):
    """Counts a request in flight, for ``wait_idle`` and ``drain``."""
    with self._idle:
      self._busy += 1
    try:
      yield
    finally:
      with self._idle:
        self._busy -= 1
        self._idle.notify_all()

  @contextlib.contextmanager
  def body_budget(self, length: int):
    """Holds ``length`` bytes of ``bodies_in_flight_bytes`` while a request
    is answered (503 if they do not free up within ``body_wait_s``)."""
    if length <= 0:
      yield
      return
    with self._idle:
      let_in = self._idle.wait_for(
          lambda: (not self._body_bytes or self._body_bytes + length
                   <= self.bodies_in_flight_bytes), self.body_wait_s)
      if not let_in:
        raise HTTPError(503, f"The server is busy with {self._body_bytes} bytes "
                        "of request bodies (its limit: "
                        f"{self.bodies_in_flight_bytes}); retry after a "
                        "second, or send smaller requests.",
                        headers={"Retry-After": "1"})
      self._body_bytes += length
    try:
      yield
    finally:
      with self._idle:
        self._body_bytes -= length
        self._big_done |= length >= _TRIM_AFTER_BYTES
        self._idle.notify_all()

  def trim_if_idle(self) -> None:
    """After a big body's answer is sent: give the heap back once no body
    is being answered (``malloc_trim``)."""
    with self._idle:
      trim = self._big_done and not self._body_bytes
      if trim:
        self._big_done = False
    if trim:
      _heap.malloc_trim()

  def wait_idle(self, timeout: float) -> bool:
    """Waits until no request is being answered; False if ``timeout`` passed."""
    with self._idle:
      return self._idle.wait_for(lambda: not self._busy, timeout)

  @property
  def stopping(self) -> bool:
    return self._stopping.is_set()

  def drain(self, timeout: float) -> bool:
    """Stops gracefully after ``shutdown()``; False if requests outlived it.

    Closes the listening socket, answers queued connections 503, lets the
    requests being answered finish (at most ``timeout`` seconds; their
    answers say ``Connection: close``), closes idle keep-alive connections
    and stops the pool.
    """
    self._stopping.set()
    self.socket.close()
    while True:
      try:
        item = self._queue.get_nowait()
      except queue.Empty:
        break
      if item is not None:
        self.refuse(item[0], "The server is shutting down; retry on "
                    "another replica or after it restarts.")
    finished = self.wait_idle(timeout)
    for _ in self._workers:
      self._queue.put(None)
    deadline = time.monotonic() + (timeout if finished else 1.0) + 2 * _POLL_S
    for worker in self._workers:
      worker.join(max(0.0, deadline - time.monotonic()))
    self._close_parked()
    return finished

  def _close_parked(self) -> None:
    while self._parked:
      with contextlib.suppress(IndexError):
        sock, _, handler = self._parked.popleft()
        self._close(sock, handler)

  def _close(self, sock: socket.socket, handler) -> None:
    """Closes a connection (its handler's files hold the socket open)."""
    if handler is not None:
      with contextlib.suppress(Exception):
        handler.finish()
    self.shutdown_request(sock)

  def server_close(self):
    self._close_parked()
    self._wake_r.close()
    self._wake_w.close()
    if not self._stopping.is_set():
      self._stopping.set()
      for _ in self._workers:
        with contextlib.suppress(queue.Full):
          self._queue.put_nowait(None)
    super().server_close()

  def handle_error(self, request, client_address):
    # A client that hangs up mid-answer is not the server's problem.
    _log.debug("Connection from %s failed:\n%s", client_address,
               traceback.format_exc())


class JSONRequestHandler(http.server.BaseHTTPRequestHandler):
  """One connection's requests, answered with JSON in one send each.

  Subclasses implement ``answer(method) -> (status, answer, headers)``
  (raise ``HTTPError`` for an error answer).
  """
  server: PooledHTTPServer
  protocol_version = "HTTP/1.1"
  default_request_version = "HTTP/1.0"  # garbled request: still a status line
  server_version = "estlab-serve"

  _body_left = False  # an unread request body: drained after answering

  def __init__(self, *args, **kwargs):  # pylint: disable=super-init-not-called
    raise TypeError("A JSONRequestHandler is made by PooledHTTPServer with "
                    "JSONRequestHandler.open(sock, address, server).")

  @classmethod
  def open(cls, sock, client_address, server) -> "JSONRequestHandler":
    """A handler for a new connection (``BaseRequestHandler.__init__``
    without its ``handle()``: the pool calls ``serve_requests`` each time
    the connection has a request)."""
    self = cls.__new__(cls)
    self.request = sock
    self.client_address = client_address
    self.server = server
    self.timeout = server.body_timeout_s  # silence within a request
    self.setup()
    return self

  def serve_requests(self) -> bool:
    """Answers the requests that have come; True to keep the connection
    (parked in the accepting thread until its next request head)."""
    self.close_connection = True
    while True:
      self.handle_one_request()
      if self.close_connection:
        return False
      try:  # a pipelined request already read into the buffer?
        self.connection.setblocking(False)
        if not self.rfile.peek(1) and not self._next_head_soon():
          return True
      except OSError:
        return False
      finally:
        with contextlib.suppress(OSError):
          self.connection.settimeout(self.timeout)

  def _next_head_soon(self) -> bool:
    """Whether the next request head comes within ``_LINGER_S``, waited for
    here only while no connection waits for a handler thread: a client
    that asks again at once skips the trip through the accepting thread
    (two thread hand-offs, ~0.5 ms on 2 cores)."""
    if self.server.queued():
      return False
    readable, _, _ = select.select([self.connection], [], [], _LINGER_S)
    return bool(readable) and self.server.head_state(self.connection) == "whole"

  def do_GET(self):  # pylint: disable=invalid-name
    self._body_left = bool(self.headers.get("Content-Length", "0") != "0" or
                           self.headers.get("Transfer-Encoding"))
    with self.server.answering():
      try:
        with self.server.body_budget(self._announced_length()):
          status, answer, headers = self.answer(self.command)
          # Serialized under the budget too: the answer's JSON is big.
          data = self.answer_bytes(status, answer, headers)
        self.send_bytes(data)
        del data, answer
        self.server.trim_if_idle()
        return
      except HTTPError as e:
        status, answer, headers = e.status, {"error": e.message}, e.headers
      except Exception as e:  # pylint: disable=broad-except
        _log.exception("Internal error answering %s %s", self.command, self.path)
        status, answer, headers = 500, {
            "error": f"Internal error: {type(e).__name__}: {e}"}, {}
      self.send_json(status, answer, headers)

  do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

  def answer(self, method: str) -> tuple[int, Any, dict]:
    raise NotImplementedError

  def _announced_length(self) -> int:
    length = self.headers.get("Content-Length", "")
    length = int(length) if length.strip().isdigit() else 0
    return length if length <= self.server.max_body_bytes else 0  # a 413

  def send_error(self, code, message=None, explain=None):
    """The base class's errors (bad request line, ...) as JSON too."""
    del explain
    try:
      phrase = http.HTTPStatus(code).phrase
    except ValueError:
      phrase = "Error"
    self.close_connection = True
    self.send_json(code, {"error": message or phrase})

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    _log.debug("%s %s", self.address_string(), format % args)

  def read_body(self) -> bytearray:
    """The request body, exactly ``Content-Length`` bytes, read in chunks.

    Raises:
      HTTPError: 411 without ``Content-Length``, 400 for a bad one or a body
        that ends (or stalls ``body_timeout_s``) before it, 413 over ``limit``.
    """
    limit = self.server.max_body_bytes
    length = self.headers.get("Content-Length")
    if length is None:
      raise HTTPError(411, "The request has no Content-Length header; send the "
                      "JSON body with its length (chunked bodies are not read).")
    if not length.strip().isdigit():
      raise HTTPError(400, f"Content-Length={length!r} is not a byte count.")
    expected = int(length)
    if expected > limit:
      raise HTTPError(413, f"The request body has {expected} bytes, over the "
                      f"limit of {limit}; send fewer examples per request or "
                      "restart the server with a larger --max-body-bytes.")
    body = bytearray(expected)
    view = memoryview(body)
    got = 0
    why = "the client closed the connection"
    try:
      while got < expected:
        n = self.rfile.readinto1(view[got:])  # one recv: counts survive
        if not n:
          break
        got += n
    except TimeoutError:
      why = f"nothing came for {self.server.body_timeout_s:g} s"
    except OSError as e:
      why = f"reading failed: {e}"
    finally:
      view.release()
    if got < expected:
      self.close_connection = True
      self._body_left = False  # nothing more to read
      raise HTTPError(400, f"The request body ended after {got} of the "
                      f"{expected} bytes its Content-Length announced "
                      f"({why}); send the whole body, or the right "
                      "Content-Length.")
    self._body_left = False
    return body

  def send_json(self, status: int, answer: Any, headers=None) -> None:
    """Writes the whole answer in one ``sendall`` (no Nagle delay)."""
    self.send_bytes(self.answer_bytes(status, answer, headers))

  def answer_bytes(self, status: int, answer: Any, headers=None
                   ) -> list[bytes]:
    """The answer as bytes; decides ``Connection: close`` first."""
    if self._body_left or self.server.stopping:
      self.close_connection = True
    self.log_request(status)
    try:
      return response_bytes(status, answer, headers,
                            close=self.close_connection,
                            head=self.command == "HEAD")
    except ValueError as e:  # a non-finite number: a bug, said as JSON
      _log.exception("Answer is not valid JSON")
      return response_bytes(
          500, {"error": f"Internal error: the answer is not JSON: {e}"},
          close=self.close_connection)

  def send_bytes(self, data: list[bytes]) -> None:
    try:
      self.connection.settimeout(max(30.0, self.server.body_timeout_s))
      for piece in data:
        self.connection.sendall(piece)
    except OSError:
      self.close_connection = True

  def finish(self):
    """A lingering close when the body was left unread (as Apache and nginx do).

    Closing a socket with unread input sends a TCP reset, which can destroy
    the answer before the client reads it; so stop writing, then read and
    drop what the client still sends, for at most a few seconds.
    """
    super().finish()
    if not self._body_left:
      return
    try:
      self.connection.shutdown(socket.SHUT_WR)
      self.connection.settimeout(1.0)
      deadline = time.monotonic() + 5.0
      while time.monotonic() < deadline and self.connection.recv(_CHUNK):
        pass
    except OSError:
      pass
