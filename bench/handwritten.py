"""The census workload as a hand-written JAX loop: the ceiling of issue #6.

The table is encoded to integer ids once, on the host, with numpy and pandas
(no estlab); the models are pure JAX; the loop is what a careful JAX user
writes: a jitted step that donates its state, host batches taken with
``np.take`` from a per-epoch permutation of the contiguous arrays, and, with
``--steps-per-loop N > 1``, N stacked batches run by ``lax.scan`` in one call.

``encode`` / ``load`` need only numpy and pandas, so ``keras_peer.py`` imports
them from its own venv (which has no optax and no estlab).

Usage:
  python bench/handwritten.py [--model linear|dnn] [--rows N] [--steps N]
      [--batch N] [--steps-per-loop N] [--learning-rate R] [--loss one-exp|optax]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import census_data as cd  # noqa: E402  pylint: disable=g-import-not-at-top

try:  # The Keras peer's venv imports only ``load``; it has no optax.
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
except ImportError:
  jax = jnp = optax = None

HASH_BUCKETS = 1000
CROSS_BUCKETS = 1000
AGE_BOUNDARIES = [25, 30, 35, 40, 45, 50, 55, 60, 65]
EVAL_ROWS = 20_000
# Categorical id columns and their sizes, in the order the models pack them.
SIZES = {**{n: len(v) for n, v in cd.CATEGORICAL.items()},
         "zipcode": HASH_BUCKETS, "age_bucket": len(AGE_BOUNDARIES) + 1,
         "cross": CROSS_BUCKETS}
LINEAR_IDS = list(SIZES)
DNN_IDS = ["occupation", "education", "zipcode", "workclass", "relationship"]


def encode(df: pd.DataFrame, mean: np.ndarray, std: np.ndarray) -> dict:
  """Encodes a census DataFrame to contiguous numpy arrays.

  Args:
    df: a table from ``census_data.make``.
    mean: per-column train mean of ``census_data.NUMERIC``.
    std: per-column train std of ``census_data.NUMERIC``.

  Returns:
    ``{'numeric': float32 [N, 4], 'label': float32 [N], <id column>: int32
    [N]}`` with id columns as in ``SIZES``.
  """
  numeric = (df[cd.NUMERIC].to_numpy(np.float32) - mean) / std
  out = {"numeric": np.ascontiguousarray(numeric, np.float32),
         "label": df[cd.LABEL].to_numpy(np.float32)}
  for name, vocab in cd.CATEGORICAL.items():
    out[name] = pd.Categorical(df[name], categories=vocab).codes.astype(np.int32)
  zips = pd.util.hash_array(df[cd.HASHED].to_numpy(dtype=object))
  out["zipcode"] = (zips % HASH_BUCKETS).astype(np.int32)
  out["age_bucket"] = np.digitize(df["age"].to_numpy(), AGE_BOUNDARIES).astype(np.int32)
  cross = out["education"] * len(cd.OCCUPATION) + out["occupation"]
  out["cross"] = (cross % CROSS_BUCKETS).astype(np.int32)
  return out


def load(rows: int) -> tuple[dict, dict]:
  """Returns encoded (train, eval): ``make(rows, 0)``, ``make(20000, 1)``."""
  train_df, eval_df = cd.make(rows, seed=0), cd.make(EVAL_ROWS, seed=1)
  values = train_df[cd.NUMERIC].to_numpy(np.float64)
  mean = values.mean(0).astype(np.float32)
  std = values.std(0, ddof=1).astype(np.float32)  # pandas' std, as census.py
  return encode(train_df, mean, std), encode(eval_df, mean, std)


def pack(data: dict, names: list[str], offset: bool) -> dict:
  """Keeps numeric and label; stacks ``names`` into one int32 [N, k] 'ids'.

  With ``offset``, column i's ids are shifted by the sizes of the columns
  before it, so one table of ``sum(SIZES)`` rows serves them all.
  """
  ids = np.stack([data[n] for n in names], axis=1)
  if offset:
    ids = ids + np.cumsum([0] + [SIZES[n] for n in names[:-1]], dtype=np.int32)
  return {"numeric": data["numeric"], "ids": np.ascontiguousarray(ids),
          "label": data["label"]}


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
  """Exact ROC AUC by the rank-sum (Mann-Whitney) formula, ties averaged."""
  ranks = pd.Series(scores).rank().to_numpy()
  pos = labels > 0.5
  n_pos, n_neg = int(pos.sum()), int((~pos).sum())
  return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# -- models: (init params, logit fn, optimizer, packed id columns) -----------


def linear_model() -> tuple[dict, Callable, optax.GradientTransformation, str]:
  """One weight table over all id columns (offset ids), numeric weights, bias."""
  from estlab.premade.optimizers import ftrl  # pylint: disable=g-import-not-at-top
  params = {"table": jnp.zeros([sum(SIZES[n] for n in LINEAR_IDS)]),
            "w": jnp.zeros([len(cd.NUMERIC)]), "b": jnp.zeros([])}

  def logits(p, numeric, ids):
    return p["table"][ids].sum(-1) + numeric @ p["w"] + p["b"]
  # tf.estimator's default: min(0.2, 1/sqrt(#feature columns)).
  lr = min(0.2, 1 / math.sqrt(len(cd.NUMERIC) + len(LINEAR_IDS)))
  return params, logits, ftrl(learning_rate=lr), f"ftrl({lr:g})"


def _dense(key: jax.Array, n_in: int, n_out: int) -> dict:
  limit = math.sqrt(6 / (n_in + n_out))  # glorot uniform
  return {"w": jax.random.uniform(key, [n_in, n_out], minval=-limit, maxval=limit),
          "b": jnp.zeros([n_out])}


def dnn_model(learning_rate: float = 0.001
              ) -> tuple[dict, Callable, optax.GradientTransformation, str]:
  """Embeddings (8, 8, 16) + one-hots + numerics -> 128 -> 64 -> 1."""
  dims = {"occupation": 8, "education": 8, "zipcode": 16}
  onehot = DNN_IDS[len(dims):]
  keys = jax.random.split(jax.random.key(0), 6)
  tables = [jax.random.truncated_normal(k, -2, 2, [SIZES[n], d]) / math.sqrt(d)
            for k, (n, d) in zip(keys, dims.items())]
  n_in = len(cd.NUMERIC) + sum(dims.values()) + sum(SIZES[n] for n in onehot)
  params = {"emb": tables, "h1": _dense(keys[3], n_in, 128),
            "h2": _dense(keys[4], 128, 64), "out": _dense(keys[5], 64, 1)}

  def logits(p, numeric, ids):
    parts = [numeric] + [t[ids[:, i]] for i, t in enumerate(p["emb"])]
    parts += [jax.nn.one_hot(ids[:, len(dims) + i], SIZES[n])
              for i, n in enumerate(onehot)]
    x = jnp.concatenate(parts, axis=-1)
    x = jax.nn.relu(x @ p["h1"]["w"] + p["h1"]["b"])
    x = jax.nn.relu(x @ p["h2"]["w"] + p["h2"]["b"])
    return (x @ p["out"]["w"] + p["out"]["b"])[:, 0]
  opt = optax.adagrad(learning_rate, initial_accumulator_value=0.1)
  return (params, logits, opt,
          f"adagrad({learning_rate:g}, initial_accumulator_value=0.1)")


# -- the loop -----------------------------------------------------------------


def sigmoid_loss(name: str) -> Callable:
  """The loop's sigmoid cross entropy: ``'one-exp'`` (default), TF's form with
  one exp and one log1p per example and the exact gradient, as estlab's heads
  compute it (on XLA:CPU optax's two ``log_sigmoid``s cost ~12 us a step);
  ``'optax'``, ``optax.sigmoid_binary_cross_entropy`` (the loop as measured
  before 2026-11-26c)."""
  if name == "optax":
    return optax.sigmoid_binary_cross_entropy
  from estlab.heads._losses import sigmoid_cross_entropy  # pylint: disable=g-import-not-at-top
  return sigmoid_cross_entropy


def make_train_call(logits: Callable, opt: optax.GradientTransformation,
                    steps_per_loop: int, loss: str = "one-exp") -> Callable:
  """Returns jit(state, batch) -> (state, loss); scans when steps_per_loop > 1."""
  cross_entropy = sigmoid_loss(loss)

  def loss_fn(params, batch):
    z = logits(params, batch["numeric"], batch["ids"])
    return cross_entropy(z, batch["label"]).mean()

  def step(state, batch):
    params, opt_state = state
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, opt_state = opt.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  def loop(state, batches):
    state, losses = jax.lax.scan(step, state, batches)
    return state, losses[-1]
  return jax.jit(step if steps_per_loop == 1 else loop, donate_argnums=0)


def host_batches(data: dict, batch: int, steps_per_loop: int,
                 seed: int = 0) -> Iterator[dict]:
  """Yields device batches ([B, ...], or [N, B, ...] stacked) forever.

  Each epoch is a fresh permutation; the last partial batch of an epoch is
  dropped.
  """
  rng = np.random.default_rng(seed)
  rows = len(data["label"])
  perm, pos = rng.permutation(rows), 0
  while True:
    chunks = []
    for _ in range(steps_per_loop):
      if pos + batch > rows:
        perm, pos = rng.permutation(rows), 0
      chunks.append(perm[pos:pos + batch])
      pos += batch
    idx = np.concatenate(chunks)
    shape = [batch] if steps_per_loop == 1 else [steps_per_loop, batch]
    yield jax.device_put({k: np.take(v, idx, axis=0).reshape(shape + list(v.shape[1:]))
                          for k, v in data.items()})


def predict_logits(logits: Callable, params: dict, data: dict,
                   batch: int = 4096) -> np.ndarray:
  """Jitted forward over ``data`` in fixed-size batches (the last padded)."""
  forward = jax.jit(logits)
  n = len(data["label"])
  out = []
  for start in range(0, n, batch):
    numeric, ids = data["numeric"][start:start + batch], data["ids"][start:start + batch]
    pad = batch - len(numeric)
    if pad:
      numeric = np.pad(numeric, [(0, pad), (0, 0)])
      ids = np.pad(ids, [(0, pad), (0, 0)])
    out.append(np.asarray(forward(params, numeric, ids))[:batch - pad])
  return np.concatenate(out)


def run(model: str, rows: int, steps: int, batch: int, steps_per_loop: int,
        learning_rate: float = 0.001, loss_form: str = "one-exp") -> dict:
  """Trains ``steps`` steps after a compiling warm-up call; returns the JSON."""
  if steps % steps_per_loop:
    raise ValueError(f"--steps {steps} must be a multiple of --steps-per-loop "
                     f"{steps_per_loop}.")
  train, evaluation = load(rows)
  linear = model == "linear"
  params, logits, opt, opt_name = (
      linear_model() if linear else dnn_model(learning_rate))
  names = LINEAR_IDS if linear else DNN_IDS
  train, evaluation = (pack(d, names, offset=linear) for d in (train, evaluation))
  call = make_train_call(logits, opt, steps_per_loop, loss_form)
  batches = host_batches(train, batch, steps_per_loop)
  t0 = time.perf_counter()
  state = (params, opt.init(params))
  state, loss = call(state, next(batches))  # compiles; not counted
  jax.block_until_ready(loss)
  t_first = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _ in range(steps // steps_per_loop):
    state, loss = call(state, next(batches))
  jax.block_until_ready(state)
  t_train = time.perf_counter() - t0
  t0 = time.perf_counter()
  scores = predict_logits(logits, state[0], evaluation)
  t_eval = time.perf_counter() - t0
  return {"framework": "handwritten-jax", "model": model, "batch": batch,
          "steps": steps, "rows": rows, "steps_per_loop": steps_per_loop,
          "optimizer": opt_name, "loss": loss_form,
          "first_train_call_s": round(t_first, 2),
          "train_examples_per_s": round(steps * batch / t_train),
          "predict_examples_per_s": round(len(scores) / t_eval),
          "final_loss": round(float(loss), 4),
          "auc": round(auc(evaluation["label"], scores), 4)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="linear", choices=["linear", "dnn"])
  parser.add_argument("--rows", type=int, default=100_000)
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--steps-per-loop", type=int, default=1)
  parser.add_argument("--learning-rate", type=float, default=0.001,
                      help="the DNN's Adagrad rate (the linear model's FTRL "
                      "rate is tf.estimator's default)")
  parser.add_argument("--loss", default="one-exp", choices=["one-exp", "optax"],
                      help="the sigmoid cross entropy's form (see sigmoid_loss)")
  args = parser.parse_args()
  print(json.dumps(run(args.model, args.rows, args.steps, args.batch,
                       args.steps_per_loop, args.learning_rate, args.loss)),
        flush=True)


if __name__ == "__main__":
  main()
