"""Reference for test_tutorial_premade.py: the original, run with TensorFlow 2.15.

tensorflow/docs site/en/tutorials/estimator/premade.ipynb, code cells in order,
unchanged except the data: the two CSVs are written by ``_data_a.iris_csvs``
instead of downloaded (``tf.keras.utils.get_file``); ``np`` is imported (the
tutorial uses it without importing it); prints become records. Run eight times
(the tutorial sets no seed) to see the spread. Writes tutorial_premade.json:

  /work/tf215/bin/python tests/ports/reference/tutorial_premade_tf.py
"""
import json
import os
import sys
import tempfile

import numpy as np  # the tutorial's input_evaluation_set uses np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _data_a  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402
import pandas as pd  # noqa: E402

tf.get_logger().setLevel("ERROR")


def tutorial(train_path, test_path):
  record = {}
  CSV_COLUMN_NAMES = ['SepalLength', 'SepalWidth', 'PetalLength', 'PetalWidth', 'Species']
  SPECIES = ['Setosa', 'Versicolor', 'Virginica']

  train = pd.read_csv(train_path, names=CSV_COLUMN_NAMES, header=0)
  test = pd.read_csv(test_path, names=CSV_COLUMN_NAMES, header=0)
  train_y = train.pop('Species')
  test_y = test.pop('Species')

  def input_fn(features, labels, training=True, batch_size=256):
    """An input function for training or evaluating"""
    # Convert the inputs to a Dataset.
    dataset = tf.data.Dataset.from_tensor_slices((dict(features), labels))

    # Shuffle and repeat if you are in training mode.
    if training:
      dataset = dataset.shuffle(1000).repeat()

    return dataset.batch(batch_size)

  # Feature columns describe how to use the input.
  my_feature_columns = []
  for key in train.keys():
    my_feature_columns.append(tf.feature_column.numeric_column(key=key))

  # Build a DNN with 2 hidden layers with 30 and 10 hidden nodes each.
  classifier = tf.estimator.DNNClassifier(
      feature_columns=my_feature_columns,
      # Two hidden layers of 30 and 10 nodes respectively.
      hidden_units=[30, 10],
      # The model must choose between 3 classes.
      n_classes=3)

  # Train the Model.
  classifier.train(
      input_fn=lambda: input_fn(train, train_y, training=True),
      steps=5000)

  eval_result = classifier.evaluate(
      input_fn=lambda: input_fn(test, test_y, training=False))
  record["eval_result"] = {k: float(v) for k, v in eval_result.items()}
  print('\nTest set accuracy: {accuracy:0.3f}\n'.format(**eval_result))

  # Generate predictions from the model
  expected = ['Setosa', 'Versicolor', 'Virginica']
  predict_x = {
      'SepalLength': [5.1, 5.9, 6.9],
      'SepalWidth': [3.3, 3.0, 3.1],
      'PetalLength': [1.7, 4.2, 5.4],
      'PetalWidth': [0.5, 1.5, 2.1],
  }

  def input_fn(features, batch_size=256):  # noqa: F811 (the tutorial redefines it)
    """An input function for prediction."""
    # Convert the inputs to a Dataset without labels.
    return tf.data.Dataset.from_tensor_slices(dict(features)).batch(batch_size)

  predictions = classifier.predict(
      input_fn=lambda: input_fn(predict_x))

  record["predictions"] = []
  for pred_dict, expec in zip(predictions, expected):
    class_id = pred_dict['class_ids'][0]
    probability = pred_dict['probabilities'][class_id]
    record["predictions"].append({
        "keys": sorted(pred_dict), "class_id": int(class_id),
        "probability": float(probability), "expected": expec})
    print('Prediction is "{}" ({:.1f}%), expected "{}"'.format(
        SPECIES[class_id], 100 * probability, expec))
  record["variable_names"] = classifier.get_variable_names()
  return record


def main():
  with tempfile.TemporaryDirectory() as tmp:
    paths = _data_a.iris_csvs(tmp)
    tempfile.tempdir = tmp  # the estimators' own temporary model_dirs go here
    runs = [tutorial(*paths) for _ in range(8)]
    out = {"tensorflow": tf.__version__, "data": _data_a.fingerprint(paths),
           "runs": runs}
  with open(os.path.join(os.path.dirname(__file__), "tutorial_premade.json"), "w") as f:
    json.dump(out, f, indent=1)


if __name__ == "__main__":
  main()
