"""Generator input: a prefetch thread against preparing batches inline.

Builds two estimators in one process, ``RunConfig(prefetch_batches=0)``
(inline) and ``prefetch_batches=2`` (a background thread 2 batches ahead),
warms both up, then trains them in alternating rounds on the census table
streamed as raw batches (``census.generator_input_fn``: every batch is
encoded on the host as it comes). Alternating rounds in one process keep the
VM's minute-to-minute drift out of the comparison. Prints one JSON line per
round and a summary line with each side's median examples/s.

``RunConfig(prefetch_batches=None)``, the default, picks inline on the CPU
and the thread on an accelerator from such runs (README "Performance").

Usage: python bench/prefetch.py [--model linear|dnn] [--batch N]
           [--steps N] [--rounds N] [--rows N]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import census  # noqa: E402  pylint: disable=g-import-not-at-top
import census_data as cd  # noqa: E402  pylint: disable=g-import-not-at-top

SIDES = (0, 2)  # prefetch_batches: inline, a thread 2 ahead


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", choices=["linear", "dnn"], default="linear")
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--steps", type=int, default=1000)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--rows", type=int, default=100_000)
  args = parser.parse_args()
  import estlab  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  df = cd.make(args.rows, seed=0)
  keys = cd.NUMERIC + list(cd.CATEGORICAL) + [cd.HASHED]
  input_fn = census.generator_input_fn(df, keys, args.batch, shuffle=True)
  estimators = {}
  for ahead in SIDES:
    config = estlab.RunConfig(save_checkpoints_steps=10**9,
                              log_step_count_steps=10**9, progress_bar=False,
                              tf_random_seed=0, prefetch_batches=ahead)
    cols = census.columns(args.model, df)
    estimators[ahead] = (
        estlab.LinearClassifier(cols, config=config) if args.model == "linear"
        else estlab.DNNClassifier([128, 64], cols, config=config))
    estimators[ahead].train(input_fn, steps=20)  # compiles
  rates = {ahead: [] for ahead in SIDES}
  for r in range(args.rounds):
    for ahead in SIDES:
      t0 = time.perf_counter()
      estimators[ahead].train(input_fn, steps=args.steps)
      rate = args.batch * args.steps / (time.perf_counter() - t0)
      rates[ahead].append(rate)
      print(json.dumps({"bench": "prefetch", "model": args.model,
                        "batch": args.batch, "round": r,
                        "prefetch_batches": ahead,
                        "train_examples_per_s": round(rate)}), flush=True)
  print(json.dumps({
      "bench": "prefetch_summary", "model": args.model, "batch": args.batch,
      "backend": jax.default_backend(),
      "median_examples_per_s": {f"prefetch_batches={a}": round(
          statistics.median(rates[a])) for a in SIDES},
      "thread_over_inline": round(statistics.median(rates[2]) /
                                  statistics.median(rates[0]), 2)}))


if __name__ == "__main__":
  main()
