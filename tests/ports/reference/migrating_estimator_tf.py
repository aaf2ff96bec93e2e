"""TF 2.15 reference run of guide/migrate/migrating_estimator.ipynb (TF1 half).

The notebook's "TensorFlow 1: Train and evaluate with tf.estimator.Estimator"
cells, unchanged (the data is the notebook's own inline lists), run REPEATS
times (Dense(1) starts from TF's unseeded init). Also records the trained
variables, so the port can check the reported loss against them. Writes
migrating_estimator.json next to this file.
Run: /work/tf215/bin/python tests/ports/reference/migrating_estimator_tf.py
"""
import json
import os

import tensorflow as tf
import tensorflow.compat.v1 as tf1

HERE = os.path.dirname(os.path.abspath(__file__))
REPEATS = 3

features = [[1., 1.5], [2., 2.5], [3., 3.5]]
labels = [[0.3], [0.5], [0.7]]
eval_features = [[4., 4.5], [5., 5.5], [6., 6.5]]
eval_labels = [[0.8], [0.9], [1.]]


def _input_fn():
  return tf1.data.Dataset.from_tensor_slices((features, labels)).batch(1)

def _eval_input_fn():
  return tf1.data.Dataset.from_tensor_slices(
      (eval_features, eval_labels)).batch(1)

def _model_fn(features, labels, mode):
  logits = tf1.layers.Dense(1)(features)
  loss = tf1.losses.mean_squared_error(labels=labels, predictions=logits)
  optimizer = tf1.train.AdagradOptimizer(0.05)
  train_op = optimizer.minimize(loss, global_step=tf1.train.get_global_step())
  return tf1.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def run_guide():
  estimator = tf1.estimator.Estimator(model_fn=_model_fn)
  estimator.train(_input_fn)
  result = estimator.evaluate(_eval_input_fn)
  return {'evaluate': {k: float(v) for k, v in result.items()},
          'variables': {n: estimator.get_variable_value(n).tolist()
                        for n in estimator.get_variable_names()
                        if n.startswith('dense/') and 'Adagrad' not in n}}


if __name__ == '__main__':
  runs = [run_guide() for _ in range(REPEATS)]
  with open(os.path.join(HERE, 'migrating_estimator.json'), 'w') as f:
    json.dump({'tensorflow': tf.__version__, 'runs': runs}, f, indent=1,
              sort_keys=True)
