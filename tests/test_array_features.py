"""Features (and labels) as one array, as tf.estimator allows (issue 19.2).

A custom model_fn gets the array as given; images ``(batch, 28, 28, 1)``
train, evaluate and predict with a Flax CNN from ``numpy_input_fn(x=images)``
(TF 2.15 feeds the bare tensor there too); a premade estimator says how to
wrap the array in a dict.
"""
import tempfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from _models import quiet


def _images(n, seed=0):
  """Class 1: the bottom half is bright; class 0: the top half."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, n).astype(np.int32)
  images = rng.normal(0, 0.3, (n, 28, 28, 1)).astype(np.float32)
  for i, label in enumerate(labels):
    images[i, 14:] += 1.0 if label else 0.0
    images[i, :14] += 0.0 if label else 1.0
  return images, labels


class _CNN(nn.Module):

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(4, (3, 3), strides=(2, 2))(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    return nn.Dense(2)(x.reshape((x.shape[0], -1)))


def _cnn_model_fn(seen):
  def model_fn(features, labels, mode):
    seen.append((mode, isinstance(features, jax.Array), features.shape[1:]))
    logits = _CNN()(features)
    classes = jnp.argmax(logits, axis=1)
    predictions = {"class_ids": classes,
                   "probabilities": jax.nn.softmax(logits)}
    if mode == estlab.ModeKeys.PREDICT:
      return estlab.EstimatorSpec(mode, predictions=predictions)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits,
                                                           labels).mean()
    return estlab.EstimatorSpec(
        mode, predictions=predictions, loss=loss, train_op=optax.adam(0.01),
        eval_metric_ops={"accuracy": estlab.metrics.accuracy(labels, classes)})
  return model_fn


def test_a_cnn_trains_evaluates_and_predicts_on_bare_image_arrays(tmp_path):
  seen = []
  est = estlab.Estimator(_cnn_model_fn(seen), tmp_path, config=quiet())
  images, labels = _images(128)
  train_fn = estlab.inputs.numpy_input_fn(images, labels, batch_size=32,
                                          num_epochs=None, shuffle=True,
                                          seed=0)
  eval_images, eval_labels = _images(90, seed=1)  # 32 + 32 + a short 26
  eval_fn = estlab.inputs.numpy_input_fn(eval_images, eval_labels,
                                         batch_size=32, shuffle=False)
  est.train(train_fn, steps=1)
  before = est.evaluate(eval_fn)
  est.train(train_fn, steps=40)
  after = est.evaluate(eval_fn)
  assert after["global_step"] == 41
  assert after["loss"] < 0.5 * before["loss"]
  assert after["accuracy"] > 0.95
  # Predictions, one per image (the short last batch padded and cut back).
  predict_fn = estlab.inputs.numpy_input_fn(eval_images, batch_size=32,
                                            shuffle=False)
  singles = list(est.predict(predict_fn))
  assert len(singles) == 90
  assert singles[0]["probabilities"].shape == (2,)
  predicted = np.array([p["class_ids"] for p in singles])
  # evaluate's accuracy (short last batch included) matches the predictions.
  np.testing.assert_allclose(after["accuracy"],
                             np.mean(predicted == eval_labels), rtol=1e-6)
  batches = list(est.predict(predict_fn, yield_single_examples=False))
  assert [len(b["class_ids"]) for b in batches] == [32, 32, 26]
  np.testing.assert_array_equal(
      np.concatenate([b["class_ids"] for b in batches]), predicted)
  # The model_fn got one array (not a dict) of images in every mode.
  assert {mode for mode, _, _ in seen} == set(estlab.ModeKeys.ALL)
  assert all(is_array and shape == (28, 28, 1) for _, is_array, shape in seen)


def _dense_model_fn(features, labels, mode):
  assert isinstance(features, jax.Array), features  # one array, as given
  return _plain_dense_model_fn(features, labels, mode)


def _plain_dense_model_fn(features, labels, mode):
  pred = nn.Dense(1)(features)[:, 0]
  if mode == estlab.ModeKeys.PREDICT:
    return estlab.EstimatorSpec(mode, predictions=pred)  # one array too
  return estlab.EstimatorSpec(
      mode, predictions=pred, loss=jnp.mean((pred - labels) ** 2),
      train_op=optax.sgd(0.05),
      eval_metric_ops={"mse": estlab.metrics.mean_squared_error(labels, pred)})


def _xy(n=48):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, 3)).astype(np.float32)
  return x, (x @ np.array([1.0, -2.0, 0.5], np.float32)).astype(np.float32)


def _generator_fn(x, y, batch=8, epochs=None):
  def input_fn():
    epoch = 0
    while epochs is None or epoch < epochs:
      for i in range(0, len(x), batch):
        yield x[i:i + batch], y[i:i + batch]
      epoch += 1
  return input_fn


@pytest.mark.parametrize("source", ["numpy_input_fn", "generator"])
def test_bare_features_train_alike_in_loops_of_steps(source, tmp_path):
  x, y = _xy()
  results = []
  for steps_per_loop in (1, 3):
    est = estlab.Estimator(_dense_model_fn, tmp_path / str(steps_per_loop),
                           config=quiet(steps_per_loop=steps_per_loop))
    input_fn = (estlab.inputs.numpy_input_fn(x, y, batch_size=8,
                                             num_epochs=None, shuffle=False)
                if source == "numpy_input_fn" else _generator_fn(x, y))
    est.train(input_fn, steps=7)  # two loops of 3, then one step
    results.append({n: est.get_variable_value(n)
                    for n in est.get_variable_names()})
    assert est.evaluate(input_fn, steps=1)["global_step"] == 7
  for name, value in results[0].items():
    np.testing.assert_allclose(results[1][name], value, rtol=1e-5, atol=1e-7)


def test_bare_features_with_a_short_last_batch_evaluate_and_predict(tmp_path):
  x, y = _xy(20)
  est = estlab.Estimator(_dense_model_fn, tmp_path, config=quiet())
  est.train(_generator_fn(x, y), steps=5)
  metrics = est.evaluate(_generator_fn(x, y, batch=8, epochs=1))  # 8, 8, 4
  predictions = np.array(list(est.predict(lambda: iter(
      [x[:8], x[8:16], x[16:]]))))  # features alone, bare
  assert predictions.shape == (20,)
  np.testing.assert_allclose(metrics["mse"], np.mean((predictions - y) ** 2),
                             rtol=1e-5)
  whole = est.evaluate(lambda: (x, y))  # one batch of all rows
  np.testing.assert_allclose(whole["mse"], metrics["mse"], rtol=1e-5)


def test_bare_features_with_a_dict_of_labels(tmp_path):
  x, y = _xy()

  def model_fn(features, labels, mode):
    out = nn.Dense(2)(features)
    loss = (jnp.mean((out[:, 0] - labels["first"]) ** 2) +
            jnp.mean((out[:, 1] - labels["second"]) ** 2))
    return estlab.EstimatorSpec(mode, loss=loss, predictions=out,
                                train_op=optax.sgd(0.05))
  est = estlab.Estimator(model_fn, tmp_path, config=quiet())
  labels = {"first": y, "second": -y}
  est.train(estlab.inputs.numpy_input_fn(x, labels, batch_size=8,
                                         num_epochs=None, shuffle=True,
                                         seed=0), steps=3)
  first = est.evaluate(lambda: (x, labels))["loss"]
  est.train(lambda: (x, labels), steps=30)
  assert est.evaluate(lambda: (x, labels))["loss"] < first


@pytest.mark.parametrize("input_fn", [
    lambda x, y: estlab.inputs.numpy_input_fn(x, y, batch_size=8,
                                              shuffle=False),
    lambda x, y: _generator_fn(x, y, epochs=1),
    lambda x, y: (lambda: (x, y)),
], ids=["numpy_input_fn", "generator", "one_batch"])
def test_a_premade_estimator_given_one_array_says_how_to_wrap_it(input_fn,
                                                                  tmp_path):
  x, y = _xy()
  est = estlab.LinearRegressor(
      [estlab.feature_column.numeric_column("x", shape=(3,))],
      model_dir=tmp_path, config=quiet())
  with pytest.raises(TypeError) as info:
    est.train(input_fn(x, y), steps=2)
  message = str(info.value)
  assert "LinearRegressor" in message and "ndarray of shape (" in message
  assert "{'x': array}" in message
  assert "numeric_column('x', shape=(3,))" in message
  # The fix works.
  est.train(estlab.inputs.numpy_input_fn({"x": x}, y, batch_size=8,
                                         shuffle=False), steps=2)
  with pytest.raises(TypeError, match="numeric_column"):
    list(est.predict(lambda: x))


# (The model_fn's nn.Dense given a dict: JAX warns before its error.)
@pytest.mark.filterwarnings("ignore:shape requires ndarray:DeprecationWarning")
def test_exporting_a_model_fn_over_one_array_fails_clearly(tmp_path):
  x, y = _xy()
  est = estlab.Estimator(_plain_dense_model_fn, tmp_path, config=quiet())
  est.train(lambda: (x, y), steps=2)

  def receiver_fn():
    return estlab.export.ServingInputReceiver(
        {"x": jax.ShapeDtypeStruct((8, 3), jnp.float32)})
  with pytest.raises(ValueError, match="takes features as one array.*"
                     "TensorServingInputReceiver") as info:
    est.export_saved_model(tempfile.mkdtemp(dir=tmp_path), receiver_fn)
  assert "['x']" in str(info.value)

  def tensor_receiver_fn():  # the fix the error names: the array given bare
    return estlab.export.TensorServingInputReceiver(
        jax.ShapeDtypeStruct((8, 3), jnp.float32), {"x": None})
  path = est.export_saved_model(tmp_path / "export", tensor_receiver_fn)
  served = estlab.export.load(path).signatures["serving_default"](
      {"x": x[:8]})
  expected = np.array(list(est.predict(lambda: x[:8])))
  np.testing.assert_allclose(np.asarray(served["output"]), expected,
                             rtol=1e-5)
