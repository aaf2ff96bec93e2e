"""Host encoding: each input batch checked, host-transformed and packed.

This is where a batch is encoded. ``prepare_batch`` checks one input_fn
batch (``_input_fn.split_batch``), runs the Estimator's host transform on it
(feature columns: vocabularies, hashing, buckets; as ``host_transform``),
checks that no strings are left and packs it (``_packing``).
``prepare_batches`` does so for a stream of batches, batch by batch or
joined into chunks (``_chunks``) so the transform runs once per chunk;
``one_batch`` for the one batch an input_fn returned; ``prepare_table`` for
the whole table of an array input_fn, which ``_tables`` encodes once and
reads as rows.
"""
from __future__ import annotations

import functools
import itertools
import logging
from typing import Any, Callable, Iterator

import jax

from estlab.data import _chunks, _packing
from estlab.data._input_fn import check_no_strings, split_batch
from estlab.data._packing import rows_of, take_rows
from estlab.spec import ModeKeys

__all__ = ["prepare_batch", "prepare_batches", "one_batch", "prepare_table"]

logger = logging.getLogger("estlab")


def prepare_batch(item: Any, index: int, *, mode: str,
                  host_transform: Callable, takes_labels: bool) -> tuple:
  """One input_fn batch checked, host-transformed and packed.

  Returns:
    ``(Packed, None)`` (features and labels in one ``_packing.Packed``), or
    ``(features, labels)`` when the arrays cannot be packed.
  """
  features, labels = _checked(item, index, mode, takes_labels)
  features, labels = host_transform(features, labels, mode)
  _check_transformed(features, labels)
  return _packed(features, labels)


def _checked(item: Any, index: int, mode: str, takes_labels: bool) -> tuple:
  """``split_batch``, then the labels as the mode and model_fn take them."""
  features, labels = split_batch(item, index)
  if labels is not None and not takes_labels:
    raise ValueError("input_fn yields labels but model_fn takes no "
                     "`labels` argument; add one or yield features only.")
  if mode == ModeKeys.PREDICT:
    labels = None  # as tf.estimator: predict ignores the input's labels
  return features, labels


def _check_transformed(features: Any, labels: Any) -> None:
  check_no_strings(features)
  if labels is not None:
    check_no_strings(labels, "Label")


def _packed(features: Any, labels: Any) -> tuple:
  packed = _packing.pack((features, labels))
  return (features, labels) if packed is None else (packed, None)


def prepare_batches(source: Iterator, *, chunk_rows: int, limit: int | None,
                    **kwargs: Any) -> Iterator[tuple]:
  """``prepare_batch`` of each item of ``source``, in order.

  With ``chunk_rows``, batches are read ahead in chunks of up to that many
  rows (1, 2, 4, ... batches, so the first is not delayed; never past
  ``limit`` batches) and the host transform runs once per chunk
  (``_chunks``). A chunk that cannot be joined, or whose joined transform
  fails, is prepared batch by batch: an error names its own batch, and the
  batches before it still arrive first.
  """
  prepare = functools.partial(prepare_batch, **kwargs)
  if not chunk_rows:
    yield from (prepare(item, index) for index, item in enumerate(source))
    return
  index, size, most = 0, 1, None
  while limit is None or index < limit:
    take = size if limit is None else min(size, limit - index)
    items = [_chunks.snapshot(item) for item in itertools.islice(source, take)]
    if not items:
      return
    joined = None
    if len(items) > 1:
      try:
        joined = _prepare_joined(items, index, **kwargs)
      except Exception:  # pylint: disable=broad-except
        joined = None  # batch by batch below: the error names its batch
    for i, item in enumerate(items):
      batch = prepare(item, index + i) if joined is None else joined[i]
      if most is None:  # batches per chunk, from the first batch's rows
        most = max(1, chunk_rows // max(rows_of(batch), 1))
      yield batch
    index += len(items)
    size = min(2 * size, most)


def _prepare_joined(items: list, index: int, *, mode: str,
                    host_transform: Callable, takes_labels: bool
                    ) -> list[tuple] | None:
  """``prepare_batch`` of each item, transformed as one; None if the items
  cannot be joined (``_chunks.join``)."""
  pairs = [_checked(item, index + i, mode, takes_labels)
           for i, item in enumerate(items)]
  joined = _chunks.join(pairs)
  if joined is None or not jax.tree.leaves(joined):
    return None
  transformed = host_transform(*joined, mode)
  _check_transformed(*transformed)
  batch = _packed(*transformed)  # packed once, cut into views
  return [take_rows(batch, rows) for rows in
          _chunks.row_ranges([rows_of(pair) for pair in pairs])]


def one_batch(item: Any, prepare: Callable, mode: str,
              limit: int | None) -> Iterator:
  """The one batch an input_fn returned, prepared once, as batches.

  TRAIN repeats it until ``limit`` (``steps`` or ``max_steps``) or a hook
  stops training; with no limit it trains until stopped, as tf.estimator
  does (a warning says so). EVAL reads it ``limit`` times (evaluate's
  ``steps``), once when None; PREDICT once. (tf.estimator evaluated and
  predicted a batch of tensors until stopped.)
  """
  batch = prepare(item, 0)
  if mode != ModeKeys.TRAIN:
    return itertools.repeat(batch, 1 if limit is None else limit)
  if limit is None:
    logger.warning(
        "input_fn returned one batch and train() was given neither steps nor "
        "max_steps: training repeats that batch until a hook stops it (or "
        "forever), as tf.estimator does. Pass steps=N or max_steps=N.")
  return itertools.repeat(batch) if limit is None else itertools.repeat(
      batch, limit)


def prepare_table(prepare: Callable, table: Any) -> Any:
  """``prepare`` (a ``prepare_batch`` with its keywords) of a whole
  ``ArrayTable`` as one batch: the encoding ``_tables`` caches."""
  return prepare(table.whole(), 0)
