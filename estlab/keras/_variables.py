"""A Keras model's variables as the Flax variables of a model_fn.

Trainable variables become ``'params'``, the others (BatchNormalization's
moving statistics, frozen layers' weights, dropout seed states) the
``'non_trainable'`` collection, each under its Keras path
(``sequential/dense/kernel``) and initialised from the model's values, so
checkpoints, warm start and ``get_variable_names`` name them as Keras does.
Random layers' seed states (Dropout's ``SeedGenerator``) are no variables:
in TRAIN each step draws them from estlab's ``'dropout'`` rng (so
``RunConfig.tf_random_seed`` decides), elsewhere they keep the model's.

Example:
  >>> layout = Layout(trainable=('dense/kernel',), non_trainable=(),
  ...                 initial=(np.ones((2, 1), np.float32),))
  >>> layout.tree()
  {'dense': {'kernel': ('params', 0)}}
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["NON_TRAINABLE", "Layout", "read", "write"]

NON_TRAINABLE = "non_trainable"


def _unique(paths: Sequence[str]) -> tuple[str, ...]:
  """``paths`` with a repeated one suffixed ``_1``, ``_2``... (Keras paths
  are unique within a model but for rare shared names)."""
  seen, out = set(), []
  for path in paths:
    name, n = path, 0
    while name in seen:
      n += 1
      name = f"{path}_{n}"
    seen.add(name)
    out.append(name)
  return tuple(out)


@dataclasses.dataclass(frozen=True, eq=False)
class Layout:
  """Where each Keras variable lives among the Flax variables.

  Attributes:
    trainable: paths of ``model.trainable_variables``, in their order.
    non_trainable: paths of ``model.non_trainable_variables``, in order.
    initial: numpy values, the trainable ones then the others: the model's
      values when it was converted.
    seeds: indices among ``non_trainable`` of seed states (not stored).
  """
  trainable: tuple[str, ...]
  non_trainable: tuple[str, ...]
  initial: tuple[np.ndarray, ...]
  seeds: frozenset = frozenset()

  @classmethod
  def of(cls, model: Any) -> Layout:
    """The layout and current values of a built Keras model's variables."""
    trainable, frozen = model.trainable_variables, model.non_trainable_variables
    paths = _unique([v.path for v in [*trainable, *frozen]])
    seed_states = {id(generator.state)
                   for layer in model._flatten_layers()  # pylint: disable=protected-access
                   for generator in getattr(layer, "_seed_generators", ())}
    return cls(trainable=paths[:len(trainable)],
               non_trainable=paths[len(trainable):],
               initial=tuple(np.array(v.value) for v in [*trainable, *frozen]),
               seeds=frozenset(i for i, v in enumerate(frozen)
                               if id(v) in seed_states))

  def tree(self) -> dict:
    """``{component: ... {leaf: (collection, index)}}`` by path components;
    ``index`` counts each collection's variables from 0."""
    tree: dict = {}
    named = [(p, ("params", i)) for i, p in enumerate(self.trainable)]
    named += [(p, (NON_TRAINABLE, i)) for i, p in enumerate(self.non_trainable)
              if i not in self.seeds]
    for path, leaf in named:
      *parents, name = path.split("/")
      node = tree
      for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
          raise ValueError(f"Keras variable path {path!r} runs through a "
                           f"variable named {part!r}; rename the layer.")
      node[name] = leaf
    return tree

  def value(self, collection: str, index: int) -> np.ndarray:
    offset = 0 if collection == "params" else len(self.trainable)
    return self.initial[offset + index]

  def nest(self, values: Sequence[Any]) -> dict:
    """Trainable ``values`` (in ``trainable`` order) as the params tree."""
    tree: dict = {}
    for path, value in zip(self.trainable, values):
      *parents, name = path.split("/")
      node = tree
      for part in parents:
        node = node.setdefault(part, {})
      node[name] = value
    return tree

  def pick(self, params: Mapping) -> list:
    """The params tree's leaves in ``trainable`` order."""
    out = []
    for path in self.trainable:
      node = params
      for part in path.split("/"):
        node = node[part]
      out.append(node)
    return out


class _Node(nn.Module):
  """One path component: declares the variables beneath it.

  Called with ``updates`` (``{index: value}`` of non-trainable variables), it
  writes them where the collection is mutable (TRAIN) and not while
  initialising (the start is the Keras model's values).
  """
  branch: Any
  layout: Layout

  @nn.compact
  def __call__(self, updates: Mapping | None = None) -> dict:
    found = {}
    for key, sub in self.branch.items():
      if not isinstance(sub, tuple):  # a branch (Flax froze the dict)
        found.update(_Node(sub, self.layout, name=key)(updates))
        continue
      collection, index = sub
      init = lambda *_, c=collection, i=index: jnp.asarray(self.layout.value(c, i))
      if collection == "params":
        found[sub] = self.param(key, init)
        continue
      variable = self.variable(NON_TRAINABLE, key, init)
      if (updates is not None and not self.is_initializing() and
          self.is_mutable_collection(NON_TRAINABLE)):
        variable.value = updates[index]
      found[sub] = variable.value
    return found


class _Seeds(nn.Module):
  """Seed states: fresh from the ``'dropout'`` rng where there is one."""
  layout: Layout

  @nn.compact
  def __call__(self) -> dict:
    seeds = {}
    for index in sorted(self.layout.seeds):
      start = jnp.asarray(self.layout.value(NON_TRAINABLE, index))
      if self.has_rng("dropout") and not self.is_initializing():
        start = jax.random.bits(self.make_rng("dropout"), start.shape,
                                start.dtype)
      seeds[(NON_TRAINABLE, index)] = start
    return seeds


def read(layout: Layout) -> tuple[list, list, list]:
  """Declares the variables in the calling Flax scope (the model_fn's).

  Returns:
    ``(trainable values, non-trainable values, nodes)``; pass ``nodes`` to
    ``write``.
  """
  tree = layout.tree()
  top = [n for n in tree if isinstance(tree[n], tuple)]
  if top:
    raise ValueError(f"Keras variables {top!r} have no layer in their path; "
                     "estlab names variables by their Keras paths "
                     "(layer/variable).")
  nodes = [_Node(tree[key], layout, name=key) for key in tree]
  found = _Seeds(layout, name="keras_seeds")() if layout.seeds else {}
  for node in nodes:
    found.update(node())
  trainable = [found[("params", i)] for i in range(len(layout.trainable))]
  frozen = [found[(NON_TRAINABLE, i)] for i in range(len(layout.non_trainable))]
  return trainable, frozen, nodes


def write(nodes: list, values: Sequence[Any]) -> None:
  """Stores new non-trainable ``values`` (TRAIN only; elsewhere a no-op)."""
  updates = dict(enumerate(values))  # seed states are not stored
  for node in nodes:
    node(updates)
