"""Warm start: initialise a new model's parameters from another checkpoint.

``WarmStartSettings`` keeps tf.estimator's name and arguments. Variables are
matched by name (parameter paths joined by ``/``) with ``re.match`` on
``vars_to_warm_start``; the others keep their fresh initialisation.

Example:
  >>> ws = estlab.WarmStartSettings('/tmp/old_model', vars_to_warm_start='Dense_0/.*')
  >>> est = estlab.Estimator(model_fn, warm_start_from=ws)  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Mapping

import jax
import numpy as np
from flax import traverse_util


def _checkpoint():
  """``estlab.checkpoint``, imported on use (Orbax takes ~0.6 s to import)."""
  from estlab import checkpoint  # pylint: disable=g-import-not-at-top
  return checkpoint


__all__ = ["WarmStartSettings", "warm_start"]


@dataclasses.dataclass(frozen=True)
class WarmStartSettings:
  """Where and what to warm-start from, as ``tf.estimator.WarmStartSettings``.

  Args:
    ckpt_to_initialize_from: a ``model_dir`` (its latest checkpoint is used)
      or a checkpoint path ``model_dir/<step>``.
    vars_to_warm_start: a regex (``re.match``) or a list of names/regexes
      selecting the variables to load; ``'.*'`` loads all.
    var_name_to_prev_var_name: maps a new variable name to its name in the
      old checkpoint, for renamed layers.
  """

  ckpt_to_initialize_from: str
  vars_to_warm_start: Any = ".*"
  var_name_to_vocab_info: Any = None
  var_name_to_prev_var_name: Mapping[str, str] | None = None

  @classmethod
  def from_value(cls, value: Any) -> "WarmStartSettings":
    if isinstance(value, WarmStartSettings):
      return value
    if isinstance(value, (str, os.PathLike)):
      return cls(os.fspath(value))
    raise TypeError(f"warm_start_from={value!r} must be a checkpoint path, a "
                    "model_dir or an estlab.WarmStartSettings.")

  def __post_init__(self):
    if self.var_name_to_vocab_info:
      raise ValueError("var_name_to_vocab_info is not supported yet: remap "
                       "vocabulary rows yourself before warm-starting.")


def _resolve(path: str) -> str:
  if _checkpoint().latest_checkpoint(path) is not None:
    return _checkpoint().latest_checkpoint(path)
  return path


def warm_start(params: Any, settings: WarmStartSettings) -> Any:
  """Returns ``params`` with the selected variables loaded from the checkpoint.

  Raises:
    ValueError: the checkpoint does not exist, a selected variable is missing
      from it, or its shape differs.
  """
  path = _resolve(settings.ckpt_to_initialize_from)
  old = _checkpoint().flatten_names(_checkpoint().Checkpointer(
      os.path.dirname(path), max_to_keep=None).restore_params(path=path))
  patterns = settings.vars_to_warm_start
  patterns = [patterns] if isinstance(patterns, str) else list(patterns or [])
  renames = dict(settings.var_name_to_prev_var_name or {})
  flat = traverse_util.flatten_dict(params, sep="/")
  missing, mismatched, loaded = [], [], 0
  for name, value in flat.items():
    if not any(re.match(p, name) for p in patterns):
      continue
    prev = renames.get(name, name)
    if prev not in old:
      missing.append(prev)
      continue
    if tuple(np.shape(old[prev])) != tuple(np.shape(value)):
      mismatched.append(f"{name}: new {tuple(np.shape(value))} vs checkpoint "
                        f"{tuple(np.shape(old[prev]))}")
      continue
    flat[name] = jax.device_put(np.asarray(old[prev], dtype=value.dtype),
                                getattr(value, "sharding", None))
    loaded += 1
  if missing or mismatched:
    raise ValueError(
        f"Cannot warm-start from {path!r}: missing in the checkpoint "
        f"{missing!r}; shape mismatches {mismatched!r}. Narrow "
        f"vars_to_warm_start (now {settings.vars_to_warm_start!r}) or map names "
        f"with var_name_to_prev_var_name. Checkpoint variables: {sorted(old)!r}.")
  return traverse_util.unflatten_dict(flat, sep="/")
