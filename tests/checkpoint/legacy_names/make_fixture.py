"""Writes the model_dir fixture of estlab's names before TF's (for
tests/checkpoint/test_legacy_names.py).

Run ONCE with the estlab of commit 826d381 (the last before TF 2.x variable
names), from the repository root:
  git worktree add /tmp/old 826d381
  PYTHONPATH=/tmp/old python tests/checkpoint/legacy_names/make_fixture.py
It writes ``model_dir/`` (then delete its step 0 and events file, to keep
the fixture small: a DNNClassifier with batch normalization and an
embedding column, trained 3 steps; its variables are named
``dnn/input_from_feature_columns/c_embedding/embedding_weights``,
``dnn/batchnorm_0/scale`` and batch_stats ``dnn/batchnorm_0/mean``) and
``expected.json`` (the variables' names and values, and the predicted
probabilities, as that estlab gave them) next to this file.
"""
import json
import os
import shutil

import numpy as np

import estlab

HERE = os.path.dirname(os.path.abspath(__file__))


def columns():
  fc = estlab.feature_column
  return [fc.numeric_column('x'), fc.embedding_column(
      fc.categorical_column_with_vocabulary_list('c', ['a', 'b']), 2)]


def features():
  return {'x': np.array([[1.], [2.], [3.], [4.]], np.float32),
          'c': np.array([['a'], ['b'], ['a'], ['z']])}


def input_fn():
  return features(), np.array([[0], [1], [0], [1]])


def estimator(model_dir):
  return estlab.DNNClassifier(
      [4, 3], columns(), model_dir=model_dir, batch_norm=True,
      config=estlab.RunConfig(tf_random_seed=3))


def main():
  model_dir = os.path.join(HERE, 'model_dir')
  shutil.rmtree(model_dir, ignore_errors=True)
  est = estimator(model_dir)
  est.train(input_fn, steps=3)
  probabilities = [p['probabilities'].tolist()
                   for p in est.predict(lambda: features())]
  variables = {name: np.asarray(est.get_variable_value(name)).tolist()
               for name in est.get_variable_names()}
  with open(os.path.join(HERE, 'expected.json'), 'w') as f:
    json.dump({'variables': variables, 'probabilities': probabilities}, f,
              indent=1)


if __name__ == '__main__':
  main()
