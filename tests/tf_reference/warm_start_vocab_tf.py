"""Records how TF 2.15 warm-starts variables whose vocabulary changed
(``tf.estimator.VocabInfo``), for tests/test_warm_starting_vocab.py.

Run with the TF reference venv (not at test time):
  /work/tf215/bin/python tests/tf_reference/warm_start_vocab_tf.py
writes warm_start_vocab_tf215.json next to this file. Per case: the old
model is trained a few steps over vocabulary ['a', 'b', 'c'] (labels
['x', 'y', 'z'] for the output layer), then a new one over ['c', 'a', 'd']
(labels ['z', 'x', 'w']) is warm-started from it with VocabInfo
(backup_initializer: 0.5 everywhere) and trained one step at learning rate 0,
so its variables are the warm-started values. Recorded: the old and new
values, and ``rows_from``: for each new row (column for axis=1) the old
row it equals, or null where it is the backup initializer's.
"""
import json
import os
import tempfile

import numpy as np
import tensorflow as tf

tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
fc = tf.feature_column
HERE = os.path.dirname(os.path.abspath(__file__))
TMP = tempfile.mkdtemp()


def vocab_file(name, tokens):
  path = os.path.join(TMP, name)
  with open(path, 'w') as f:
    f.write(''.join(t + '\n' for t in tokens))
  return path


OLD, NEW = vocab_file('old.txt', 'abc'), vocab_file('new.txt', 'cad')
OLD_LABELS, NEW_LABELS = ['x', 'y', 'z'], ['z', 'x', 'w']
TOKENS = ['a', 'a', 'b', 'c', 'z', 'z']


def input_fn(labels, key='c'):
  def fn():
    return ({key: tf.constant([[t] for t in TOKENS])},
            tf.constant([[l] for l in labels]))
  return fn


def column(vocab, key='c'):
  return fc.categorical_column_with_vocabulary_file(
      key, vocab, vocabulary_size=3, num_oov_buckets=1)


def half(shape, dtype=tf.float32, partition_info=None):
  """0.5 everywhere (constant_initializer refuses the dynamic shapes that
  VocabInfo asks for)."""
  del partition_info
  return 0.5 * tf.ones(shape, dtype)


def vocab_info(axis=0, num_oov_buckets=1, new=NEW, old=OLD):
  return tf.estimator.VocabInfo(
      new_vocab=new, new_vocab_size=3, num_oov_buckets=num_oov_buckets,
      old_vocab=old, backup_initializer=half,
      axis=axis)


def frozen():
  return tf.keras.optimizers.legacy.SGD(learning_rate=0.0)


def rows_from(old, new, axis):
  old, new = np.moveaxis(old, axis, 0), np.moveaxis(new, axis, 0)
  out = []
  for row in new:
    same = [i for i, o in enumerate(old) if np.array_equal(o, row)]
    assert len(same) <= 1 and (same or np.all(row == 0.5)), (old, new)
    out.append(same[0] if same else None)
  return out


def case(old_est, new_est, labels, new_labels, var, prev_var=None, axis=0,
         key='c'):
  old_est.train(input_fn(labels), steps=3)
  new_est.train(input_fn(new_labels, key), steps=1)
  old = old_est.get_variable_value(prev_var or var)
  new = new_est.get_variable_value(var)
  return {'variable': var, 'prev_variable': prev_var or var, 'axis': axis,
          'old': old.tolist(), 'new': new.tolist(),
          'rows_from': rows_from(old, new, axis)}


def main():
  d = lambda: tempfile.mkdtemp(dir=TMP)
  labels = [1, 1, 0, 1, 0, 0]
  out = {}
  old_dir = d()
  var = 'linear/linear_model/c/weights'
  out['linear'] = case(
      tf.estimator.LinearClassifier([column(OLD)], model_dir=old_dir),
      tf.estimator.LinearClassifier(
          [column(NEW)], optimizer=frozen(),
          warm_start_from=tf.estimator.WarmStartSettings(
              old_dir, '.*', var_name_to_vocab_info={var: vocab_info()})),
      labels, labels, var)

  old_dir = d()
  var = ('dnn/input_from_feature_columns/input_layer/c_embedding/'
         'embedding_weights')
  out['dnn_embedding'] = case(
      tf.estimator.DNNClassifier(
          [3], [fc.embedding_column(column(OLD), 2)], model_dir=old_dir),
      tf.estimator.DNNClassifier(
          [3], [fc.embedding_column(column(NEW), 2)], optimizer=frozen(),
          warm_start_from=tf.estimator.WarmStartSettings(
              old_dir, '.*', var_name_to_vocab_info={var: vocab_info()})),
      labels, labels, var)

  old_dir = d()
  var = 'linear/linear_model/c/weights'
  new_var = 'linear/linear_model/c2/weights'
  out['linear_renamed'] = case(
      tf.estimator.LinearClassifier([column(OLD)], model_dir=old_dir),
      tf.estimator.LinearClassifier(
          [column(NEW, 'c2')], optimizer=frozen(),
          warm_start_from=tf.estimator.WarmStartSettings(
              old_dir, None,
              var_name_to_vocab_info={new_var: vocab_info()},
              var_name_to_prev_var_name={new_var: var})),
      labels, labels, new_var, prev_var=var, key='c2')

  old_dir = d()
  old_labels = vocab_file('old_labels.txt', OLD_LABELS)
  new_labels = vocab_file('new_labels.txt', NEW_LABELS)
  var = 'dnn/logits/kernel'
  emb = lambda: [fc.embedding_column(
      fc.categorical_column_with_vocabulary_list('c', list('abc')), 2)]
  out['dnn_logits_axis1'] = case(
      tf.estimator.DNNClassifier(
          [3], emb(), n_classes=3, label_vocabulary=OLD_LABELS,
          model_dir=old_dir),
      tf.estimator.DNNClassifier(
          [3], emb(), n_classes=3, label_vocabulary=NEW_LABELS,
          optimizer=frozen(),
          warm_start_from=tf.estimator.WarmStartSettings(
              old_dir, ['dnn/hiddenlayer.*', 'dnn/input_from.*', var],
              var_name_to_vocab_info={var: vocab_info(
                  axis=1, num_oov_buckets=0, new=new_labels,
                  old=old_labels)})),
      ['x', 'x', 'y', 'z', 'y', 'z'], ['z', 'z', 'x', 'w', 'x', 'w'], var,
      axis=1)
  with open(os.path.join(HERE, 'warm_start_vocab_tf215.json'), 'w') as f:
    json.dump(out, f, indent=1)


if __name__ == '__main__':
  main()
