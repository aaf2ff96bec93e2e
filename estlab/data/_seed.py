"""The graph-level seed: what seeds random input ops given no seed of their own.

As ``tf.random.set_seed`` / ``RunConfig(tf_random_seed=...)`` in TF: while
``graph_seed(s)`` is active (the Estimator holds it around each input_fn
call, from ``RunConfig.tf_random_seed``), an op made with ``seed=None``
(``Dataset.shuffle``, ``numpy_input_fn``'s shuffling) takes ``op_seed()``:
derived from ``s`` and the op's rank among those made in that call, so a
program reruns identically and, as TF rebuilt its graph per ``train`` call,
each input_fn call sees the same orders. Without a graph seed, ``op_seed()``
is None (fresh entropy).

Example:
  >>> with graph_seed(7):
  ...   first, second = op_seed(), op_seed()
  >>> with graph_seed(7):
  ...   again = op_seed()
  >>> first == again != second, op_seed() is None
  (True, True)
"""
from __future__ import annotations

import contextlib
import contextvars
import itertools
from typing import Iterator, Optional

__all__ = ["graph_seed", "op_seed"]

# (seed, counter of ops made under it) or None.
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("estlab_graph_seed",
                                                         default=None)


@contextlib.contextmanager
def graph_seed(seed: Optional[int]) -> Iterator[None]:
  """Random input ops made inside take their seeds from ``seed`` (None: no
  graph seed, each op draws fresh entropy)."""
  token = _ACTIVE.set(None if seed is None else (int(seed), itertools.count()))
  try:
    yield
  finally:
    _ACTIVE.reset(token)


def op_seed() -> Optional[tuple]:
  """The seed of the next random op made under the active graph seed: a
  ``SeedSequence`` entropy of (graph seed, op rank); None without one."""
  active = _ACTIVE.get()
  if active is None:
    return None
  seed, count = active
  return (seed, next(count))
