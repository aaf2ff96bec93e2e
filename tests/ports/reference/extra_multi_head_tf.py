"""Reference for ``test_extra_multi_head.py``: the two usages in
``tf.estimator.MultiHead``'s docstring (tensorflow/estimator r2.15,
tensorflow_estimator/python/estimator/head/multi_head.py) run with
TensorFlow 2.15.

1. The doctest: ``multi_head.loss(labels, logits, features=features)`` of two
   MultiLabelHeads on the docstring's arrays (prints 23.75).
2. The "Usage" program: a model_fn whose ``MultiClassHead(n_classes=3,
   name='head1')`` and ``BinaryClassHead(name='head2')`` are merged by
   ``MultiHead``; the input_fn returns labels as a dict keyed by head name.
   The docstring leaves ``logit_fn()`` and the data out: here the logits
   come from one dense layer with zero initial weights (deterministic), fed
   by 200 generated rows (``make_data``), trained with
   ``train_op_fn`` = plain SGD at 0.1. Records evaluation metrics (their
   keys show the merged names), predictions and their keys.

Run: /work/tf215/bin/python tests/ports/reference/extra_multi_head_tf.py > tests/ports/reference/extra_multi_head.json
"""
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def make_data(n=200, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 2)).astype(np.float32)
  head1 = np.digitize(x[:, 0] + 0.3 * rng.normal(size=n), [-0.5, 0.5]).astype(np.int64)
  head2 = (x[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(np.int64)[:, None]
  return {"x": x}, {"head1": head1[:, None], "head2": head2}


def main():
  out = {"tensorflow": tf.__version__}
  # 1. the doctest
  head1 = tf.estimator.MultiLabelHead(n_classes=2, name='head1')
  head2 = tf.estimator.MultiLabelHead(n_classes=3, name='head2')
  multi_head = tf.estimator.MultiHead([head1, head2])
  logits = {
      'head1': np.array([[-10., 10.], [-15., 10.]], dtype=np.float32),
      'head2': np.array([[20., -20., 20.], [-30., 20., -20.]], dtype=np.float32),}
  labels = {
      'head1': np.array([[1, 0], [1, 1]], dtype=np.int64),
      'head2': np.array([[0, 1, 0], [1, 1, 0]], dtype=np.int64),}
  features = {'x': np.array(((42,),), dtype=np.float32)}
  loss = multi_head.loss(labels, logits, features=features)
  out["doctest_loss"] = '{:.2f}'.format(loss.numpy())

  # 2. the usage program
  features, labels = make_data()

  def input_fn():
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(50)

  def model_fn(features, labels, mode):
    head1 = tf.estimator.MultiClassHead(n_classes=3, name='head1')
    head2 = tf.estimator.BinaryClassHead(name='head2')
    head = tf.estimator.MultiHead([head1, head2])
    both = tf.compat.v1.layers.dense(features["x"], 4,
                                     kernel_initializer=tf.zeros_initializer())
    logits1, logits2 = both[:, :3], both[:, 3:]
    logits = {'head1': logits1, 'head2': logits2}
    return head.create_estimator_spec(
        features, mode, logits, labels=labels,
        train_op_fn=lambda loss: tf.compat.v1.train.GradientDescentOptimizer(
            0.1).minimize(loss, global_step=tf.compat.v1.train.get_global_step()))

  estimator = tf.estimator.Estimator(model_fn=model_fn, model_dir=tempfile.mkdtemp())
  estimator.train(input_fn=input_fn, steps=40)
  ev = estimator.evaluate(input_fn=input_fn)
  out["evaluate"] = {k: float(v) for k, v in ev.items()}
  preds = list(estimator.predict(input_fn=lambda: tf.data.Dataset.from_tensor_slices(
      features).batch(50)))
  out["predict_keys"] = sorted(repr(k) for k in preds[0])
  out["predict_first"] = {
      repr(k): (np.char.decode(v.astype(bytes)).tolist() if np.asarray(v).dtype.kind in "SO"
                else np.asarray(v).tolist()) for k, v in preds[0].items()}
  subset = list(estimator.predict(
      input_fn=lambda: tf.data.Dataset.from_tensor_slices(features).batch(50),
      predict_keys=[('head1', 'probabilities')]))
  out["predict_keys_subset"] = sorted(repr(k) for k in subset[0])
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
