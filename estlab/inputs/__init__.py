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
from estlab.inputs.csv_io import make_csv_dataset
from estlab.inputs.numpy_io import numpy_input_fn
from estlab.inputs.pandas_io import pandas_input_fn

__all__ = ["numpy_input_fn", "pandas_input_fn", "make_csv_dataset"]
