"""Server-side batching, as TF Serving's ``--enable_batching``.

``estlab serve --enable-batching [--batching-parameters-file FILE]`` joins
concurrent requests to one signature into one call: each request's input
columns (a list or array per input, batch first) are concatenated, padded
to the next of a few fixed batch sizes (the buckets: ``allowed_batch_sizes``,
else the powers of two up to ``max_batch_size``) by repeating the last row,
run once, and the outputs are split back per request. Every bucket is run
once when the Batcher starts, so serving never compiles.

FILE is TF Serving's ``BatchingParameters`` text proto
(``session_bundle_config.proto``), read with the protobuf library::

  max_batch_size { value: 32 }
  batch_timeout_micros { value: 1000 }
  max_enqueued_batches { value: 100 }
  num_batch_threads { value: 4 }
  allowed_batch_sizes: 8
  allowed_batch_sizes: 32

Without a file, TF Serving's defaults (its ``SharedBatchScheduler``'s):
``max_batch_size`` 1000, ``batch_timeout_micros`` 0 (a batch closes as soon
as a batch thread is free, so requests join only while every thread is
busy), ``max_enqueued_batches`` 10 and ``num_batch_threads`` one per CPU.
As TF Serving's scheduler, a batch closes when it is full or when its first
request has waited ``batch_timeout_micros`` and a batch thread is free; a
request that needs a new batch while ``max_enqueued_batches`` are waiting
fails at once with ``ServerOverloadedError`` (the server answers 503 with
``Retry-After``); a request of more rows than ``max_batch_size`` is refused
(``BatchSizeError``, a 400: "Task size N is larger than maximum input batch
size M"), unless ``enable_large_batch_splitting`` splits it into batches of
``max_execution_batch_size``.

Requests are joined only when they fit together: a signature whose inputs
or outputs are not all batch first (a fixed ``default_batch_size``, the
``eval`` signature, an output that is not per example) is not batched, nor
is a request whose values are not one list or array per input with the
same number of rows; those run alone, as without batching. If a joined
batch fails on one request's features, each request of it is run alone, so
a bad request gets its own 400 and the others their answers.

Example::

  params = read_parameters('batching.txt')
  batcher = Batcher(imported.signatures['predict'], params)
  batcher({'x': [[1.5]]})     # joined with concurrent calls
  batcher.close()
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from google.protobuf import (descriptor_pb2, descriptor_pool, message_factory,
                             text_format, wrappers_pb2)

from estlab.export import _parsing
from estlab.export._format import ServingInputError

__all__ = ["BatchingParameters", "BatchSizeError", "Batcher", "from_flags",
           "ServerOverloadedError", "batchable", "make_batchers",
           "parse_parameters", "read_parameters"]

RETRY_AFTER_SECONDS = 1
_EVAL_METHOD = "tensorflow/supervised/eval"


class ServerOverloadedError(RuntimeError):
  """The batch queue is full: the server answers 503 with ``Retry-After``.

  Attributes:
    retry_after_seconds: what to send in the ``Retry-After`` header.
  """

  def __init__(self, message: str,
               retry_after_seconds: int = RETRY_AFTER_SECONDS):
    super().__init__(message)
    self.retry_after_seconds = retry_after_seconds


class BatchSizeError(ServingInputError):
  """A request of more rows than ``max_batch_size`` (a 400, as TF Serving's)."""


# ------------------------------------------------------------- parameters


def _message_class() -> type:
  """TF Serving's BatchingParameters message, declared in code (no TF)."""
  file = descriptor_pb2.FileDescriptorProto(
      name="estlab/export/batching_parameters.proto",
      package="tensorflow.serving", syntax="proto3",
      dependency=["google/protobuf/wrappers.proto"])
  msg = file.message_type.add(name="BatchingParameters")
  f = descriptor_pb2.FieldDescriptorProto
  for number, (name, wrapper) in enumerate([
      ("max_batch_size", "Int64Value"), ("batch_timeout_micros", "Int64Value"),
      ("max_enqueued_batches", "Int64Value"),
      ("num_batch_threads", "Int64Value"), ("thread_pool_name", "StringValue"),
      ("allowed_batch_sizes", None), ("pad_variable_length_inputs", None),
      ("enable_large_batch_splitting", "BoolValue"),
      ("max_execution_batch_size", "Int64Value")], 1):
    field = msg.field.add(name=name, number=number, label=f.LABEL_OPTIONAL)
    if wrapper:
      field.type = f.TYPE_MESSAGE
      field.type_name = f".google.protobuf.{wrapper}"
    elif name == "allowed_batch_sizes":
      field.label, field.type = f.LABEL_REPEATED, f.TYPE_INT64
    else:
      field.type = f.TYPE_BOOL
  pool = descriptor_pool.DescriptorPool()  # private: TF's may hold it
  pool.Add(descriptor_pb2.FileDescriptorProto.FromString(
      wrappers_pb2.DESCRIPTOR.serialized_pb))
  pool.Add(file)
  return message_factory.GetMessageClass(
      pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


_Message = _message_class()


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
  """What TF Serving's ``BatchingParameters`` sets; defaults are TF Serving's.

  Attributes:
    max_batch_size: most rows a request may have, and a batch (1000).
    batch_timeout_micros: how long a batch's first request waits for more
      when a batch thread is free (0: none).
    max_enqueued_batches: batches waiting for a thread, the open one
      included; a request needing one more fails with 503 (10).
    num_batch_threads: threads running batches (one per CPU).
    allowed_batch_sizes: the buckets, increasing, the last equal to
      ``max_batch_size`` (empty: the powers of two up to it).
    pad_variable_length_inputs: accepted; requests whose values differ in
      length beyond the batch are always joined (the loader pads them).
    enable_large_batch_splitting: split a request over several batches.
    max_execution_batch_size: the largest batch run when splitting
      (None: ``max_batch_size``).
    thread_pool_name: accepted and unused.

  Example::

    BatchingParameters(max_batch_size=32).buckets  # (1, 2, 4, 8, 16, 32)
  """
  max_batch_size: int = 1000
  batch_timeout_micros: int = 0
  max_enqueued_batches: int = 10
  num_batch_threads: int = dataclasses.field(
      default_factory=lambda: os.cpu_count() or 1)
  allowed_batch_sizes: tuple = ()
  pad_variable_length_inputs: bool = False
  enable_large_batch_splitting: bool = False
  max_execution_batch_size: int | None = None
  thread_pool_name: str = "model_server_batch_threads"

  def __post_init__(self):
    for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name}={getattr(self, name)!r} must be at least 1, "
                         f"e.g. {name} {{ value: 8 }}.")
    if self.batch_timeout_micros < 0:
      raise ValueError(f"batch_timeout_micros={self.batch_timeout_micros!r} "
                       "must be 0 or more microseconds.")
    if self.max_execution_batch_size is not None and not (
        1 <= self.max_execution_batch_size <= self.max_batch_size):
      raise ValueError(
          f"max_execution_batch_size={self.max_execution_batch_size!r} must "
          f"be from 1 to max_batch_size={self.max_batch_size}.")
    sizes = list(self.allowed_batch_sizes)
    if sizes:
      if any(b <= a for a, b in zip(sizes, sizes[1:])) or sizes[0] < 1:
        raise ValueError(f"allowed_batch_sizes={sizes!r} must be positive and "
                         "increasing, e.g. [8, 32].")
      if sizes[-1] != self.execution_batch_size:
        raise ValueError(
            f"allowed_batch_sizes={sizes!r} must end with the largest batch, "
            f"{self.execution_batch_size} (max_batch_size, or "
            "max_execution_batch_size with enable_large_batch_splitting).")

  @property
  def execution_batch_size(self) -> int:
    """The most rows one call of the signature runs."""
    if self.enable_large_batch_splitting and self.max_execution_batch_size:
      return self.max_execution_batch_size
    return self.max_batch_size

  @property
  def buckets(self) -> tuple:
    """The batch sizes a signature is called with (each compiled at start)."""
    if self.allowed_batch_sizes:
      return tuple(self.allowed_batch_sizes)
    top = self.execution_batch_size
    sizes = [1 << i for i in range(top.bit_length()) if 1 << i < top]
    return tuple(sizes + [top])


def parse_parameters(text: str, where: str = "the batching parameters"
                     ) -> BatchingParameters:
  """TF Serving's ``BatchingParameters`` text proto -> ``BatchingParameters``.

  Example::

    parse_parameters('max_batch_size { value: 32 }').max_batch_size  # 32

  Raises:
    ValueError: not a BatchingParameters text proto (the message names the
      line, the field and ``where``), or values TF Serving refuses.
  """
  message = _Message()
  try:
    text_format.Parse(text, message)
  except text_format.ParseError as e:
    fields = [f.name for f in message.DESCRIPTOR.fields]
    raise ValueError(f"{where}: {str(e).rstrip('.')}; BatchingParameters "
                     f"has the fields {fields!r}, wrapped as TF Serving "
                     "writes them, e.g. 'max_batch_size { value: 32 }'.") from None
  values = {}
  for field, value in message.ListFields():
    if field.name == "allowed_batch_sizes":
      values[field.name] = tuple(value)
    elif field.name == "pad_variable_length_inputs":
      values[field.name] = bool(value)
    else:
      values[field.name] = value.value
  try:
    return BatchingParameters(**values)
  except ValueError as e:
    raise ValueError(f"{where}: {e}") from None


def read_parameters(path: str | os.PathLike) -> BatchingParameters:
  """Reads ``--batching-parameters-file`` (see ``parse_parameters``).

  Raises:
    OSError: the file cannot be read.
    ValueError: it is not a valid BatchingParameters text proto.
  """
  with open(path, encoding="utf-8") as f:
    text = f.read()
  return parse_parameters(
      text, where=f"--batching-parameters-file {os.fspath(path)!r}")


# ---------------------------------------------------------------- batcher


def batchable(sig: Any) -> bool:
  """Whether a signature's inputs and outputs are all batch first (any size)."""
  def batch_first(specs):
    return bool(specs) and all(
        isinstance(s, Mapping) and s.get("shape") and s["shape"][0] is None
        for s in specs.values())
  return (sig.method_name != _EVAL_METHOD and batch_first(sig.inputs) and
          isinstance(sig.outputs, Mapping) and batch_first(sig.outputs))


class _Task:
  """One request (or one piece of a split one) waiting for its outputs."""
  __slots__ = ("inputs", "size", "done", "outputs", "error")

  def __init__(self, inputs: dict, size: int):
    self.inputs, self.size = inputs, size
    self.done = threading.Event()
    self.outputs = self.error = None


class _Batch:
  __slots__ = ("key", "tasks", "size", "deadline")

  def __init__(self, key: tuple, deadline: float):
    self.key, self.tasks, self.size, self.deadline = key, [], 0, deadline


def _rows(value: Any) -> int | None:
  """A column's rows: a list or an array with a batch dimension, else None."""
  if isinstance(value, list):
    return len(value)
  if isinstance(value, np.ndarray) and value.ndim:
    return value.shape[0]
  return None


def _pad(value: Any, rows: int) -> Any:
  """``value`` with its last row repeated up to ``rows``."""
  have = len(value)
  if rows == have:
    return value
  if isinstance(value, list):
    return value + [value[-1]] * (rows - have)
  return np.concatenate([value, np.repeat(value[-1:], rows - have, axis=0)])


def _join(parts: list) -> Any:
  if all(isinstance(p, list) for p in parts):
    return [row for part in parts for row in part]
  return np.concatenate([np.asarray(p) for p in parts])


class Batcher:
  """Joins concurrent calls of one signature into calls at a few batch sizes.

  Call it as the signature: ``batcher({feature: values})`` returns the
  request's ``{output: array}``. It starts ``num_batch_threads`` threads and
  runs each bucket once first (``warm_up``), so no call compiles.

  Attributes:
    signature: the loader's ``Signature`` it runs.
    params: its ``BatchingParameters``.
    calls: signature calls made for requests (not the warm-up).
    requests: requests answered through batches.
    batch_sizes: the padded batch sizes the signature was called with.

  Example::

    batcher = Batcher(imported.signatures['predict'], BatchingParameters())
    batcher({'x': [[1.5], [3.5]]})['class_ids']
  """

  def __init__(self, signature: Any, params: BatchingParameters, *,
               warm_up: bool = True):
    if not batchable(signature):
      raise ValueError(f"{signature!r} has inputs or outputs without a batch "
                       "dimension of any size; call it directly.")
    self.signature = signature
    self.params = params
    self.calls = 0
    self.requests = 0
    self.batch_sizes: set[int] = set()
    self._buckets = params.buckets
    self._limit = params.execution_batch_size
    self._timeout = params.batch_timeout_micros / 1e6
    self._cond = threading.Condition()
    self._open: dict[tuple, _Batch] = {}  # input names -> the batch filling
    self._ready: collections.deque = collections.deque()  # full batches
    self._closed = False
    if warm_up:
      self.warm_up()
    self._threads = [
        threading.Thread(target=self._work, daemon=True,
                         name=f"{params.thread_pool_name}-{signature.name}-{i}")
        for i in range(params.num_batch_threads)]
    for thread in self._threads:
      thread.start()

  def warm_up(self) -> None:
    """Runs the signature once per bucket on neutral rows (compiles them all)."""
    sample = _parsing.sample_request(self.signature.inputs)
    for size in self._buckets:
      self.signature({k: _pad(v if isinstance(v, np.ndarray) else list(v), size)
                      for k, v in sample.items()})

  def __call__(self, inputs: Mapping[str, Any] | None = None, /,
               **kwargs: Any) -> dict[str, np.ndarray]:
    """The signature's outputs for one request, run in a joined batch.

    Raises:
      ServerOverloadedError: ``max_enqueued_batches`` batches are waiting.
      BatchSizeError: the request has more than ``max_batch_size`` rows.
      ServingInputError: the signature's, for this request's features.
    """
    if kwargs:
      if inputs is not None and not isinstance(inputs, Mapping):
        return self.signature(inputs, **kwargs)  # the signature's TypeError
      inputs = {**(inputs or {}), **kwargs}
    size = self._size(inputs)
    if size is None:  # not one column per input of equal rows: run alone
      return self.signature(inputs)
    if size > self.params.max_batch_size:
      raise BatchSizeError(
          f"Task size {size} is larger than maximum input batch size "
          f"{self.params.max_batch_size}; send at most "
          f"{self.params.max_batch_size} examples per request, or raise "
          "max_batch_size in the batching parameters file.")
    if self._closed:
      return self.signature(inputs)
    key = tuple(inputs)
    if size <= self._limit:
      tasks = [_Task(dict(inputs), size)]
    else:  # enable_large_batch_splitting: pieces of the execution size
      tasks = [_Task({k: v[start:start + self._limit] for k, v in inputs.items()},
                     min(self._limit, size - start))
               for start in range(0, size, self._limit)]
    if not self._enqueue(key, tasks):
      return self.signature(inputs)
    for task in tasks:
      task.done.wait()
      if task.error is not None:
        raise task.error
    if len(tasks) == 1:
      return tasks[0].outputs
    return {k: np.concatenate([t.outputs[k] for t in tasks])
            for k in tasks[0].outputs}

  def close(self, timeout: float = 30.0) -> None:
    """Runs what is queued, then stops the batch threads; later calls run
    the signature directly (a request that still holds an unloaded version,
    or one answered while the server drains, is still answered)."""
    with self._cond:
      self._closed = True
      self._cond.notify_all()
    deadline = time.monotonic() + timeout
    for thread in self._threads:
      thread.join(max(0.0, deadline - time.monotonic()))

  # ---------------------------------------------------------------- queue

  @staticmethod
  def _size(inputs: Any) -> int | None:
    if not isinstance(inputs, Mapping) or not inputs:
      return None
    sizes = {_rows(v) for v in inputs.values()}
    if len(sizes) != 1:
      return None
    (size,) = sizes
    return size or None

  def _enqueue(self, key: tuple, tasks: list) -> bool:
    params = self.params
    with self._cond:
      if self._closed:  # closed since __call__ looked: run unbatched
        return False
      free = params.max_enqueued_batches - len(self._ready) - len(self._open)
      batch = self._open.get(key)
      fits = batch is not None and batch.size + tasks[0].size <= self._limit
      if len(tasks) - fits > free:
        raise ServerOverloadedError(
            "The batch scheduling queue to which this task was submitted is "
            f"full ({params.max_enqueued_batches} batches wait); retry after "
            f"{RETRY_AFTER_SECONDS} s, or raise max_enqueued_batches or "
            "num_batch_threads in the batching parameters file.")
      for task in tasks:
        batch = self._open.get(key)
        if batch is not None and batch.size + task.size > self._limit:
          self._ready.append(self._open.pop(key))
          batch = None
        if batch is None:
          batch = self._open[key] = _Batch(
              key, time.monotonic() + self._timeout)
        batch.tasks.append(task)
        batch.size += task.size
        if batch.size == self._limit:
          self._ready.append(self._open.pop(key))
      self._cond.notify()
    return True

  def _next(self) -> _Batch | None:
    """The next batch to run (waits for one); None once closed and empty."""
    with self._cond:
      while True:
        if self._ready:
          return self._ready.popleft()
        if self._open:
          key, batch = min(self._open.items(), key=lambda kv: kv[1].deadline)
          wait = batch.deadline - time.monotonic()
          if wait <= 0 or self._closed:
            del self._open[key]
            return batch
          self._cond.wait(wait)
        elif self._closed:
          return None
        else:
          self._cond.wait()

  def _work(self) -> None:
    while (batch := self._next()) is not None:
      try:
        self._run(batch.tasks)
      except ServingInputError as e:
        if len(batch.tasks) == 1:
          batch.tasks[0].error = e
        else:  # one bad request: each gets its own answer
          for task in batch.tasks:
            try:
              self._run([task])
            except Exception as e2:  # pylint: disable=broad-except
              task.error = e2
      except Exception as e:  # pylint: disable=broad-except
        for task in batch.tasks:
          task.error = e
      for task in batch.tasks:
        task.done.set()

  def _run(self, tasks: list) -> None:
    """One signature call for ``tasks``, padded to a bucket; splits outputs."""
    total = sum(t.size for t in tasks)
    bucket = next(b for b in self._buckets if b >= total)
    if len(tasks) == 1:
      inputs = tasks[0].inputs
    else:
      try:
        inputs = {k: _join([t.inputs[k] for t in tasks]) for k in tasks[0].inputs}
      except ValueError as e:  # arrays of different shapes
        raise ServingInputError(f"Requests do not join: {e}") from None
    outputs = self.signature({k: _pad(v, bucket) for k, v in inputs.items()})
    with self._cond:
      self.calls += 1
      self.requests += len(tasks)
      self.batch_sizes.add(bucket)
    start = 0
    for task in tasks:
      task.outputs = {k: v[start:start + task.size] for k, v in outputs.items()}
      start += task.size


def make_batchers(imported: Any, params: BatchingParameters) -> dict:
  """``{signature name: Batcher}`` for an export's batchable signatures.

  Each is warmed up (every bucket compiled; the signatures side by side, as
  XLA compiles without the GIL) before this returns; signatures that are
  not ``batchable`` are left out (the server calls them directly).
  """
  batchers = {name: Batcher(sig, params, warm_up=False)
              for name, sig in imported.signatures.items() if batchable(sig)}
  if batchers:
    with concurrent.futures.ThreadPoolExecutor(len(batchers)) as pool:
      for done in [pool.submit(b.warm_up) for b in batchers.values()]:
        done.result()
  return batchers



def from_flags(enable_batching: bool, parameters_file: str
               ) -> BatchingParameters | None:
  """``--enable-batching`` and ``--batching-parameters-file`` -> parameters.

  Returns None when batching is off; TF Serving's defaults without a file.

  Example::

    from_flags(True, '')   # BatchingParameters() (TF Serving's defaults)

  Raises:
    ValueError: a file without batching (TF Serving refuses it too), or a
      bad file (``read_parameters``).
    OSError: the file cannot be read.
  """
  if not enable_batching:
    if parameters_file:
      raise ValueError(f"--batching-parameters-file {parameters_file!r} is "
                       "given without --enable-batching; add "
                       "--enable-batching.")
    return None
  if not parameters_file:
    return BatchingParameters()
  return read_parameters(parameters_file)
