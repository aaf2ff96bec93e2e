"""Reference run of tensorflow/docs site/en/r1/tutorials/estimators/cnn.ipynb
with TensorFlow 2.15 (tf.compat.v1), for ``test_r1_cnn.py``.

The notebook's code cells as written, except: the data come from
``_data_c.mnist_load_data()`` (a local 28x28 stand-in) instead of
``tf.keras.datasets.mnist.load_data()``; the 1000-step ``train`` is
``STEPS`` steps (the port's runtime); ``model_dir`` is a fresh temporary
directory per run; the logging hook's lines are captured. Runs ``RUNS``
times (different random initialisations) and writes the results as JSON.

Run: /work/tf215/bin/python tests/ports/reference/r1_cnn_tf.py > tests/ports/reference/r1_cnn.json
"""
import json
import logging
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from _data_c import fingerprint, mnist_load_data  # noqa: E402

import tensorflow.compat.v1 as tf  # noqa: E402
import numpy as np  # noqa: E402

tf.logging.set_verbosity(tf.logging.INFO)

STEPS = int(os.environ.get("STEPS", 20))
RUNS = int(os.environ.get("RUNS", 3))


class _Capture(logging.Handler):
  def __init__(self):
    super().__init__()
    self.lines = []

  def emit(self, record):
    self.lines.append(record.getMessage())


def cnn_model_fn(features, labels, mode):
  """Model function for CNN."""
  # Input Layer
  input_layer = tf.reshape(features["x"], [-1, 28, 28, 1])

  # Convolutional Layer #1
  conv1 = tf.layers.conv2d(
      inputs=input_layer,
      filters=32,
      kernel_size=[5, 5],
      padding="same",
      activation=tf.nn.relu)

  # Pooling Layer #1
  pool1 = tf.layers.max_pooling2d(inputs=conv1, pool_size=[2, 2], strides=2)

  # Convolutional Layer #2 and Pooling Layer #2
  conv2 = tf.layers.conv2d(
      inputs=pool1,
      filters=64,
      kernel_size=[5, 5],
      padding="same",
      activation=tf.nn.relu)
  pool2 = tf.layers.max_pooling2d(inputs=conv2, pool_size=[2, 2], strides=2)

  # Dense Layer
  pool2_flat = tf.reshape(pool2, [-1, 7 * 7 * 64])
  dense = tf.layers.dense(inputs=pool2_flat, units=1024, activation=tf.nn.relu)
  dropout = tf.layers.dropout(
      inputs=dense, rate=0.4, training=mode == tf.estimator.ModeKeys.TRAIN)

  # Logits Layer
  logits = tf.layers.dense(inputs=dropout, units=10)

  predictions = {
      # Generate predictions (for PREDICT and EVAL mode)
      "classes": tf.argmax(input=logits, axis=1),
      # Add `softmax_tensor` to the graph. It is used for PREDICT and by the
      # `logging_hook`.
      "probabilities": tf.nn.softmax(logits, name="softmax_tensor")
  }

  if mode == tf.estimator.ModeKeys.PREDICT:
    return tf.estimator.EstimatorSpec(mode=mode, predictions=predictions)

  # Calculate Loss (for both TRAIN and EVAL modes)
  loss = tf.losses.sparse_softmax_cross_entropy(labels=labels, logits=logits)

  # Configure the Training Op (for TRAIN mode)
  if mode == tf.estimator.ModeKeys.TRAIN:
    optimizer = tf.train.GradientDescentOptimizer(learning_rate=0.001)
    train_op = optimizer.minimize(
        loss=loss,
        global_step=tf.train.get_global_step())
    return tf.estimator.EstimatorSpec(mode=mode, loss=loss, train_op=train_op)

  # Add evaluation metrics (for EVAL mode)
  eval_metric_ops = {
      "accuracy": tf.metrics.accuracy(
          labels=labels, predictions=predictions["classes"])
  }
  return tf.estimator.EstimatorSpec(
      mode=mode, loss=loss, eval_metric_ops=eval_metric_ops)


def run():
  capture = _Capture()
  tf.get_logger().addHandler(capture)
  # Load training and eval data
  ((train_data, train_labels),
   (eval_data, eval_labels)) = mnist_load_data()

  train_data = train_data/np.float32(255)
  train_labels = train_labels.astype(np.int32)  # not required

  eval_data = eval_data/np.float32(255)
  eval_labels = eval_labels.astype(np.int32)  # not required

  # Create the Estimator
  mnist_classifier = tf.estimator.Estimator(
      model_fn=cnn_model_fn, model_dir=tempfile.mkdtemp())

  # Set up logging for predictions
  tensors_to_log = {"probabilities": "softmax_tensor"}

  logging_hook = tf.train.LoggingTensorHook(
      tensors=tensors_to_log, every_n_iter=50)

  # Train the model
  train_input_fn = tf.estimator.inputs.numpy_input_fn(
      x={"x": train_data},
      y=train_labels,
      batch_size=100,
      num_epochs=None,
      shuffle=True)

  # train one step and display the probabilties
  mnist_classifier.train(
      input_fn=train_input_fn,
      steps=1,
      hooks=[logging_hook])
  logged = [line for line in capture.lines if line.startswith("probabilities")]
  rows = re.findall(r"\[([^\[\]]+)\]", logged[0])
  probs = np.array([[float(v) for v in r.split()] for r in rows])

  mnist_classifier.train(input_fn=train_input_fn, steps=STEPS)

  eval_input_fn = tf.estimator.inputs.numpy_input_fn(
      x={"x": eval_data},
      y=eval_labels,
      num_epochs=1,
      shuffle=False)

  eval_results = mnist_classifier.evaluate(input_fn=eval_input_fn)
  print(eval_results, file=sys.stderr)
  tf.get_logger().removeHandler(capture)
  return {"logged_lines": len(logged), "logged_shape": list(probs.shape),
          "logged_row_sums_max_err": float(np.abs(probs.sum(1) - 1).max()),
          "eval": {k: float(v) for k, v in eval_results.items()}}


if __name__ == "__main__":
  (tx, ty), (ex, ey) = mnist_load_data()
  runs = [run() for _ in range(RUNS)]
  print(json.dumps({"tensorflow": tf.__version__, "steps": STEPS,
                    "data": fingerprint([tx, ty, ex, ey]),
                    "shapes": [list(tx.shape), list(ex.shape)],
                    "runs": runs}, indent=1))
