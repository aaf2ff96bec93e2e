"""TensorFlow Serving's REST API over an estlab export: ``estlab serve``.

The transport (``_http``: the standard library's HTTP parser under a fixed
pool of handler threads, a bounded queue, one send per answer) is below this
module; it routes TF Serving's URLs
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

HEAD is answered wherever GET is (same headers, no body). Non-finite output
numbers are written as the JSON strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` (TF Serving writes them as bare tokens, which JSON parsers
reject); inputs take them bare or quoted, as TF Serving does.

Errors are ``{"error": "..."}``: 400 for a bad body or bad features (or a
body shorter than its ``Content-Length``), 404 for an unknown model, version,
signature or URL, 405 for a wrong method, 411 for a body without
``Content-Length``, 413 for a body over ``max_body_bytes``, 415 for a
``Content-Type`` that is not JSON, 503 (``Retry-After: 1``) when the server is
full, 504 when a computation outlives ``--rest-api-timeout-in-ms`` (as TF
Serving's DEADLINE_EXCEEDED), and 500 only for a bug (the server keeps
running).

Example::

  server = make_server('/tmp/export', 'penguins', port=0)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  print(server.url)   # http://127.0.0.1:PORT/v1/models/penguins
"""
from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from estlab.export import ServingInputError
from estlab.export import _batching, _example_proto, _heap, _http
from estlab.export import _registry
from estlab.export import _rest_json as _rest

_log = logging.getLogger("estlab.serve")

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_TIMEOUT_MS = 30000  # TF Serving's --rest_api_timeout_in_ms
# Bodies being answered at once, summed, past max_body_bytes: one body of
# the largest size at a time (a JSON body of many rows takes ~14x its size in
# Python objects, its columns and its answer: ~140 MB for 10 MB; its parsing
# holds the GIL, so two at once are no faster than one after the other),
# with room beside it for small requests.
_BODIES_BESIDE_THE_LARGEST = 2 * 1024 * 1024
_DRAIN_S = 30.0  # how long a stop waits for the requests being answered
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


class ModelServer(_http.PooledHTTPServer):
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
    timeout_ms: a computation running longer is answered 504.
    url: ``http://host:port/v1/models/<model_name>`` (the bound port).
  """

  def __init__(self, address, registry: _registry.Registry, *,
               max_body_bytes: int,
               num_threads: int | None = None, max_queued: int | None = None,
               timeout_ms: int = DEFAULT_TIMEOUT_MS, **transport):
    self.registry = registry
    self.model_name = registry.names[0]
    self.timeout_ms = timeout_ms
    num_threads = num_threads or _http.default_num_threads()
    # One computation per handler thread at most; a timed-out one keeps its
    # slot until it ends (a computation cannot be stopped), so abandoned work
    # never piles up behind the pool.
    self._compute = concurrent.futures.ThreadPoolExecutor(
        num_threads, thread_name_prefix="estlab-compute")
    self._compute_slots = threading.BoundedSemaphore(num_threads)
    transport.setdefault("bodies_in_flight_bytes",
                         max_body_bytes + _BODIES_BESIDE_THE_LARGEST)
    # A request waits for room among the bodies in flight as long as it may
    # compute: the waiting costs a thread, not memory (its body is unread).
    transport.setdefault("body_wait_s", timeout_ms / 1000)
    super().__init__(address, _Handler, num_threads=num_threads,
                     max_queued=max_queued or 4 * num_threads,
                     max_body_bytes=max_body_bytes, **transport)

  def model_url(self, name: str) -> str:
    host, port = self.server_address[:2]
    return f"http://{host}:{port}/v1/models/{name}"

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

  def run_signature(self, servable: _registry.Servable, name: str, sig,
                    columns: dict) -> dict:
    """Runs one signature on columns: the one place a request computes
    (through the version's Batcher when batching is on).

    Args:
      servable: the loaded version the signature belongs to.
      name: the signature's name (for errors).
      sig: ``servable.signatures[name]``.
      columns: ``{input: values}``, one value per example.

    Returns:
      ``{output: numpy array}``.

    Raises:
      HTTPError: 400 for bad features; 503 when the batch queue is full;
        504 when the computation outlives ``timeout_ms`` (it finishes
        unseen; its answer is dropped).
    """
    run = servable.batchers.get(name, sig)
    timeout = self.timeout_ms / 1000
    deadline = time.monotonic() + timeout
    if not self._compute_slots.acquire(timeout=timeout):
      raise _rest.HTTPError(504, self._late(name, "waiting for a computation "
                                            "slot"))
    try:
      future = self._compute.submit(_rest.run, run, name, columns)
    except RuntimeError:  # the pool is shut down: the server is stopping
      self._compute_slots.release()
      raise _rest.HTTPError(503, "The server is shutting down; retry after "
                            "it restarts.", headers={"Retry-After": "1"}) from None
    future.add_done_callback(lambda _: self._compute_slots.release())
    try:
      return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except concurrent.futures.TimeoutError:
      raise _rest.HTTPError(504, self._late(name, "computing")) from None
    except _batching.ServerOverloadedError as e:
      raise _rest.HTTPError(503, str(e), headers={
          "Retry-After": str(e.retry_after_seconds)}) from None

  def _late(self, name: str, doing: str) -> str:
    return (f"Deadline exceeded: signature {name!r} was still {doing} after "
            f"--rest-api-timeout-in-ms={self.timeout_ms}; send fewer examples "
            "per request or raise the timeout.")

  def server_close(self):
    self.registry.close()
    super().server_close()
    self._compute.shutdown(wait=False, cancel_futures=True)


def make_server(export_path: str | os.PathLike | None = None,
                model_name: str = "default",
                host: str = "127.0.0.1", port: int = 8501,
                max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, *,
                model_config_file: str | os.PathLike | None = None,
                file_system_poll_wait_seconds: float = 1.0,
                model_config_file_poll_wait_seconds: float = 0.0,
                batching: _batching.BatchingParameters | None = None,
                num_threads: int | None = None,
                timeout_ms: int = DEFAULT_TIMEOUT_MS,
                max_queued: int | None = None,
                max_pending: int | None = None,
                idle_timeout_s: float = _http.DEFAULT_IDLE_TIMEOUT_S,
                body_timeout_s: float = _http.DEFAULT_BODY_TIMEOUT_S
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
    num_threads: handler threads (TF Serving's ``--rest_api_num_threads``);
      default ``max(16, 4 * CPUs)``.
    timeout_ms: a computation running longer is answered 504 (TF Serving's
      ``--rest_api_timeout_in_ms``).
    max_queued: accepted connections waiting for a handler thread; more are
      answered 503 at once. Default ``4 * num_threads``.
    max_pending: connections whose request head has not all come (they
      wait in the accepting thread, not in a handler thread); more get 503.
      Default 4096 (less under a lower open-files limit).
    idle_timeout_s: a connection silent this long (a keep-alive one between
      requests, or one still sending its request head) is closed.
    body_timeout_s: a request whose body stalls this long is answered 400.

  Raises:
    estlab.export.NotAnExportError: (a FileNotFoundError and a ValueError)
      no export at ``export_path`` (or a model's base path).
    ValueError: a bad ``model_config_file`` (``ModelConfigError``), or both
      or neither of ``export_path`` and ``model_config_file``.
    OSError: the port is taken.

  Returns:
    A ``ModelServer``; call ``serve_forever()`` (and ``shutdown()`` then
    ``server_close()`` from another thread), or use ``serve`` for a
    blocking server with signals.

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
  if num_threads is not None and num_threads < 1:
    raise ValueError(f"num_threads={num_threads!r} must be at least 1, e.g. "
                     f"{_http.default_num_threads()} (max(16, 4 * CPUs)).")
  if timeout_ms <= 0:
    raise ValueError(f"timeout_ms={timeout_ms!r} must be positive, e.g. "
                     f"{DEFAULT_TIMEOUT_MS} (TF Serving's default).")
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
  return ModelServer((host, port), registry, max_body_bytes=max_body_bytes,
                     num_threads=num_threads, timeout_ms=timeout_ms,
                     max_queued=max_queued, max_pending=max_pending,
                     idle_timeout_s=idle_timeout_s,
                     body_timeout_s=body_timeout_s)


def serve(export_path: str | os.PathLike | None = None,
          model_name: str = "default",
          host: str = "127.0.0.1", port: int = 8501,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, **options) -> None:
  """Serves until SIGINT or SIGTERM, then stops gracefully and returns.

  Prints ``Serving NAME (version V) from DIR at URL`` once it listens, a
  line per model. On a signal it stops accepting, answers queued
  connections 503, lets requests being answered finish (at most 30 s),
  closes keep-alive connections and returns. Arguments are
  ``make_server``'s.
  """
  # A process of its own: its handler threads share two malloc arenas, so
  # memory freed after a big request is reused rather than kept per thread.
  _heap.limit_malloc_arenas(2)
  server = make_server(export_path, model_name, host, port, max_body_bytes,
                       **options)
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
    if not server.drain(timeout=_DRAIN_S):
      _log.warning("Requests still running after %g s; stopping anyway.",
                   _DRAIN_S)
  finally:
    server.server_close()
    for s, handler in previous.items():
      signal.signal(s, handler)


# ------------------------------------------------------------------ handler


class _Handler(_http.JSONRequestHandler):
  """Routes one request; every answer, errors included, is JSON."""
  server: ModelServer
  _quoted_nonfinite = False  # the body holds "NaN", "Infinity" or "-Infinity"

  _servable = None  # the version this request runs on (_check_model's)

  def answer(self, method: str) -> tuple[int, Any, dict]:
    status, answer = self._route(method)
    return status, answer, {}

  def _route(self, method: str) -> tuple[int, Any]:
    path = self.path.split("?", 1)[0]
    match = _ROUTE.match(path)
    if not match:
      raise _rest.HTTPError(404, f"Unknown URL {path!r}; the model is at "
                       f"/v1/models/{self.server.model_name}[:predict|:classify"
                       "|:regress|/metadata].")
    expected = "POST" if match["verb"] else "GET"
    if method != expected and not (method == "HEAD" and expected == "GET"):
      allow = "POST" if expected == "POST" else "GET, HEAD"
      raise _rest.HTTPError(405, f"{method} is not allowed on {path!r}; use "
                       f"{allow}.", headers={"Allow": allow})
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
    _check_content_type(self.headers.get("Content-Type"))
    raw = self.read_body()
    self._quoted_nonfinite = any(word in raw for word in _rest.QUOTED_NONFINITE)
    try:
      body = json.loads(raw)
      del raw
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
      # Popped: the parsed rows (the bulk of a big body's memory) are freed
      # once they are columns, before the model runs.
      columns, count = _rest.rows_to_columns(body.pop("instances"),
                                             input_names, examples=examples)
      outputs = self._run(name, sig, columns)
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
    outputs = self._run(name, sig, {k: _rest.decode_b64(v) for k, v in inputs.items()})
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
    examples = body.pop("examples", None)  # freed once they are columns
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
      row = {**context, **example} if context else example
      rows.append(_rest.nonfinite_inputs(row, sig.inputs)
                  if self._quoted_nonfinite else row)
    del examples
    count = len(rows)
    if _example_proto.takes_examples(sig.inputs):
      # As TF Serving: each object is a tf.train.Example, parsed with the
      # export's spec (missing features take their default_value).
      try:
        columns = {"examples": _example_proto.from_json(rows, sig.inputs)}
      except ServingInputError as e:
        raise _rest.HTTPError(400, f"Signature {name!r}: {e}") from None
    else:
      columns, _ = _rest.rows_to_columns(rows, list(sig.inputs),
                                         field="examples")
    del rows
    return self._run(name, sig, columns), count

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

  def _run(self, name: str, sig, columns: dict) -> dict:
    if self._quoted_nonfinite:
      columns = _rest.nonfinite_inputs(columns, sig.inputs)
    return self.server.run_signature(self._servable, name, sig, columns)


# Content types a body may declare. JSON of course (with any parameters, and
# the structured ``+json`` types); no header at all; and
# ``application/x-www-form-urlencoded``, because that is what ``curl -d``
# sends and TF Serving's own REST examples use ``curl -d '{"instances": ...}'``
# (TF Serving reads the body as JSON whatever its type). Anything else
# (text/plain, multipart/form-data, ...) is most likely a client bug: 415.
_JSON_TYPES = ("application/json", "application/x-www-form-urlencoded")


def _check_content_type(value: str | None) -> None:
  if value is None:
    return
  media = value.split(";", 1)[0].strip().lower()
  if not media or media in _JSON_TYPES or (
      media.startswith("application/") and media.endswith("+json")):
    return
  raise _rest.HTTPError(415, f"Content-Type {value!r} is not JSON; send the "
                        "body as JSON with 'Content-Type: application/json' "
                        "(or no Content-Type).")
