"""Reference for test_tutorial_linear.py: the original, run with TensorFlow 2.15.

tensorflow/docs site/en/tutorials/estimator/linear.ipynb, code cells in order,
unchanged except: the two CSVs are written by ``_data_a.titanic_csvs`` instead
of downloaded; display-only cells (``describe``, histograms, ``clear_output``,
the plots) are left out or recorded instead of drawn; prints become records.
The last two estimators also run with the tutorial's suggestion "bucketize age
before the cross column" (as the port's second test does). Run forty times
(the tutorial sets no seed, and FTRL on raw fares varies with the shuffle:
eight runs made base accuracy 0.72-0.74, forty 0.67-0.75). Writes tutorial_linear.json:

  /work/tf215/bin/python tests/ports/reference/tutorial_linear_tf.py
"""
import json
import os
import sys
import tempfile

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _data_a  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow.compat.v2.feature_column as fc  # noqa: E402,F401
import tensorflow as tf  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

tf.get_logger().setLevel("ERROR")


def _floats(result):
  return {k: float(v) for k, v in result.items()}


def tutorial(train_csv, eval_csv, inspect):
  record = {}
  # Load dataset.
  dftrain = pd.read_csv(train_csv)
  dfeval = pd.read_csv(eval_csv)
  y_train = dftrain.pop('survived')
  y_eval = dfeval.pop('survived')
  record["shapes"] = [dftrain.shape[0], dfeval.shape[0]]

  CATEGORICAL_COLUMNS = ['sex', 'n_siblings_spouses', 'parch', 'class', 'deck',
                         'embark_town', 'alone']
  NUMERIC_COLUMNS = ['age', 'fare']

  feature_columns = []
  for feature_name in CATEGORICAL_COLUMNS:
    vocabulary = dftrain[feature_name].unique()
    feature_columns.append(tf.feature_column.categorical_column_with_vocabulary_list(feature_name, vocabulary))

  for feature_name in NUMERIC_COLUMNS:
    feature_columns.append(tf.feature_column.numeric_column(feature_name, dtype=tf.float32))

  def make_input_fn(data_df, label_df, num_epochs=10, shuffle=True, batch_size=32):
    def input_function():
      ds = tf.data.Dataset.from_tensor_slices((dict(data_df), label_df))
      if shuffle:
        ds = ds.shuffle(1000)
      ds = ds.batch(batch_size).repeat(num_epochs)
      return ds
    return input_function

  train_input_fn = make_input_fn(dftrain, y_train)
  eval_input_fn = make_input_fn(dfeval, y_eval, num_epochs=1, shuffle=False)

  if inspect:
    ds = make_input_fn(dftrain, y_train, batch_size=10)()
    for feature_batch, label_batch in ds.take(1):
      print('Some feature keys:', list(feature_batch.keys()))
      print()
      print('A batch of class:', feature_batch['class'].numpy())
      print()
      print('A batch of Labels:', label_batch.numpy())
    record["feature_keys"] = list(feature_batch.keys())
    record["class_batch_shape"] = list(feature_batch['class'].numpy().shape)
    record["label_batch_shape"] = list(label_batch.numpy().shape)

    age_column = feature_columns[7]
    age_dense = tf.keras.layers.DenseFeatures([age_column])(feature_batch).numpy()
    record["age_dense_equals_age"] = bool(np.array_equal(
        age_dense[:, 0], feature_batch['age'].numpy().astype(np.float32)))
    record["age_dense_shape"] = list(age_dense.shape)

    gender_column = feature_columns[0]
    gender = tf.keras.layers.DenseFeatures([tf.feature_column.indicator_column(gender_column)])(feature_batch).numpy()
    record["gender_dense_shape"] = list(gender.shape)
    record["gender_vocabulary"] = [str(v) for v in dftrain['sex'].unique()]
    record["gender_dense_is_one_hot_of_vocabulary"] = bool(np.array_equal(
        gender, (feature_batch['sex'].numpy().astype(str)[:, None]
                 == np.asarray(record["gender_vocabulary"])[None, :]).astype(np.float32)))

  linear_est = tf.estimator.LinearClassifier(feature_columns=feature_columns)
  linear_est.train(train_input_fn)
  result = linear_est.evaluate(eval_input_fn)
  record["base"] = _floats(result)
  print(result)

  age_x_gender = tf.feature_column.crossed_column(['age', 'sex'], hash_bucket_size=100)

  derived_feature_columns = [age_x_gender]
  linear_est = tf.estimator.LinearClassifier(feature_columns=feature_columns+derived_feature_columns)
  linear_est.train(train_input_fn)
  result = linear_est.evaluate(eval_input_fn)
  record["derived"] = _floats(result)
  print(result)

  pred_dicts = list(linear_est.predict(eval_input_fn))
  probs = pd.Series([pred['probabilities'][1] for pred in pred_dicts])
  record["num_predictions"] = len(pred_dicts)
  record["prediction_keys"] = sorted(pred_dicts[0])
  record["probs_mean"] = float(probs.mean())

  fpr, tpr, _ = roc_curve(y_eval, probs)
  record["roc_auc"] = float(roc_auc_score(y_eval, probs))
  record["roc_points"] = len(fpr)

  # The tutorial's suggestion: "you can also bucketize age column before the
  # cross column".
  age_buckets = tf.feature_column.bucketized_column(
      feature_columns[7], boundaries=[18, 25, 30, 35, 40, 45, 50, 55, 60, 65])
  bucketized_x_gender = tf.feature_column.crossed_column([age_buckets, 'sex'], hash_bucket_size=100)
  linear_est = tf.estimator.LinearClassifier(
      feature_columns=feature_columns + [age_buckets, bucketized_x_gender])
  linear_est.train(train_input_fn)
  record["bucketized"] = _floats(linear_est.evaluate(eval_input_fn))
  print(record["bucketized"])
  return record


def main():
  with tempfile.TemporaryDirectory() as tmp:
    paths = _data_a.titanic_csvs(tmp)
    tempfile.tempdir = tmp  # the estimators' own temporary model_dirs go here
    runs = [tutorial(*paths, inspect=i == 0) for i in range(40)]
    out = {"tensorflow": tf.__version__, "data": _data_a.fingerprint(paths),
           "runs": runs}
  with open(os.path.join(os.path.dirname(__file__), "tutorial_linear.json"), "w") as f:
    json.dump(out, f, indent=1)


if __name__ == "__main__":
  main()
