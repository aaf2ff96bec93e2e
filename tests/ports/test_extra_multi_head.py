"""Port of the two usages in ``tf.estimator.MultiHead``'s docstring
(tensorflow/estimator r2.15, tensorflow_estimator/python/estimator/head/
multi_head.py): the doctest of ``MultiHead.loss``, and the "Usage" program
(labels as a dict keyed by head name, logits as a dict keyed by head name,
``head.create_estimator_spec`` in a model_fn, an Estimator trained on it).

With ``tf.estimator`` -> ``estlab``, ``tf.data`` -> ``estlab.data``. Changes
beyond imports:
- the docstring leaves ``logit_fn()`` and the data out ("``features =
  ...``"): here the logits come from one dense layer with zero initial
  weights (so TF's and estlab's runs are the same computation) over 200
  generated rows (``make_data``, two numeric features, a 3-class and a
  binary label), and training uses ``train_op_fn`` with plain SGD at 0.1.
- that layer: ``tf.compat.v1.layers.dense(x, 4, kernel_initializer=zeros)``
  -> Flax ``nn.Dense(4, kernel_init=zeros)``; ``train_op_fn`` returns
  ``optax.sgd(0.1)`` instead of ``GradientDescentOptimizer(0.1).minimize(
  loss, global_step)`` (JAX: estlab takes the gradients).
- the doctest's ``loss.numpy()`` -> ``float(loss)`` (a JAX array).
Reference: ``reference/extra_multi_head_tf.py`` (TensorFlow 2.15;
``reference/extra_multi_head.json``).

Original: Copyright 2018 The TensorFlow Authors, Apache License 2.0.
"""
import json
import os

import flax.linen as nn
import numpy as np
import optax
import pytest

import estlab

_REFERENCE = os.path.join(os.path.dirname(__file__), "reference", "extra_multi_head.json")


@pytest.fixture
def reference():
  with open(_REFERENCE) as f:
    return json.load(f)


def make_data(n=200, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 2)).astype(np.float32)
  head1 = np.digitize(x[:, 0] + 0.3 * rng.normal(size=n), [-0.5, 0.5]).astype(np.int64)
  head2 = (x[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(np.int64)[:, None]
  return {"x": x}, {"head1": head1[:, None], "head2": head2}


def test_multi_head_loss_doctest(reference):
  head1 = estlab.MultiLabelHead(n_classes=2, name='head1')
  head2 = estlab.MultiLabelHead(n_classes=3, name='head2')
  multi_head = estlab.MultiHead([head1, head2])
  logits = {
      'head1': np.array([[-10., 10.], [-15., 10.]], dtype=np.float32),
      'head2': np.array([[20., -20., 20.], [-30., 20., -20.]],
                        dtype=np.float32),}
  labels = {
      'head1': np.array([[1, 0], [1, 1]], dtype=np.int64),
      'head2': np.array([[0, 1, 0], [1, 1, 0]], dtype=np.int64),}
  features = {'x': np.array(((42,),), dtype=np.float32)}
  # For large logits, sigmoid cross entropy loss is approximated as:
  # loss = labels * (logits < 0) * (-logits) +
  #        (1 - labels) * (logits > 0) * logits =>
  # head1: expected_unweighted_loss = [[10., 10.], [15., 0.]]
  # loss1 = ((10 + 10) / 2 + (15 + 0) / 2) / 2 = 8.75
  # head2: expected_unweighted_loss = [[20., 20., 20.], [30., 0., 0]]
  # loss2 = ((20 + 20 + 20) / 3 + (30 + 0 + 0) / 3) / 2 = 15.00
  # loss = loss1 + loss2 = 8.75 + 15.00 = 23.75
  loss = multi_head.loss(labels, logits, features=features)
  print('{:.2f}'.format(float(loss)))
  assert '{:.2f}'.format(float(loss)) == reference["doctest_loss"] == "23.75"


def test_multi_head_usage(tmp_path, reference):
  features, labels = make_data()

  # In `input_fn`, specify labels as a dict keyed by head name:
  def input_fn():
    return estlab.data.Dataset.from_tensor_slices((features, labels)).batch(50)

  # In `model_fn`, specify logits as a dict keyed by head name:
  def model_fn(features, labels, mode):
    # Create simple heads and specify head name.
    head1 = estlab.MultiClassHead(n_classes=3, name='head1')
    head2 = estlab.BinaryClassHead(name='head2')
    # Create MultiHead from two simple heads.
    head = estlab.MultiHead([head1, head2])
    # Create logits for each head, and combine them into a dict.
    both = nn.Dense(4, kernel_init=nn.initializers.zeros)(features["x"])
    logits1, logits2 = both[:, :3], both[:, 3:]
    logits = {'head1': logits1, 'head2': logits2}
    # Return the merged EstimatorSpec
    return head.create_estimator_spec(
        features, mode, logits, labels=labels,
        train_op_fn=lambda loss: optax.sgd(0.1))

  # Create an estimator with this model_fn.
  estimator = estlab.Estimator(model_fn=model_fn, model_dir=str(tmp_path))
  estimator.train(input_fn=input_fn, steps=40)

  # "For eval, merges metrics by adding `head.name` suffix to the keys"
  ev = estimator.evaluate(input_fn=input_fn)
  want = reference["evaluate"]
  assert sorted(ev) == sorted(want)
  assert ev["global_step"] == want["global_step"] == 4  # 4 batches, then the end
  for key in want:
    # AUCs: estlab's exact ROC area against TF's 200-threshold estimate.
    tolerance = 5e-3 if key.startswith("auc") else 1e-4
    assert float(ev[key]) == pytest.approx(want[key], abs=tolerance), key

  # "For prediction, merges predictions and updates keys in prediction dict to
  # a 2-tuple, `(head.name, prediction_key)`"
  preds = list(estimator.predict(
      input_fn=lambda: estlab.data.Dataset.from_tensor_slices(features).batch(50)))
  assert len(preds) == 200
  assert sorted(repr(k) for k in preds[0]) == reference["predict_keys"]
  for key, value in reference["predict_first"].items():
    got = preds[0][eval(key)]  # the reference's keys are the tuples' reprs
    if isinstance(value[0], str):
      assert [str(v) for v in np.asarray(got).tolist()] == value, key
    else:
      np.testing.assert_allclose(np.asarray(got, np.float64), value, atol=1e-5,
                                 err_msg=key)
  subset = list(estimator.predict(
      input_fn=lambda: estlab.data.Dataset.from_tensor_slices(features).batch(50),
      predict_keys=[('head1', 'probabilities')]))
  assert sorted(repr(k) for k in subset[0]) == reference["predict_keys_subset"]
