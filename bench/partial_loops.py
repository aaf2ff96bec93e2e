"""Train calls whose steps do not fill ``steps_per_loop`` loops; JSON lines.

With ``RunConfig(steps_per_loop=N)`` a call of ``k * N + r`` steps runs ``k``
whole loops and a partial one of ``r`` steps, and a finite input ends in one.
This times, on the census workload (raw DataFrame in), a first call of whole
loops (it compiles), then calls of ``steps`` steps with a tail: the first
such call (a new program to compile, if partial loops needed one) and a
repeat (steady), besides a call of whole loops for reference.

Usage:
  python bench/partial_loops.py [--model linear|dnn] [--steps-per-loop N]
      [--steps N] [--rows N] [--batch N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import census  # noqa: E402  pylint: disable=g-import-not-at-top
import census_data as cd  # noqa: E402  pylint: disable=g-import-not-at-top


def run(model: str, rows: int, batch: int, steps_per_loop: int,
        steps: int) -> dict:
  import estlab  # pylint: disable=g-import-not-at-top
  train_df = cd.make(rows, seed=0)
  keys = cd.NUMERIC + list(cd.CATEGORICAL) + [cd.HASHED]
  config = estlab.RunConfig(save_checkpoints_steps=10**9,
                            log_step_count_steps=10**9, save_summary_steps=100,
                            progress_bar=False, steps_per_loop=steps_per_loop,
                            tf_random_seed=0)
  if model == "linear":
    est = estlab.LinearClassifier(census.columns("linear", train_df),
                                  config=config)
  else:
    est = estlab.DNNClassifier([128, 64], census.columns("dnn", train_df),
                               config=config)
  input_fn = estlab.inputs.pandas_input_fn(
      train_df[keys], train_df[cd.LABEL], batch_size=batch, num_epochs=None,
      shuffle=True, seed=0)

  def timed(n: int) -> float:
    start = time.perf_counter()
    est.train(input_fn, steps=n)
    return round(time.perf_counter() - start, 3)
  whole = steps - steps % steps_per_loop or steps_per_loop
  out = {"framework": f"estlab {estlab.__version__}", "model": model,
         "rows": rows, "batch": batch, "steps_per_loop": steps_per_loop,
         "steps": steps, "first_call_whole_loops_s": timed(steps_per_loop)}
  out["whole_loops_s"] = timed(whole)
  out["with_tail_first_s"] = timed(steps)
  out["with_tail_again_s"] = timed(steps)
  out["whole_loops_steps"] = whole
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="linear", choices=["linear", "dnn"])
  parser.add_argument("--rows", type=int, default=100_000)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--steps-per-loop", type=int, default=100)
  parser.add_argument("--steps", type=int, default=2050)
  args = parser.parse_args()
  print(json.dumps({"bench": "partial_loops", **run(
      args.model, args.rows, args.batch, args.steps_per_loop, args.steps)}),
        flush=True)


if __name__ == "__main__":
  main()
