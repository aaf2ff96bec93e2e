"""The census workload on estlab premade estimators; one JSON line per run.

Same rows, columns, steps and batch as ``tf_estimator_peer.py`` (the
tf.estimator 2.15 peer): the raw DataFrame goes in, feature columns encode it.
Optional peers, each run in a subprocess that prints one JSON line: the
tf.estimator peer, Keras 3 on pre-encoded ids (``keras_peer.py``, DNN only)
and the hand-written JAX loop (``handwritten.py``); each adds a ratio line.

Usage:
  python bench/census.py [--model linear|dnn|combined] [--rows N]
      [--steps N] [--batch N] [--steps-per-loop N]
      [--peer-python PATH_TO_TF_VENV_PYTHON --peer-script PATH]
      [--keras-python PATH_TO_KERAS_VENV_PYTHON] [--handwritten]
      [--compilation-cache DIR] [--input dataframe|generator|dataset]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import census_data as cd  # noqa: E402  pylint: disable=g-import-not-at-top
import import_time  # noqa: E402  pylint: disable=g-import-not-at-top

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
RATE_KEYS = ("train_examples_per_s", "eval_examples_per_s", "predict_examples_per_s")


def columns(kind: str, train_df):
  import estlab  # pylint: disable=g-import-not-at-top
  fc = estlab.feature_column
  stats = train_df[cd.NUMERIC].agg(["mean", "std"])
  num = [fc.numeric_column(n, normalizer_fn=(lambda m, s: lambda x: (x - m) / s)(
      float(stats[n]["mean"]), float(stats[n]["std"]))) for n in cd.NUMERIC]
  cat = {n: fc.categorical_column_with_vocabulary_list(n, v)
         for n, v in cd.CATEGORICAL.items()}
  zipc = fc.categorical_column_with_hash_bucket(cd.HASHED, 1000)
  linear = num + [fc.bucketized_column(fc.numeric_column("age"),
                                       [25, 30, 35, 40, 45, 50, 55, 60, 65])]
  linear += list(cat.values()) + [zipc, fc.crossed_column(["education", "occupation"], 1000)]
  dnn = num + [fc.embedding_column(cat["occupation"], 8),
               fc.embedding_column(cat["education"], 8),
               fc.indicator_column(cat["workclass"]),
               fc.indicator_column(cat["relationship"]),
               fc.embedding_column(zipc, 16)]
  return linear if kind == "linear" else dnn if kind == "dnn" else (linear, dnn)


def _FirstStepDone(estlab):  # pylint: disable=invalid-name
  """A hook noting when the first step's loss is on the host (step done)."""
  class FirstStepDone(estlab.SessionRunHook):
    at = None

    def after_run(self, run_context, run_values):
      if self.at is None:
        float(run_values.results["loss"])  # waits for the step
        self.at = time.perf_counter()
  return FirstStepDone()


def _Steady(estlab, last_step):  # pylint: disable=invalid-name
  """A hook timing the steady state of a train call: from the first call's
  dispatch to the last step done (without the call's setup and its final
  checkpoint). Only the last call waits for its step."""
  class Steady(estlab.SessionRunHook):
    first = first_step = done = None

    def after_run(self, run_context, run_values):
      if self.first is None:
        self.first, self.first_step = time.perf_counter(), run_context.global_step
      if run_context.global_step >= last_step:
        float(run_values.results["loss"])  # waits for the last step
        self.done = time.perf_counter()

    def examples_per_s(self, batch):
      return (last_step - self.first_step) * batch / (self.done - self.first)
  return Steady()


def generator_input_fn(df, keys: list, batch: int, shuffle: bool):
  """Raw batches from a Python generator, as a tf.data pipeline's
  ``as_numpy_iterator`` gives them (the peer's input_fn): every batch is
  encoded on the host as it comes, where a DataFrame is encoded once."""
  columns = {k: df[k].to_numpy() for k in keys}
  labels = df[cd.LABEL].to_numpy()

  def input_fn():
    if not shuffle:  # one pass; the last batch is short
      for start in range(0, len(labels), batch):
        rows = slice(start, start + batch)
        yield {k: v[rows] for k, v in columns.items()}, labels[rows]
      return
    # Shuffled epochs run into each other, full batches only, as the peer's
    # ``shuffle().repeat().batch()`` (a short batch at each epoch's end would
    # compile the step once more for its shape).
    rng = np.random.default_rng(0)
    order = np.empty(0, np.int64)
    while True:
      while len(order) < batch:
        order = np.concatenate([order, rng.permutation(len(labels))])
      rows, order = order[:batch], order[batch:]
      yield {k: v[rows] for k, v in columns.items()}, labels[rows]
  return input_fn


def dataset_input_fn(df, keys: list, batch: int, shuffle: bool):
  """``estlab.data.Dataset.from_tensor_slices((dict(df), y))`` built in the
  input_fn, as a tf.data tutorial writes it: shuffled, repeated and batched
  for training, batched once for evaluation. Planned as index batches over
  the DataFrame's columns, so it is encoded once per call."""
  from estlab.data import Dataset  # pylint: disable=g-import-not-at-top
  features, labels = df[keys], df[cd.LABEL]

  def input_fn():
    ds = Dataset.from_tensor_slices((dict(features), labels))
    if shuffle:
      return ds.shuffle(10000, seed=0).repeat().batch(batch)
    return ds.batch(batch)
  return input_fn


def run_estlab(model: str, rows: int, steps: int, batch: int,
               steps_per_loop: int, compilation_cache: str | None = None,
               source: str = "dataframe") -> dict:
  # `import estlab` is lazy: time it, and the jax-pulling first use, afresh.
  import_s = import_time.time_import(import_time.STATEMENTS["import_s"])
  import_est_s = import_time.time_import(
      import_time.STATEMENTS["import_with_estimator_s"])
  import estlab  # pylint: disable=g-import-not-at-top
  # Import the engine now (timed above), as the peer imports TF before its
  # clock starts: first_*_s time construction and training only.
  estlab.Estimator, estlab.LinearClassifier  # pylint: disable=pointless-statement
  if compilation_cache:  # JAX's own persistent cache: warm after a first run
    import jax  # pylint: disable=g-import-not-at-top
    jax.config.update("jax_compilation_cache_dir", compilation_cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
  train_df, eval_df = cd.make(rows, seed=0), cd.make(20000, seed=1)
  feature_keys = cd.NUMERIC + list(cd.CATEGORICAL) + [cd.HASHED]
  config = estlab.RunConfig(save_checkpoints_steps=10**9, log_step_count_steps=10**9,
                            save_summary_steps=100, progress_bar=False,
                            steps_per_loop=steps_per_loop, tf_random_seed=0)
  t0 = time.perf_counter()
  if model == "linear":
    est = estlab.LinearClassifier(columns("linear", train_df), config=config)
  elif model == "dnn":
    est = estlab.DNNClassifier([128, 64], columns("dnn", train_df), config=config)
  else:
    lin, dnn = columns("combined", train_df)
    est = estlab.DNNLinearCombinedClassifier(
        linear_feature_columns=lin, dnn_feature_columns=dnn,
        dnn_hidden_units=[128, 64], config=config)
  if source == "dataframe":
    train_fn = estlab.inputs.pandas_input_fn(
        train_df[feature_keys], train_df[cd.LABEL], batch_size=batch,
        num_epochs=None, shuffle=True, seed=0)
    eval_fn = estlab.inputs.pandas_input_fn(
        eval_df[feature_keys], eval_df[cd.LABEL], batch_size=batch, shuffle=False)
  elif source == "dataset":
    train_fn = dataset_input_fn(train_df, feature_keys, batch, shuffle=True)
    eval_fn = dataset_input_fn(eval_df, feature_keys, batch, shuffle=False)
  else:
    train_fn = generator_input_fn(train_df, feature_keys, batch, shuffle=True)
    eval_fn = generator_input_fn(eval_df, feature_keys, batch, shuffle=False)
  first_step = _FirstStepDone(estlab)
  # The warm-up call compiles what the timed call runs: 20 single steps (as
  # the peer), or one loop of steps_per_loop steps.
  warm_up = 20 if steps_per_loop == 1 else steps_per_loop
  est.train(train_fn, steps=warm_up, hooks=[first_step])
  t_first = time.perf_counter() - t0
  t_first_step = first_step.at - t0
  t_all = time.perf_counter()
  steady = _Steady(estlab, warm_up + steps)
  t0 = time.perf_counter()
  est.train(train_fn, steps=steps, hooks=[steady])
  t_train = time.perf_counter() - t0
  t0 = time.perf_counter(); metrics = est.evaluate(eval_fn); t_eval = time.perf_counter() - t0
  t0 = time.perf_counter(); n = sum(1 for _ in est.predict(eval_fn)); t_pred = time.perf_counter() - t0
  t_all = time.perf_counter() - t_all
  return {"framework": f"estlab {estlab.__version__}", "model": model,
          "input": source, "batch": batch,
          "steps": steps, "rows": rows, "steps_per_loop": steps_per_loop,
          "compilation_cache": bool(compilation_cache),
          "xla_flags": os.environ.get("XLA_FLAGS", ""),
          "gpu_preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", ""),
          "import_s": round(import_s, 3),
          "import_with_estimator_s": round(import_est_s, 2),
          "first_step_s": round(t_first_step, 2),
          "train_eval_predict_s": round(t_all, 2),
          "first_train_call_s": round(t_first, 2),
          "train_examples_per_s": round(steps * batch / t_train),
          "train_steady_examples_per_s": round(steady.examples_per_s(batch)),
          "eval_examples_per_s": round(len(eval_df) / t_eval),
          "predict_examples_per_s": round(n / t_pred),
          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
          "accuracy": round(float(metrics["accuracy"]), 4),
          "auc": round(float(metrics["auc"]), 4)}


def run_json(cmd: list[str], env: dict | None = None) -> dict:
  """Runs ``cmd``; returns the JSON of its last stdout line (stderr on failure)."""
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600,
                       env=dict(os.environ, **(env or {})))
  if out.returncode:
    raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def ratio_line(name: str, ours: dict, peer: dict, model: str) -> str:
  """``{"ratio_estlab_over_<name>": {rate: ours/peer, auc_difference}}``."""
  # The hand-written loop is the ceiling for training only.
  keys = RATE_KEYS[:1] if name == "handwritten" else RATE_KEYS
  ratios = {k: round(ours[k] / peer[k], 2) for k in keys}
  if name == "handwritten":  # its loop times calls only: so does "steady"
    ratios["train_steady_examples_per_s"] = round(
        ours["train_steady_examples_per_s"] / peer["train_examples_per_s"], 2)
  ratios["auc_difference"] = round(ours["auc"] - peer["auc"], 4)
  return json.dumps({f"ratio_estlab_over_{name}": ratios, "model": model})


def peers(args: argparse.Namespace) -> dict[str, list[str]]:
  """The peer commands the flags ask for, by ratio name."""
  sizes = [str(args.rows), str(args.steps), str(args.batch)]
  flags = ["--rows", sizes[0], "--steps", sizes[1], "--batch", sizes[2],
           "--steps-per-loop", str(args.steps_per_loop)]
  cmds = {}
  if args.peer_python and args.model != "combined":
    cmds["peer"] = [args.peer_python, args.peer_script, args.model, *sizes]
  if args.keras_python and args.model == "dnn":
    cmds["keras"] = [args.keras_python, os.path.join(BENCH_DIR, "keras_peer.py"),
                     *flags]
  if args.handwritten and args.model != "combined":
    cmds["handwritten"] = [sys.executable, os.path.join(BENCH_DIR, "handwritten.py"),
                           "--model", args.model, *flags]
  return cmds


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="linear", choices=["linear", "dnn", "combined"])
  parser.add_argument("--rows", type=int, default=100_000)
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--steps-per-loop", type=int, default=1)
  parser.add_argument("--peer-python", default=None,
                      help="python of a venv with tensorflow-cpu==2.15.1")
  parser.add_argument("--peer-script", default=None,
                      help="path to tf_estimator_peer.py")
  parser.add_argument("--keras-python", default=None,
                      help="python of a venv with keras 3 and jax (--model dnn)")
  parser.add_argument("--compilation-cache", default=None, metavar="DIR",
                      help="use JAX's persistent compilation cache in DIR "
                      "(run twice: the second run's first call is warm)")
  parser.add_argument("--input", default="dataframe",
                      choices=["dataframe", "generator", "dataset"],
                      help="estlab's input_fn: pandas_input_fn on the DataFrame "
                      "(encoded once), a generator of raw batches (encoded "
                      "batch by batch, as the peer's tf.data input_fn), or "
                      "estlab.data.Dataset.from_tensor_slices((dict(df), y))"
                      ".shuffle(10000).repeat().batch(256) built in the "
                      "input_fn (index batches over the columns)")
  parser.add_argument("--handwritten", action="store_true",
                      help="also run the hand-written JAX loop (handwritten.py)")
  args = parser.parse_args()
  ours = run_estlab(args.model, args.rows, args.steps, args.batch,
                    args.steps_per_loop, args.compilation_cache, args.input)
  print(json.dumps(ours), flush=True)
  for name, cmd in peers(args).items():
    env = {"PYTHONPATH": BENCH_DIR} if name == "peer" else {"KERAS_BACKEND": "jax"}
    peer = run_json(cmd, env)
    print(json.dumps(peer), flush=True)
    print(ratio_line(name, ours, peer, args.model), flush=True)


if __name__ == "__main__":
  main()
