"""TF 2.15 reference run of guide/migrate/canned_estimators.ipynb (TF1 halves).

The notebook's tf.estimator cells, unchanged except where noted, run
REPEATS times (the DNNs start from TF's unseeded random init, so the spread
is part of the reference). Writes canned_estimators.json next to this file.
Run: /work/tf215/bin/python tests/ports/reference/canned_estimators_tf.py

Changes from the notebook:
- data: pd.read_csv of local CSVs with the Titanic schema (_data_b), not the
  storage.googleapis.com download;
- pandas 3 (copy-on-write): `x_train['sex'].replace(..., inplace=True)` no
  longer changes x_train, and replace() no longer downcasts to int64 (TF
  cannot convert the resulting object column), so each is written
  `x['c'] = x['c'].replace(...).astype('int64')`;
- BoostedTreesEstimator (Example 4) is left out, as in the port (estlab has
  no boosted trees);
- `import tensorflow_decision_forests` and the Keras halves are left out.
"""
import json
import os
import sys
import tempfile

import pandas as pd
import tensorflow as tf
import tensorflow.compat.v1 as tf1

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import _data_b  # noqa: E402

REPEATS = 8


def run_guide(train_csv, eval_csv):
  x_train = pd.read_csv(train_csv)
  x_eval = pd.read_csv(eval_csv)
  x_train['sex'] = x_train['sex'].replace(('male', 'female'), (0, 1)).astype('int64')
  x_eval['sex'] = x_eval['sex'].replace(('male', 'female'), (0, 1)).astype('int64')

  x_train['alone'] = x_train['alone'].replace(('n', 'y'), (0, 1)).astype('int64')
  x_eval['alone'] = x_eval['alone'].replace(('n', 'y'), (0, 1)).astype('int64')

  x_train['class'] = x_train['class'].replace(('First', 'Second', 'Third'), (1, 2, 3)).astype('int64')
  x_eval['class'] = x_eval['class'].replace(('First', 'Second', 'Third'), (1, 2, 3)).astype('int64')

  x_train.drop(['embark_town', 'deck'], axis=1, inplace=True)
  x_eval.drop(['embark_town', 'deck'], axis=1, inplace=True)

  y_train = x_train.pop('survived')
  y_eval = x_eval.pop('survived')

  # Data setup for TensorFlow 1 with `tf.estimator`
  def _input_fn():
    return tf1.data.Dataset.from_tensor_slices((dict(x_train), y_train)).batch(32)

  def _eval_input_fn():
    return tf1.data.Dataset.from_tensor_slices((dict(x_eval), y_eval)).batch(32)

  FEATURE_NAMES = [
      'age', 'fare', 'sex', 'n_siblings_spouses', 'parch', 'class', 'alone'
  ]

  feature_columns = []
  for fn in FEATURE_NAMES:
    feat_col = tf1.feature_column.numeric_column(fn, dtype=tf.float32)
    feature_columns.append(feat_col)

  def create_sample_optimizer(tf_version):
    if tf_version == 'tf1':
      optimizer = lambda: tf.keras.optimizers.legacy.Ftrl(
          l1_regularization_strength=0.001,
          learning_rate=tf1.train.exponential_decay(
              learning_rate=0.1,
              global_step=tf1.train.get_global_step(),
              decay_steps=10000,
              decay_rate=0.9))
    return optimizer

  out = {}
  # Example 1
  linear_estimator = tf.estimator.LinearEstimator(
      head=tf.estimator.BinaryClassHead(),
      feature_columns=feature_columns,
      optimizer=create_sample_optimizer('tf1'))
  linear_estimator.train(input_fn=_input_fn, steps=100)
  out['linear'] = linear_estimator.evaluate(input_fn=_eval_input_fn, steps=10)
  out['linear_variables'] = {
      name: linear_estimator.get_variable_value(name).tolist()
      for name in linear_estimator.get_variable_names()
      if name.startswith('linear/linear_model/') and '/Ftrl' not in name}

  # Example 2
  dnn_estimator = tf.estimator.DNNEstimator(
      head=tf.estimator.BinaryClassHead(),
      feature_columns=feature_columns,
      hidden_units=[128],
      activation_fn=tf.nn.relu,
      optimizer=create_sample_optimizer('tf1'))
  dnn_estimator.train(input_fn=_input_fn, steps=100)
  out['dnn'] = dnn_estimator.evaluate(input_fn=_eval_input_fn, steps=10)

  # Example 3
  optimizer = create_sample_optimizer('tf1')

  combined_estimator = tf.estimator.DNNLinearCombinedEstimator(
      head=tf.estimator.BinaryClassHead(),
      # Wide settings
      linear_feature_columns=feature_columns,
      linear_optimizer=optimizer,
      # Deep settings
      dnn_feature_columns=feature_columns,
      dnn_hidden_units=[128],
      dnn_optimizer=optimizer)
  combined_estimator.train(input_fn=_input_fn, steps=100)
  out['combined'] = combined_estimator.evaluate(input_fn=_eval_input_fn, steps=10)

  out['data'] = _data_b.fingerprint(x_train.values.astype('float64'), y_train,
                                    x_eval.values.astype('float64'), y_eval)
  return out


def _plain(results):
  return {k: (_plain(v) if isinstance(v, dict) else
              v if isinstance(v, (list, str)) else float(v))
          for k, v in results.items()}


def main():
  runs = []
  for _ in range(REPEATS):
    with tempfile.TemporaryDirectory() as tmp:
      runs.append(_plain(run_guide(*_data_b.write_titanic_csvs(tmp))))
  with open(os.path.join(HERE, 'canned_estimators.json'), 'w') as f:
    json.dump({'tensorflow': tf.__version__, 'runs': runs}, f, indent=1,
              sort_keys=True)


if __name__ == '__main__':
  main()
