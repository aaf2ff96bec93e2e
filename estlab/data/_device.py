"""Prefetch and device placement: the input path's last stage.

Grouped host batches go to the device(s) as the strategy (or none) places
them (``device_put_fn``), in a background thread that runs ``ahead`` items
ahead of the step (``Prefetcher``, ``prefetch_ahead``), so the next batches
are ready on the device while the current step runs. A strategy is passed
in as an object (its ``put_batch``), never imported.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

import jax

__all__ = ["on_cpu", "device_put_fn", "prefetch_ahead", "Prefetcher"]


def on_cpu() -> bool:
  """Whether the default device is the host CPU (arrays need no copy)."""
  return jax.default_backend() == "cpu"


def device_put_fn(strategy: Any) -> Callable[[Any, bool], Any]:
  """How a host batch (``stacked`` for a loop) goes to the device(s).

  With a strategy its shardings. On the CPU the numpy batch goes to the
  compiled step as it is: ``jit``'s C++ dispatch takes numpy arguments for a
  fraction of ``jax.device_put``'s Python overhead (~0.1 ms per array). On an
  accelerator the host-to-device copy is worth starting ahead, in the
  prefetch thread.
  """
  if strategy is not None:
    return lambda batch, stacked: strategy.put_batch(batch, stacked=stacked)
  if on_cpu():
    return lambda batch, stacked: batch
  return lambda batch, stacked: jax.device_put(batch)


def prefetch_ahead(setting: int | None, strategy: Any) -> int:
  """Batches a thread prepares ahead: ``RunConfig.prefetch_batches``, or for
  None 2 on an accelerator or with a strategy and 0 (inline) on the CPU,
  where XLA:CPU overlaps a step with the host's preparing the next one and a
  thread (a gather of encoded rows, or encoding a chunk: Python under the
  GIL) only contends with the loop's dispatch."""
  if setting is not None:
    return setting
  return 0 if strategy is None and on_cpu() else 2


_END = object()


class _Raised:

  def __init__(self, error: BaseException):
    self.error = error


class Prefetcher:
  """Runs ``source`` in a thread, ``size`` items ahead of the consumer.

  Exceptions in the thread are raised in the consumer; ``close()`` stops the
  thread (also when the consumer leaves early). ``size=0`` runs inline.
  """

  def __init__(self, source: Iterator, size: int):
    self._source = source
    self._stop = threading.Event()
    self._slots = threading.Semaphore(max(size, 1))  # items allowed ahead
    self._queue: queue.Queue = queue.Queue()
    self._thread = None
    if size > 0:
      self._thread = threading.Thread(target=self._run, daemon=True,
                                      name="estlab-prefetch")
      self._thread.start()

  def _take_slot(self) -> bool:
    while not self._stop.is_set():
      if self._slots.acquire(timeout=0.1):
        return True
    return False

  def _run(self) -> None:
    try:
      while self._take_slot():
        try:
          item = next(self._source)
        except StopIteration:
          self._queue.put(_END)
          return
        self._queue.put(item)
    except BaseException as e:  # pylint: disable=broad-except
      self._queue.put(_Raised(e))

  def __iter__(self):
    return self

  def __next__(self):
    if self._thread is None:
      return next(self._source)
    item = self._queue.get()
    if item is _END or isinstance(item, _Raised):
      self._queue.put(item)  # the end (or the error) stays for later calls
      if item is _END:
        raise StopIteration
      raise item.error
    self._slots.release()
    return item

  def close(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=10)
    close = getattr(self._source, "close", None)
    if close is not None and (self._thread is None or
                              not self._thread.is_alive()):
      close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
