"""One model_dir's checkpoints as the Estimator asks for them.

``ModelDir`` answers "which checkpoint is newest" from a local directory's
listing (``local_steps``: ~0.1 ms, no Orbax import; every train, evaluate
and predict call asks) and opens the Orbax ``Checkpointer`` only when a
checkpoint is read or written (importing Orbax takes ~0.6 s, which would
otherwise compete with the first compile). A remote ``model_dir``
(``gs://...``) is asked through Orbax.

``training()`` is a ``train`` call's hold on the directory: it fails first
on a read-only model_dir, takes the one-trainer lock (``_lock``) and clears
what interrupted deletions left (``_step_dirs.clean_half_deleted``).

Saves every step are coalesced: with ``async_save`` in one process, a save
asked for the step after the previous one asked for
(``save_checkpoints_steps=1``), while an earlier save is still being
written, is kept in host memory instead of waiting for it, and replaced by
the next one asked for; the newest is written when the writer is free (the
next ``save``) or waited for (``wait_until_finished``, which ``train`` calls
at its end). So saving every step costs a host copy, not a write (Orbax
takes 0.15-0.3 s for even a small state); TF's saver wrote each one,
blocking. Saves further apart are all written, as TF's.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
from typing import Any, Iterator

import numpy as np

from estlab.checkpoint._integrity import newest_intact
from estlab.checkpoint._lock import TrainerLock, check_writable
from estlab.checkpoint._step_dirs import clean_half_deleted, local_steps

__all__ = ["ModelDir"]

logger = logging.getLogger("estlab")


def _checkpoint() -> Any:
  """``checkpoint._checkpointer``, imported on first use (Orbax: ~0.6 s)."""
  return importlib.import_module("estlab.checkpoint._checkpointer")


class ModelDir:
  """The checkpoints under ``directory``, written with ``Checkpointer``'s
  ``max_to_keep`` (0 or None: keep all, as TF's ``keep_checkpoint_max``) and
  ``async_save``."""

  def __init__(self, directory: str, *, max_to_keep: int | None,
               async_save: bool):
    self.directory = directory
    self._settings = {"max_to_keep": max_to_keep or None,
                      "async_save": async_save}
    self._checkpointer = None
    self._lock = TrainerLock(directory)
    self._pending: tuple | None = None  # a coalesced save: step, tree, ...
    self._last_asked: int | None = None  # the step of the last save asked

  def check_writable(self, action: str) -> None:
    """Raises ``ReadOnlyModelDirError`` if the model_dir cannot be written."""
    check_writable(self.directory, action)

  @contextlib.contextmanager
  def training(self) -> Iterator[None]:
    """Holds the model_dir for one ``train`` call (see the module docstring).

    Raises:
      ReadOnlyModelDirError: the model_dir cannot be written.
      ModelDirBusyError: another process is training into it.
    """
    import jax  # pylint: disable=g-import-not-at-top
    check_writable(self.directory, "train")
    if jax.process_index() != 0:  # the chief holds the job's lock
      yield
      return
    first = self._lock.acquire()
    try:
      if first and "://" not in self.directory:  # (no other trainer runs)
        clean_half_deleted(self.directory)
      yield
    finally:
      self._lock.release()

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

  def save(self, state: Any, **kwargs: Any) -> str:
    """Saves ``state``, or keeps it for later while the previous asynchronous
    save is still being written (see the module docstring)."""
    import jax  # pylint: disable=g-import-not-at-top
    checkpointer = self.checkpointer
    step, last = int(state.step), self._last_asked
    self._last_asked = step
    if (self._settings["async_save"] and jax.process_count() == 1 and
        last is not None and step == last + 1 and checkpointer.is_saving()):
      if self._pending is not None:
        logger.debug("Checkpoint for step %d skipped for a newer one.",
                     self._pending[0])
      leaves, treedef = jax.tree.flatten(state)
      self._pending = (step, treedef, jax.device_get(leaves),
                       [getattr(a, "sharding", None) for a in leaves], kwargs)
      return self.path(self._pending[0])
    self._pending = None
    return checkpointer.save(state, **kwargs)

  def restore(self, abstract: Any, **kwargs: Any) -> Any:
    return self.checkpointer.restore(abstract, **kwargs)

  def restore_variables(self, abstract: Any, **kwargs: Any) -> Any:
    return self.checkpointer.restore_variables(abstract, **kwargs)

  def read_metadata(self, **kwargs: Any) -> dict:
    return self.checkpointer.read_metadata(**kwargs)

  def wait_until_finished(self) -> None:
    """Waits for an asynchronous save, then writes a coalesced one and waits
    for it; nothing to wait for before the Checkpointer is opened."""
    if self._checkpointer is None:
      return
    self._checkpointer.wait_until_finished()
    if self._pending is not None:
      import jax  # pylint: disable=g-import-not-at-top
      _, treedef, host, shardings, kwargs = self._pending
      self._pending = None
      state = treedef.unflatten([a if s is None else jax.device_put(a, s)
                                 for a, s in zip(host, shardings)])
      self._checkpointer.save(state, **kwargs)
      self._checkpointer.wait_until_finished()
