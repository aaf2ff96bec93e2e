"""The census workload on estlab premade estimators; one JSON line per run.

Same rows, columns, steps and batch as ``tf_estimator_peer.py`` (the
tf.estimator 2.15 peer): the raw DataFrame goes in, feature columns encode it.

Usage:
  python bench/census.py [--model linear|dnn|combined] [--rows N]
      [--steps N] [--batch N] [--steps-per-loop N]
      [--peer-python PATH_TO_TF_VENV_PYTHON --peer-script PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import census_data as cd  # noqa: E402  pylint: disable=g-import-not-at-top


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


def run_estlab(model: str, rows: int, steps: int, batch: int,
               steps_per_loop: int) -> dict:
  t_import = time.perf_counter()
  import estlab  # pylint: disable=g-import-not-at-top
  import_s = time.perf_counter() - t_import
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
  train_fn = estlab.inputs.pandas_input_fn(
      train_df[feature_keys], train_df[cd.LABEL], batch_size=batch,
      num_epochs=None, shuffle=True, seed=0)
  eval_fn = estlab.inputs.pandas_input_fn(
      eval_df[feature_keys], eval_df[cd.LABEL], batch_size=batch, shuffle=False)
  est.train(train_fn, steps=20)
  t_first = time.perf_counter() - t0
  t0 = time.perf_counter(); est.train(train_fn, steps=steps); t_train = time.perf_counter() - t0
  t0 = time.perf_counter(); metrics = est.evaluate(eval_fn); t_eval = time.perf_counter() - t0
  t0 = time.perf_counter(); n = sum(1 for _ in est.predict(eval_fn)); t_pred = time.perf_counter() - t0
  return {"framework": f"estlab {estlab.__version__}", "model": model, "batch": batch,
          "steps": steps, "rows": rows, "steps_per_loop": steps_per_loop,
          "import_s": round(import_s, 2), "first_train_call_s": round(t_first, 2),
          "train_examples_per_s": round(steps * batch / t_train),
          "eval_examples_per_s": round(len(eval_df) / t_eval),
          "predict_examples_per_s": round(n / t_pred),
          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
          "accuracy": round(float(metrics["accuracy"]), 4),
          "auc": round(float(metrics["auc"]), 4)}


def run_peer(python: str, script: str, model: str, rows: int, steps: int,
             batch: int) -> dict:
  env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([python, script, model, str(rows), str(steps), str(batch)],
                       capture_output=True, text=True, env=env, timeout=3600,
                       check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


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
  args = parser.parse_args()
  ours = run_estlab(args.model, args.rows, args.steps, args.batch, args.steps_per_loop)
  print(json.dumps(ours), flush=True)
  if args.peer_python and args.model != "combined":
    peer = run_peer(args.peer_python, args.peer_script, args.model, args.rows,
                    args.steps, args.batch)
    print(json.dumps(peer), flush=True)
    ratios = {k: round(ours[k] / peer[k], 2) for k in (
        "train_examples_per_s", "eval_examples_per_s", "predict_examples_per_s")}
    ratios["auc_difference"] = round(ours["auc"] - peer["auc"], 4)
    print(json.dumps({"ratio_estlab_over_peer": ratios, "model": args.model}))


if __name__ == "__main__":
  main()
