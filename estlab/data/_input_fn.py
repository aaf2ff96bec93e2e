"""Calling the input_fn and checking what it returns: the input path's start.

``call_input_fn`` calls an input_fn with the arguments it takes and reads its
result as one batch (``OneBatch``) or an iterator of batches; ``split_batch``
checks one batch and returns ``(features, labels)`` as numpy;
``check_no_strings`` checks a batch after the host transform (strings never
enter jit); ``first_batch`` names an input_fn that yielded nothing.

Example:
  >>> import numpy as np
  >>> source = call_input_fn(lambda: [({'x': np.arange(2)}, np.zeros(2))],
  ...                        mode='train', params={}, config=None)
  >>> features, labels = split_batch(next(source), 0)
  >>> features['x'].tolist(), labels.tolist()
  ([0, 1], [0.0, 0.0])
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import jax
import numpy as np

from estlab.data import _seed as data_seed
from estlab.data._dataset import Dataset

__all__ = ["OneBatch", "call_input_fn", "is_array", "is_one_batch",
           "split_batch", "check_no_strings", "first_batch", "chain"]

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
  try:
    array = np.asarray(value)
  except ValueError:  # ragged lists (sequences): one object cell per row
    if not isinstance(value, (list, tuple)):
      raise
    array = np.empty(len(value), dtype=object)
    array[:] = [row if isinstance(row, (list, tuple, np.ndarray)) else [row]
                for row in value]
    return array
  if array.dtype.kind == "U":
    array = array.astype(object)
  return array


def split_batch(item: Any, index: int) -> tuple[Any, Any]:
  """Checks one batch from an input_fn; returns ``(features, labels)``.

  A batch is ``(features, labels)`` or ``features`` alone (labels None).
  ``features`` is a dict of arrays or one array (passed to the model_fn as
  given, as tf.estimator passes a single Tensor); ``labels`` one array or a
  dict of arrays (a multi-head model's). Values come back as numpy arrays
  (JAX arrays as they are); ragged lists (sequences of different lengths)
  as 1-D object arrays, one list per example.

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


def first_batch(batches: Iterator, input_fn: Callable) -> tuple[int, Any]:
  """The first item of ``batches``; an error naming an empty input_fn."""
  try:
    return next(batches)
  except StopIteration:
    raise ValueError(f"input_fn {input_fn!r} yielded no batches; it must "
                     "yield at least one (features, labels) batch.") from None


def chain(first: Any, rest: Iterator) -> Iterator:
  """The first (already taken) item, then the rest."""
  yield first
  yield from rest
