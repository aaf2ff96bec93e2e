"""TF 2.15's tf.compat.v1.estimator premades on one small program: the numbers
tests/compat/test_v1.py compares estlab.compat.v1 against.

Run with the TF 2.15 venv from the repository root:
  /work/tf215/bin/python tests/compat/reference/v1_premade_tf.py
It writes tests/compat/reference/v1_premade_tf.json. The data are generated
here (numpy, seed 0) and stored in the JSON, so the test reads the same rows.
"""
import json
import os
import tempfile

import numpy as np
import tensorflow as tf

STEPS = 6
BATCH = 10


def data():
  rng = np.random.RandomState(0)
  x1 = rng.normal(size=30).astype(np.float32)
  x2 = rng.normal(size=30).astype(np.float32)
  binary = (x1 + 0.5 * x2 > 0).astype(np.int64)
  three = np.digitize(x1 - x2, [-0.7, 0.7]).astype(np.int64)
  target = (2.0 * x1 - x2 + 0.3).astype(np.float32)
  return dict(x1=x1, x2=x2, binary=binary, three=three, target=target)


def input_fn(d, label, num_epochs):
  return tf.compat.v1.estimator.inputs.numpy_input_fn(
      {"x1": d["x1"], "x2": d["x2"]}, d[label], batch_size=BATCH,
      num_epochs=num_epochs, shuffle=False)


def v1_regression_head():
  # TF 2.15 exports no v1 head; the v1 *Estimator classes refuse the v2 heads
  # (they need a tf.compat.v1 optimizer), so take canned/head.py's private v1
  # head, as tf.contrib.estimator.regression_head gave it in TF 1.x: SUM.
  from tensorflow_estimator.python.estimator.canned import head
  return head._regression_head()  # pylint: disable=protected-access


def cols():
  return [tf.feature_column.numeric_column("x1"),
          tf.feature_column.numeric_column("x2")]


def floats(x):
  if isinstance(x, np.ndarray):
    return x.astype(float).tolist()
  return float(x)


CASES = {
    # name: (constructor, label)
    "LinearClassifier": (lambda d: tf.compat.v1.estimator.LinearClassifier(
        cols(), model_dir=d), "binary"),
    "LinearClassifier3": (lambda d: tf.compat.v1.estimator.LinearClassifier(
        cols(), n_classes=3, model_dir=d), "three"),
    "LinearClassifierSGD": (lambda d: tf.compat.v1.estimator.LinearClassifier(
        cols(), optimizer="SGD", model_dir=d), "binary"),
    "LinearRegressor": (lambda d: tf.compat.v1.estimator.LinearRegressor(
        cols(), model_dir=d), "target"),
    "LinearRegressorMean": (lambda d: tf.compat.v1.estimator.LinearRegressor(
        cols(), model_dir=d,
        loss_reduction=tf.compat.v1.losses.Reduction.SUM_OVER_BATCH_SIZE),
                            "target"),
    "LinearEstimator": (lambda d: tf.compat.v1.estimator.LinearEstimator(
        v1_regression_head(), cols(), model_dir=d), "target"),
    "BaselineClassifier": (lambda d: tf.compat.v1.estimator.BaselineClassifier(
        model_dir=d), "binary"),
    "BaselineClassifier3": (lambda d: tf.compat.v1.estimator.BaselineClassifier(
        n_classes=3, model_dir=d), "three"),
    "BaselineRegressor": (lambda d: tf.compat.v1.estimator.BaselineRegressor(
        model_dir=d), "target"),
    "BaselineEstimator": (lambda d: tf.compat.v1.estimator.BaselineEstimator(
        v1_regression_head(), model_dir=d), "target"),
    # Linear part only: zero-initialized, so deterministic.
    "DNNLinearCombinedClassifier": (
        lambda d: tf.compat.v1.estimator.DNNLinearCombinedClassifier(
            model_dir=d, linear_feature_columns=cols()), "binary"),
    "DNNLinearCombinedRegressor": (
        lambda d: tf.compat.v1.estimator.DNNLinearCombinedRegressor(
            model_dir=d, linear_feature_columns=cols()), "target"),
    # Random initialization: compared by keys, loss semantics and loss falling.
    "DNNClassifier": (lambda d: tf.compat.v1.estimator.DNNClassifier(
        [8], cols(), model_dir=d), "binary"),
    "DNNClassifier3": (lambda d: tf.compat.v1.estimator.DNNClassifier(
        [8], cols(), n_classes=3, model_dir=d), "three"),
    "DNNRegressor": (lambda d: tf.compat.v1.estimator.DNNRegressor(
        [8], cols(), model_dir=d), "target"),
    "DNNEstimator": (lambda d: tf.compat.v1.estimator.DNNEstimator(
        v1_regression_head(), [8], cols(), model_dir=d), "target"),
}


def run(name, make, label, d):
  model_dir = tempfile.mkdtemp()
  est = make(model_dir)
  before = est.evaluate(input_fn(d, label, 1)) if name.startswith("DNN") and \
      "Combined" not in name else None
  est.train(input_fn(d, label, None), steps=STEPS)
  metrics = est.evaluate(input_fn(d, label, 1))
  preds = list(est.predict(input_fn(d, label, 1)))
  out = {
      "label": label,
      "metrics": {k: floats(v) for k, v in metrics.items()},
      "prediction_keys": sorted(preds[0]),
      "variables": {n: floats(est.get_variable_value(n))
                    for n in est.get_variable_names()},
  }
  if before is not None:
    out["metrics_before"] = {k: floats(v) for k, v in before.items()}
  return out


def main():
  tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
  d = data()
  result = {"steps": STEPS, "batch_size": BATCH,
            "data": {k: floats(v) for k, v in d.items()},
            "tensorflow": tf.__version__, "cases": {}}
  for name, (make, label) in CASES.items():
    result["cases"][name] = run(name, make, label, d)
    print(name, result["cases"][name]["metrics"])
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "v1_premade_tf.json")
  with open(path, "w") as f:
    json.dump(result, f, indent=1, sort_keys=True)


if __name__ == "__main__":
  main()
