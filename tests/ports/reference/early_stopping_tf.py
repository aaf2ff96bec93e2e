"""TF 2.15 reference run of guide/migrate/early_stopping.ipynb (TF1 half).

The notebook's "TF1: Estimator.train/evaluate" cells, unchanged except where
noted. Writes early_stopping.json next to this file.
Run: /work/tf215/bin/python tests/ports/reference/early_stopping_tf.py

Changes from the notebook:
- data: tfds.load('mnist', split=..., shuffle_files=True, as_supervised=True)
  is replaced by Dataset.from_tensor_slices over _data_b.mnist(split), local
  arrays of the same schema and sizes (uint8 [28, 28, 1] images, int64
  labels, 60000 / 10000 rows); shuffle_files has no counterpart for arrays;
- train_and_evaluate's return value is kept, and the step training stopped
  at, to be recorded.
"""
import json
import os
import sys
import time

import tensorflow as tf
import tensorflow.compat.v1 as tf1

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import _data_b  # noqa: E402

MNIST_TRAIN = _data_b.mnist('train')
MNIST_TEST = _data_b.mnist('test')


def normalize_img(image, label):
  return tf.cast(image, tf.float32) / 255., label

def _input_fn():
  ds_train = tf.data.Dataset.from_tensor_slices(MNIST_TRAIN)

  ds_train = ds_train.map(
      normalize_img, num_parallel_calls=tf.data.AUTOTUNE)
  ds_train = ds_train.batch(128)
  ds_train = ds_train.repeat(100)
  return ds_train

def _eval_input_fn():
  ds_test = tf.data.Dataset.from_tensor_slices(MNIST_TEST)
  ds_test = ds_test.map(
    normalize_img, num_parallel_calls=tf.data.AUTOTUNE)
  ds_test = ds_test.batch(128)
  return ds_test

def _model_fn(features, labels, mode):
  flatten = tf1.layers.Flatten()(features)
  features = tf1.layers.Dense(128, 'relu')(flatten)
  logits = tf1.layers.Dense(10)(features)

  loss = tf1.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)
  optimizer = tf1.train.AdagradOptimizer(0.005)
  train_op = optimizer.minimize(loss, global_step=tf1.train.get_global_step())

  return tf1.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def run_guide():
  estimator = tf1.estimator.Estimator(model_fn=_model_fn)

  start_time = time.time()
  max_train_seconds = 20

  def should_stop_fn():
    return time.time() - start_time > max_train_seconds

  early_stopping_hook = tf1.estimator.experimental.make_early_stopping_hook(
      estimator=estimator,
      should_stop_fn=should_stop_fn,
      run_every_secs=1,
      run_every_steps=None)

  train_spec = tf1.estimator.TrainSpec(
      input_fn=_input_fn,
      hooks=[early_stopping_hook])

  eval_spec = tf1.estimator.EvalSpec(input_fn=_eval_input_fn)

  metrics, export_results = tf1.estimator.train_and_evaluate(
      estimator, train_spec, eval_spec)
  return {'metrics': {k: float(v) for k, v in metrics.items()},
          'export_results': export_results,
          'seconds': time.time() - start_time,
          'latest_step': int(estimator.get_variable_value('global_step')),
          'steps_in_input': 100 * -(-len(MNIST_TRAIN[1]) // 128),
          'data': _data_b.fingerprint(*MNIST_TRAIN, *MNIST_TEST)}


if __name__ == '__main__':
  run = run_guide()
  print(run)
  with open(os.path.join(HERE, 'early_stopping.json'), 'w') as f:
    json.dump({'tensorflow': tf.__version__, 'runs': [run]}, f, indent=1,
              sort_keys=True)
