"""Losses the heads share, written for XLA:CPU's cost model.

``sigmoid_cross_entropy`` is TF's ``sigmoid_cross_entropy_with_logits``:
``max(x, 0) - x * z + log1p(exp(-|x|))``, one ``exp`` and one ``log1p`` per
element, and its gradient ``sigmoid(x) - z`` from that same ``exp``.
``optax.sigmoid_binary_cross_entropy`` computes two ``log_sigmoid``s (two of
each, four with the gradient); XLA:CPU does not vectorize them, so on a
linear model's step that was ~12 us of ~40. Written here, not taken from
optax, for that reason; the values agree to float rounding.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["sigmoid_cross_entropy"]


@jax.custom_jvp
def sigmoid_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Elementwise sigmoid cross entropy of ``logits`` against ``labels`` in
  [0, 1] (soft labels allowed), as ``tf.nn.sigmoid_cross_entropy_with_logits``.

  Example:
    >>> float(sigmoid_cross_entropy(jnp.float32(0.0), jnp.float32(1.0)))
    0.6931471824645996
  """
  return _value(logits, labels, jnp.exp(-jnp.abs(logits)))


def _value(x: jax.Array, z: jax.Array, e: jax.Array) -> jax.Array:
  return jnp.maximum(x, 0) - x * z + jnp.log1p(e)


@sigmoid_cross_entropy.defjvp
def _jvp(primals, tangents):
  # The exact gradient, also at logits == 0 (where autodiff of max and abs
  # would take mismatched one-sided slopes): d/dx = sigmoid(x) - z, d/dz = -x.
  x, z = primals
  dx, dz = tangents
  e = jnp.exp(-jnp.abs(x))
  sigmoid = jnp.where(x >= 0, 1.0, e) / (1.0 + e)
  return _value(x, z, e), (sigmoid - z) * dx - x * dz
