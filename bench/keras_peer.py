"""The census DNN in Keras 3 on JAX, on pre-encoded ids; one JSON line.

The peer of issue #6's "Keras on pre-encoded data" target: the same table,
encoded once by ``handwritten.load`` (numpy/pandas only), the same network as
the DNN of ``handwritten.py`` and ``census.py`` (embeddings 8/8/16, one-hot
workclass and relationship, 4 normalised numerics -> 128 -> 64 -> 1), Adagrad
(``--learning-rate``, default 0.001 as estlab and TF 2; initial accumulator 0.1), sigmoid
cross-entropy. Runs in its own venv
(no estlab there): ``pip install keras "jax==0.10.2" pandas numpy``.

Usage:
  KERAS_BACKEND=jax python bench/keras_peer.py [--rows N] [--steps N]
      [--batch N] [--steps-per-loop N] [--learning-rate R]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras  # noqa: E402  pylint: disable=g-import-not-at-top
import numpy as np  # noqa: E402  pylint: disable=g-import-not-at-top

import census_data as cd  # noqa: E402  pylint: disable=g-import-not-at-top
import handwritten as hw  # noqa: E402  pylint: disable=g-import-not-at-top

EMBEDDED = {"occupation": 8, "education": 8, "zipcode": 16}
ONE_HOT = ["workclass", "relationship"]


def build(steps_per_loop: int, learning_rate: float = 0.001) -> keras.Model:
  """The functional DNN, compiled with Adagrad and an AUC metric."""
  inputs = {"numeric": keras.Input([len(cd.NUMERIC)], name="numeric")}
  parts = [inputs["numeric"]]
  for name, dim in EMBEDDED.items():
    inputs[name] = keras.Input([], dtype="int32", name=name)
    parts.append(keras.layers.Embedding(hw.SIZES[name], dim)(inputs[name]))
  for name in ONE_HOT:
    inputs[name] = keras.Input([], dtype="int32", name=name)
    parts.append(keras.ops.one_hot(inputs[name], hw.SIZES[name]))
  x = keras.layers.Concatenate()(parts)
  x = keras.layers.Dense(128, activation="relu")(x)
  x = keras.layers.Dense(64, activation="relu")(x)
  model = keras.Model(inputs, keras.layers.Dense(1)(x)[:, 0])
  model.compile(
      optimizer=keras.optimizers.Adagrad(
          learning_rate, initial_accumulator_value=0.1),
      loss=keras.losses.BinaryCrossentropy(from_logits=True),
      metrics=[keras.metrics.BinaryAccuracy(threshold=0.0),
               keras.metrics.AUC(from_logits=True)],
      steps_per_execution=steps_per_loop)
  return model


def features(data: dict) -> dict:
  return {k: data[k] for k in ["numeric", *EMBEDDED, *ONE_HOT]}


def fit_steps(model: keras.Model, data: dict, steps: int, batch: int,
              steps_per_loop: int) -> None:
  """``model.fit`` for exactly ``steps`` steps, shuffled batches of ``batch``.

  Keras stops an epoch when the arrays run out, so the steps are split into
  equal epochs of at most one pass each (a multiple of ``steps_per_loop``
  steps where one fits, so no shorter executions compile).
  """
  fits = [d for d in range(1, steps + 1)
          if steps % d == 0 and d <= len(data["label"]) // batch]
  per_epoch = max([d for d in fits if d % steps_per_loop == 0] or fits)
  model.fit(features(data), data["label"], batch_size=batch,
            epochs=steps // per_epoch, steps_per_epoch=per_epoch,
            shuffle=True, verbose=0)


def run(rows: int, steps: int, batch: int, steps_per_loop: int,
        learning_rate: float = 0.001) -> dict:
  """Warm-up fit (20 steps), then timed fit, evaluate and predict."""
  keras.utils.set_random_seed(0)
  train, evaluation = hw.load(rows)
  t0 = time.perf_counter()
  model = build(steps_per_loop, learning_rate)
  fit_steps(model, train, 20, batch, steps_per_loop)
  t_first = time.perf_counter() - t0
  t0 = time.perf_counter(); fit_steps(model, train, steps, batch, steps_per_loop)
  t_train = time.perf_counter() - t0
  t0 = time.perf_counter()
  metrics = model.evaluate(features(evaluation), evaluation["label"],
                           batch_size=batch, verbose=0, return_dict=True)
  t_eval = time.perf_counter() - t0
  t0 = time.perf_counter()
  scores = model.predict(features(evaluation), batch_size=batch, verbose=0)
  t_pred = time.perf_counter() - t0
  n_eval = len(evaluation["label"])
  return {"framework": f"keras {keras.__version__} (jax)", "model": "dnn",
          "batch": batch, "steps": steps, "rows": rows,
          "steps_per_loop": steps_per_loop,
          "optimizer": f"adagrad({learning_rate:g}, initial_accumulator_value=0.1)",
          "first_train_call_s": round(t_first, 2),
          "train_examples_per_s": round(steps * batch / t_train),
          "eval_examples_per_s": round(n_eval / t_eval),
          "predict_examples_per_s": round(n_eval / t_pred),
          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
          "accuracy": round(float(metrics["binary_accuracy"]), 4),
          "auc": round(float(metrics["auc"]), 4),
          "auc_exact": round(hw.auc(evaluation["label"], np.ravel(scores)), 4)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rows", type=int, default=100_000)
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--steps-per-loop", type=int, default=1,
                      help="Keras' steps_per_execution")
  parser.add_argument("--learning-rate", type=float, default=0.001,
                      help="Adagrad's rate")
  args = parser.parse_args()
  print(json.dumps(run(args.rows, args.steps, args.batch, args.steps_per_loop,
                       args.learning_rate)), flush=True)


if __name__ == "__main__":
  main()
