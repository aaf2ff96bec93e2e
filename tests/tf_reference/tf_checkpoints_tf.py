"""Writes tf.estimator model_dirs for tests/checkpoint/test_tf_checkpoints.py.

Run with the TF reference venv (not at test time):
  /work/tf215/bin/python tests/tf_reference/tf_checkpoints_tf.py
writes, next to this file:

* ``tf_checkpoints/{linear,dnn,custom}/``: three model_dirs trained a few
  steps by TF 2.15 (a LinearClassifier, a DNNClassifier with an indicator
  and an embedding column, and a custom model_fn of
  ``tf.compat.v1.layers.dense`` with a partitioned embedding and string,
  bool and int variables). Only what a warm start reads is kept: the
  ``checkpoint`` state file and the newest ``model.ckpt-N.index`` /
  ``.data-00000-of-00001`` (no events, graph.pbtxt or .meta).
* ``tf_checkpoints_tf215.json``: per model_dir, TF's predictions on ROWS
  (probabilities and logits) and every checkpoint variable
  (``tf.train.list_variables`` and ``tf.train.load_variable``: name, shape,
  dtype, value).
"""
import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
fc = tf.feature_column
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'tf_checkpoints')

ROWS = {
    'x1': [[0.5], [-1.0], [2.0], [0.0], [1.5], [-0.5]],
    'x2': [[1.0], [0.25], [-2.0], [3.0], [0.0], [-1.0]],
    'color': [['red'], ['green'], ['blue'], ['red'], ['purple'], ['blue']],
    'shape': [['circle'], ['square'], ['circle'], ['triangle'], ['square'],
              ['circle']],
    'id': [[0], [5], [2], [3], [1], [4]],
}
LABELS = [[1], [0], [1], [0], [1], [0]]
DNN_LABELS = [[2], [0], [1], [0], [2], [1]]
COLORS = ['red', 'green', 'blue']
SHAPES = ['circle', 'square', 'triangle']


def input_fn(labels=None):
  def fn():
    features = {k: tf.constant(v) for k, v in ROWS.items()}
    if labels is None:  # one batch: predict stops at the dataset's end
      return tf.data.Dataset.from_tensors(features)
    return features, tf.constant(labels)
  return fn


def linear_columns():
  return [fc.numeric_column('x1'), fc.numeric_column('x2'),
          fc.categorical_column_with_vocabulary_list('color', COLORS)]


def dnn_columns():
  return [fc.numeric_column('x1'), fc.numeric_column('x2'),
          fc.indicator_column(
              fc.categorical_column_with_vocabulary_list('color', COLORS)),
          fc.embedding_column(
              fc.categorical_column_with_vocabulary_list('shape', SHAPES), 2)]


def custom_model_fn(features, labels, mode):
  x = tf.concat([features['x1'], features['x2']], 1)
  hidden = tf.compat.v1.layers.dense(x, 3, activation=tf.nn.relu,
                                     name='hidden')
  table = tf.compat.v1.get_variable(
      'ids_embedding', [6, 2],
      partitioner=tf.compat.v1.fixed_size_partitioner(2))
  # 'div': id i is row i of the joined table (TF's default 'mod' puts it in
  # part i % 2, so a reader of the whole table must permute its rows).
  embedded = tf.compat.v1.nn.embedding_lookup(table, features['id'][:, 0],
                                              partition_strategy='div')
  logits = tf.compat.v1.layers.dense(tf.concat([hidden, embedded], 1), 1,
                                     name='logits')
  # Non-trainable variables of the other dtypes an estimator may write.
  tf.compat.v1.get_variable('tags', initializer=tf.constant(['alpha', 'be']),
                            trainable=False)
  tf.compat.v1.get_variable('flags', initializer=tf.constant([True, False]),
                            trainable=False)
  tf.compat.v1.get_variable('counts', initializer=tf.constant([1, -2, 3]),
                            trainable=False)
  probs = tf.sigmoid(logits)
  if mode == tf.estimator.ModeKeys.PREDICT:
    return tf.estimator.EstimatorSpec(
        mode, predictions={'logits': logits, 'probabilities': probs})
  loss = tf.compat.v1.losses.sigmoid_cross_entropy(labels, logits)
  train_op = tf.compat.v1.train.AdagradOptimizer(0.1).minimize(
      loss, global_step=tf.compat.v1.train.get_global_step())
  return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def config():
  return tf.estimator.RunConfig(tf_random_seed=7, save_summary_steps=None,
                                save_checkpoints_steps=100,
                                keep_checkpoint_max=2)


MODELS = {
    'linear': (lambda d: tf.estimator.LinearClassifier(
        linear_columns(), model_dir=d, config=config()), LABELS),
    'dnn': (lambda d: tf.estimator.DNNClassifier(
        [4, 3], dnn_columns(), n_classes=3, model_dir=d, config=config()),
            DNN_LABELS),
    'custom': (lambda d: tf.estimator.Estimator(
        custom_model_fn, model_dir=d, config=config()), LABELS),
}


def _value(v):
  v = np.asarray(v)
  if v.dtype.kind in 'SO':
    return [s.decode() for s in v.ravel()]
  return v.ravel().tolist()


def main():
  shutil.rmtree(OUT, ignore_errors=True)
  out = {}
  for name, (make, labels) in MODELS.items():
    tmp = tempfile.mkdtemp()
    est = make(tmp)
    est.train(input_fn(labels), steps=3)
    est.train(input_fn(labels), steps=2)  # a second checkpoint, not kept
    preds = list(est.predict(input_fn()))
    prefix = tf.train.latest_checkpoint(tmp)
    variables = {}
    for var, shape in tf.train.list_variables(tmp):
      value = tf.train.load_variable(tmp, var)
      variables[var] = {'shape': shape, 'dtype': np.asarray(value).dtype.name,
                        'value': _value(value)}
    out[name] = {
        'checkpoint': os.path.basename(prefix),
        'probabilities': [p['probabilities'].tolist() for p in preds],
        'logits': [p['logits'].tolist() for p in preds],
        'variables': variables,
    }
    target = os.path.join(OUT, name)
    os.makedirs(target)
    base = os.path.basename(prefix)
    for f in os.listdir(tmp):
      if f.startswith(base + '.index') or f.startswith(base + '.data-'):
        shutil.copy(os.path.join(tmp, f), target)
    # The state file as TF writes it, for the kept checkpoint only.
    tf.compat.v1.train.update_checkpoint_state(target, base)
    shutil.rmtree(tmp)
  with open(os.path.join(HERE, 'tf_checkpoints_tf215.json'), 'w') as f:
    json.dump({'rows': ROWS, 'models': out}, f, indent=1, sort_keys=True)
    f.write('\n')


if __name__ == '__main__':
  main()
