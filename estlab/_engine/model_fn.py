"""The model_fn in a Flax module scope: what every compiled step applies.

The model_fn runs inside a Flax module's ``@nn.compact`` ``__call__``, so
linen modules called in it (``nn.Dense(5)(x)``) create their parameters on
first use and reuse them after, as TF variables did.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from flax import errors as flax_errors
import flax.linen as nn
import jax
import jax.numpy as jnp

from estlab.data._packing import unpacked
from estlab.spec import VALID_ROWS_KEY, EstimatorSpec, ModeKeys

__all__ = ["ModelFnModule"]


class ModelFnModule(nn.Module):
  """Runs ``call(features, labels, mode)`` in a Flax module scope."""

  call: Callable[..., EstimatorSpec]
  mode: str

  @nn.compact
  def __call__(self, features, labels, valid=None):
    features, labels = unpacked(features, labels)
    if valid is not None:  # a padded EVAL batch: mark its real rows
      if not isinstance(features, Mapping):
        raise TypeError(
            f"This estimator pads a short last evaluation batch and marks its "
            f"real rows with a feature {VALID_ROWS_KEY!r}, so its features "
            f"must be a dict; got {type(features).__name__} {features!r:.200}."
            " Yield features as a dict, e.g. ({'x': x}, y).")
      rows = jax.tree.leaves(features)[0].shape[0]
      features = {**features, VALID_ROWS_KEY: jnp.arange(rows) < valid}
    try:
      return self.call(features, labels, self.mode)
    except flax_errors.InvalidRngError as e:
      if self.mode == ModeKeys.TRAIN:
        raise
      raise ValueError(
          f"The model_fn asked for randomness in {self.mode!r} mode ({e}). "
          "estlab gives a 'dropout' rng in TRAIN mode only: make dropout "
          "deterministic otherwise, e.g. nn.Dropout(rate, deterministic="
          "mode != estlab.ModeKeys.TRAIN).") from e
