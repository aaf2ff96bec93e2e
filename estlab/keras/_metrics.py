"""A Keras model's compiled metrics as ``estlab.metrics`` states.

Each batch's state is the compiled metrics' variables after
``stateless_update_state`` from their empty state; batches merge by adding
the variables (Keras' built-in metrics keep sums and counts: totals,
confusion matrices, AUC's histograms) and ``compute`` is Keras'
``stateless_result``. One ``KerasMetric`` per result name; ``metric_names_map``
renames them, as TF's.

Example:
  >>> ops = eval_metric_ops(model, y_true, y_pred)  # doctest: +SKIP
  >>> sorted(ops)                                   # doctest: +SKIP
  ['accuracy']
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from estlab.metrics import Metric

__all__ = ["KerasMetric", "eval_metric_ops", "metric_names"]


@struct.dataclass
class KerasMetric(Metric):
  """One result of a model's compiled metrics (``model.compile(metrics=)``).

  Attributes:
    variables: the compiled metrics' variable values.
    compiled: the model's ``CompileMetrics`` (static).
    name: which of its results this is (static).
  """
  variables: tuple
  compiled: Any = struct.field(pytree_node=False)
  name: str = struct.field(pytree_node=False)

  @classmethod
  def from_model_output(cls, compiled: Any, name: str, variables: tuple
                        ) -> KerasMetric:
    return cls(variables=tuple(variables), compiled=compiled, name=name)

  def compute(self) -> jax.Array:
    value = self.compiled.stateless_result(list(self.variables))[self.name]
    return jnp.reshape(jnp.asarray(value, jnp.float32), ())


def metric_names(compiled: Any) -> list[str]:
  """The compiled metrics' result names (``accuracy``, ``out_1_auc``...)."""
  with jax.ensure_compile_time_eval():
    return list(compiled.stateless_result(compiled.stateless_reset_state()))


def _check_sums(compiled: Any) -> None:
  """Merging adds variables: every empty state must be zeros."""
  with jax.ensure_compile_time_eval():
    for metric in compiled.metrics:
      empty = metric.stateless_reset_state()
      if any(np.any(np.asarray(v) != 0) for v in empty):
        raise ValueError(
            f"Keras metric {metric.name!r} ({type(metric).__name__}) does not "
            "start from zeros, so its batches cannot be merged by adding "
            "their variables as estlab does; compile the model without it and"
            " add an estlab metric with estlab.add_metrics.")


def eval_metric_ops(compiled: Any, y_true: Any, y_pred: Any,
                    sample_weight: Any = None,
                    names_map: Mapping[str, str] | None = None) -> dict:
  """``{name: KerasMetric}`` of one batch (``{}`` without compiled metrics).

  Raises:
    ValueError: ``names_map`` misses a metric name or has an unknown one
      (TF's checks), or a metric cannot be merged by adding.
  """
  if compiled is None or not compiled.metrics:
    if names_map:
      raise ValueError(f"metric_names_map={dict(names_map)!r} was given but "
                       "the model was compiled without metrics.")
    return {}
  _check_sums(compiled)
  names = metric_names(compiled)
  if names_map:
    missing = [n for n in names if n not in names_map]
    extra = [n for n in names_map if n not in names]
    if missing or extra:
      raise ValueError(
          f"Invalid metric_names_map={dict(names_map)!r}: it must map every "
          f"compiled metric name {names!r} and no other (missing {missing!r},"
          f" unknown {extra!r}).")
  variables = compiled.stateless_update_state(
      compiled.stateless_reset_state(), y_true, y_pred,
      sample_weight=sample_weight)
  return {(names_map or {}).get(name, name):
          KerasMetric.from_model_output(compiled, name, variables)
          for name in names}
