"""Port of tensorflow/docs site/en/r1/guide/datasets_for_estimators.md
("Datasets for Estimators": in-memory slices, then a CSV file line by line).

The guide's code in order (with the parts of tensorflow/models r1.13.0
samples/core/get_started/iris_data.py it shows: ``load_data``,
``train_input_fn``, ``csv_input_fn``), with ``tf.data`` -> ``estlab.data``,
``tf.estimator`` -> ``estlab.compat.v1.estimator`` (a guide written for TF
1.x's ``tf.estimator`` is ``tf.compat.v1.estimator`` in TF 2),
``tf.feature_column`` -> ``estlab.feature_column``. Changes beyond imports:
- data: ``iris_data.maybe_download()`` -> ``_data_c.iris_csvs`` (local files
  of the same format); ``tf.keras.datasets.mnist.load_data()`` ->
  ``_data_c.mnist_load_data()`` (a local 28x28 stand-in).
- ``tf.decode_csv(line, FIELD_DEFAULTS)`` -> ``decode_csv`` below, a few
  lines of Python with tf.decode_csv's meaning (fields typed by the
  defaults' types: float32, int32): a TensorFlow string op, none in JAX or
  estlab, and ``estlab.data``'s ``map`` runs Python functions on numpy.
- ``print(dataset)`` (display only) -> assertions on ``element_spec``, the
  shapes and dtypes the guide shows in those prints (TF 2.15's reference).
- added after ``est.train(...)``: ``est.evaluate`` on the test CSV (the
  guide stops after training; this checks the trained model against TF's).
- (import) ``LinearClassifier``: the guide is TF1's, whose ``tf.estimator.
  LinearClassifier`` is today's ``tf.compat.v1.estimator.LinearClassifier``
  (loss summed over the batch), so it becomes
  ``estlab.compat.v1.estimator.LinearClassifier``.
Reference: ``reference/r1_datasets_for_estimators_tf.py`` ran the guide's
code with TensorFlow 2.15 (``reference/r1_datasets_for_estimators.json``;
three runs each of the v1 classifier, the guide's, and of the v2 one).

Original: Copyright The TensorFlow Authors, Apache License 2.0 (docs
licensed CC BY 4.0, code samples Apache 2.0).
"""
import json
import os

import numpy as np
import pandas as pd
import pytest

import estlab
from _data_c import fingerprint, iris_csvs, mnist_load_data

_REFERENCE = os.path.join(os.path.dirname(__file__), "reference",
                          "r1_datasets_for_estimators.json")

CSV_COLUMN_NAMES = ['SepalLength', 'SepalWidth', 'PetalLength', 'PetalWidth', 'Species']


@pytest.fixture
def reference():
  with open(_REFERENCE) as f:
    return json.load(f)


def spec(structure):
  """``element_spec`` as the reference recorded it: ``[shape, dtype name]``."""
  if isinstance(structure, dict):
    return {k: spec(v) for k, v in structure.items()}
  if isinstance(structure, (tuple, list)):
    return [spec(v) for v in structure]
  return [list(structure.shape), np.dtype(structure.dtype).name]


def decode_csv(line, record_defaults):
  """tf.decode_csv for one line: each field typed as its default (a missing
  field takes the default)."""
  if isinstance(line, bytes):
    line = line.decode()
  fields = str(line).split(",")
  return [np.asarray(type(d[0])(f) if f else d[0],
                     np.float32 if isinstance(d[0], float) else np.int32)
          for f, d in zip(fields, record_defaults)]


# --- iris_data.py (tensorflow/models r1.13.0) -------------------------------
def load_data(train_path, test_path, y_name='Species'):
  """Returns the iris dataset as (train_x, train_y), (test_x, test_y)."""
  train = pd.read_csv(train_path, names=CSV_COLUMN_NAMES, header=0)
  train_x, train_y = train, train.pop(y_name)

  test = pd.read_csv(test_path, names=CSV_COLUMN_NAMES, header=0)
  test_x, test_y = test, test.pop(y_name)

  return (train_x, train_y), (test_x, test_y)


def train_input_fn(features, labels, batch_size):
  """An input function for training"""
  # Convert the inputs to a Dataset.
  dataset = estlab.data.Dataset.from_tensor_slices((dict(features), labels))

  # Shuffle, repeat, and batch the examples.
  dataset = dataset.shuffle(1000).repeat().batch(batch_size)

  # Return the dataset.
  return dataset


# Metadata describing the text columns
COLUMNS = ['SepalLength', 'SepalWidth',
           'PetalLength', 'PetalWidth',
           'label']
FIELD_DEFAULTS = [[0.0], [0.0], [0.0], [0.0], [0]]


def _parse_line(line):
  # Decode the line into its fields
  fields = decode_csv(line, FIELD_DEFAULTS)

  # Pack the result into a dictionary
  features = dict(zip(COLUMNS, fields))

  # Separate the label from the features
  label = features.pop('label')

  return features, label


def csv_input_fn(csv_path, batch_size):
  # Create a dataset containing the text lines.
  dataset = estlab.data.TextLineDataset(csv_path).skip(1)

  # Parse each line.
  dataset = dataset.map(_parse_line)

  # Shuffle, repeat, and batch the examples.
  dataset = dataset.shuffle(1000).repeat().batch(batch_size)

  # Return the dataset.
  return dataset


def test_basic_input(tmp_path, reference):
  # --- "Basic input" ----------------------------------------------------------
  train_path, test_path = iris_csvs(tmp_path)
  assert fingerprint([train_path, test_path]) == reference["data"]
  train, test = load_data(train_path, test_path)
  features, labels = train

  batch_size = 100
  first = next(iter(train_input_fn(features, labels, batch_size)))
  assert first[0]['SepalLength'].shape == (100,) and first[1].shape == (100,)

  # --- "Slices" ---------------------------------------------------------------
  train, test = mnist_load_data()
  mnist_x, mnist_y = train

  mnist_ds = estlab.data.Dataset.from_tensor_slices(mnist_x)
  print(mnist_ds)
  # <TensorSliceDataset shapes: (28,28), types: tf.uint8>
  assert spec(mnist_ds.element_spec) == reference["mnist_ds"] == [[28, 28], "uint8"]

  dataset = estlab.data.Dataset.from_tensor_slices(dict(features))
  print(dataset)
  assert spec(dataset.element_spec) == reference["features_ds"]

  # Convert the inputs to a Dataset.
  dataset = estlab.data.Dataset.from_tensor_slices((dict(features), labels))
  print(dataset)
  # "the label is a scalar with type int64"
  assert spec(dataset.element_spec) == reference["pairs_ds"]
  assert reference["pairs_ds"][1] == [[], "int64"]

  # --- "Manipulation" ---------------------------------------------------------
  # Shuffle, repeat, and batch the examples.
  dataset = dataset.shuffle(1000).repeat().batch(batch_size)

  print(mnist_ds.batch(100))
  # <BatchDataset shapes: (?, 28, 28), types: tf.uint8>
  assert spec(mnist_ds.batch(100).element_spec) == reference["mnist_batched"]
  assert reference["mnist_batched"] == [[None, 28, 28], "uint8"]
  print(dataset)
  assert spec(dataset.element_spec) == reference["train_input_fn"]


def test_reading_a_csv_file(tmp_path, reference):
  # --- "Reading a CSV File" ---------------------------------------------------
  train_path, test_path = iris_csvs(tmp_path)
  assert fingerprint([train_path, test_path]) == reference["data"]

  # "Build the Dataset"
  ds = estlab.data.TextLineDataset(train_path).skip(1)

  # "Parse the lines"
  ds = ds.map(_parse_line)
  print(ds)
  assert spec(ds.element_spec) == reference["csv_ds"]
  features, label = next(iter(ds))
  assert {k: float(v) for k, v in features.items()} == pytest.approx(
      reference["csv_first"][0])
  assert int(label) == reference["csv_first"][1]
  assert sum(1 for _ in ds) == reference["csv_rows"] == 120

  # "Try it out"
  # All the inputs are numeric
  feature_columns = [
      estlab.feature_column.numeric_column(name)
      for name in CSV_COLUMN_NAMES[:-1]]

  # Build the estimator
  est = estlab.compat.v1.estimator.LinearClassifier(feature_columns,
                                n_classes=3, model_dir=str(tmp_path / "model"))
  # Train the estimator
  batch_size = 100
  est.train(
      steps=1000,
      input_fn=lambda: csv_input_fn(train_path, batch_size))

  # Added: evaluate on the test file, as the reference did.
  ev = est.evaluate(input_fn=lambda: estlab.data.TextLineDataset(test_path)
                    .skip(1).map(_parse_line).batch(batch_size))
  print(ev)
  ref = reference["evaluate"]["v1"]  # the guide's (TF1) LinearClassifier
  assert ev["global_step"] == 1000
  # Other shuffles than TF's: within TF's own runs' spread, widened.
  assert min(r["accuracy"] for r in ref) - 0.07 <= ev["accuracy"]
  assert ev["average_loss"] == pytest.approx(
      np.mean([r["average_loss"] for r in ref]), abs=0.1)
  # The guide's classifier sums the loss over the batch: 'loss' is the 30
  # test rows' summed loss (TF1's and tf.compat.v1's meaning).
  assert ev["loss"] == pytest.approx(np.mean([r["loss"] for r in ref]), rel=0.2)
