"""The premade estimators' variable names are TF 2.15's.

``tests/tf_reference/premade_names_tf215.json`` holds what TF 2.15's
``get_variable_names()`` lists after one step of the same estimators
(``premade_names_tf.py`` made it). estlab lists every name TF lists, with
the same shape, except the optimizer's: TF writes its slots and
hyperparameters under ``training/<Optimizer>/`` (``training/Adagrad/dnn/
logits/kernel/accumulator``, ``training/Ftrl/learning_rate``), estlab keeps
them in the optax state, which is not a list of named variables.
"""
import json
import os

import numpy as np
import pytest

import estlab

fc = estlab.feature_column
_TF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "tf_reference", "premade_names_tf215.json")


def dnn_columns():
  return [fc.numeric_column("x"), fc.embedding_column(
      fc.categorical_column_with_vocabulary_list("c", ["a", "b"]), 2)]


def linear_columns():
  return [fc.numeric_column("x"),
          fc.categorical_column_with_vocabulary_list("c", ["a", "b"]),
          fc.bucketized_column(fc.numeric_column("x"), [0.])]


def input_fn():
  return ({"x": np.array([[1.], [2.], [3.], [4.]], np.float32),
           "c": np.array([["a"], ["b"], ["a"], ["z"]])},
          np.array([[0], [1], [0], [1]]))


ESTIMATORS = {
    "DNNClassifier": lambda d: estlab.DNNClassifier(
        [4, 3], dnn_columns(), model_dir=d),
    "DNNClassifier_batch_norm": lambda d: estlab.DNNClassifier(
        [4, 3], dnn_columns(), model_dir=d, batch_norm=True),
    "LinearClassifier": lambda d: estlab.LinearClassifier(
        linear_columns(), model_dir=d),
    "DNNLinearCombinedClassifier": lambda d: (
        estlab.DNNLinearCombinedClassifier(
            model_dir=d, linear_feature_columns=linear_columns(),
            dnn_feature_columns=dnn_columns(), dnn_hidden_units=[4, 3])),
    "BaselineClassifier": lambda d: estlab.BaselineClassifier(model_dir=d),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_variable_names_and_shapes_are_tf_215s(name, tmp_path):
  with open(_TF) as f:
    tf_names = json.load(f)[name]
  est = ESTIMATORS[name](str(tmp_path))
  est.train(input_fn, steps=1)
  ours = {n: list(np.shape(est.get_variable_value(n)))
          for n in est.get_variable_names()}
  tf_only = {n for n in tf_names if n.startswith("training/")}
  assert tf_only  # TF does list its optimizer's variables ...
  assert ours == {n: s for n, s in tf_names.items() if n not in tf_only}


def test_batch_norm_moving_statistics_are_variables(tmp_path):
  est = ESTIMATORS["DNNClassifier_batch_norm"](str(tmp_path))
  est.train(input_fn, steps=2)
  mean = est.get_variable_value("dnn/hiddenlayer_0/batchnorm_0/moving_mean")
  variance = est.get_variable_value(
      "dnn/hiddenlayer_0/batchnorm_0/moving_variance")
  # Keras' momentum 0.999 from zeros and ones: moved, but barely.
  assert 0 < np.abs(mean).max() < 0.05
  assert np.all(variance != 1.0) and np.abs(variance - 1).max() < 0.05
