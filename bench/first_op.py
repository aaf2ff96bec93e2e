"""What a process's first accelerator operations cost, as JSON lines.

On a GPU the first host-to-device copy (or compile) waits while XLA
preallocates 75% of the GPU's memory: ~1.9 s for ~105 GB on an H200, before
any estlab work. Each setting runs in a fresh process; compare, e.g.:

  python bench/first_op.py                      # JAX's defaults
  XLA_PYTHON_CLIENT_PREALLOCATE=false python bench/first_op.py
  XLA_PYTHON_CLIENT_MEM_FRACTION=0.05 python bench/first_op.py
"""
from __future__ import annotations

import json
import os
import time

import numpy as np


def main() -> None:
  t0 = time.perf_counter()
  import jax  # pylint: disable=g-import-not-at-top
  t1 = time.perf_counter()
  devices = jax.devices()
  t2 = time.perf_counter()
  jax.device_put(np.ones((256, 12), np.float32)).block_until_ready()
  t3 = time.perf_counter()
  jax.jit(lambda a: a * 2 + 1)(np.ones(3, np.float32)).block_until_ready()
  t4 = time.perf_counter()
  env = {k: v for k, v in sorted(os.environ.items())
         if k.startswith(("XLA_PYTHON_CLIENT", "XLA_FLAGS", "CUDA_MODULE"))}
  print(json.dumps({"bench": "first_op", "device": str(devices[0]),
                    "jax": jax.__version__, "env": env,
                    "import_jax_s": round(t1 - t0, 3),
                    "devices_s": round(t2 - t1, 3),
                    "first_put_s": round(t3 - t2, 3),
                    "first_jit_s": round(t4 - t3, 3)}))


if __name__ == "__main__":
  main()
