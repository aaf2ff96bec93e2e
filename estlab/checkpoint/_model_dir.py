"""One model_dir's checkpoints as the Estimator asks for them.

``ModelDir`` answers "which checkpoint is newest" from a local directory's
listing (``local_steps``: ~0.1 ms, no Orbax import; every train, evaluate
and predict call asks) and opens the Orbax ``Checkpointer`` only when a
checkpoint is read or written (importing Orbax takes ~0.6 s, which would
otherwise compete with the first compile). A remote ``model_dir``
(``gs://...``) is asked through Orbax.
"""
from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np

from estlab.checkpoint._integrity import newest_intact
from estlab.checkpoint._step_dirs import local_steps

__all__ = ["ModelDir"]


def _checkpoint() -> Any:
  """``checkpoint._checkpointer``, imported on first use (Orbax: ~0.6 s)."""
  return importlib.import_module("estlab.checkpoint._checkpointer")


class ModelDir:
  """The checkpoints under ``directory``, written with ``Checkpointer``'s
  ``max_to_keep`` and ``async_save``."""

  def __init__(self, directory: str, *, max_to_keep: int | None,
               async_save: bool):
    self.directory = directory
    self._settings = {"max_to_keep": max_to_keep, "async_save": async_save}
    self._checkpointer = None

  @property
  def checkpointer(self) -> Any:
    """The ``estlab.checkpoint.Checkpointer`` (Orbax is imported now)."""
    if self._checkpointer is None:
      self._checkpointer = _checkpoint().Checkpointer(self.directory,
                                                      **self._settings)
    return self._checkpointer

  def latest_step(self) -> int | None:
    """The newest checkpoint's step, or None."""
    steps = local_steps(self.directory)
    if steps is None:
      return self.checkpointer.latest_step()
    return newest_intact(self.directory, steps)  # damaged ones: a warning

  def latest_checkpoint(self) -> str | None:
    """Path of the newest checkpoint (``model_dir/<step>``), or None."""
    steps = local_steps(self.directory)
    if steps is None:  # remote: ask Orbax
      return _checkpoint().latest_checkpoint(self.directory)
    step = newest_intact(self.directory, steps)  # damaged ones: a warning
    return None if step is None else f"{self.directory.rstrip('/')}/{step}"

  def checkpoint_path(self, checkpoint_path: str | None) -> str:
    """``checkpoint_path``, or the latest checkpoint's, as an absolute path.

    Raises:
      ValueError: neither is there (nothing trained yet).
    """
    path = checkpoint_path or self.latest_checkpoint()
    if path is None:
      raise ValueError(f"Could not find a trained model in model_dir "
                       f"{self.directory!r}: train first, or pass "
                       "checkpoint_path (or warm_start_from) to a checkpoint.")
    return os.path.abspath(path)

  def variable_names(self) -> list[str]:
    """The latest checkpoint's variable names and ``global_step``, sorted.

    Variables are the params and the other collections' variables (batch
    normalization's ``moving_mean``/``moving_variance``), each under its
    path without the collection's name, as TF lists them; names written
    before TF 2.x's (``checkpoint._legacy_names``) are listed as TF's.
    The premade estimators' names are TF 2.x's (``dnn/hiddenlayer_0/kernel``,
    ``linear/linear_model/<column>/weights``). Optimizer slots are not listed
    (TF listed them under ``training/<Optimizer>/``; here they live in the
    optax state).
    """
    return sorted([*self._values(self.checkpoint_path(None)), "global_step"])

  def variable_value(self, name: str) -> np.ndarray:
    """One parameter of the latest checkpoint (or ``global_step``).

    Raises:
      ValueError: no such variable (the message lists them).
    """
    path = self.checkpoint_path(None)
    if name == "global_step":
      return np.asarray(int(self.read_metadata(path=path)["step"]), np.int64)
    values = self._values(path)
    if name not in values:
      raise ValueError(f"No variable {name!r} in the latest checkpoint; "
                       f"variables are {sorted(values)!r}.")
    return np.asarray(values[name])

  def _values(self, path: str) -> dict[str, np.ndarray]:
    """``{'/'-joined variable name: value}`` of the checkpoint at ``path``:
    params, then the other collections' variables (a name that a param
    already has keeps its collection as a prefix)."""
    flatten = _checkpoint().flatten_names
    values = flatten(self.checkpointer.restore_params(path=path))
    state = self.checkpointer.restore_model_state(path=path)
    for collection, tree in sorted(state.items()):
      for name, value in flatten(tree).items():
        values[name if name not in values else f"{collection}/{name}"] = value
    return importlib.import_module(
        "estlab.checkpoint._legacy_names").upgrade(values)

  # The Checkpointer's reads and writes, opening it on first use.

  def path(self, step: int) -> str:
    return self.checkpointer.path(step)

  def save(self, state: Any, **kwargs: Any) -> Any:
    return self.checkpointer.save(state, **kwargs)

  def restore(self, abstract: Any, **kwargs: Any) -> Any:
    return self.checkpointer.restore(abstract, **kwargs)

  def restore_variables(self, abstract: Any, **kwargs: Any) -> Any:
    return self.checkpointer.restore_variables(abstract, **kwargs)

  def read_metadata(self, **kwargs: Any) -> dict:
    return self.checkpointer.read_metadata(**kwargs)

  def wait_until_finished(self) -> None:
    """Waits for an asynchronous save; nothing to wait for before the
    Checkpointer is opened."""
    if self._checkpointer is not None:
      self._checkpointer.wait_until_finished()
