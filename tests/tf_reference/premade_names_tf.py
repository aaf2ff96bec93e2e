"""Records the variable names TF 2.15's premade estimators write, for
tests/premade/test_tf_names.py.

Run with the TF reference venv (not at test time):
  /work/tf215/bin/python tests/tf_reference/premade_names_tf.py
writes premade_names_tf215.json next to this file: per estimator, every name
of ``get_variable_names()`` after one training step, with its shape. The
same columns and batch are built in the test with estlab.
"""
import json
import os
import tempfile

import numpy as np
import tensorflow as tf

tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
fc = tf.feature_column


def dnn_columns():
  return [fc.numeric_column('x'), fc.embedding_column(
      fc.categorical_column_with_vocabulary_list('c', ['a', 'b']), 2)]


def linear_columns():
  return [fc.numeric_column('x'),
          fc.categorical_column_with_vocabulary_list('c', ['a', 'b']),
          fc.bucketized_column(fc.numeric_column('x'), [0.])]


def input_fn():
  return ({'x': tf.constant([[1.], [2.], [3.], [4.]]),
           'c': tf.constant([['a'], ['b'], ['a'], ['z']])},
          tf.constant([[0], [1], [0], [1]]))


ESTIMATORS = {
    'DNNClassifier': lambda d: tf.estimator.DNNClassifier(
        [4, 3], dnn_columns(), model_dir=d),
    'DNNClassifier_batch_norm': lambda d: tf.estimator.DNNClassifier(
        [4, 3], dnn_columns(), model_dir=d, batch_norm=True),
    'LinearClassifier': lambda d: tf.estimator.LinearClassifier(
        linear_columns(), model_dir=d),
    'DNNLinearCombinedClassifier': lambda d: (
        tf.estimator.DNNLinearCombinedClassifier(
            model_dir=d, linear_feature_columns=linear_columns(),
            dnn_feature_columns=dnn_columns(), dnn_hidden_units=[4, 3])),
    'BaselineClassifier': lambda d: tf.estimator.BaselineClassifier(
        model_dir=d),
}


def main():
  out = {}
  for name, make in ESTIMATORS.items():
    est = make(tempfile.mkdtemp())
    est.train(input_fn, steps=1)
    out[name] = {v: list(est.get_variable_value(v).shape)
                 for v in est.get_variable_names()}
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      'premade_names_tf215.json')
  with open(path, 'w') as f:
    json.dump(out, f, indent=1, sort_keys=True)


if __name__ == '__main__':
  main()
