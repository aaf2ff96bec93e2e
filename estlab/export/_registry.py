"""The versions ``estlab serve`` has loaded, kept up to date while it serves.

A ``Registry`` holds, per model (``_model_config.ModelConfig``), the versions
loaded (``estlab.export.load`` of each ``<base_path>/<version>/``) and their
states for the status API. A poll (every ``file_system_poll_wait_seconds``,
as TF Serving's) lists each base path, applies the version policy, loads new
versions (a failed load is logged, shown as ``END`` with its error, and
retried when the directory changes or after a back-off; it never stops the
server) and publishes each as soon as it is loaded; versions the policy drops
are unloaded once another aspired version is available (TF Serving's
availability-preserving policy). A request holds the ``Servable`` it resolved
until it ends: unloading only stops new requests from getting it. The config
file itself is re-read every ``model_config_file_poll_wait_seconds`` (models
added, removed, changed).

Example:
  >>> registry = Registry.single('/tmp/export', 'penguins')   # doctest: +SKIP
  >>> registry.start()                                        # doctest: +SKIP
  >>> registry.resolve('penguins').imported.signatures        # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from estlab.export import _batching, _format
from estlab.export._model_config import (ModelConfig, ModelConfigError,
                                         one_line, order, read_config_file,
                                         versions_on_disk)

__all__ = ["Registry", "Servable", "ServableNotFoundError",
           "UnknownLabelError"]

_log = logging.getLogger("estlab.serve")

_MAX_BACKOFF_S = 300.0


class ServableNotFoundError(LookupError):
  """No loaded version answers a request's model, version or label (HTTP 404)."""


class UnknownLabelError(ValueError):
  """A version label the model's config does not define (HTTP 400, as TF Serving)."""




class Servable(NamedTuple):
  """One loaded version: what a request runs on (held until it ends)."""
  model: str
  version: str
  path: str
  imported: Any  # estlab.export.Imported
  batchers: Mapping[str, Any] = {}  # signature name -> _batching.Batcher


@dataclasses.dataclass
class _Failure:
  fingerprint: tuple
  retry_at: float
  backoff: float
  error: Exception


class _Model:
  """A model's loaded versions and the states the status API shows."""

  def __init__(self, config: ModelConfig | None):
    self.config = config  # None once removed from the config file
    self.available: dict[str, Servable] = {}  # replaced, never mutated
    self.states: dict[str, tuple[str, str, str]] = {}  # state, code, message
    self.failed: dict[str, _Failure] = {}


def _fingerprint(path: str) -> tuple:
  """Names, sizes and times of a directory's files: a retry when it changes."""
  seen = []
  for parent, _, files in os.walk(path):
    for name in files:
      try:
        stat = os.stat(os.path.join(parent, name))
      except OSError:
        continue
      seen.append((os.path.relpath(os.path.join(parent, name), path),
                   stat.st_size, stat.st_mtime_ns))
  return tuple(sorted(seen))


def _close(servable: Servable) -> None:
  """Stops an unloaded version's batch threads; a request still holding it
  runs its signature directly (``Batcher.close``)."""
  for batcher in servable.batchers.values():
    batcher.close(timeout=0)


def _labelled(name: str, label: str, labels: Mapping[str, int]) -> str:
  """The version a model's ``version_labels`` give ``label``."""
  if label not in labels:
    raise UnknownLabelError(
        f"Unrecognized servable version label: {label}; model {name!r} "
        f"has labels {sorted(labels)!r} (version_labels in its config).")
  return str(labels[label])


def _error_code(error: Exception) -> str:
  if isinstance(error, _format.DamagedExportError):
    return "DATA_LOSS"
  if isinstance(error, _format.NotAnExportError):
    return "NOT_FOUND"
  return "UNKNOWN"


class Registry:
  """The loaded versions of every configured model, kept up to date by a poll.

  Thread-safe: requests call ``resolve`` and ``status`` while the poll
  thread loads and unloads.

  Example:
    >>> registry = Registry.from_config_file('models.config')  # doctest: +SKIP
    >>> registry.start()          # doctest: +SKIP
    >>> registry.start_polling()  # doctest: +SKIP

  (``start`` loads, and raises if a model has no version; ``start_polling``
  runs a daemon thread until ``stop_polling``.)
  """

  def __init__(self, configs: list[ModelConfig], *,
               file_system_poll_wait_seconds: float = 1.0,
               config_file: str | None = None,
               model_config_file_poll_wait_seconds: float = 0.0,
               load: Callable[[str], Any] | None = None,
               batching: _batching.BatchingParameters | None = None):
    for name, value in (
        ("file_system_poll_wait_seconds", file_system_poll_wait_seconds),
        ("model_config_file_poll_wait_seconds",
         model_config_file_poll_wait_seconds)):
      if value < 0:
        raise ValueError(f"{name}={value!r} must be >= 0 (0: no polling), "
                         "e.g. 1.")
    if load is None:
      from estlab.export._loader import load  # pylint: disable=g-import-not-at-top
    self._load = load
    self._batching = batching  # each version's Batchers, warmed up at load
    self._poll_s = float(file_system_poll_wait_seconds)
    self._config_file = config_file
    self._config_poll_s = float(model_config_file_poll_wait_seconds)
    self._config_error = ""
    self._models = {c.name: _Model(c) for c in configs}
    self._lock = threading.Lock()  # guards _models and each _Model's fields
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None

  @classmethod
  def single(cls, export_path: str | os.PathLike, model_name: str,
             **kwargs) -> Registry:
    """One model whose base path is ``export_path`` (a base: latest 1)."""
    return cls([ModelConfig(model_name, os.path.abspath(os.fspath(export_path)))],
               **kwargs)

  @classmethod
  def from_config_file(cls, path: str | os.PathLike, **kwargs) -> Registry:
    """The models of a ``--model-config-file`` (``read_config_file``)."""
    path = os.fspath(path)
    return cls(read_config_file(path), config_file=path, **kwargs)

  @property
  def names(self) -> list[str]:
    """The configured models' names, in config order."""
    with self._lock:
      return [n for n, m in self._models.items() if m.config is not None]

  # ------------------------------------------------------------ loading

  def start(self) -> None:
    """Loads every model's aspired versions now.

    Raises:
      NotAnExportError: a model has no version loaded: none under its base
        path (the message names it), or the newest failed to load (its
        error, e.g. DamagedExportError).
      ModelConfigError: versions exist but the version policy picks none.
    """
    self.poll()
    with self._lock:
      empty = [m for m in self._models.values() if not m.available]
    for model in empty:
      config = model.config
      prefix = f"Model {config.name!r}: " if self._config_file else ""
      if model.failed:
        newest = max(model.failed, key=order)
        error = model.failed[newest].error
        if prefix:
          raise type(error)(f"{prefix}{error}") from error
        raise error
      on_disk = versions_on_disk(config.base_path)
      if not on_disk:
        try:
          _format.resolve_export_dir(config.base_path)
        except _format.NotAnExportError as e:
          if prefix:
            raise type(e)(f"{prefix}{e}") from None
          raise
      raise ModelConfigError(
          f"{prefix}no version under {config.base_path!r} fits its "
          f"model_version_policy {config.describe_policy()}; versions there: "
          f"{sorted(on_disk, key=order)!r}.")

  def poll(self) -> None:
    """One pass: re-reads the config file when due, then each base path."""
    with self._lock:
      models = list(self._models.values())
    for model in models:
      if model.config is None:
        continue
      try:
        self._poll_model(model)
      except Exception:  # pylint: disable=broad-except
        _log.exception("Polling model %r failed; serving what is loaded.",
                       model.config.name)

  def _poll_model(self, model: _Model) -> None:
    config = model.config
    aspired = config.aspired(versions_on_disk(config.base_path))
    for version, path in aspired.items():  # newest first
      held = model.available.get(version)
      if held is not None and held.path == path:
        continue
      fingerprint = _fingerprint(path)
      failure = model.failed.get(version)
      if (failure is not None and failure.fingerprint == fingerprint and
          time.monotonic() < failure.retry_at):
        continue
      if failure is None:  # a retry shows its last error until it loads
        with self._lock:
          model.states[version] = ("LOADING", "OK", "")
      try:
        imported = self._load(path)
        batchers = (_batching.make_batchers(imported, self._batching)
                    if self._batching is not None else {})
      except Exception as e:  # pylint: disable=broad-except
        backoff = max(self._poll_s, 1.0)
        if failure is not None and failure.fingerprint == fingerprint:
          backoff = min(failure.backoff * 2, _MAX_BACKOFF_S)
        with self._lock:
          model.failed[version] = _Failure(fingerprint,
                                           time.monotonic() + backoff, backoff, e)
          model.states[version] = ("END", _error_code(e), one_line(e))
        _log.warning("Loading model %r version %s from %s failed (retried when "
                     "it changes, or in %g s): %s", config.name, version, path,
                     backoff, one_line(e))
        continue
      servable = Servable(config.name, version, path, imported, batchers)
      with self._lock:
        model.available = {**model.available, version: servable}
        model.states[version] = ("AVAILABLE", "OK", "")
        model.failed.pop(version, None)
      _log.info("Loaded model %r version %s from %s.", config.name, version, path)
    with self._lock:
      keep = {v: s for v, s in model.available.items()
              if aspired.get(v) == s.path}
      if keep and len(keep) < len(model.available):  # availability preserved
        for version in set(model.available) - set(keep):
          model.states[version] = ("END", "OK", "")
          _close(model.available[version])
          _log.info("Unloaded model %r version %s (not in its version policy "
                    "%s any more).", config.name, version,
                    config.describe_policy())
        model.available = keep
      for version in set(model.failed) - set(aspired):
        del model.failed[version]

  def _reload_config(self) -> bool:
    """Applies the config file again: models added, removed and changed.

    Returns whether anything changed (new models are loaded by the next poll).
    """
    try:
      configs = read_config_file(self._config_file)
    except ModelConfigError as e:
      if str(e) != self._config_error:
        _log.error("Keeping the current models: %s", e)
      self._config_error = str(e)
      return False
    self._config_error = ""
    new = {c.name: c for c in configs}
    changed = False
    with self._lock:
      for name, model in self._models.items():
        if model.config is not None and name not in new:
          for version in model.available:
            model.states[version] = ("END", "OK", "")
            _close(model.available[version])
          model.available, model.config = {}, None
          changed = True
          _log.info("Unloaded model %r: it left %s.", name, self._config_file)
      for name, config in new.items():
        model = self._models.get(name)
        if model is None:
          self._models[name] = _Model(config)
          _log.info("Model %r added by %s.", name, self._config_file)
        elif model.config != config:
          model.config = config  # a model removed and added again comes back
          _log.info("Model %r changed in %s.", name, self._config_file)
        else:
          continue
        changed = True
    return changed

  def start_polling(self) -> None:
    """Polls in a daemon thread until ``stop_polling`` (none if both waits are 0)."""
    if self._thread is not None or not (self._poll_s or self._config_poll_s):
      return
    self._stop.clear()
    self._thread = threading.Thread(target=self._run, name="estlab-model-poll",
                                    daemon=True)
    self._thread.start()

  def stop_polling(self, timeout: float = 30.0) -> None:
    """Stops the poll thread (a load in progress finishes first)."""
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout)
      self._thread = None

  def close(self) -> None:
    """Stops polling and every loaded version's batch threads."""
    self.stop_polling()
    with self._lock:
      servables = [s for m in self._models.values()
                   for s in m.available.values()]
    for servable in servables:
      _close(servable)

  def _run(self) -> None:
    tick = min(s for s in (self._poll_s, self._config_poll_s) if s)
    next_config = next_files = time.monotonic()
    while not self._stop.wait(tick):
      try:
        now, changed = time.monotonic(), False
        if self._config_file and self._config_poll_s and now >= next_config:
          next_config = now + self._config_poll_s
          changed = self._reload_config()
        if changed or (self._poll_s and now >= next_files):
          next_files = now + self._poll_s
          self.poll()
      except Exception:  # pylint: disable=broad-except
        _log.exception("Model poll failed; trying again in %g s.", tick)

  # ------------------------------------------------------------ requests

  def resolve(self, name: str, version: str | None = None,
              label: str | None = None) -> Servable:
    """The loaded version a request runs on: newest, by number, or by label.

    Raises:
      ServableNotFoundError: unknown model, or the version is not loaded
        (TF Serving's "Servable not found for request: ..." message).
      UnknownLabelError: the model's config has no such label.
    """
    with self._lock:
      model = self._models.get(name)
      available = model.available if model else {}
      labels = model.config.labels if model and model.config else {}
      names = [n for n, m in self._models.items() if m.config is not None]
    if model is None or model.config is None:
      spec = f"Specific({name}, {version})" if version else f"Latest({name})"
      raise ServableNotFoundError(
          f"Servable not found for request: {spec}; this server serves "
          f"models {names!r}.")
    if label is not None:
      version = _labelled(name, label, labels)
    if version is None:
      if not available:
        raise ServableNotFoundError(
            f"Servable not found for request: Latest({name}); no version of "
            f"it is loaded (GET /v1/models/{name} shows why).")
      return available[max(available, key=order)]
    if version not in available:
      via = f" (label {label!r})" if label is not None else ""
      raise ServableNotFoundError(
          f"Servable not found for request: Specific({name}, {version}){via};"
          f" the loaded versions are {sorted(available, key=order)!r}.")
    return available[version]

  def status(self, name: str, version: str | None = None,
             label: str | None = None) -> dict:
    """TF Serving's ``GetModelStatusResponse`` as its REST API writes it.

    Every version the server has seen, newest first, with its state
    (``LOADING``, ``AVAILABLE``, ``END``: unloaded, or failed to load with
    its error).

    Raises:
      ServableNotFoundError: ``Could not find ...``, as TF Serving.
      UnknownLabelError: the model's config has no such label.
    """
    with self._lock:
      model = self._models.get(name)
      states = dict(model.states) if model else {}
      labels = model.config.labels if model and model.config else {}
    if label is not None:
      version = _labelled(name, label, labels)
    if version is not None:
      if version not in states:
        raise ServableNotFoundError(
            f"Could not find version {version} of model {name}; its versions "
            f"are {sorted(states, key=order)!r}.")
      states = {version: states[version]}
    elif not states:
      raise ServableNotFoundError(
          f"Could not find any versions of model {name}; this server serves "
          f"models {self.names!r}.")
    return {"model_version_status": [
        {"version": v, "state": states[v][0],
         "status": {"error_code": states[v][1], "error_message": states[v][2]}}
        for v in sorted(states, key=order, reverse=True)]}
