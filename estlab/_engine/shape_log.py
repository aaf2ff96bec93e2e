"""Input shapes each compiled step was traced for, and a warning when they pile up.

Every distinct input shape compiles a step again (seconds on an
accelerator); an input whose batch size varies (29 batch sizes: 29
compilations) did so without a word. ``ShapeLog.note`` is called where a
step is traced; past ``MAX_SHAPES`` distinct shapes of one step it logs one
warning naming the shapes seen and the fix. Python only, at trace time: no
string enters the compiled step.

Example:
  >>> log = ShapeLog()
  >>> log.note('predict', ({'x': np.zeros((8, 3), np.float32)}, None))
  >>> log.shapes('predict')
  ["{'x': float32[8, 3]}"]
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import jax
import numpy as np

from estlab.data._packing import unpacked

__all__ = ["MAX_SHAPES", "ShapeLog"]

logger = logging.getLogger("estlab")

# Distinct input shapes a step compiles for before the warning: a training
# batch, a last short batch, an eval and a predict size are ordinary.
MAX_SHAPES = 4


class ShapeLog:
  """Distinct ``(features, labels)`` shapes per step, warned about once."""

  def __init__(self, max_shapes: int = MAX_SHAPES):
    self._max = max_shapes
    self._seen: dict[str, dict[Any, Any]] = {}  # step -> signature -> shapes
    self._warned: set[str] = set()
    self._lock = threading.Lock()  # eval/predict also trace in threads

  def note(self, step: str, batch: Any) -> None:
    """Records the shapes of ``batch`` (``(features, labels)``, arrays or
    tracers) traced for ``step``; warns the first time ``step`` has seen
    more than ``max_shapes`` distinct ones."""
    leaves, treedef = jax.tree.flatten(batch)
    signature = (treedef, tuple((tuple(np.shape(a)), str(a.dtype))
                                for a in leaves))
    with self._lock:
      seen = self._seen.setdefault(step, {})
      if signature in seen:
        return
      seen[signature] = jax.tree.map(
          lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), batch)
      if len(seen) <= self._max or step in self._warned:
        return
      self._warned.add(step)
      shapes = self.shapes(step)
    logger.warning(
        "The %s step has been compiled for %d distinct input shapes: %s. Each "
        "new shape compiles the step again. Give every batch one shape: "
        "Dataset.batch(n, drop_remainder=True), a fixed batch size in the "
        "input_fn, or batches padded to a few fixed sizes.",
        step, len(shapes), "; ".join(shapes))

  def shapes(self, step: str) -> list[str]:
    """The distinct shapes seen for ``step``, in order, as text such as
    ``"{'x': float32[8, 3]}, labels int32[8]"``."""
    return [_describe(batch) for batch in self._seen.get(step, {}).values()]


def _describe(batch: Any) -> str:
  """``batch``'s features (unpacked) and labels shapes as text."""
  features, labels = jax.eval_shape(lambda b: unpacked(*b), batch)
  text = _text(features)
  return text if labels is None else f"{text}, labels {_text(labels)}"


def _text(tree: Any) -> str:
  if isinstance(tree, dict):
    return "{" + ", ".join(f"{k!r}: {_text(v)}" for k, v in tree.items()) + "}"
  if isinstance(tree, (tuple, list)):
    return "(" + ", ".join(_text(v) for v in tree) + ")"
  if hasattr(tree, "shape"):
    return f"{np.dtype(tree.dtype).name}{list(tree.shape)}"
  return repr(tree)
