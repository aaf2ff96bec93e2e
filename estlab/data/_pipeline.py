"""Host side of the input: call the input_fn, check batches, prefetch to device.

input_fn → iterable of batches → validated numpy (one conversion per batch,
none per example) → host transform (feature columns) → grouped for
``steps_per_loop`` → ``jax.device_put`` — all in a background thread, so the
next batches are ready on the device while the current step runs.
"""
from __future__ import annotations

import functools
import inspect
import itertools
import logging
import queue
import threading
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import jax
import numpy as np

from estlab.data import _chunks, _packing
from estlab.data._tables import (EncodedTables, pad_loop, table_batches,
                                 table_loops, take_rows)
from estlab.data import Dataset
from estlab.data import _seed as data_seed
from estlab.data._batching import ArrayBatches
from estlab.data._replicas import batches_per_step, group_replica_batches
from estlab.spec import ModeKeys

__all__ = ["OneBatch", "call_input_fn", "is_array", "is_one_batch",
           "split_batch", "group_for_loops", "Prefetcher",
           "rows_of", "pad_short_batches", "prepare_batch", "prepare_batches",
           "feed",
           "device_put_fn", "on_cpu", "prefetch_ahead", "chain", "input_batches",
           "first_batch"]

logger = logging.getLogger("estlab")

_INPUT_FN_ARGS = ("mode", "params", "config", "input_context")


class OneBatch(NamedTuple):
  """An input_fn's result that is one batch, not batches (``call_input_fn``).

  Attributes:
    item: the batch as returned: ``(features, labels)`` or ``features``.
  """

  item: Any


def call_input_fn(input_fn: Callable, *, mode: str, params: Any, config: Any,
                  input_context: Any = None) -> Iterator | OneBatch:
  """Calls ``input_fn`` with the arguments it accepts; returns its batches.

  tf.estimator's input_fn returns a ``tf.data.Dataset`` or one batch of
  tensors; estlab also takes any iterable of batches. What it returned is
  read by this rule:

  * **one batch** (returned as a ``OneBatch``): a dict (features only), an
    array (bare features: a numpy or JAX array, or anything with a ``shape``
    that numpy can convert, as a pandas Series), or a tuple of two whose
    first item is a dict or an array: ``(features, labels)``, so a tuple of
    two arrays is a batch of features and labels;
  * **batches**: anything else that is iterable: a list, a tuple of another
    length or whose first item is neither a dict nor an array, a generator
    or iterator, a Dataset (anything with ``as_numpy_iterator``), the
    iterator of ``numpy_input_fn`` or ``pandas_input_fn``.

  So several batches go in a list, not a tuple: ``(batch, batch)`` whose
  first item is a dict reads as one ``(features, labels)`` batch.

  Raises:
    TypeError: ``input_fn`` is not callable, or returned none of the above.
  """
  if not callable(input_fn):
    raise TypeError(f"input_fn must be a callable returning batches, got "
                    f"{input_fn!r}. Wrap data in a function: input_fn=lambda: "
                    "batches, or use estlab.inputs.numpy_input_fn(...).")
  available = dict(mode=mode, params=params, config=config,
                   input_context=input_context)
  sig = inspect.signature(input_fn)
  kwargs = {n: available[n] for n in sig.parameters if n in _INPUT_FN_ARGS}
  # RunConfig.tf_random_seed seeds the shuffles the input_fn makes without a
  # seed of their own, as TF's graph seed did.
  with data_seed.graph_seed(getattr(config, "tf_random_seed", None)):
    result = input_fn(**kwargs)
  if isinstance(result, Dataset):  # index batches over its columns, if it can
    return result._input_source()  # pylint: disable=protected-access
  if hasattr(result, "as_numpy_iterator"):  # a tf.data.Dataset, when TF exists
    result = result.as_numpy_iterator()
  if is_one_batch(result):
    return OneBatch(result)
  try:
    return iter(result)
  except TypeError:
    raise TypeError(f"input_fn returned {type(result).__name__} {result!r:.100}, "
                    "which is not one batch and not iterable; return one "
                    "(features, labels) batch (features a dict of arrays or "
                    "one array), or an iterable of such batches.") from None


def is_array(value: Any) -> bool:
  """Whether ``value`` is one array (not a container of arrays): a numpy or
  JAX array, or anything with a ``shape`` that numpy converts (``__array__``:
  a pandas Series or DataFrame, a numpy scalar)."""
  return isinstance(value, (np.ndarray, jax.Array)) or (
      hasattr(value, "shape") and hasattr(value, "__array__") and
      not isinstance(value, Mapping))


def is_one_batch(result: Any) -> bool:
  """Whether an input_fn's ``result`` is one batch (``call_input_fn``)."""
  if isinstance(result, Mapping) or is_array(result):
    return True
  return (isinstance(result, tuple) and len(result) == 2 and
          (isinstance(result[0], Mapping) or is_array(result[0])))


def _to_array(value: Any, name: str) -> Any:
  if isinstance(value, (np.ndarray, jax.Array)):
    return value
  if hasattr(value, "to_numpy"):  # pandas Series / DataFrame
    return value.to_numpy()
  array = np.asarray(value)
  if array.dtype.kind == "U":
    array = array.astype(object)
  return array


def split_batch(item: Any, index: int) -> tuple[Any, Any]:
  """Checks one batch from an input_fn; returns ``(features, labels)``.

  A batch is ``(features, labels)`` or ``features`` alone (labels None).
  ``features`` is a dict of arrays or one array (passed to the model_fn as
  given, as tf.estimator passes a single Tensor); ``labels`` one array or a
  dict of arrays (a multi-head model's). Values come back as numpy arrays
  (JAX arrays as they are).

  Raises:
    TypeError: the batch or its features are not the expected containers.
    ValueError: arrays in the batch disagree on the batch size.
  """
  if isinstance(item, tuple) and len(item) == 2:
    features, labels = item
  elif isinstance(item, Mapping) or is_array(item):
    features, labels = item, None
  else:
    raise TypeError(f"Batch {index} from input_fn is {type(item).__name__} "
                    f"{item!r:.200}; yield (features, labels) tuples, or "
                    "features alone (a dict of arrays or one array).")
  if isinstance(features, Mapping):
    features = {k: _to_array(v, k) for k, v in features.items()}
  elif is_array(features):
    features = _to_array(features, "features")
  else:
    raise TypeError(
        f"Batch {index}: features must be a dict of arrays or one array, got "
        f"{type(features).__name__} {features!r:.200}. Yield ({{'x': x}}, y), "
        "or (np.asarray(x), y) for a model_fn that takes one array.")
  if isinstance(labels, Mapping):
    labels = {k: _to_array(v, k) for k, v in labels.items()}
  elif labels is not None:
    labels = _to_array(labels, "labels")
  named = ([(f"features[{k!r}]", v) for k, v in features.items()]
           if isinstance(features, Mapping) else [("features", features)])
  if isinstance(labels, Mapping):
    named += [(f"labels[{k!r}]", v) for k, v in labels.items()]
  elif labels is not None:
    named.append(("labels", labels))
  sizes = {}
  for name, value in named:
    if np.ndim(value) == 0:
      raise ValueError(f"Batch {index}: {name} is a scalar {value!r}; every "
                       "feature and label needs a leading batch dimension.")
    sizes[name] = np.shape(value)[0]
  if len(set(sizes.values())) > 1:
    raise ValueError(f"Batch {index}: arrays disagree on the batch size: "
                     f"{sizes}. All features and labels of a batch need the "
                     "same first dimension.")
  return features, labels


def check_no_strings(features: Any, what: str = "Feature") -> None:
  """Strings never enter jit: a clear error for any left after the transform.

  ``features`` is a dict of arrays (named in the error as ``what`` and the
  key) or one array.
  """
  named = (features.items() if isinstance(features, Mapping)
           else [(None, features)])
  for key, value in named:
    if getattr(value, "dtype", None) is not None and value.dtype.kind in "OUS":
      name = (f"The {what.lower()}s (one array) hold" if key is None
              else f"{what} {key!r} holds")
      raise TypeError(
          f"{name} strings (dtype {value.dtype}, e.g. "
          f"{value.ravel()[:1].tolist()!r}); strings cannot enter a compiled "
          "step. Encode them with estlab.feature_column (premade estimators do "
          "this on the host) or map them to ids in the input_fn.")


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


def chain(first: Any, rest: Iterator) -> Iterator:
  """The first (already taken) item, then the rest."""
  yield first
  yield from rest


def rows_of(batch: Any) -> int:
  """The batch size of a prepared batch (its first array's leading axis)."""
  return int(np.shape(jax.tree.leaves(batch)[0])[0])


def pad_short_batches(batches: Iterator, pad: bool = True
                      ) -> Iterator[tuple[Any, int | None]]:
  """Yields ``(batch, valid)``; a batch shorter than the first is padded.

  Padding repeats the batch's first row up to the first batch's size, so the
  last batch of an evaluation or prediction runs in the step already
  compiled for the others; ``valid`` is its real row count (None when the
  batch was not padded), for masking metrics and slicing predictions.
  Without ``pad`` every batch passes as it is, with ``valid`` None.
  """
  size = None
  for batch in batches:
    if not pad:
      yield batch, None
      continue
    rows = rows_of(batch)
    size = rows if size is None else size
    if rows >= size:
      yield batch, None
      continue
    index = np.concatenate([np.arange(rows), np.zeros(size - rows, np.int64)])
    yield take_rows(batch, index), rows


def _signature(batch: Any) -> Any:
  leaves, treedef = jax.tree.flatten(batch)
  return treedef, tuple((np.shape(a), np.result_type(a)) for a in leaves)


def group_for_loops(batches: Iterator, steps_per_loop: int,
                    limit: int | None) -> Iterator[tuple[int, Any]]:
  """Yields ``(n, batch)``: with ``steps_per_loop`` 1 single batches (n=1),
  else ``n`` batches stacked on a new axis 0 and padded to ``steps_per_loop``
  (``stack_loop``) for ``CompiledSteps.train_loop``, which trains on the
  first ``n``: a call's tail, a finite input's end and a shape change run in
  the loop program too.

  Stops pulling from ``batches`` once ``limit`` steps are covered. Batches of
  a different shape than those pending are never stacked together.
  """
  if steps_per_loop == 1:
    yield from ((1, batch) for batch in itertools.islice(batches, limit))
    return
  remaining = limit
  pending: list = []
  for batch in batches:
    if pending and _signature(pending[0]) != _signature(batch):
      yield len(pending), stack_loop(pending, steps_per_loop)
      pending = []
    pending.append(batch)
    if remaining is not None:
      remaining -= 1
    if len(pending) == steps_per_loop or remaining == 0:
      yield len(pending), stack_loop(pending, steps_per_loop)
      pending = []
      if remaining == 0:
        return
  if pending:
    yield len(pending), stack_loop(pending, steps_per_loop)


def stack_loop(batches: list, steps_per_loop: int) -> Any:
  """``batches`` stacked on a new axis 0, padded to ``steps_per_loop`` with
  copies of the last (``pad_loop``)."""
  return jax.tree.map(lambda *xs: pad_loop(np.stack(xs), steps_per_loop),
                      *batches)


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
  a step's per-replica batches come joined (``estlab.distribute._input``).
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
                             functools.partial(_prepare_whole, prepare))
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


def prefetch_ahead(setting: int | None, strategy: Any) -> int:
  """Batches a thread prepares ahead: ``RunConfig.prefetch_batches``, or for
  None 2 on an accelerator or with a strategy and 0 (inline) on the CPU,
  where XLA:CPU overlaps a step with the host's preparing the next one and a
  thread (a gather of encoded rows, or encoding a chunk: Python under the
  GIL) only contends with the loop's dispatch."""
  if setting is not None:
    return setting
  return 0 if strategy is None and on_cpu() else 2


def _prepare_whole(prepare: Callable, table: Any) -> Any:
  return prepare(table.whole(), 0)


def first_batch(batches: Iterator, input_fn: Callable) -> tuple[int, Any]:
  """The first item of ``batches``; an error naming an empty input_fn."""
  try:
    return next(batches)
  except StopIteration:
    raise ValueError(f"input_fn {input_fn!r} yielded no batches; it must "
                     "yield at least one (features, labels) batch.") from None


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
