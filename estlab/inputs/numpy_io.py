"""``numpy_input_fn``: feeds numpy arrays to an Estimator in batches.

The arrays are checked and made contiguous once, when the input_fn is made;
each batch is then a slice (in order) or one ``np.take`` per column
(shuffled), with no per-example Python work.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Mapping, Optional

import numpy as np

from estlab.data import _batching

# The column of ``x`` when it is a single array rather than a dict (TF's
# name for it); batches give the array itself as the features.
DIRECT_NP_INPUT_KEY = "__direct_np_input__"


class _OneArrayTable(_batching.ArrayTable):
  """An ``ArrayTable`` whose features are one array (``x`` an array): its
  batches' features are that array's rows, not a dict, as TF feeds them."""

  def rows(self, selection: _batching.Selection) -> Any:
    batch = super().rows(selection)
    if self.labels is None:
      return batch[DIRECT_NP_INPUT_KEY]
    features, labels = batch
    return features[DIRECT_NP_INPUT_KEY], labels


def _as_column(key: Any, value: Any, arg: str) -> np.ndarray:
  """One column as a contiguous numpy array; text becomes object arrays of str."""
  array = np.asarray(value)
  if array.ndim == 0:
    raise ValueError(
        f"{arg}[{key!r}] must have one row per example, but it is a scalar: "
        f"{value!r}. Pass an array whose first dimension is the examples.")
  if array.dtype.kind == "U":
    array = array.astype(object)
  elif array.dtype.kind == "S":
    array = np.char.decode(array, "utf-8").astype(object)
  return np.ascontiguousarray(array)


def _as_columns(data: Any, arg: str, single_key: Optional[str]
                ) -> Dict[Any, np.ndarray]:
  """A dict (or, with ``single_key``, one array) as a dict of columns."""
  if isinstance(data, Mapping):
    if not data:
      raise ValueError(f"{arg} cannot be an empty dict; got {data!r}."
                       + (" Use y=None for no labels." if arg == "y" else ""))
    return {key: _as_column(key, value, arg) for key, value in data.items()}
  if single_key is None:
    return {None: _as_column(None, data, arg)}
  if not isinstance(data, np.ndarray):
    raise TypeError(
        f"x must be a dict of arrays or a numpy array; got a "
        f"{type(data).__name__}: {data!r:.200}. Pass e.g. x={{'age': ages}}.")
  if data.size == 0:
    raise ValueError(f"x cannot be an empty array; got {data!r}.")
  return {single_key: _as_column(single_key, data, arg)}


def numpy_input_fn(x, y=None, batch_size=128, num_epochs=1, shuffle=None,
                   queue_capacity=1000, num_threads=1, *, seed=None
                   ) -> Callable[[], Iterator]:
  """Returns an input_fn that feeds numpy arrays in batches.

  ``tf.compat.v1.estimator.inputs.numpy_input_fn`` on host numpy: the
  input_fn returns a fresh iterator per call instead of building queue ops.
  Batches run across epoch boundaries, so every batch is full except the
  last one of a finite input, which keeps its remaining rows (as TF's
  ``dequeue_up_to``). Text arrays (``str``/``bytes`` dtypes) are fed as
  object arrays of ``str``.

  Example:
    >>> fn = numpy_input_fn({'age': np.arange(5.0)}, np.arange(5),
    ...                     batch_size=2, shuffle=False)
    >>> [labels.tolist() for _, labels in fn()]
    [[0, 1], [2, 3], [4]]
    >>> images = np.zeros((5, 28, 28, 1), np.float32)  # x one array: fed bare
    >>> features, _ = next(iter(numpy_input_fn(images, np.arange(5),
    ...                                        batch_size=2, shuffle=False)()))
    >>> features.shape
    (2, 28, 28, 1)

  Args:
    x: a dict of arrays (the features), or a single numpy array, which is
      fed as it is: the model_fn's ``features`` is then one array (rows of
      ``x``), not a dict, as TF feeds the bare tensor. A premade estimator
      reads features by name, so give it ``x={'x': array}`` and
      ``numeric_column('x', shape=...)``.
    y: the labels: an array, a dict of arrays, or None for no labels.
    batch_size: rows per batch.
    num_epochs: passes over the data; None repeats forever.
    shuffle: required bool. True visits the rows in a fresh random order
      every epoch (use it for training); False keeps their order (use it for
      evaluation and prediction).
    queue_capacity: unused; accepted for compatibility with TF, which
      buffered rows in a queue.
    num_threads: unused; accepted for compatibility with TF, which filled
      the queue from threads.
    seed: keyword only, optional; seeds the shuffling. Each call of the
      input_fn draws its own stream from it, so repeated calls differ but a
      program reruns identically.

  Returns:
    An input_fn: a callable taking no arguments and returning an iterator
    of ``(features, labels)`` batches, or of ``features`` when y is None.
    ``features`` is a dict of arrays, or one array, like ``x``; ``labels``
    an array or a dict of arrays, like ``y``.

  Raises:
    ValueError: if shuffle is not a bool, if x or y is empty, if the arrays
      differ in length, or if x and y (a dict) share a key.
    TypeError: if x is neither a dict nor a numpy array.
  """
  del queue_capacity, num_threads  # TF's queue settings; batches need none.
  shuffle = _batching.check_shuffle(shuffle)
  batch_size = _batching.check_batch_size(batch_size)
  num_epochs = _batching.check_num_epochs(num_epochs)
  features = _as_columns(x, "x", DIRECT_NP_INPUT_KEY)
  labels = None if y is None else _as_columns(y, "y", None)
  if isinstance(y, Mapping):
    shared = [key for key in labels if key in features]
    if shared:
      raise ValueError(
          f"{len(shared)} duplicate keys are found in both x and y: "
          f"{shared!r}. Rename them so that each key is a feature or a label.")
  _check_lengths(features, labels)
  if labels is not None and not isinstance(y, Mapping):
    labels = labels[None]
  input_fn = _batching.make_array_input_fn(features, labels, batch_size,
                                           num_epochs, shuffle, seed)
  if isinstance(x, Mapping):
    return input_fn
  table = _OneArrayTable(features, labels)  # the same arrays, fed bare

  def one_array_input_fn() -> _batching.ArrayBatches:
    return _batching.ArrayBatches(table, input_fn().selections)
  return one_array_input_fn


def _check_lengths(features: Dict[Any, np.ndarray],
                   labels: Optional[Dict[Any, np.ndarray]]) -> None:
  """Raises if the columns of x and y do not all have the same length."""
  lengths = {f"x[{key!r}]": len(col) for key, col in features.items()}
  for key, col in (labels or {}).items():
    lengths["y" if key is None else f"y[{key!r}]"] = len(col)
  first, first_len = next(iter(lengths.items()))
  for name, length in lengths.items():
    if length != first_len:
      raise ValueError(
          f"Length of arrays in x and y is mismatched: {name} has {length} "
          f"rows but {first} has {first_len}. All elements of x and y must "
          f"have the same length (one row per example); lengths: {lengths!r}.")
