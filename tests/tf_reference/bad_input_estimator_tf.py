"""TF 2.15's answers to the estimator-side bad inputs of issue #23.

Run with the TF reference venv (never from the tests):
  /work/tf215/bin/python tests/tf_reference/bad_input_estimator_tf.py
writes bad_input_estimator_tf215.json next to this file, read by
tests/test_bad_input_estimator.py.
"""
import json
import os
import pathlib
import tempfile

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

tf.get_logger().setLevel("ERROR")
_X = np.array([[1.0], [2.0], [0.0], [3.0]], np.float32)
_Y = np.array([0, 1, 0, 1])
_COLS = [tf.feature_column.numeric_column("x")]


def _input(x, y=None, epochs=None):
  return tf.compat.v1.estimator.inputs.numpy_input_fn(
      {"x": x}, y, batch_size=len(x), shuffle=False, num_epochs=epochs)


def _model_fn(features, labels, mode, params):
  del labels, params
  w = tf.compat.v1.get_variable("w", [1, 1])
  loss = tf.reduce_mean(tf.matmul(features["x"], w))
  opt = tf.compat.v1.train.GradientDescentOptimizer(0.1)
  return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=opt.minimize(
      loss, tf.compat.v1.train.get_global_step()))


def _answer(fn):
  try:
    return fn()
  except Exception as e:  # pylint: disable=broad-except
    return f"{type(e).__name__}: {e}"[:300]


def predict_inf():
  """Logits and probabilities of x = inf, -inf, nan, 1 after 20 steps."""
  out = {}
  x = np.array([[np.inf], [-np.inf], [np.nan], [1.0]], np.float32)
  for name, make in (
      ("linear", lambda d: tf.estimator.LinearClassifier(_COLS, model_dir=d)),
      ("dnn", lambda d: tf.estimator.DNNClassifier([4], _COLS, model_dir=d))):
    est = make(tempfile.mkdtemp())
    est.train(_input(_X, _Y), steps=20)
    out[name] = [{"logits": p["logits"].tolist(),
                  "probabilities": p["probabilities"].tolist()}
                 for p in est.predict(_input(x, epochs=1))]
  return out


def _trained_steps(**kwargs):
  est = tf.estimator.Estimator(_model_fn, tempfile.mkdtemp())
  est.train(_input(_X, _Y), **kwargs)
  return int(est.get_variable_value("global_step"))


def steps():
  """Global step after train(steps=...) of odd values, or the error."""
  return {f"{k}={v!r}": _answer(lambda k=k, v=v: _trained_steps(**{k: v}))
          for k, v in (("steps", True), ("steps", 2.5), ("steps", "3"),
                       ("steps", -1), ("max_steps", True),
                       ("max_steps", 2.5))}


def main():
  missing = os.path.join(tempfile.mkdtemp(), "no_such_model")
  result = {
      "predict_inf": predict_inf(),
      "steps": steps(),
      "params_list": _answer(lambda: type(tf.estimator.Estimator(
          _model_fn, tempfile.mkdtemp(), params=[1, 2])).__name__),
      "model_dir_int_train": _answer(lambda: tf.estimator.Estimator(
          _model_fn, 12345).train(_input(_X, _Y), steps=1) and "trained"),
      "warm_start_missing": _answer(lambda: tf.estimator.Estimator(
          _model_fn, tempfile.mkdtemp(), warm_start_from=missing).train(
              _input(_X, _Y), steps=1) and "trained"),
  }
  path = pathlib.Path(__file__).with_name("bad_input_estimator_tf215.json")
  path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
  main()
