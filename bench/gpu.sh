#!/usr/bin/env bash
# The GPU part of issue #6: the DNN at batch 4096 through estlab (raw
# DataFrame in) and the hand-written JAX loop (pre-encoded ids), same
# machine, same process start-up. Prints JSON lines (census.py's).
# Also runs an export made on this machine's JAX with its CUDA lowering,
# partial_loops.py (calls with a tail at steps_per_loop 50), first_op.py (a
# process's first GPU operation), prefetch.py
# (generator input: a prefetch thread vs inline) and device_profile.py
# (GPU busy time per step, estlab vs hand-written).
# Usage: bench/gpu.sh [PYTHON]   (a python with jax[cuda], flax, optax, orbax)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
$PY -c "import jax, json; print(json.dumps({'jax': jax.__version__, 'devices': [str(d) for d in jax.devices()]}))"
for spl in 1 50; do
  $PY bench/census.py --model dnn --rows 1000000 --batch 4096 --steps 500 \
      --steps-per-loop $spl --handwritten
done
for spl in 1 50; do
  $PY bench/census.py --model linear --rows 1000000 --batch 4096 --steps 500 \
      --steps-per-loop $spl --handwritten
done
$PY bench/gpu_export.py
# Calls with a tail (not a multiple of steps_per_loop): no program compiles anew.
for model in dnn linear; do
  $PY bench/partial_loops.py --model $model --rows 1000000 --batch 4096 \
      --steps-per-loop 50 --steps 525
done
# A process's first GPU operation: JAX's memory preallocation (default) vs
# none vs a small fraction (README: preallocating ~105 GB took ~1.9 s).
for r in 1 2; do
  $PY bench/first_op.py
  XLA_PYTHON_CLIENT_PREALLOCATE=false $PY bench/first_op.py
  XLA_PYTHON_CLIENT_MEM_FRACTION=0.05 $PY bench/first_op.py
done
# First step and first train call: JAX's defaults, without preallocation, and
# with XLA's GPU autotuning off too (README: both shortened it for small models).
for r in 1 2; do
  for setting in default noprealloc noprealloc-noautotune; do
    prealloc=true flags=
    [ $setting != default ] && prealloc=false
    [ $setting = noprealloc-noautotune ] && flags=--xla_gpu_autotune_level=0
    XLA_PYTHON_CLIENT_PREALLOCATE=$prealloc XLA_FLAGS=$flags \
        $PY bench/census.py --model dnn --steps 1000
  done
done
# Generator input: the prefetch thread (the accelerator default) vs inline.
for model in dnn linear; do
  $PY bench/prefetch.py --model $model --rounds 3
done
for model in dnn linear; do
  $PY bench/device_profile.py --model $model --steps-per-loop 50
done
