"""Input functions: numpy arrays, pandas DataFrames and CSV files as batches.

An input_fn returns an iterable of host numpy batches, ``(features, labels)``
or ``features`` alone, with ``features`` a dict of arrays. This package knows
nothing of estimators; the engine moves batches to the device.

Example:
  >>> import numpy as np
  >>> from estlab import inputs
  >>> fn = inputs.numpy_input_fn({'x': np.arange(4.0)}, np.arange(4),
  ...                            batch_size=2, shuffle=False)
  >>> len(list(fn()))
  2
"""
import importlib
from typing import Any

__all__ = ["numpy_input_fn", "pandas_input_fn", "make_csv_dataset"]

# Imported on first use: pandas costs ~0.5 s.
_HOMES = {"numpy_input_fn": "estlab.inputs.numpy_io",
          "pandas_input_fn": "estlab.inputs.pandas_io",
          # tf.data.experimental's, kept here too for estlab.inputs users.
          "make_csv_dataset": "estlab.data.experimental"}


def __getattr__(name: str) -> Any:
  if name in _HOMES:
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'estlab.inputs' has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(list(globals()) + __all__)
