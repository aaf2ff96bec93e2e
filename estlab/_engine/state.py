"""The training state: one pytree that lives on the device between steps.

Everything the compiled steps read and write is here; configuration stays in
Python objects outside ``jit``.
"""
from __future__ import annotations

from typing import Any

import jax
from flax import struct


class TrainState(struct.PyTreeNode):
  """Device-resident state of an Estimator.

  Attributes:
    step: int32 scalar, the global step (number of applied updates).
    params: the Flax ``'params'`` collection created by the model_fn.
    model_state: the other Flax collections (e.g. ``'batch_stats'``), a dict,
      possibly empty.
    opt_state: the optax state of ``EstimatorSpec.train_op``.
    rng: uint32[2] PRNG key data, split every step for dropout.
    bad_step: int32 scalar; -1, or the first step whose loss was NaN or
      infinite (from then on updates are skipped, so the state stays good).
  """

  step: jax.Array
  params: Any
  model_state: Any
  opt_state: Any
  rng: jax.Array
  bad_step: jax.Array
