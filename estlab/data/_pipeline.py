"""The input path composed: an input_fn's batches, encoded, on the device.

``input_batches`` runs the stages of ``estlab.data`` in the order data
flows: call the input_fn (``_input_fn``) → join a step's per-replica
batches (``_replicas``) → encode on the host (``_encode``; an array
input_fn's table once, ``_tables``) → group for ``steps_per_loop`` and pad
(``_grouping``) → put on the device, prefetched (``_device``); ``feed``
runs the last two.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Iterator

from estlab.data._batching import ArrayBatches
from estlab.data._device import Prefetcher, device_put_fn, prefetch_ahead
from estlab.data._encode import (one_batch, prepare_batch, prepare_batches,
                                 prepare_table)
from estlab.data._grouping import group_for_loops, pad_short_batches
from estlab.data._input_fn import OneBatch, call_input_fn, split_batch
from estlab.data._replicas import batches_per_step, group_replica_batches
from estlab.data._tables import EncodedTables, table_batches, table_loops
from estlab.spec import ModeKeys

__all__ = ["input_batches", "feed"]


def input_batches(input_fn: Callable, mode: str, *, strategy: Any, params: Any,
                  config: Any, host_transform: Callable, takes_labels: bool,
                  tables: EncodedTables, limit: int | None,
                  steps_per_loop: int = 1, pad: bool = False,
                  chunk_rows: int = 0) -> "Prefetcher":
  """Device batches ``(n, (features, labels))`` of ``input_fn``, prefetched.

  Host batches are packed into one buffer per dtype (``_packing``), so
  ``features`` is usually a ``Packed`` and ``labels`` None; the compiled
  steps unpack them. Batches of an array input_fn (numpy, pandas) are rows of
  its whole table, prepared once per table object and mode and kept in
  ``tables`` (``EncodedTables``: as long as the table lives; a table made
  afresh per call is prepared per call); the first training call prepares
  its first rows directly and the table in the background, see
  ``table_loops``; feature columns encode row by row, so gathering encoded
  rows equals encoding the gathered rows). In EVAL and PREDICT the items are
  ``(n, ((features, labels), valid))``; with ``pad`` short batches are
  padded to the first one's size (``pad_short_batches``). An input_fn that
  returns one batch (``OneBatch``) has it prepared once and repeated
  (``one_batch``). Batches of any other input_fn are prepared as they come,
  or ``chunk_rows`` rows at a time (``prepare_batches``). Under a strategy
  a step's per-replica batches come joined (``_replicas``).
  """
  source = call_input_fn(
      input_fn, mode=mode, params=params, config=config,
      input_context=strategy.input_context() if strategy else None)
  if not isinstance(source, OneBatch):  # (one batch: the global batch)
    source = group_replica_batches(  # a step's per-replica batches, as one
        source, batches_per_step(mode, config), split=split_batch)
  prepare = functools.partial(prepare_batch, mode=mode,
                              host_transform=host_transform,
                              takes_labels=takes_labels)
  train = mode == ModeKeys.TRAIN
  ahead = prefetch_ahead(config.prefetch_batches, strategy)
  grouped = False
  if isinstance(source, OneBatch):
    host = one_batch(source.item, prepare, mode, limit)
  elif isinstance(source, ArrayBatches):
    encoded = tables.encoded(source.table, mode,
                             functools.partial(prepare_table, prepare))
    grouped = train
    host = (table_loops(encoded, source.selections, steps_per_loop, limit,
                        first=lambda rows: prepare(encoded.table.rows(rows), 0))
            if train else table_batches(encoded, source.selections))
  else:
    host = prepare_batches(source, chunk_rows=chunk_rows, limit=limit,
                           mode=mode, host_transform=host_transform,
                           takes_labels=takes_labels)
  return feed(host, put=device_put_fn(strategy), train=train,
              steps_per_loop=steps_per_loop, limit=limit, pad=pad,
              ahead=ahead, grouped=grouped)


def feed(host: Iterator, *, put: Callable[[Any, bool], Any], train: bool,
         steps_per_loop: int, limit: int | None, pad: bool,
         ahead: int, grouped: bool = False) -> "Prefetcher":
  """Prepared host batches to the device, ``ahead`` of the consumer.

  Training items are ``(n, batch)`` (``group_for_loops``; ``grouped`` when
  ``host`` yields them so already, as ``table_loops``); evaluation and
  prediction items ``(1, (batch, valid))`` (``pad_short_batches``).
  """
  stacked = train and steps_per_loop > 1
  if train:
    if not grouped:
      host = group_for_loops(host, steps_per_loop, limit)
    items = ((n, put(batch, stacked)) for n, batch in host)
  else:
    singles = group_for_loops(pad_short_batches(host, pad), 1, limit)
    items = ((n, (put(batch, False), valid)) for n, (batch, valid) in singles)
  return Prefetcher(items, ahead)
