"""``estlab demo``: train, evaluate and checkpoint a penguin classifier.

The data is the Palmer penguins table that the ``palmerpenguins`` package
ships (344 rows; numeric and categorical columns with missing values), so the
demo needs no download. The model is a custom ``model_fn`` with Flax layers
over columns encoded on the host with pandas.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]
LABEL = "species"


def load_data(seed: int = 0):
  """Penguins split 80/20 into encoded ``(train_x, train_y, test_x, test_y, classes)``."""
  try:
    import palmerpenguins  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise SystemExit("estlab demo needs the palmerpenguins package: "
                     "pip install 'estlab[notebook]'") from e
  df = palmerpenguins.load_penguins()
  classes = sorted(df[LABEL].unique())
  order = np.random.default_rng(seed).permutation(len(df))
  cut = int(0.8 * len(df))
  train, test = df.iloc[order[:cut]], df.iloc[order[cut:]]
  stats = train[NUMERIC].agg(["median", "mean", "std"])

  def encode(part):
    numeric = (part[NUMERIC].fillna(stats.loc["median"]) - stats.loc["mean"]) / stats.loc["std"]
    columns = {"numeric": numeric.to_numpy(np.float32)}
    for name in CATEGORICAL:
      vocab = sorted(train[name].dropna().unique())
      values = part[name].astype(object).to_numpy()
      ids = np.array([vocab.index(v) if v in vocab else len(vocab) for v in values])
      columns[name] = np.eye(len(vocab) + 1, dtype=np.float32)[ids]  # +1: missing
    labels = part[LABEL].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int32)
    return np.concatenate([columns[k] for k in ["numeric", *CATEGORICAL]], 1), labels

  train_x, train_y = encode(train)
  test_x, test_y = encode(test)
  return train_x, train_y, test_x, test_y, classes


def model_fn(features, labels, mode, params):
  """An MLP classifier written the tf.estimator way, with Flax layers."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top

  import estlab  # pylint: disable=g-import-not-at-top
  h = features["x"]
  for units in params["hidden_units"]:
    h = nn.relu(nn.Dense(units)(h))
    h = nn.Dropout(0.1, deterministic=mode != estlab.ModeKeys.TRAIN)(h)
  logits = nn.Dense(params["n_classes"])(h)
  class_ids = jnp.argmax(logits, -1)
  predictions = {"class_ids": class_ids, "probabilities": nn.softmax(logits)}
  if mode == estlab.ModeKeys.PREDICT:
    return estlab.EstimatorSpec(mode, predictions=predictions)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  optimizer = optax.inject_hyperparams(optax.adam)(learning_rate=params["learning_rate"])
  return estlab.EstimatorSpec(
      mode, predictions=predictions, loss=loss, train_op=optimizer,
      eval_metric_ops={"accuracy": estlab.metrics.accuracy(labels, class_ids)})


def run(model_dir: str | None = None, steps: int = 600, progress_bar: bool = True,
        print_fn: Any = print) -> dict:
  """Trains and evaluates; returns the evaluation metrics."""
  import estlab  # pylint: disable=g-import-not-at-top
  train_x, train_y, test_x, test_y, classes = load_data()
  model_dir = model_dir or tempfile.mkdtemp(prefix="estlab_demo_")
  print_fn(f"estlab demo: classifying {len(classes)} penguin species "
           f"({', '.join(classes)}) from {len(train_x)} training rows.")
  print_fn(f"model_dir: {os.path.abspath(model_dir)}")
  print_fn(f"TensorBoard: tensorboard --logdir {os.path.abspath(model_dir)}")
  config = estlab.RunConfig(tf_random_seed=0, save_checkpoints_steps=200,
                            save_summary_steps=20, log_step_count_steps=200,
                            progress_bar=progress_bar)
  est = estlab.Estimator(model_fn, model_dir, config=config, params=dict(
      hidden_units=[32, 16], n_classes=len(classes), learning_rate=0.01))
  train_fn = estlab.inputs.numpy_input_fn({"x": train_x}, train_y, batch_size=32,
                                          num_epochs=None, shuffle=True, seed=0)
  eval_fn = estlab.inputs.numpy_input_fn({"x": test_x}, test_y, batch_size=64,
                                         shuffle=False)
  est.train(train_fn, steps=steps)
  metrics = est.evaluate(eval_fn)
  print_fn("checkpoints: " + ", ".join(
      str(s) for s in estlab.checkpoint.Checkpointer(model_dir).all_steps()))
  print_fn("eval: " + ", ".join(f"{k} = {float(v):.4f}" if k != "global_step"
                                else f"{k} = {int(v)}" for k, v in sorted(metrics.items())))
  return metrics
