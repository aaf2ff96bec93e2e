"""The SignatureDefs TF 2.15's ``export_saved_model`` writes for premade
estimators exported with ``build_parsing_serving_input_receiver_fn``, for
tests/export/test_tf_serving_signatures.py.

Run with the TF reference venv (not at test time):
  /work/tf215/bin/python tests/tf_reference/tf_serving_signatures_tf.py
writes tf_serving_signatures_tf215.json next to this file: per estimator
(``LinearClassifier``, ``LinearRegressor``, ``DNNClassifier``: the feature
columns of the test's models), per signature, its ``method_name`` and its
``inputs`` / ``outputs`` as ``{key: {"dtype": "DT_...", "shape": [...]}}``
(-1 for an unknown dimension), as ``saved_model_cli show --all`` lists them.
"""
import json
import os
import tempfile

import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

fc = tf.feature_column


def _columns():
  numeric = [fc.numeric_column("a"), fc.numeric_column("b", default_value=0.5)]
  return numeric, numeric + [
      fc.bucketized_column(numeric[0], [-0.5, 0.0, 0.5]),
      fc.indicator_column(fc.categorical_column_with_vocabulary_list(
          "c", ["red", "green", "blue"])),
      fc.embedding_column(fc.categorical_column_with_identity("d", 4), 3)]


def _input_fn(labels):
  def input_fn():
    features = {"a": [[1.0], [-1.0]], "b": [[0.0], [1.0]],
                "c": tf.sparse.from_dense(tf.constant([["red"], ["blue"]])),
                "d": tf.sparse.from_dense(tf.constant([[1], [3]], tf.int64))}
    return tf.data.Dataset.from_tensors((features, labels)).repeat(2)
  return input_fn


def _tensors(infos):
  return {key: {"dtype": types_pb2.DataType.Name(info.dtype),
                "shape": [d.size for d in info.tensor_shape.dim]}
          for key, info in sorted(infos.items())}


def _signatures(estimator, columns, labels):
  estimator.train(_input_fn(labels), steps=2)
  receiver_fn = tf.estimator.export.build_parsing_serving_input_receiver_fn(
      fc.make_parse_example_spec(columns))
  path = estimator.export_saved_model(tempfile.mkdtemp(), receiver_fn).decode()
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(path, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  return {name: {"method_name": sig.method_name, "inputs": _tensors(sig.inputs),
                 "outputs": _tensors(sig.outputs)}
          for name, sig in sorted(proto.meta_graphs[0].signature_def.items())}


def main():
  numeric, columns = _columns()
  record = {
      "LinearClassifier": _signatures(tf.estimator.LinearClassifier(numeric),
                                      numeric, [[0], [1]]),
      "LinearRegressor": _signatures(tf.estimator.LinearRegressor(numeric),
                                     numeric, [[0.5], [1.5]]),
      "DNNClassifier": _signatures(tf.estimator.DNNClassifier(
          [6], columns, n_classes=3, label_vocabulary=["no", "yes", "maybe"]),
                                   columns, [["no"], ["maybe"]]),
  }
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "tf_serving_signatures_tf215.json")
  with open(path, "w") as f:
    json.dump(record, f, indent=1)
    f.write("\n")
  print(json.dumps(record, indent=1))


if __name__ == "__main__":
  main()
