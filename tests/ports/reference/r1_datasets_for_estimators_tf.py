"""Reference run of tensorflow/docs site/en/r1/guide/datasets_for_estimators.md
with TensorFlow 2.15, for ``test_r1_datasets_for_estimators.py``.

The guide's code (and the parts of tensorflow/models r1.13.0
samples/core/get_started/iris_data.py it shows) as written, with
``import tensorflow.compat.v1 as tf`` (the guide is TF1's: its
``tf.estimator.LinearClassifier`` is today's ``tf.compat.v1.estimator``
one), except: the iris CSVs are ``_data_c.iris_csvs`` (local, same format)
and MNIST is ``_data_c.mnist_load_data()``; ``print(dataset)`` records the
element specs; after training, the model is evaluated on the test CSV (the
guide stops after ``train``) and its coefficients read. The same training
is also run with the TF2 ``tf.estimator.LinearClassifier`` (loss averaged
over the batch) for comparison. Writes JSON on stdout.

Run: /work/tf215/bin/python tests/ports/reference/r1_datasets_for_estimators_tf.py > tests/ports/reference/r1_datasets_for_estimators.json
"""
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from _data_c import fingerprint, iris_csvs, mnist_load_data  # noqa: E402

import pandas as pd  # noqa: E402
import tensorflow as tf2  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

CSV_COLUMN_NAMES = ['SepalLength', 'SepalWidth', 'PetalLength', 'PetalWidth', 'Species']


def spec(s):
  return tf2.nest.map_structure(lambda t: [t.shape.as_list(), t.dtype.name], s)


def main():
  directory = tempfile.mkdtemp()
  train_path, test_path = iris_csvs(directory)
  out = {"tensorflow": tf.__version__, "data": fingerprint([train_path, test_path])}

  # iris_data.load_data()
  train = pd.read_csv(train_path, names=CSV_COLUMN_NAMES, header=0)
  features, labels = train, train.pop('Species')

  train_mnist, test_mnist = mnist_load_data()
  mnist_x, mnist_y = train_mnist
  mnist_ds = tf.data.Dataset.from_tensor_slices(mnist_x)
  out["mnist_ds"] = spec(mnist_ds.element_spec)

  dataset = tf.data.Dataset.from_tensor_slices(dict(features))
  out["features_ds"] = spec(dataset.element_spec)
  dataset = tf.data.Dataset.from_tensor_slices((dict(features), labels))
  out["pairs_ds"] = spec(dataset.element_spec)
  out["mnist_batched"] = spec(mnist_ds.batch(100).element_spec)
  batched = dataset.shuffle(1000).repeat().batch(100)
  out["train_input_fn"] = spec(batched.element_spec)

  ds = tf.data.TextLineDataset(train_path).skip(1)
  COLUMNS = ['SepalLength', 'SepalWidth',
             'PetalLength', 'PetalWidth',
             'label']
  FIELD_DEFAULTS = [[0.0], [0.0], [0.0], [0.0], [0]]

  def _parse_line(line):
    # Decode the line into its fields
    fields = tf.decode_csv(line, FIELD_DEFAULTS)
    # Pack the result into a dictionary
    features = dict(zip(COLUMNS, fields))
    # Separate the label from the features
    label = features.pop('label')
    return features, label

  ds = ds.map(_parse_line)
  out["csv_ds"] = spec(ds.element_spec)
  first = next(iter(ds))
  out["csv_first"] = [{k: float(v) for k, v in first[0].items()}, int(first[1])]
  out["csv_rows"] = sum(1 for _ in ds)

  def csv_input_fn(csv_path, batch_size):
    dataset = tf.data.TextLineDataset(csv_path).skip(1)
    dataset = dataset.map(_parse_line)
    dataset = dataset.shuffle(1000).repeat().batch(batch_size)
    return dataset

  def eval_csv_input_fn(csv_path, batch_size):
    return tf.data.TextLineDataset(csv_path).skip(1).map(_parse_line).batch(batch_size)

  feature_columns = [
      tf.feature_column.numeric_column(name)
      for name in CSV_COLUMN_NAMES[:-1]]
  runs = {}
  for version, estimator in (("v1", tf.estimator.LinearClassifier),
                             ("v2", tf2.estimator.LinearClassifier)):
    results = []
    for run in range(3):
      est = estimator(feature_columns, n_classes=3, model_dir=tempfile.mkdtemp())
      batch_size = 100
      est.train(steps=1000,
                input_fn=lambda: csv_input_fn(train_path, batch_size))
      ev = est.evaluate(input_fn=lambda: eval_csv_input_fn(test_path, batch_size))
      results.append({k: float(v) for k, v in ev.items()})
    runs[version] = results
  out["evaluate"] = runs
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
