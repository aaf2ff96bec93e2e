"""Reference for ``test_extra_numpy_pandas_io.py``: the input shapes of
tensorflow/estimator's own tests ``inputs/numpy_io_test.py`` and
``inputs/pandas_io_test.py`` (r2.15), fed to an Estimator as a user would,
run with TensorFlow 2.15 (``tf.compat.v1.estimator.inputs``).

Each scenario trains a linear model (zero initial weights, plain SGD, so the
run is deterministic) until the input ends or for given steps, then
evaluates and predicts; the JSON records global steps, losses, predictions
and weights, which are exact functions of the batches the model saw.

Run: /work/tf215/bin/python tests/ports/reference/extra_numpy_pandas_io_tf.py > tests/ports/reference/extra_numpy_pandas_io.json
"""
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

numpy_input_fn = tf.compat.v1.estimator.inputs.numpy_input_fn
pandas_input_fn = tf.compat.v1.estimator.inputs.pandas_input_fn


def as_matrix(features, params):
  if params.get("x") != "array":  # x was a dict: features is a dict
    return tf.stack([tf.cast(features[k], tf.float32) for k in sorted(features)], axis=1)
  x = tf.cast(features, tf.float32)
  return tf.reshape(x, [-1, int(np.prod(x.shape[1:]))]) if x.shape.ndims > 1 else x[:, None]


def model_fn(features, labels, mode, params):
  x = as_matrix(features, params)
  units = params.get("units", 1)
  pred = tf.compat.v1.layers.dense(x, units, use_bias=False,
                                   kernel_initializer=tf.zeros_initializer())
  predictions = {"pred": pred if units > 1 else pred[:, 0]}
  if mode == tf.estimator.ModeKeys.PREDICT:
    return tf.estimator.EstimatorSpec(mode, predictions=predictions)
  if isinstance(labels, dict):
    y = tf.stack([tf.cast(labels[k], tf.float32) for k in sorted(labels)], axis=1)
  else:
    y = tf.reshape(tf.cast(labels, tf.float32), [-1, units])
  loss = tf.reduce_mean(tf.square(pred - y))
  train_op = tf.compat.v1.train.GradientDescentOptimizer(params["lr"]).minimize(
      loss, global_step=tf.compat.v1.train.get_global_step())
  return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op,
                                    predictions=predictions)


def scenario(x, y, params, batch_size, num_epochs, steps=None, eval_batch=2,
             pandas=False):
  est = tf.estimator.Estimator(model_fn, tempfile.mkdtemp(), params=params)
  make = pandas_input_fn if pandas else numpy_input_fn
  est.train(make(x, y, batch_size=batch_size, num_epochs=num_epochs, shuffle=False),
            steps=steps)
  out = {"global_step": int(est.get_variable_value("global_step"))}
  ev = est.evaluate(make(x, y, batch_size=eval_batch, num_epochs=1, shuffle=False))
  out["evaluate"] = {k: float(v) for k, v in ev.items()}
  preds = list(est.predict(make(x, None, batch_size=eval_batch, num_epochs=1,
                                shuffle=False)))
  out["predict"] = [np.asarray(p["pred"]).tolist() for p in preds]
  batches = list(est.predict(make(x, None, batch_size=eval_batch, num_epochs=1,
                                  shuffle=False), yield_single_examples=False))
  out["predict_batches"] = [np.asarray(b["pred"]).shape[0] for b in batches]
  return out


def error(fn):
  try:
    fn()
  except Exception as e:  # noqa: BLE001
    return {"type": type(e).__name__, "message": str(e)}
  return None


def main():
  out = {"tensorflow": tf.__version__}
  lr = {"lr": 1e-4}
  a, b = np.arange(3) * 1.0, np.arange(32, 35)
  # numpy_io_test: BatchSizeNotDividedByDataSizeAndMultipleEpochs
  out["epochs_3_batch_2"] = scenario({"a": a, "b": b}, np.arange(-32, -29), lr, 2, 3)
  # VeryLargeBatchSizeAndMultipleEpochs
  out["batch_128_epochs_2"] = scenario(
      {"a": np.arange(2) * 1.0, "b": np.arange(32, 34)}, np.arange(-32, -30), lr, 128, 2)
  # BatchSizeNotDividedByDataSize, then steps= past the end
  x5 = {"a": np.arange(5) * 1.0, "b": np.arange(32, 37)}
  out["steps_past_end"] = scenario(x5, np.arange(-32, -27), lr, 2, 1, steps=10)
  # num_epochs=None with steps
  out["repeat_steps_7"] = scenario(x5, np.arange(-32, -27), lr, 2, None, steps=7)
  # YAsDict
  out["y_dict"] = scenario({"a": np.arange(4) * 1.0, "b": np.arange(32, 36)},
                           {"y1": np.arange(-32, -28), "y2": np.arange(32, 28, -1)},
                           {"lr": 1e-4, "units": 2}, 2, 2)
  # XIsArray
  out["x_array"] = scenario(np.arange(4) * 1.0, np.arange(-32, -28), {"lr": 1e-2, "x": "array"}, 2, 2)
  # XIsNDArray
  out["x_ndarray"] = scenario(np.arange(16).reshape(4, 2, 2) * 1.0,
                              np.arange(-48, -32).reshape(4, 4) * 1.0,
                              {"lr": 1e-3, "units": 4, "x": "array"}, 2, 2)
  # XIsArrayYIsDict
  out["x_array_y_dict"] = scenario(np.arange(4) * 1.0, {"y1": np.arange(-32, -28)},
                                   {"lr": 1e-2, "x": "array"}, 2, 2)
  # pandas_io_test: a DataFrame with an index, y a Series
  index = np.arange(100, 104)
  df = pd.DataFrame({"a": np.arange(4) * 1.0, "b": np.arange(32, 36)}, index=index)
  out["pandas"] = scenario(df, pd.Series(np.arange(-32, -28), index=index), lr, 2, 2,
                           pandas=True)
  out["pandas_odd"] = scenario(
      pd.DataFrame({"a": np.arange(5) * 1.0, "b": np.arange(32, 37)}),
      pd.Series(np.arange(-32, -27)), lr, 2, 3, pandas=True)
  # Errors
  out["errors"] = {
      "shuffle_missing": error(lambda: numpy_input_fn({"a": a}, a)),
      "x_list": error(lambda: numpy_input_fn(list(range(4)), np.arange(4),
                                             shuffle=False)()),
      "x_empty": error(lambda: numpy_input_fn({}, np.arange(4), shuffle=False)()),
      "length_mismatch": error(lambda: numpy_input_fn(
          {"a": a, "b": b}, np.arange(10), shuffle=False)()),
      "duplicate_keys": error(lambda: numpy_input_fn(
          {"a": a, "b": b}, {"y1": a, "a": a, "b": b}, shuffle=False)()),
      "pandas_index_mismatch": error(lambda: pandas_input_fn(
          df, pd.Series(np.arange(4), index=np.arange(4)), shuffle=False)()),
      "pandas_shuffle_missing": error(lambda: pandas_input_fn(df, None)),
  }
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
