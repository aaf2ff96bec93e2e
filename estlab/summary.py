"""Where training summaries go: a tiny writer interface and its writers.

Follows CLU's `metric_writers`: training code talks to a `MetricWriter`;
`TensorBoardWriter` (tensorboardX event files), `LoggingWriter` (the `estlab`
logger), `MultiWriter` and `NullWriter` implement it. `read_scalars` reads the
event files back, e.g. for a notebook widget.

Example:

  >>> import tempfile
  >>> logdir = tempfile.mkdtemp()
  >>> with MultiWriter([TensorBoardWriter(logdir), LoggingWriter()]) as w:
  ...   w.write_scalars(200, {"loss": 0.5})
  >>> read_scalars(logdir)
  {'loss': [(200, 0.5)]}
"""
from __future__ import annotations

import abc
import glob
import logging
import os
import struct
import itertools
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorboardX
from tensorboardX.proto import event_pb2
from tensorboardX.summary import hparams as _hparams_summaries

if TYPE_CHECKING:
  import jax

__all__ = [
    "MetricWriter", "TensorBoardWriter", "LoggingWriter", "MultiWriter",
    "NullWriter", "chief_writer", "read_scalars",
]


class MetricWriter(abc.ABC):
  """Interface of every summary writer; also a context manager that closes.

  Example:

    >>> with NullWriter() as w:
    ...   w.write_scalars(1, {"loss": 0.5})
  """

  @abc.abstractmethod
  def write_scalars(
      self, step: int, scalars: Mapping[str, float | np.ndarray | jax.Array]):
    """Writes scalars (Python numbers or arrays of size 1) at `step`."""

  @abc.abstractmethod
  def write_histograms(
      self, step: int, arrays: Mapping[str, np.ndarray | jax.Array]):
    """Writes the distribution of each array's values at `step`."""

  @abc.abstractmethod
  def write_text(self, step: int, texts: Mapping[str, str]):
    """Writes text (Markdown in TensorBoard) at `step`."""

  @abc.abstractmethod
  def write_hparams(self, hparams: Mapping[str, Any]):
    """Writes hyperparameters; nested mappings are flattened to `a.b` names."""

  def write_session_start(self, step: int):
    """Marks a (re)start of training at `step` (default: no-op).

    TF's `SessionLog(status=START)` event, as its `SummarySaverHook` wrote
    it at a train call's first step: TensorBoard (`purge_orphaned_data`, on
    by default) then drops every point at a step >= `step` written before
    it, those of a run killed after its last checkpoint, so a restarted
    run's steps never go backwards.

    Example:

      >>> NullWriter().write_session_start(101)  # resumed from step 100
    """
    del step

  def flush(self):
    """Makes everything written so far visible to readers (default: no-op)."""

  def close(self):
    """Flushes and releases the writer's resources (default: no-op)."""

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()


def _to_float(name: str, value) -> float:
  arr = np.asarray(value)
  if arr.size != 1:
    raise ValueError(
        f"Scalar {name!r} has shape {arr.shape}, value {value!r}; a scalar "
        "needs exactly one element. Reduce it first (e.g. `x.mean()`) or use "
        "`write_histograms` for arrays.")
  return float(arr.reshape(()))


def _flatten(hparams: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """Flattens nested mappings and turns values into TensorBoard's types."""
  flat = {}
  for key, value in hparams.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping):
      flat.update(_flatten(value, prefix=f"{name}."))
      continue
    if isinstance(value, np.generic) or getattr(value, "size", None) == 1:
      value = np.asarray(value).item()
    if not isinstance(value, (bool, int, float, str)):
      value = str(value)
    flat[name] = value
  return flat


def _drain(event_writer) -> None:
  """Writes out the events tensorboardX's thread still holds, then flushes.

  `SummaryWriter.flush()` leaves behind events still queued for its writer
  thread; stopping the thread drains them (the stop signal queues last), and a
  fresh thread takes over as in `EventFileWriter.reopen` (tensorboardX 2.x).
  """
  worker = getattr(event_writer, "_worker", None)  # Its queue holds them.
  if worker is not None:
    worker.stop()
    event_writer._worker = type(worker)(
        event_writer._event_queue, event_writer._ev_writer,
        event_writer._flush_secs)
    event_writer._worker.start()
  event_writer.flush()


_WRITERS = itertools.count()  # this process's TensorBoardWriters


class TensorBoardWriter(MetricWriter):
  """Writes TensorBoard event files in `logdir` through tensorboardX.

  tensorboardX's background thread flushes pending events every `flush_secs`
  seconds, so a TensorBoard opened during training updates live; `flush()`
  writes out everything at once. Each writer owns one new event file.

  Example:

    >>> import tempfile
    >>> with TensorBoardWriter(tempfile.mkdtemp(), flush_secs=1) as w:
    ...   w.write_scalars(10, {"loss": 0.25, "accuracy": np.float32(0.5)})
  """

  def __init__(self, logdir: str | os.PathLike, flush_secs: float = 2):
    if not flush_secs > 0:
      raise ValueError(
          f"flush_secs must be > 0, got {flush_secs!r}; pass e.g. 2.")
    self.logdir = os.fspath(logdir)
    # tensorboardX names files by the second and opens them with "wb": a
    # unique suffix keeps two writers started in the same second from
    # clobbering, and sorts them in the order they were made (TensorBoard
    # reads a logdir's files in name order, and a SessionLog.START drops
    # the points read before it).
    self._writer = tensorboardX.SummaryWriter(
        self.logdir, flush_secs=flush_secs,
        filename_suffix=f".{time.time_ns():020d}.{os.getpid()}."
                        f"{next(_WRITERS)}")
    self._lock = threading.Lock()
    self._unflushed = False  # written to since the last flush()

  def _open(self) -> tensorboardX.SummaryWriter:
    # After close, tensorboardX would silently reopen (and clobber) the file.
    if self._writer.file_writer is None:
      raise ValueError(
          f"The TensorBoardWriter for {self.logdir!r} is closed; write before "
          "close() or create a new TensorBoardWriter.")
    self._unflushed = True
    return self._writer

  def write_scalars(self, step, scalars):
    for name, value in scalars.items():
      self._open().add_scalar(name, _to_float(name, value), int(step))

  def write_histograms(self, step, arrays):
    for name, value in arrays.items():
      self._open().add_histogram(name, np.asarray(value), int(step))

  def write_text(self, step, texts):
    for name, text in texts.items():
      self._open().add_text(name, str(text), int(step))

  def write_hparams(self, hparams):
    # Into this run (`SummaryWriter.add_hparams` would start a new run).
    for summary in _hparams_summaries(_flatten(hparams), {}):
      self._open().file_writer.add_summary(summary)

  def write_session_start(self, step):
    self._open().file_writer.add_event(event_pb2.Event(
        session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)),
        int(step))

  def flush(self):
    """Writes out every event written so far (at once when none was
    written since the last flush: training calls it before each save)."""
    with self._lock:
      if self._unflushed and self._writer.file_writer is not None:
        self._unflushed = False
        _drain(self._writer.file_writer.event_writer)

  def close(self):
    with self._lock:
      self._writer.close()  # Drains the queue, flushes and closes the file.


class LoggingWriter(MetricWriter):
  """Writes one INFO line per call to `logger` (the `estlab` logger by default).

  Example:

    Logs `step 200: loss = 0.123, global_step/sec = 45.6` at INFO:

    >>> w = LoggingWriter()
    >>> w.write_scalars(200, {"loss": 0.123, "global_step/sec": 45.6})
  """

  def __init__(self, logger: logging.Logger | None = None):
    self.logger = logger if logger is not None else logging.getLogger("estlab")

  def _log(self, prefix: str, items: list[str]):
    if items:
      self.logger.info("%s: %s", prefix, ", ".join(items))

  def write_scalars(self, step, scalars):
    self._log(f"step {int(step)}", [
        f"{k} = {_to_float(k, v):.6g}" for k, v in scalars.items()])

  def write_histograms(self, step, arrays):
    arrays = {k: np.asarray(v, np.float64).ravel() for k, v in arrays.items()}
    self._log(f"step {int(step)}", [
        f"{k} = histogram(size {a.size}, min {a.min():.6g}, max {a.max():.6g})"
        if a.size else f"{k} = histogram(size 0)" for k, a in arrays.items()])

  def write_text(self, step, texts):
    self._log(f"step {int(step)}", [f"{k} = {v!r}" for k, v in texts.items()])

  def write_hparams(self, hparams):
    self._log("hparams", [f"{k} = {v!r}" for k, v in _flatten(hparams).items()])


class MultiWriter(MetricWriter):
  """Fans every call out to several writers, in order.

  Example:

    >>> w = MultiWriter([LoggingWriter(), NullWriter()])
    >>> w.write_scalars(1, {"loss": 0.5})
  """

  def __init__(self, writers: Sequence[MetricWriter]):
    self.writers = list(writers)
    for writer in self.writers:
      if not isinstance(writer, MetricWriter):
        raise TypeError(
            f"MultiWriter takes MetricWriters, got {writer!r}; pass e.g. "
            "[TensorBoardWriter(logdir), LoggingWriter()].")

  def write_scalars(self, step, scalars):
    for w in self.writers:
      w.write_scalars(step, scalars)

  def write_histograms(self, step, arrays):
    for w in self.writers:
      w.write_histograms(step, arrays)

  def write_text(self, step, texts):
    for w in self.writers:
      w.write_text(step, texts)

  def write_hparams(self, hparams):
    for w in self.writers:
      w.write_hparams(hparams)

  def write_session_start(self, step):
    for w in self.writers:
      w.write_session_start(step)

  def flush(self):
    for w in self.writers:
      w.flush()

  def close(self):
    for w in self.writers:
      w.close()


class NullWriter(MetricWriter):
  """Discards everything, e.g. on the non-chief hosts.

  Example:

    >>> NullWriter().write_scalars(1, {"loss": 0.5})
  """

  def write_scalars(self, step, scalars):
    del step, scalars

  def write_histograms(self, step, arrays):
    del step, arrays

  def write_text(self, step, texts):
    del step, texts

  def write_hparams(self, hparams):
    del hparams


def chief_writer(logdir: str | os.PathLike) -> MetricWriter:
  """A ``TensorBoardWriter`` on process 0 (the chief), else a ``NullWriter``:
  in a multi-process run, as tf.estimator's, only the chief writes events
  (the others' summaries would repeat its own)."""
  import jax  # pylint: disable=g-import-not-at-top,redefined-outer-name
  if jax.process_index() == 0:
    return TensorBoardWriter(logdir)
  return NullWriter()


def _records(path: str):
  """Yields the payloads of a TFRecord file; stops at a truncated tail."""
  with open(path, "rb") as f:
    data = f.read()
  pos = 0
  while pos + 12 <= len(data):
    (length,) = struct.unpack_from("<Q", data, pos)
    end = pos + 12 + length
    if end + 4 > len(data):  # Being written right now: read it next time.
      return
    yield data[pos + 12:end]
    pos = end + 4


def read_scalars(
    logdir: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
  """Reads the scalars of every event file directly in `logdir` (not below).

  Hand-written because tensorboardX ships no reader (and TensorBoard is no
  dependency of estlab): a minimal TFRecord reader (u64 length, u32 masked
  CRC of the length, payload, u32 masked CRC of the payload; the CRCs are NOT
  checked, and a record cut short by a writer still writing is skipped) that
  parses `Event` protos. It reads scalars stored as `simple_value` (what
  tensorboardX writes) or as a one-element float tensor. Points from all files
  are merged and sorted by step; where a tag has one step twice, the value
  written last wins. As TensorBoard (`purge_orphaned_data`), a
  `SessionLog.START` event (a train call's start,
  `MetricWriter.write_session_start`) drops the points written before it at
  its step and above: those of a run killed after its last checkpoint.

  Args:
    logdir: the directory holding `events.out.tfevents.*` files, e.g. a
      model_dir or its `eval/` subdirectory.

  Returns:
    `{tag: [(step, value), ...]}`, steps ascending.

  Example:

    >>> import tempfile
    >>> logdir = tempfile.mkdtemp()
    >>> with TensorBoardWriter(logdir) as w:
    ...   w.write_scalars(2, {"loss": 0.25}); w.write_scalars(1, {"loss": 0.5})
    >>> read_scalars(logdir)
    {'loss': [(1, 0.5), (2, 0.25)]}
  """
  logdir = os.fspath(logdir)
  if not os.path.isdir(logdir):
    raise FileNotFoundError(
        f"No such log directory: {logdir!r}; pass the directory a "
        "TensorBoardWriter wrote to (e.g. the model_dir or model_dir/eval).")
  # (wall_time, order read, step, tag or None for a START, value)
  events: list[tuple[float, int, int, str | None, float]] = []
  scalar_tags = set()  # Tensor scalars carry their plugin only at first write.
  paths = glob.glob(os.path.join(glob.escape(logdir), "*tfevents*"))
  for path in sorted(p for p in paths if os.path.isfile(p)):
    for record in _records(path):
      event = event_pb2.Event.FromString(record)
      if event.session_log.status == event_pb2.SessionLog.START:
        events.append((event.wall_time, len(events), event.step, None, 0.0))
      for v in event.summary.value:
        if v.metadata.plugin_data.plugin_name == "scalars":
          scalar_tags.add(v.tag)
        if v.HasField("simple_value"):
          value = v.simple_value
        elif v.tag in scalar_tags and len(v.tensor.float_val) == 1:
          value = v.tensor.float_val[0]
        else:
          continue
        events.append((event.wall_time, len(events), event.step, v.tag,
                       float(value)))
  latest: dict[str, dict[int, float]] = {}
  for _, _, step, tag, value in sorted(events):
    if tag is None:  # a restart: drop the points at steps >= its step
      for points in latest.values():
        for orphan in [s for s in points if s >= step]:
          del points[orphan]
    else:
      latest.setdefault(tag, {})[step] = value
  return {tag: [(step, points[step]) for step in sorted(points)]
          for tag, points in sorted(latest.items()) if points}
