"""How estlab's census throughput scales with batch size and table size.

Runs ``census.py`` once per point, each in its own process, one at a time:

* batch 256, 1024, 4096, 8192 on 100k rows, ``max(100, 512000 // batch)``
  steps, so each point trains on about the same number of examples;
* rows 10k, 100k, 1M, 2M at batch 256, 1000 steps;

for the linear and the DNN classifier. Prints each run's JSON line as it
comes, then one ``{"scaling_summary": ...}`` line of train examples/s.

Usage:
  python bench/scaling.py [--models linear,dnn] [--steps-per-loop N] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CENSUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "census.py")
BATCHES = [256, 1024, 4096, 8192]
ROWS = [10_000, 100_000, 1_000_000, 2_000_000]


def points(quick: bool) -> list[tuple[str, int, int, int]]:
  """(axis, rows, batch, steps) of each run; ``quick``: two small ones."""
  if quick:
    return [("batch", 5000, 256, 100), ("batch", 5000, 1024, 100)]
  by_batch = [("batch", 100_000, b, max(100, 512_000 // b)) for b in BATCHES]
  by_rows = [("rows", r, 256, 1000) for r in ROWS]
  return by_batch + by_rows


def run_census(model: str, rows: int, batch: int, steps: int,
               steps_per_loop: int) -> dict:
  """One census.py run; its first JSON line (estlab's)."""
  cmd = [sys.executable, CENSUS, "--model", model, "--rows", str(rows),
         "--batch", str(batch), "--steps", str(steps),
         "--steps-per-loop", str(steps_per_loop)]
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
  if out.returncode:
    raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr}")
  return json.loads(out.stdout.strip().splitlines()[0])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="linear,dnn")
  parser.add_argument("--steps-per-loop", type=int, default=1)
  parser.add_argument("--quick", action="store_true",
                      help="two small points of the linear model (smoke test)")
  args = parser.parse_args()
  models = ["linear"] if args.quick else args.models.split(",")
  summary = {}
  for model in models:
    for axis, rows, batch, steps in points(args.quick):
      result = run_census(model, rows, batch, steps, args.steps_per_loop)
      print(json.dumps(result), flush=True)
      key = batch if axis == "batch" else rows
      summary.setdefault(model, {}).setdefault(f"by_{axis}", {})[key] = {
          "train_examples_per_s": result["train_examples_per_s"],
          "first_train_call_s": result["first_train_call_s"],
          "peak_rss_mb": result["peak_rss_mb"]}
  print(json.dumps({"scaling_summary": summary,
                    "steps_per_loop": args.steps_per_loop}), flush=True)


if __name__ == "__main__":
  main()
