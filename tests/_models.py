"""Small models and inputs shared by the engine tests (import as `_models`)."""
import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax

import estlab


class Net(nn.Module):
  """The seed example's network."""

  @nn.compact
  def __call__(self, x):
    return nn.Dense(5)(x)


def seed_model_fn(features, labels, mode):
  """The seed example's model_fn, unchanged but for the import."""
  del labels
  output = Net()(features["x"])
  loss = jnp.mean(jnp.abs(output - features["y"]))
  return estlab.EstimatorSpec(mode, loss=loss, train_op=optax.adam(0.1),
                              predictions={"output": output})


def toy_dataset():
  """Features only, repeating, batches of 2 (the seed's toy_dataset)."""
  inputs = np.arange(10.0, dtype=np.float32)[:, None]
  labels = inputs * 5.0 + np.arange(5.0, dtype=np.float32)[None, :]

  def batches():
    while True:
      for i in range(0, 10, 2):
        yield {"x": inputs[i:i + 2], "y": labels[i:i + 2]}
  return batches()


def regression_data(n=256, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 3)).astype(np.float32)
  y = (x @ np.array([1.0, -2.0, 0.5], np.float32) + 0.3).astype(np.float32)
  return x, y


def global_batches(rows=64, batch_size=16):
  """``regression_data(rows)`` as a list of ``(x, y)`` batches, in order."""
  x, y = regression_data(rows)
  return [(x[i:i + batch_size], y[i:i + batch_size])
          for i in range(0, rows, batch_size)]


def linear_model_fn(features, labels, mode, params):
  """Linear regression with metrics, summaries and an exposed learning rate."""
  pred = nn.Dense(1, name="linear")(features["x"])[:, 0]
  predictions = {"pred": pred, "double": 2 * pred}
  if mode == estlab.ModeKeys.PREDICT:
    return estlab.EstimatorSpec(mode, predictions=predictions)
  loss = jnp.mean((pred - labels) ** 2)
  opt = optax.inject_hyperparams(optax.sgd)(
      learning_rate=params.get("learning_rate", 0.1))
  return estlab.EstimatorSpec(
      mode, predictions=predictions, loss=loss, train_op=opt,
      eval_metric_ops={
          "mse": estlab.metrics.mean_squared_error(labels, pred),
          "mean_pred": estlab.metrics.mean(pred)},
      summaries={"pred_mean": jnp.mean(pred)})


def batches_input_fn(x, y, batch_size=32, epochs=1):
  """An input_fn over arrays: (features, labels) batches, finite."""
  def input_fn():
    for _ in range(epochs):
      for i in range(0, len(x), batch_size):
        yield {"x": x[i:i + batch_size]}, y[i:i + batch_size]
  return input_fn


def quiet(**kw):
  """A RunConfig for tests: no progress bars, checkpoints only when asked."""
  kw.setdefault("progress_bar", False)
  kw.setdefault("tf_random_seed", 0)
  if "save_checkpoints_secs" not in kw and "save_checkpoints_steps" not in kw:
    kw["save_checkpoints_steps"] = None
    kw["save_checkpoints_secs"] = None
  return estlab.RunConfig(**kw)


def train_with_checkpoints(model_dir):
  """12 steps, a checkpoint every 4 (steps 0, 4, 8, 12: train saves its start
  as tf.estimator), evaluated once at 12.

  Returns ``(estimator, result, eval_input_fn)``.
  """
  x, y = regression_data()
  est = estlab.Estimator(linear_model_fn, model_dir,
                         config=quiet(save_checkpoints_steps=4),
                         params={"learning_rate": 0.1})
  est.train(batches_input_fn(x, y, epochs=10), steps=12)
  return est, est.evaluate(batches_input_fn(x, y)), batches_input_fn(x, y)
