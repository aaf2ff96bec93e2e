"""Prefetch and device placement: the input path's last stage.

Grouped host batches go to the device(s) as the strategy (or none) places
them (``device_put_fn``), in a background thread that runs ``ahead`` items
ahead of the step (``Prefetcher``, ``prefetch_ahead``), so the next batches
are ready on the device while the current step runs. A strategy is passed
in as an object (its ``put_batch``), never imported. ``fed`` takes a batch
already on the device back to the host for a hook's edit (``FeedFnHook``)
and returns it where it was.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator, Sequence

import jax
import numpy as np

from estlab.data._packing import Packed, pack, unpacked

__all__ = ["on_cpu", "device_put_fn", "prefetch_ahead", "Prefetcher", "fed"]


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


def fed(edits: Sequence[Callable], features: Any, labels: Any,
        n: int | None) -> tuple[Any, Any]:
  """A device batch edited on the host by ``edits`` (``HookRunner.feeds``),
  put back where it was.

  The batch is unpacked (``data._packing``) to the input_fn's ``(features,
  labels)`` as numpy arrays; with ``n`` it is a loop's stack, and each of
  its first ``n`` batches is edited (the padding after them is never read).
  The edited batch is packed again and goes back to the devices (and
  shardings) of the arrays it replaces.

  Raises:
    ValueError: an edit changed the batch's keys, shapes or dtypes, or the
      batch spans several processes (no process holds all of it).
  """
  device = (features, labels)
  for leaf in jax.tree.leaves(device):
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
      raise ValueError(
          "A hook feeds the batch (FeedFnHook, SessionRunArgs(feed_dict=...)),"
          " but the batch spans several processes; edit the batches in the "
          "input_fn instead.")
  packed = isinstance(features, Packed)
  host = unpacked(*jax.tree.map(np.asarray, device))

  def edit(batch):
    for one in edits:
      batch = one(*batch)
    return jax.tree.map(np.asarray, tuple(batch))
  if n is None:
    edited = edit(host)
  else:
    done = [edit(jax.tree.map(lambda a, i=i: a[i], host)) for i in range(n)]
    edited = jax.tree.map(
        lambda whole, *rows: np.concatenate([np.stack(rows), whole[n:]]),
        host, *done)
  if packed:
    edited = (pack(edited, batch_axes=1 if n is None else 2), None)
  if (jax.tree.structure(edited) != jax.tree.structure(device) or any(
      np.shape(a) != np.shape(b) for a, b in
      zip(jax.tree.leaves(edited), jax.tree.leaves(device)))):
    raise ValueError(
        "A feed changed the batch's keys, shapes or dtypes: a feed_fn returns "
        "the (features, labels) it was given, edited in place of values "
        f"(same keys, shapes and dtypes). Was {jax.tree.structure(host)}.")
  return jax.tree.map(
      lambda new, old: jax.device_put(new, old.sharding)
      if isinstance(old, jax.Array) else new, edited, device)
