"""Array input_fns' tables encoded once; their batches are row gathers.

An array input_fn (numpy, pandas, a Dataset over in-memory columns) is
encoded once as a whole table (``_encode.prepare_table``, in the background:
``Background``) and kept in an ``EncodedTables`` cache; its batches are then
row gathers from it (``_packing.take_rows``), ``steps_per_loop`` batches
gathered at once (``table_loops``, padded as ``_grouping.pad_loop`` pads).
"""
from __future__ import annotations

import itertools
import threading
import weakref
from typing import Any, Callable, Iterator

import jax
import numpy as np

from estlab.data._grouping import pad_loop
from estlab.data._packing import take_rows

__all__ = ["Background", "Encoded", "EncodedTables", "table_batches",
           "table_loops"]


def table_batches(encoded: "Encoded | Background",
                  selections: Iterator) -> Iterator:
  """Rows of an encoded table, one batch per selection (``table_loops``'s
  single steps)."""
  return (batch for _, batch in table_loops(encoded, selections, 1, None))


def table_loops(encoded: "Encoded | Background", selections: Iterator,
                steps_per_loop: int, limit: int | None,
                first: Callable[[Any], Any] | None = None) -> Iterator[tuple]:
  """``(n, batch)`` of table rows for training, grouped as
  ``_grouping.group_for_loops``
  (with ``steps_per_loop`` > 1: ``n`` real batches of a ``[steps_per_loop,
  B, ...]`` stack, the rest padding).

  The rows of a loop's batches are stacked as indices first and gathered in
  one ``np.take`` per buffer (``[n, B, ...]``), not gathered batch by batch
  and stacked. With ``first`` (rows -> prepared batch) and the table not
  encoded yet, the first item's real rows are prepared directly (then
  padded) and the whole table is encoded in the background meanwhile, so
  the first step (its compilation above all) does not wait for a large
  table.
  """
  for n, rows in _group_rows(selections, steps_per_loop, limit):
    if first is not None and not encoded.done():
      if steps_per_loop == 1:
        batch = first(rows)
      else:
        real = first(rows[:n].reshape(-1))
        batch = jax.tree.map(lambda a: pad_loop(
            a.reshape((n, -1) + a.shape[1:]), steps_per_loop), real)
      encoded.start()
      yield n, batch
    else:
      yield n, take_rows(encoded.get(), rows)
    first = None


def _group_rows(selections: Iterator, steps_per_loop: int,
                limit: int | None) -> Iterator[tuple[int, Any]]:
  """``_grouping.group_for_loops`` for row selections (slices or index
  arrays): up to ``steps_per_loop`` selections of equal length become one
  padded ``[steps_per_loop, B]`` index array. Kept apart from the general one,
  whose per-batch tree signature would cost more than the gather it
  feeds."""
  if steps_per_loop == 1:
    yield from ((1, s) for s in itertools.islice(selections, limit))
    return
  if hasattr(selections, "next_rows"):  # an IndexBatches: a loop at once
    yield from _stream_loops(selections, steps_per_loop, limit)
    return
  remaining = limit
  pending: list = []
  for rows in itertools.islice(selections, limit):
    if isinstance(rows, slice):
      rows = np.arange(rows.start, rows.stop)
    if pending and len(rows) != len(pending[0]):  # a short last batch
      yield len(pending), pad_loop(np.stack(pending), steps_per_loop)
      pending = []
    pending.append(rows)
    if remaining is not None:
      remaining -= 1
    if len(pending) == steps_per_loop or remaining == 0:
      yield len(pending), pad_loop(np.stack(pending), steps_per_loop)
      pending = []
  if pending:
    yield len(pending), pad_loop(np.stack(pending), steps_per_loop)


def _stream_loops(stream: Any, steps_per_loop: int,
                  limit: int | None) -> Iterator[tuple[int, Any]]:
  """``_group_rows`` of an ``IndexBatches``: the rows of a loop taken from
  its stream in one piece, not batch by batch (Python work per batch cost
  a few us, a sizeable part of a small model's step on XLA:CPU)."""
  batch = stream.batch_size
  remaining = limit
  while remaining is None or remaining > 0:
    n = steps_per_loop if remaining is None else min(steps_per_loop, remaining)
    rows = stream.next_rows(n * batch)
    if rows is None:
      return
    if isinstance(rows, slice):
      rows = np.arange(rows.start, rows.stop)
    full = len(rows) // batch
    if full:
      yield full, pad_loop(rows[:full * batch].reshape(full, batch),
                            steps_per_loop)
    if len(rows) < n * batch:  # the input ends: full batches, a short one
      if len(rows) > full * batch:
        yield 1, pad_loop(rows[None, full * batch:], steps_per_loop)
      return
    if remaining is not None:
      remaining -= n


class Background:
  """A value computed once: in a background thread once ``start`` is called,
  else in the first caller of ``get``. ``get`` raises what the computation
  raised.

  ``start(*args)`` and ``get(*args)`` pass ``args`` to the computation (the
  first call that runs it decides): the inputs are held only while it runs,
  so a cached ``Background`` need not keep them alive (``EncodedTables``).
  """

  def __init__(self, compute: Callable[..., Any]):
    self._compute = compute
    self._thread: threading.Thread | None = None
    self._lock = threading.Lock()
    self._result: tuple | None = None  # (value, error)

  def _run(self, *args: Any) -> None:
    try:
      self._result = (self._compute(*args), None)
    except BaseException as e:  # pylint: disable=broad-except
      self._result = (None, e)

  def done(self) -> bool:
    return self._result is not None

  def start(self, *args: Any) -> None:
    with self._lock:
      if self._thread is None and self._result is None:
        # (A finished Thread drops its target and args.)
        self._thread = threading.Thread(target=self._run, args=args,
                                        daemon=True, name="estlab-encode")
        self._thread.start()

  def get(self, *args: Any) -> Any:
    result = self._result  # set last by ``_run``: then the work is done
    if result is None:
      result = self._wait(args)
    value, error = result
    if error is not None:
      raise error
    return value

  def _wait(self, args: tuple) -> tuple:
    with self._lock:
      thread = self._thread
      if thread is None and self._result is None:
        self._run(*args)
    if thread is not None:
      thread.join()
    return self._result


class Encoded:
  """A table's cached ``Background`` encoding, bound to the table: ``done``,
  ``start`` and ``get`` as ``Background``'s, computing from the table, which
  this handle (held by one input pipeline) keeps alive."""

  def __init__(self, background: Background, table: Any):
    self._background = background
    self.table = table

  def done(self) -> bool:
    return self._background.done()

  def start(self) -> None:
    self._background.start(self.table)

  def get(self) -> Any:
    return self._background.get(self.table)


class EncodedTables:
  """An Estimator's encoded tables: ``(table, mode) -> Background``.

  An array input_fn (``numpy_input_fn``, ``pandas_input_fn``, a Dataset over
  in-memory columns) returns batches of rows of one table object; its
  encoding (feature columns, packing) is computed once per table and mode
  and reused by every later call that returns the same table object, so a
  DataFrame's input_fn made once and passed to ``train``, ``evaluate`` and
  ``predict`` again and again is encoded once per mode.

  Entries are keyed on the table's identity (never on its value: equal
  tables are not assumed to be the same data) and hold it weakly: an entry
  goes when its table does, so the cache never keeps a dropped input_fn's
  data (or its encoding) alive, and a new table never finds another's
  encoding. The encoding holds no reference to the table; the ``Encoded``
  handle an input pipeline gets does, while the pipeline runs.

  A table made afresh by every call of the input_fn (``lambda:
  pandas_input_fn(df, y)()``, a Dataset built inside the input_fn) is a new
  object each time and so is encoded again each call: correct, but slower
  than making the input_fn once and passing it. A table that cannot be
  referenced weakly is encoded per call too, never cached.

  The arrays are read when the table is first encoded: changing them in
  place afterwards is not seen by the cached encoding; make a new input_fn
  for new data.
  """

  def __init__(self):
    self._entries: dict[int, tuple[weakref.ref, dict]] = {}

  def __len__(self) -> int:
    return len(self._entries)

  def encoded(self, table: Any, mode: str,
              compute: Callable[[Any], Any]) -> Encoded:
    """``table``'s encoding in ``mode``, ``compute(table)`` on first use."""
    key = id(table)
    entry = self._entries.get(key)
    if entry is None or entry[0]() is not table:
      try:
        ref = weakref.ref(table, lambda r, key=key: self._forget(key, r))
      except TypeError:  # not weakly referenceable: encoded per call
        return Encoded(Background(compute), table)
      entry = self._entries[key] = (ref, {})
    per_mode = entry[1]
    if mode not in per_mode:
      per_mode[mode] = Background(compute)
    return Encoded(per_mode[mode], table)

  def _forget(self, key: int, ref: weakref.ref) -> None:
    entry = self._entries.get(key)
    if entry is not None and entry[0] is ref:
      del self._entries[key]
