"""TensorFlow Serving's REST API over an estlab export: ``estlab serve``.

Built on the standard library's ``http.server.ThreadingHTTPServer`` (a
well-kept HTTP/1.1 server, one daemon thread per connection): no new
dependency, and no HTTP parsing written here (the one socket call is the
lingering close after a refused body). This module routes TF Serving's URLs
and converts JSON to and from the loader's columnar signatures
(``estlab.export.load``). It is one module past 500 lines on purpose: the whole
REST contract, URLs to JSON shapes to status codes, reads in one place. The
answers follow TF Serving's ``g3doc/api_rest.md`` (``/versions/V`` optional)::

  GET  /v1/models/NAME[/versions/V]           {"model_version_status": [...]}
       (/labels/LABEL wherever /versions/V goes: a version_labels entry of
       the model config; several models and versions: _model_config, _registry)
  GET  /v1/models/NAME[/versions/V]/metadata  {"model_spec", "metadata"}
  POST /v1/models/NAME[/versions/V]:predict   {"instances"} -> {"predictions"}
                                              {"inputs"} -> {"outputs"}
                      a parsing export also takes serialized tf.train.Examples:
                      {"instances": [{"b64": ...}]}, {"inputs": [{"b64": ...}]}
  POST ...:classify   {"examples", "context"} -> {"results": [[[label, score]]]}
                      (for a parsing export each object is a tf.train.Example,
                      parsed as TF Serving does: absent features take defaults)
  POST ...:regress    {"examples", "context"} -> {"results": [value, ...]}

(The doc's prose says ``"result"``; TF Serving answers ``"results"``, as its
own example and tests show, and so does this server.)

Errors are ``{"error": "..."}``: 400 for a bad body or bad features, 404 for
an unknown model, version, signature or URL, 405 for a wrong method, 411 for a
body without ``Content-Length``, 413 for a body over ``max_body_bytes``, and
500 only for a bug (the server keeps running).

Example::

  server = make_server('/tmp/export', 'penguins', port=0)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  print(server.url)   # http://127.0.0.1:PORT/v1/models/penguins
"""
from __future__ import annotations

import contextlib
import http
import http.server
import json
import logging
import os
import re
import signal
import socket
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

import numpy as np

from estlab.export import ServingInputError
from estlab.export import _batching, _example_proto
from estlab.export import _registry
from estlab.export import _rest_json as _rest

_log = logging.getLogger("estlab.serve")

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
_CLASSIFY = "tensorflow/serving/classify"
_REGRESS = "tensorflow/serving/regress"
_DEFAULT_SIGNATURE = "serving_default"
# /v1/models/NAME[/versions/V | /labels/LABEL][/metadata | :verb]
_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)"
                    r"(?:/versions/(?P<version>[^/:]+)"
                    r"|/labels/(?P<label>[^/:]+))?"
                    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?/?$")
_MAX_DEPTH = 100  # JSON levels of a request body: the body, rows, a tensor's


def _too_deep(body: Any) -> bool:
  """Whether JSON nests deeper than ``_MAX_DEPTH`` (walked without recursion)."""
  todo = [(body, 1)]
  while todo:
    value, depth = todo.pop()
    if depth > _MAX_DEPTH:
      return True
    if isinstance(value, dict):
      todo.extend((v, depth + 1) for v in value.values())
    elif isinstance(value, list):
      todo.extend((v, depth + 1) for v in value)
  return False


class ModelServer(http.server.ThreadingHTTPServer):
  """Serves the models of a registry under ``/v1/models/<name>``.

  Attributes:
    registry: the loaded versions (``_registry.Registry``); polled for
      new versions while ``serve_forever`` runs.
    model_name: the first model's name (for one model, the name in the URLs).
    version, export_dir, imported, batchers: the first model's newest loaded
      version: its directory's name, the directory, what
      ``estlab.export.load`` returned, its ``_batching.Batcher`` per
      signature (empty without batching).
    max_body_bytes: larger request bodies are refused with 413.
    url: ``http://host:port/v1/models/<model_name>`` (the bound port).
  """
  daemon_threads = True
  allow_reuse_address = True
  request_queue_size = 128  # bursts of clients wait in the backlog

  def __init__(self, address, registry: _registry.Registry, *,
               max_body_bytes: int):
    self.registry = registry
    self.model_name = registry.names[0]
    self.max_body_bytes = max_body_bytes
    self._busy = 0  # requests being answered
    self._idle = threading.Condition()
    super().__init__(address, _Handler)

  @contextlib.contextmanager
  def answering(self):
    """Counts a request in flight, for ``wait_idle``."""
    with self._idle:
      self._busy += 1
    try:
      yield
    finally:
      with self._idle:
        self._busy -= 1
        self._idle.notify_all()

  def wait_idle(self, timeout: float) -> bool:
    """Waits until no request is being answered; False if ``timeout`` passed."""
    with self._idle:
      return self._idle.wait_for(lambda: not self._busy, timeout)

  def model_url(self, name: str) -> str:
    host, port = self.server_address[:2]
    return f"http://{host}:{port}/v1/models/{name}"

  def run_signature(self, servable: _registry.Servable, name: str, sig,
                    columns: dict) -> dict:
    """Runs a signature of ``servable``, through its Batcher when batching
    is on."""
    try:
      return _rest.run(servable.batchers.get(name, sig), name, columns)
    except _batching.ServerOverloadedError as e:
      raise _rest.HTTPError(503, str(e), headers={
          "Retry-After": str(e.retry_after_seconds)}) from None

  @property
  def url(self) -> str:
    return self.model_url(self.model_name)

  @property
  def version(self) -> str:
    return self.registry.resolve(self.model_name).version

  @property
  def export_dir(self) -> str:
    return self.registry.resolve(self.model_name).path

  @property
  def imported(self):
    return self.registry.resolve(self.model_name).imported

  @property
  def batchers(self) -> dict:
    """The first model's newest version's ``{signature: Batcher}``."""
    return dict(self.registry.resolve(self.model_name).batchers)

  def serve_forever(self, poll_interval=0.5):
    """Serves, polling the models' base paths (and config file) meanwhile."""
    self.registry.start_polling()
    try:
      super().serve_forever(poll_interval)
    finally:
      self.registry.stop_polling()

  def server_close(self):
    self.registry.close()
    super().server_close()

  def handle_error(self, request, client_address):
    # A client that hangs up mid-answer is not the server's problem.
    _log.debug("Connection from %s failed:\n%s", client_address,
               traceback.format_exc())


def make_server(export_path: str | os.PathLike | None = None,
                model_name: str = "default",
                host: str = "127.0.0.1", port: int = 8501,
                max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, *,
                model_config_file: str | os.PathLike | None = None,
                file_system_poll_wait_seconds: float = 1.0,
                model_config_file_poll_wait_seconds: float = 0.0,
                batching: _batching.BatchingParameters | None = None
                ) -> ModelServer:
  """Loads the exports and binds a TF Serving REST server to them (not started).

  Args:
    export_path: ``<base>/<timestamp>/`` or ``<base>`` (newest version); or
      None with ``model_config_file``.
    model_name: the ``NAME`` in ``/v1/models/NAME`` (with ``export_path``).
    host: interface to bind; ``'0.0.0.0'`` for every interface.
    port: TCP port; 0 picks a free one (read it back from ``server.url``).
    max_body_bytes: request bodies larger than this are refused with 413.
    model_config_file: TF Serving's ModelServerConfig (text proto or JSON):
      several models, version policies and labels (``_model_config``).
    file_system_poll_wait_seconds: how often ``serve_forever`` looks for new
      versions under each base path (0: never).
    model_config_file_poll_wait_seconds: how often it re-reads
      ``model_config_file`` (0: never).
    batching: with ``BatchingParameters``, concurrent requests to a signature
      are joined into batches (``_batching``; each batch size of each loaded
      version is compiled when it loads, before it answers).

  Raises:
    estlab.export.NotAnExportError: (a FileNotFoundError and a ValueError)
      no export at ``export_path`` (or a model's base path).
    ValueError: a bad ``model_config_file`` (``ModelConfigError``), or both
      or neither of ``export_path`` and ``model_config_file``.
    OSError: the port is taken.

  Returns:
    A ``ModelServer``; call ``serve_forever()`` (and ``shutdown()`` from
    another thread), or use ``serve`` for a blocking server with signals.

  Example::

    server = make_server(export_dir, 'penguins', port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
  """
  if not re.fullmatch(r"[^/:\s]+", model_name or ""):
    raise ValueError(f"model_name={model_name!r} cannot appear in a URL path; "
                     "use letters, digits, '_', '-' or '.', e.g. 'penguins'.")
  if max_body_bytes <= 0:
    raise ValueError(f"max_body_bytes={max_body_bytes!r} must be positive, "
                     f"e.g. {DEFAULT_MAX_BODY_BYTES} (10 MiB).")
  polls = {"file_system_poll_wait_seconds": file_system_poll_wait_seconds,
           "batching": batching}
  if (export_path is None) == (model_config_file is None):
    raise ValueError(
        f"export_path={export_path!r}, model_config_file={model_config_file!r}"
        ": give one, the export to serve or the models' config file.")
  if model_config_file is not None:
    registry = _registry.Registry.from_config_file(
        model_config_file, model_config_file_poll_wait_seconds=(
            model_config_file_poll_wait_seconds), **polls)
  else:
    registry = _registry.Registry.single(export_path, model_name, **polls)
  registry.start()  # the newest complete export under each base path
  return ModelServer((host, port), registry, max_body_bytes=max_body_bytes)


def serve(export_path: str | os.PathLike | None = None,
          model_name: str = "default",
          host: str = "127.0.0.1", port: int = 8501,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, **models) -> None:
  """Serves until SIGINT or SIGTERM, then closes the socket and returns.

  Prints ``Serving NAME (version V) from DIR at URL`` once it listens, a
  line per model. Arguments are ``make_server``'s (``models``: its
  keyword-only ones: ``model_config_file``, the poll waits).
  """
  server = make_server(export_path, model_name, host, port, max_body_bytes,
                       **models)
  stopping = threading.Event()

  def _stop(signum, frame):
    del frame
    if not stopping.is_set():
      stopping.set()
      _log.info("Got %s, shutting down.", signal.Signals(signum).name)
      # shutdown() waits for serve_forever, which runs in this thread.
      threading.Thread(target=server.shutdown, daemon=True).start()

  previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
  for name in server.registry.names:
    newest = server.registry.resolve(name)
    print(f"Serving {name} (version {newest.version}) from {newest.path} at "
          f"{server.model_url(name)}", flush=True)
  try:
    server.serve_forever()
    # Answers being computed finish (connection threads are daemons).
    if not server.wait_idle(timeout=30.0):
      _log.warning("Requests still running after 30 s; stopping anyway.")
  finally:
    server.server_close()
    for s, handler in previous.items():
      signal.signal(s, handler)


# ------------------------------------------------------------------ handler


class _Handler(http.server.BaseHTTPRequestHandler):
  """Routes one request; every answer, errors included, is JSON."""
  server: ModelServer
  protocol_version = "HTTP/1.1"
  default_request_version = "HTTP/1.0"  # garbled request: still a status line
  server_version = "estlab-serve"
  timeout = 60  # seconds a silent client may hold its thread

  _body_left = False  # an unread request body: drained after answering
  _servable = None  # the version this request runs on (_check_model's)

  def do_GET(self):  # pylint: disable=invalid-name
    self._dispatch()

  do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

  def send_error(self, code, message=None, explain=None):
    """The base class's errors (bad request line, ...) as JSON too."""
    del explain
    try:
      phrase = http.HTTPStatus(code).phrase
    except ValueError:
      phrase = "Error"
    self.close_connection = True
    self._send_json(code, {"error": message or phrase})

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    _log.debug("%s %s", self.address_string(), format % args)

  def _dispatch(self) -> None:
    self._body_left = bool(self.headers.get("Content-Length", "0") != "0" or
                           self.headers.get("Transfer-Encoding"))
    headers = {}
    with self.server.answering():
      try:
        status, answer = self._route(self.command)
      except _rest.HTTPError as e:
        status, answer, headers = e.status, {"error": e.message}, e.headers
      except Exception as e:  # pylint: disable=broad-except
        _log.exception("Internal error answering %s %s", self.command, self.path)
        status, answer = 500, {
            "error": f"Internal error: {type(e).__name__}: {e}"}
      if self._body_left:
        self.close_connection = True
      self._send_json(status, answer, headers)

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
      while time.monotonic() < deadline and self.connection.recv(1 << 16):
        pass
    except OSError:
      pass

  def _route(self, method: str) -> tuple[int, Any]:
    path = self.path.split("?", 1)[0]
    match = _ROUTE.match(path)
    if not match:
      raise _rest.HTTPError(404, f"Unknown URL {path!r}; the model is at "
                       f"/v1/models/{self.server.model_name}[:predict|:classify"
                       "|:regress|/metadata].")
    expected = "POST" if match["verb"] else "GET"
    if method != expected:
      raise _rest.HTTPError(405, f"{method} is not allowed on {path!r}; use "
                       f"{expected}.", headers={"Allow": expected})
    if not match["verb"] and not match["metadata"]:
      return 200, self._status(match["name"], match["version"], match["label"])
    self._servable = self._check_model(match["name"], match["version"],
                                       match["label"])
    try:  # the request holds its version until answered, even if unloaded
      if match["verb"]:
        verb = match["verb"]
        if verb not in ("predict", "classify", "regress"):
          raise _rest.HTTPError(404, f"Unknown verb {verb!r} in {path!r}; use "
                                ":predict, :classify or :regress.")
        body = self._read_json()
        return 200, getattr(self, f"_{verb}")(body)
      return 200, self._metadata()
    finally:
      self._servable = None

  # ------------------------------------------------------------- requests

  def _check_model(self, name: str, version: str | None,
                   label: str | None) -> _registry.Servable:
    """The loaded version the request runs on, held until it is answered."""
    try:
      return self.server.registry.resolve(name, version, label)
    except _registry.ServableNotFoundError as e:
      raise _rest.HTTPError(404, str(e)) from None
    except _registry.UnknownLabelError as e:  # TF: INVALID_ARGUMENT
      raise _rest.HTTPError(400, str(e)) from None

  def _read_json(self) -> Any:
    limit = self.server.max_body_bytes
    length = self.headers.get("Content-Length")
    if length is None:
      raise _rest.HTTPError(411, "The request has no Content-Length header; send the "
                       "JSON body with its length (chunked bodies are not read).")
    if not length.strip().isdigit():
      raise _rest.HTTPError(400, f"Content-Length={length!r} is not a byte count.")
    if int(length) > limit:
      raise _rest.HTTPError(413, f"The request body has {int(length)} bytes, over the "
                       f"limit of {limit}; send fewer examples per request or "
                       "restart the server with a larger --max-body-bytes.")
    raw = self.rfile.read(int(length))
    self._body_left = False
    try:
      body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      raise _rest.HTTPError(400, f"The request body is not valid JSON: {e}.") from e
    except RecursionError as e:
      raise _rest.HTTPError(400, "The request body's JSON nests too deeply.") from e
    if _too_deep(body):  # under the parser's limit, still too deep to walk
      raise _rest.HTTPError(400, "The request body's JSON nests too deeply: "
                            f"more than {_MAX_DEPTH} levels; a tensor has at "
                            "most 32 dimensions.")
    if not isinstance(body, dict):
      raise _rest.HTTPError(400, "The request body must be a JSON object such as "
                       '{"instances": [...]}, not ' f"{_rest.preview(body)}.")
    return body

  def _signature(self, body: dict, verb: str):
    name = body.get("signature_name", _DEFAULT_SIGNATURE)
    signatures = self._servable.imported.signatures
    if not isinstance(name, str):
      raise _rest.HTTPError(400, f"signature_name={_rest.preview(name)} must be a string, "
                       f"one of {sorted(signatures)!r}.")
    if name not in signatures:
      raise _rest.HTTPError(404, f"Serving signature name: {name!r} not found in "
                       f"signature def; the model has {sorted(signatures)!r}.")
    sig = signatures[name]
    wanted = {"classify": _CLASSIFY, "regress": _REGRESS}.get(verb)
    if wanted and sig.method_name != wanted:
      fits = sorted(k for k, s in signatures.items() if s.method_name == wanted)
      fix = (f'send "signature_name": {json.dumps(fits[0])}' if fits else
             f"this model has no {verb} signature; use :predict")
      raise _rest.HTTPError(400, f"Expected {verb} signature method_name to be "
                       f"{wanted}. Was: {sig.method_name} (signature {name!r}); "
                       f"{fix}.")
    return name, sig

  def _predict(self, body: dict) -> dict:
    name, sig = self._signature(body, "predict")
    unknown = sorted(set(body) - {"signature_name", "instances", "inputs"})
    if unknown:
      raise _rest.HTTPError(400, f"Unknown predict request fields {unknown!r}; use "
                       '"signature_name" and one of "instances" or "inputs".')
    if ("instances" in body) == ("inputs" in body):
      raise _rest.HTTPError(400, 'A predict request needs exactly one of "instances" '
                       '(row format) or "inputs" (columnar format); got '
                       f"{sorted(body)!r}.")
    input_names = list(sig.inputs)
    examples = _example_proto.takes_examples(sig.inputs)
    if "instances" in body:
      columns, count = _rest.rows_to_columns(body["instances"], input_names,
                                             examples=examples)
      outputs = self.server.run_signature(self._servable, name, sig, columns)
      rows = _rest.outputs_to_rows(outputs, count)
      if len(outputs) == 1:
        (key,) = outputs
        rows = [row[key] for row in rows]
      return {"predictions": rows}
    inputs = body["inputs"]
    if examples and isinstance(inputs, list) and inputs and all(
        _rest.is_b64(v) for v in inputs):  # serialized tf.train.Examples
      inputs = {"examples": inputs}
    if not isinstance(inputs, dict) or _rest.is_b64(inputs):
      if len(input_names) != 1:
        raise _rest.HTTPError(400, '"inputs" must be an object of input name -> '
                         f"values for signature {name!r} (inputs "
                         f"{input_names!r}), not {_rest.preview(inputs)}.")
      inputs = {input_names[0]: inputs}
    outputs = self.server.run_signature(
        self._servable, name, sig,
        {k: _rest.decode_b64(v) for k, v in inputs.items()})
    answer = {k: _rest.to_json(k, v) for k, v in outputs.items()}
    if len(answer) == 1:
      (answer,) = answer.values()
    return {"outputs": answer}

  def _examples(self, body: dict, verb: str):
    name, sig = self._signature(body, verb)
    unknown = sorted(set(body) - {"signature_name", "context", "examples"})
    if unknown:
      raise _rest.HTTPError(400, f"Unknown {verb} request fields {unknown!r}; use "
                       '"signature_name", "context" and "examples".')
    examples = body.get("examples")
    if not isinstance(examples, list) or not examples:
      raise _rest.HTTPError(400, f'A {verb} request needs "examples": a non-empty '
                       'list of objects such as [{"x": 1.0}], not '
                       f"{_rest.preview(examples)}.")
    context = body.get("context", {})
    if not isinstance(context, dict):
      raise _rest.HTTPError(400, f'"context" must be an object of feature -> value, '
                       f"not {_rest.preview(context)}.")
    rows = []
    for i, example in enumerate(examples):
      if not isinstance(example, dict):
        raise _rest.HTTPError(400, f"examples[{i}] must be an object of feature -> "
                         f'value such as {{"x": 1.0}}, not {_rest.preview(example)}.')
      clash = sorted(set(example) & set(context))
      if clash:
        raise _rest.HTTPError(400, f"examples[{i}] repeats context features {clash!r};"
                         " a feature goes in the context or in the examples.")
      rows.append({**context, **example})
    if _example_proto.takes_examples(sig.inputs):
      # As TF Serving: each object is a tf.train.Example, parsed with the
      # export's spec (missing features take their default_value).
      try:
        columns = {"examples": _example_proto.from_json(rows, sig.inputs)}
      except ServingInputError as e:
        raise _rest.HTTPError(400, f"Signature {name!r}: {e}") from None
      return self.server.run_signature(self._servable, name, sig, columns), len(rows)
    columns, count = _rest.rows_to_columns(rows, list(sig.inputs), field="examples")
    return self.server.run_signature(self._servable, name, sig, columns), count

  def _classify(self, body: dict) -> dict:
    outputs, count = self._examples(body, "classify")
    scores = outputs.get("scores")
    classes = outputs.get("classes")
    if scores is None and classes is None:
      raise RuntimeError(f"A classify signature returned {sorted(outputs)!r}, "
                         "neither 'scores' nor 'classes'.")
    if scores is not None:
      scores = _rest.to_json("scores", np.reshape(scores, (count, -1)))
    if classes is not None:
      classes = _rest.to_json("classes", np.reshape(classes, (count, -1)))
    shape = scores or classes
    return {"results": [
        [["" if classes is None else str(classes[i][j]),
          None if scores is None else scores[i][j]]
         for j in range(len(shape[i]))] for i in range(count)]}

  def _regress(self, body: dict) -> dict:
    outputs, count = self._examples(body, "regress")
    values = outputs.get("outputs")
    if values is None:
      if len(outputs) != 1:
        raise RuntimeError(f"A regress signature returned {sorted(outputs)!r}, "
                           "not 'outputs'.")
      (values,) = outputs.values()
    return {"results": _rest.to_json("outputs", np.reshape(values, (count,)))}

  def _status(self, name: str, version: str | None, label: str | None) -> dict:
    try:
      return self.server.registry.status(name, version, label)
    except _registry.ServableNotFoundError as e:
      raise _rest.HTTPError(404, str(e)) from None
    except _registry.UnknownLabelError as e:
      raise _rest.HTTPError(400, str(e)) from None

  def _metadata(self) -> dict:
    defs = {}
    for name, sig in self._servable.imported.signatures.items():
      outputs = sig.outputs
      if not isinstance(outputs, Mapping):
        outputs = {key: None for key in outputs}
      defs[name] = {
          "inputs": {k: _rest.tensor_info(k, v) for k, v in sig.inputs.items()},
          "outputs": {k: _rest.tensor_info(k, v) for k, v in outputs.items()},
          "method_name": sig.method_name}
    return {"model_spec": {"name": self._servable.model,
                           "signature_name": "",
                           "version": self._servable.version},
            "metadata": {"signature_def": {"signature_def": defs}}}

  # -------------------------------------------------------------- answers

  def _send_json(self, status: int, answer: Any, headers=None) -> None:
    data = json.dumps(answer).encode()
    try:
      self.send_response(status)
      for key, value in (headers or {}).items():
        self.send_header(key, value)
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(data)))
      if self.close_connection:
        self.send_header("Connection", "close")
      self.end_headers()
      if self.command != "HEAD":
        self.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
      self.close_connection = True


# -------------------------------------------------------- JSON <-> columns
