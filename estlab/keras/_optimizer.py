"""A Keras optimizer as an optax ``GradientTransformation`` (the train_op).

``update`` runs the optimizer's stateless API (``stateless_apply``) inside
estlab's compiled step: the optimizer's variables (``iterations``, moments,
the learning rate) are the optax state, checkpointed with the rest of the
train state; its starting values are the optimizer's current ones.

Example:
  >>> opt = keras_optimizer(model.optimizer, layout)   # doctest: +SKIP
  >>> estlab.EstimatorSpec(mode, loss=loss, train_op=opt)  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from estlab.keras._variables import Layout

__all__ = ["keras_optimizer"]


def keras_optimizer(optimizer: Any, layout: Layout
                    ) -> optax.GradientTransformation:
  """Wraps a built Keras ``optimizer`` over the params ``layout`` describes.

  Args:
    optimizer: a Keras 3 optimizer, built for the model's trainable
      variables (``optimizer.build(model.trainable_variables)``).
    layout: where each trainable variable sits in the params tree.

  Returns:
    ``optax.GradientTransformation``: ``init`` gives the optimizer's
    variables (a tuple of arrays); ``update(grads, state, params)`` gives
    ``new_params - params`` and the new state.
  """
  start = tuple(np.array(v.value) for v in optimizer.variables)

  def init(params: Any) -> tuple:
    del params  # the state is the optimizer's own variables
    return tuple(jnp.asarray(v) for v in start)

  def update(grads: Any, state: tuple, params: Any = None) -> tuple:
    if params is None:
      raise ValueError("A Keras optimizer's update needs the params: call "
                       "update(grads, state, params).")
    old = layout.pick(params)
    new, new_state = optimizer.stateless_apply(
        list(state), layout.pick(grads), old)
    updates = layout.nest([n - o for n, o in zip(new, old)])
    return updates, tuple(new_state)

  return optax.GradientTransformation(init, update)
