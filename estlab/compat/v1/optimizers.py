"""TF 1's optimizer names -> optax, as ``tf.compat.v1.train.*Optimizer``.

TF 1's premades (canned/optimizers.py ``get_optimizer_instance``) build a
``tf.compat.v1.train`` optimizer from a name at the learning rate the
estimator passes; its hyperparameters differ from the Keras ones
``estlab.premade.optimizers`` mirrors:

=========  ================================================================
name       ``tf.compat.v1.train`` defaults (differences from Keras' legacy)
=========  ================================================================
Adagrad    initial_accumulator_value=0.1, no epsilon (Keras: 1e-7)
Adam       epsilon=1e-8 (Keras: 1e-7)
RMSProp    decay=0.9, epsilon=1e-10 inside the sqrt, mean square starting
           at 1.0 (Keras: 1e-7 outside the sqrt, starting at 0.0)
Ftrl, SGD  as Keras' (``estlab.premade.optimizers.get_optimizer``)
=========  ================================================================

Example:
  >>> import jax.numpy as jnp
  >>> opt = get_optimizer('Adagrad', 0.05)
  >>> state = opt.init({'w': jnp.zeros(2)})
  >>> round(float(state.hyperparams['learning_rate']), 6)
  0.05
"""
from __future__ import annotations

from typing import Any

import optax

from estlab.premade import optimizers

__all__ = ["get_optimizer", "OPTIMIZER_NAMES"]

OPTIMIZER_NAMES = optimizers.OPTIMIZER_NAMES


def _v1_transform(name: str, learning_rate: Any) -> optax.GradientTransformation:
  inject = optax.inject_hyperparams
  if name == "Adagrad":
    return optax.flatten(inject(optax.adagrad)(
        learning_rate=learning_rate, initial_accumulator_value=0.1, eps=0.0))
  if name == "Adam":
    return optax.flatten(inject(optax.adam)(
        learning_rate=learning_rate, b1=0.9, b2=0.999, eps=1e-8))
  if name == "RMSProp":
    return optax.flatten(inject(optax.rmsprop)(
        learning_rate=learning_rate, decay=0.9, eps=1e-10, initial_scale=1.0,
        eps_in_sqrt=True, centered=False, momentum=None))
  return optimizers.get_optimizer(name, learning_rate)  # Ftrl, SGD


def get_optimizer(optimizer: Any, learning_rate: float) -> optax.GradientTransformation:
  """``get_optimizer_instance`` of TF 1: a name at ``learning_rate``, or as is.

  Args:
    optimizer: one of ``OPTIMIZER_NAMES`` (cased as TF), an
      ``optax.GradientTransformation`` or a zero-argument callable returning
      one (used as given: ``learning_rate`` applies to names only).
    learning_rate: the estimator's rate for a name (DNN: 0.05, Linear: 0.2).

  Raises:
    ValueError: an unknown name or something that is not an optimizer.
  """
  if isinstance(optimizer, str):
    if optimizer not in OPTIMIZER_NAMES:
      return optimizers.get_optimizer(optimizer)  # raises, listing the names
    return _v1_transform(optimizer, learning_rate)
  return optimizers.get_optimizer(optimizer)
