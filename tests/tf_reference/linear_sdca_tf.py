"""Records TF 2.15's LinearSDCA results, for tests/premade/test_linear_sdca.py.

Run with the TF reference venv (not at test time):
  /work/tf215/bin/python tests/tf_reference/linear_sdca_tf.py
writes linear_sdca_tf215.json next to this file: per case the data (made
here with numpy, seed 0), the LinearSDCA options, the steps trained (one
full batch per step) and TF's learned weights, bias and evaluation.
"""
import json
import os

import numpy as np
import tensorflow as tf

N = 48


def _data(kind):
  rng = np.random.RandomState(0)
  x = rng.randn(N, 2).astype(np.float32)
  z = rng.randn(N, 1).astype(np.float32)  # irrelevant feature
  cat = rng.choice(["a", "b", "c"], size=N)
  effect = {"a": 1.0, "b": -1.0, "c": 0.0}
  signal = 2.0 * x[:, 0] - x[:, 1] + np.array([effect[c] for c in cat]) + 0.5
  if kind == "regression":
    label = (signal + 0.1 * rng.randn(N)).astype(np.float32)
  else:
    label = (signal > 0).astype(np.float32)
  return {"x": x.tolist(), "z": z.tolist(), "cat": cat.tolist(),
          "example_id": [f"id{i}" for i in range(N)],
          "label": label.tolist()}


CASES = [
    {"name": "regression_l2", "kind": "regression", "l1": 0.0, "l2": 4.0,
     "steps": 100},
    {"name": "classifier_l2", "kind": "classifier", "l1": 0.0, "l2": 1.0,
     "steps": 100},
    {"name": "classifier_l1", "kind": "classifier", "l1": 2.0, "l2": 2.0,
     "steps": 100},
]


def _run(case):
  data = _data(case["kind"])
  columns = [
      tf.feature_column.numeric_column("x", shape=(2,)),
      tf.feature_column.numeric_column("z"),
      tf.feature_column.categorical_column_with_vocabulary_list(
          "cat", ["a", "b", "c"])]
  sdca = tf.estimator.experimental.LinearSDCA(
      example_id_column="example_id",
      symmetric_l1_regularization=case["l1"],
      symmetric_l2_regularization=case["l2"])
  cls = (tf.estimator.LinearRegressor if case["kind"] == "regression"
         else tf.estimator.LinearClassifier)
  est = cls(feature_columns=columns, optimizer=sdca)
  features = {"x": np.array(data["x"], np.float32),
              "z": np.array(data["z"], np.float32),
              "cat": np.array(data["cat"]),
              "example_id": np.array(data["example_id"])}
  label = np.array(data["label"], np.float32)

  def input_fn():
    return tf.data.Dataset.from_tensors((features, label)).repeat()
  est.train(input_fn, steps=case["steps"])
  metrics = est.evaluate(lambda: tf.data.Dataset.from_tensors(
      (features, label)), steps=1)
  get = est.get_variable_value
  return {**case, "data": data,
          "weights": {
              "x": get("linear/linear_model/x/weights").reshape(-1).tolist(),
              "z": get("linear/linear_model/z/weights").reshape(-1).tolist(),
              "cat": get("linear/linear_model/cat/weights").reshape(-1).tolist(),
              "bias": get("linear/linear_model/bias_weights").reshape(-1).tolist()},
          "metrics": {k: float(v) for k, v in metrics.items()
                      if k in ("loss", "average_loss", "accuracy")}}


def main():
  out = {"tensorflow": tf.__version__, "cases": [_run(c) for c in CASES]}
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "linear_sdca_tf215.json")
  with open(path, "w") as f:
    json.dump(out, f, indent=1)
  for case in out["cases"]:
    print(case["name"], case["weights"], case["metrics"])


if __name__ == "__main__":
  main()
