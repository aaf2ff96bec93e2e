"""A real TensorBoard server for tests: start it on a logdir, read it over HTTP.

Tests check that what estlab writes is what TensorBoard shows, through
TensorBoard's own HTTP API (the one its web page uses). The client is
standard library only (subprocess, socket, urllib).

Import it as a top-level module, `import _tensorboard`, from any test under
`tests/` (subfolders like `tests/inputs/` included): pytest's default
`prepend` import mode puts `tests/` on `sys.path` when it loads
`tests/conftest.py`, because `tests/` has no `__init__.py`. Under
`--import-mode=importlib`, add `pythonpath = ["tests"]` to pytest's settings.

Run names in the API are paths relative to `--logdir`: events directly in the
logdir are run `"."`, those in `logdir/eval` are run `"eval"`.

Example:

  >>> import _tensorboard
  >>> with _tensorboard.start_tensorboard(model_dir) as tb:  # doctest: +SKIP
  ...   tb.wait_for_scalar("eval", "accuracy", step=200)
  [(100, 0.5), (200, 0.75)]
"""
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

__all__ = ["TensorBoardServer", "start_tensorboard"]

_POLL_SECS = 0.2


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class TensorBoardServer:
  """A running `tensorboard` process (its own process group) and its client.

  Made by `start_tensorboard`; close it (or use it as a context manager) to
  stop the whole process group.
  """

  def __init__(self, process: subprocess.Popen, port: int, log_path: str,
               token: str):
    self.process = process
    self.port = port
    self.log_path = log_path
    self.token = token  # Our --window_title: tells our server from another.
    self.url = f"http://127.0.0.1:{port}"
    self._closed = False

  def _answers(self) -> bool:
    """Whether this process (not whoever else took the port) serves HTTP."""
    try:
      environment = self.get_json("/data/environment", timeout=2)
    except (urllib.error.URLError, OSError, ValueError):
      return False
    return environment.get("window_title") == self.token

  def log_tail(self, lines: int = 20) -> str:
    """The last `lines` lines TensorBoard printed (stdout and stderr)."""
    try:
      with open(self.log_path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])
    except OSError as e:
      return f"<no log at {self.log_path!r}: {e}>"

  def get_json(self, path: str, timeout: float = 10):
    """GETs `self.url + path` and decodes the JSON answer."""
    with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
      return json.load(response)

  def runs_and_tags(self) -> dict[str, list[str]]:
    """`{run: [scalar tag, ...]}` as TensorBoard currently sees them."""
    index = self.get_json("/data/plugin/scalars/tags")
    return {run: sorted(tags) for run, tags in index.items()}

  def scalars(self, run: str, tag: str) -> list[tuple[int, float]]:
    """The `(step, value)` points of `tag` in `run`; `[]` while unknown."""
    query = urllib.parse.urlencode({"run": run, "tag": tag})
    try:
      rows = self.get_json(f"/data/plugin/scalars/scalars?{query}")
    except urllib.error.HTTPError as e:
      if e.code in (400, 404):  # "No scalar data for run=..., tag=..."
        return []
      raise
    return [(int(step), float(value)) for _, step, value in rows]

  def wait_for_scalar(self, run: str, tag: str, timeout: float = 30,
                      step: int | None = None) -> list[tuple[int, float]]:
    """Polls until `tag` shows up in `run` (at `step`, if given); its points.

    Raises:
      TimeoutError: naming what TensorBoard does show, and its log tail.
    """
    deadline = time.monotonic() + timeout
    while True:
      points = self.scalars(run, tag)
      if points and (step is None or any(s == step for s, _ in points)):
        return points
      if time.monotonic() > deadline:
        raise TimeoutError(
            f"TensorBoard at {self.url} showed no scalar {tag!r} in run {run!r}"
            f"{'' if step is None else f' at step {step}'} within {timeout}s; "
            f"it has {self.runs_and_tags()!r} (runs are paths relative to the "
            f"logdir, '.' for the logdir itself). Log tail:\n{self.log_tail()}")
      time.sleep(_POLL_SECS)

  def close(self, timeout: float = 10) -> None:
    """Stops the process group: SIGTERM, then SIGKILL after `timeout` s."""
    if self._closed:
      return
    self._closed = True
    try:  # The group is TensorBoard's own (start_new_session): pgid == pid.
      os.killpg(self.process.pid, signal.SIGTERM)
      self.process.wait(timeout)
    except ProcessLookupError:
      pass  # Already gone.
    except subprocess.TimeoutExpired:
      os.killpg(self.process.pid, signal.SIGKILL)
      self.process.wait(timeout)
    try:
      os.remove(self.log_path)
    except OSError:
      pass

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()


def _launch(logdir: str, port: int) -> TensorBoardServer:
  fd, log_path = tempfile.mkstemp(prefix="tensorboard-", suffix=".log")
  token = f"estlab-test-{uuid.uuid4().hex}"
  with os.fdopen(fd, "wb") as log:
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", logdir,
         "--host", "127.0.0.1", "--port", str(port), "--load_fast=false",
         "--reload_interval", "1", "--reload_multifile=true",
         "--window_title", token],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)  # Its own process group, pgid == pid.
  return TensorBoardServer(process, port, log_path, token)


def start_tensorboard(logdir, timeout: float = 60,
                      attempts: int = 3) -> TensorBoardServer:
  """Starts `tensorboard --logdir logdir` on a free port; waits for HTTP.

  Args:
    logdir: the directory to serve, e.g. a model_dir (run `"."`) whose
      `eval/` subdirectory becomes run `"eval"`.
    timeout: seconds to wait for the server to answer HTTP.
    attempts: how many ports to try when another process takes the port
      between picking it and TensorBoard binding it.

  Returns:
    A running `TensorBoardServer`; close it when done.

  Raises:
    RuntimeError: TensorBoard exited; the message holds its log tail.
    TimeoutError: it did not answer in time (it is stopped first).
  """
  deadline = time.monotonic() + timeout
  for _ in range(attempts):
    server = _launch(os.fspath(logdir), _free_port())
    while server.process.poll() is None and time.monotonic() < deadline:
      if server._answers():
        atexit.register(server.close)  # Should a test forget to close it.
        return server
      time.sleep(_POLL_SECS)
    exit_code = server.process.poll()  # None: still starting at the deadline.
    tail = server.log_tail()
    server.close()
    if exit_code is not None and "already in use" in tail:
      continue  # Port clash: try another port.
    if exit_code is not None:
      raise RuntimeError(
          f"TensorBoard on {logdir!r} exited with code {exit_code}; see why in "
          f"its log tail:\n{tail}")
    raise TimeoutError(
        f"TensorBoard on {logdir!r} did not answer at {server.url} within "
        f"{timeout}s; pass a larger timeout if the machine is busy. "
        f"Log tail:\n{tail}")
  raise RuntimeError(
      f"TensorBoard on {logdir!r} found its port taken {attempts} times; "
      f"pass more attempts. Last log tail:\n{tail}")
