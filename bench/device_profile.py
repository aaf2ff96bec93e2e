"""Accelerator time per training step: estlab against the hand-written loop.

Runs the census model through estlab (raw DataFrame in) and through
``handwritten.py``'s loop, each for ``10 * steps_per_loop`` steps under
``jax.profiler.trace``, and prints one JSON line per run and accelerator:
wall time per step, kernels (events) per step, the time the device was busy
per step, and the most expensive kernels. Equal busy time and unequal wall
time means the gap is on the host (feeding, bookkeeping, the checkpoint at
the end of ``train``), not in the compiled step. On a CPU-only machine only
the wall lines are printed (XLA:CPU has no device timeline).

On a GPU, XLA's command buffers (CUDA graphs) are limited here to fusions
and library calls: with its default set, which also records ``while`` loops
into graphs, the Linear model's ``steps_per_loop`` loop traced under the
profiler failed with CUDA_ERROR_LAUNCH_FAILED (H100, jax 0.11.2, 2026-11-26;
the same loop ran untraced, and traced with command buffers off or without
WHILE/CONDITIONAL; busy time per step 32.1-32.6 us either way). Set
``--xla_gpu_enable_command_buffer`` in XLA_FLAGS to choose otherwise.

Usage: python bench/device_profile.py [--model dnn|linear] [--rows N]
           [--batch N] [--steps-per-loop N]
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import sys
import tempfile
import time

if "xla_gpu_enable_command_buffer" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (
      os.environ.get("XLA_FLAGS", "") +
      " --xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN")
import jax  # noqa: E402  (after XLA_FLAGS)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import census  # noqa: E402  pylint: disable=g-import-not-at-top
import census_data as cd  # noqa: E402  pylint: disable=g-import-not-at-top
import handwritten as hw  # noqa: E402  pylint: disable=g-import-not-at-top


def device_lines(tag: str, trace_dir: str, wall_s: float, steps: int) -> list[dict]:
  """Per-step summaries of a ``jax.profiler`` trace's device timelines."""
  lines = [{"run": tag, "wall_us_per_step": round(wall_s / steps * 1e6, 1)}]
  files = glob.glob(os.path.join(trace_dir, "plugins/profile/*/*.trace.json.gz"))
  if not files:
    return lines
  with gzip.open(files[0]) as f:
    events = json.load(f)
  events = events["traceEvents"] if isinstance(events, dict) else events
  names = {e["pid"]: e["args"]["name"] for e in events
           if e.get("ph") == "M" and e.get("name") == "process_name"}
  busy, count = collections.Counter(), collections.Counter()
  kernels = collections.defaultdict(collections.Counter)
  for e in events:
    device = names.get(e.get("pid"), "")
    if e.get("ph") == "X" and device.startswith("/device:"):
      busy[device] += e.get("dur", 0)
      count[device] += 1
      kernels[device][e["name"]] += e.get("dur", 0)
  for device in busy:
    lines.append({"run": tag, "device": device,
                  "events_per_step": round(count[device] / steps, 1),
                  "busy_us_per_step": round(busy[device] / steps, 1),
                  "top_us_per_step": [[k[:60], round(v / steps, 1)]
                                      for k, v in kernels[device].most_common(8)]})
  return lines


def profile_estlab(model: str, rows: int, batch: int, spl: int) -> list[dict]:
  import estlab  # pylint: disable=g-import-not-at-top
  df = cd.make(rows, seed=0)
  keys = cd.NUMERIC + list(cd.CATEGORICAL) + [cd.HASHED]
  config = estlab.RunConfig(save_checkpoints_steps=10**9, log_step_count_steps=10**9,
                            save_summary_steps=100, progress_bar=False,
                            steps_per_loop=spl, tf_random_seed=0)
  cols = census.columns(model, df)
  est = (estlab.LinearClassifier(cols, config=config) if model == "linear"
         else estlab.DNNClassifier([128, 64], cols, config=config))
  input_fn = estlab.inputs.pandas_input_fn(df[keys], df[cd.LABEL], batch_size=batch,
                                           num_epochs=None, shuffle=True, seed=0)
  est.train(input_fn, steps=2 * spl)  # compiles; encodes the table
  steps = 10 * spl
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d, create_perfetto_trace=True):
      t0 = time.perf_counter()
      est.train(input_fn, steps=steps)
      wall = time.perf_counter() - t0
    return device_lines(f"estlab {model} spl={spl}", d, wall, steps)


def profile_handwritten(model: str, rows: int, batch: int, spl: int) -> list[dict]:
  train, _ = hw.load(rows)
  linear = model == "linear"
  params, logits, opt, _ = hw.linear_model() if linear else hw.dnn_model()
  train = hw.pack(train, hw.LINEAR_IDS if linear else hw.DNN_IDS, offset=linear)
  call = hw.make_train_call(logits, opt, spl)
  batches = hw.host_batches(train, batch, spl)
  state = (params, opt.init(params))
  for _ in range(2):
    state, _ = call(state, next(batches))
  jax.block_until_ready(state)
  steps = 10 * spl
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d, create_perfetto_trace=True):
      t0 = time.perf_counter()
      for _ in range(10):
        state, _ = call(state, next(batches))
      jax.block_until_ready(state)
      wall = time.perf_counter() - t0
    return device_lines(f"handwritten {model} spl={spl}", d, wall, steps)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="dnn", choices=["linear", "dnn"])
  parser.add_argument("--rows", type=int, default=200_000)
  parser.add_argument("--batch", type=int, default=4096)
  parser.add_argument("--steps-per-loop", type=int, default=50)
  args = parser.parse_args()
  for profile in (profile_estlab, profile_handwritten):
    for line in profile(args.model, args.rows, args.batch, args.steps_per_loop):
      print(json.dumps(line), flush=True)


if __name__ == "__main__":
  main()
