"""Writes identity_column_tf215.json: TF 2.15's categorical_column_with_identity
on -1, -2 and num_buckets, dense and sparse, with and without default_value.

Run with TensorFlow's venv (never at test time):
  /work/tf215/bin/python tests/tf_reference/identity_column_tf.py

"ids" are the ids TF's column gives (None where it drops the value); "train"
is what a LinearClassifier and a DNNClassifier over an embedding_column do
with such a value in one training step ("ok" or the exception's name).
Read by tests/feature_column/test_identity_bad_input.py.
"""
import json
import os
import tempfile

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
from tensorflow.python.feature_column import feature_column_v2 as fc2  # pylint: disable=g-import-not-at-top

NUM_BUCKETS = 5
VALUES = [-1, -2, 5]


def _ids(value, default, sparse):
  col = tf.feature_column.categorical_column_with_identity(
      "x", NUM_BUCKETS, default_value=default)
  if sparse:
    feature = tf.SparseTensor([[0, 0], [1, 0]], tf.constant([1, value],
                                                            tf.int64), [2, 1])
  else:
    feature = tf.constant([[1], [value]], tf.int64)
  ids = col.get_sparse_tensors(fc2.FeatureTransformationCache({"x": feature}),
                               None).id_tensor
  dense = tf.sparse.to_dense(ids, default_value=-99).numpy()[:, 0].tolist()
  return [None if i == -99 else i for i in dense]


def _train(kind, value):
  col = tf.feature_column.categorical_column_with_identity("x", NUM_BUCKETS)
  if kind == "linear":
    est = tf.estimator.LinearClassifier([col], model_dir=tempfile.mkdtemp())
  else:
    est = tf.estimator.DNNClassifier(
        [4], [tf.feature_column.embedding_column(col, 2)],
        model_dir=tempfile.mkdtemp())

  def input_fn():
    return tf.data.Dataset.from_tensor_slices(
        ({"x": np.array([[1], [value]], np.int64)},
         np.array([0, 1], np.int64))).batch(2)
  try:
    est.train(input_fn, steps=1)
    return "ok"
  except Exception as err:  # pylint: disable=broad-except
    return type(err).__name__


def main():
  out = {"num_buckets": NUM_BUCKETS, "ids": {}, "train": {}}
  for value in VALUES:
    for default in (None, 0):
      for sparse in (False, True):
        key = f"{value} default={default} {'sparse' if sparse else 'dense'}"
        out["ids"][key] = _ids(value, default, sparse)
    for kind in ("linear", "embedding"):
      out["train"][f"{kind} {value}"] = _train(kind, value)
  target = os.path.join(os.path.dirname(__file__), "identity_column_tf215.json")
  with open(target, "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write("\n")


if __name__ == "__main__":
  main()
