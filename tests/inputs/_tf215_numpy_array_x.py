"""What TF 2.15 feeds a model_fn from numpy_input_fn(x=array) (not a test).

Run with the TF reference venv: ``/work/tf215/bin/python
tests/inputs/_tf215_numpy_array_x.py``. It prints (for TF 2.15.1)::

  features: SymbolicTensor shape (None, 2)
  labels: SymbolicTensor shape (None,)
  predict features: SymbolicTensor shape (None, 2)

so the model_fn receives the bare Tensor, not a dict: estlab's
numpy_input_fn feeds the bare array likewise
(test_numpy_io.test_array_x_is_fed_as_the_bare_array_as_tf_does).
"""
import numpy as np
import tensorflow as tf


def main():
  x = np.arange(12, dtype=np.float32).reshape(6, 2)
  y = np.arange(6, dtype=np.float32)
  seen = []

  def model_fn(features, labels, mode):
    seen.append((mode, features, labels))
    w = tf.compat.v1.get_variable("w", [2, 1])
    pred = tf.matmul(features, w)[:, 0]
    if mode == tf.estimator.ModeKeys.PREDICT:
      return tf.estimator.EstimatorSpec(mode, predictions=pred)
    loss = tf.reduce_mean((pred - labels) ** 2)
    opt = tf.compat.v1.train.GradientDescentOptimizer(0.01)
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=opt.minimize(
        loss, tf.compat.v1.train.get_global_step()))

  inputs = tf.compat.v1.estimator.inputs
  est = tf.estimator.Estimator(model_fn)
  est.train(inputs.numpy_input_fn(x=x, y=y, batch_size=4, shuffle=False))
  list(est.predict(inputs.numpy_input_fn(x=x, shuffle=False)))
  (_, features, labels), (_, predict_features, _) = seen
  print(f"features: {type(features).__name__} shape {features.shape}")
  print(f"labels: {type(labels).__name__} shape {labels.shape}")
  print(f"predict features: {type(predict_features).__name__} shape "
        f"{predict_features.shape}")


if __name__ == "__main__":
  main()
