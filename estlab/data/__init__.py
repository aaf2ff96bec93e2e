"""estlab.data: tf.data's Dataset on numpy and Grain, and the input path.

``tf.data`` becomes ``estlab.data``: ``Dataset.from_tensor_slices``,
``from_tensors``, ``from_generator``, ``range``, ``zip``, ``TextLineDataset``
and the transformations tutorials' input_fns use, over numpy elements. The
rest of the package is the Estimator's input path, from an input_fn to
batches on the device.

The input path, in the order data flows:

1. ``Dataset`` (``_dataset``): sources (``_sources``) and transformations
   (``_transforms``), one node per step, run two ways: element by element
   on Grain (``_grain_ops``), or, over in-memory columns, as planned index
   batches (``_plan``; ``_shuffle`` is tf.data's buffer shuffle on both).
2. Batching shared by the input_fns of ``estlab.inputs`` (``_batching``):
   index batches over a table (``ArrayTable``, ``ArrayBatches``), buffer
   shuffles and re-batching of streamed chunks, as CSV files
   (``experimental.make_csv_dataset``, in ``_csv``; ``_csv_lines`` checks
   each line as pandas reads it) need. Bad data raises the errors of
   ``_errors``, naming the file and line or the column.
3. Calling the input_fn and checking its batches (``_input_fn``): one
   batch or an iterable of them, each split into ``(features, labels)``.
4. A step's per-replica batches joined into its global batch under a
   strategy (``_replicas``).
5. Host encoding (``_encode``): each batch checked, transformed by the
   feature columns, checked for strings and packed; streamed batches in
   chunks, transformed once per chunk (``_chunks``).
6. Packing (``_packing``): a batch as one buffer per word size, the form
   the later stages and the compiled steps take (and its rows).
7. Tables (``_tables``): an array input_fn's whole table encoded once,
   cached per table and mode; its batches are row gathers.
8. Grouping for ``steps_per_loop`` and padding (``_grouping``): training
   batches stacked into padded loops, a short last eval batch padded.
9. Prefetch and device placement (``_device``): batches put on the device
   (a strategy's shardings) in a thread, ahead of the step.

``_pipeline.input_batches`` composes stages 3 to 9, in this order.

This package knows nothing of estimators: it takes the mode strings from
``estlab.spec.ModeKeys``, and a strategy, config and host transform as
objects passed in.

Example:
  >>> import numpy as np
  >>> from estlab import data
  >>> ds = data.Dataset.from_tensor_slices({'x': np.arange(6)}).batch(4)
  >>> [b['x'].tolist() for b in ds]
  [[0, 1, 2, 3], [4, 5]]
"""
import importlib
from typing import Any

from estlab.data._dataset import AUTOTUNE, Dataset, TextLineDataset
from estlab.data._errors import CsvParseError, InputTypeError, InvalidInputError
from estlab.data._node import INFINITE as INFINITE_CARDINALITY
from estlab.data._node import UNKNOWN as UNKNOWN_CARDINALITY
from estlab.data._structure import TensorSpec

__all__ = ["Dataset", "TextLineDataset", "AUTOTUNE", "INFINITE_CARDINALITY",
           "UNKNOWN_CARDINALITY", "TensorSpec", "experimental",
           # the errors for bad data (argument mistakes stay plain)
           "InvalidInputError", "CsvParseError", "InputTypeError"]


def __getattr__(name: str) -> Any:
  if name == "experimental":  # loads pandas, for make_csv_dataset
    return importlib.import_module("estlab.data.experimental")
  raise AttributeError(f"module 'estlab.data' has no attribute {name!r}")


def __dir__() -> list:
  return sorted(list(globals()) + __all__)
