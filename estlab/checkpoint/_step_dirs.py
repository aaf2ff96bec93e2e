"""Checkpoint steps of a local model_dir, from its listing (no Orbax import).

Kept apart from ``estlab.checkpoint._orbax`` (which imports Orbax, ~0.6 s)
so the Estimator can answer "is there a checkpoint, and which is newest" on
every train call without it (``estlab.checkpoint`` loads its names lazily, so
importing this module loads no Orbax).

A step is a *committed* checkpoint when its all-digit directory holds
Orbax's step metadata (``_CHECKPOINT_METADATA``, written before the atomic
rename that commits the step); whether its files are whole is
``_integrity``'s check (a committed step missing estlab's items is damage,
named, and the newest intact step is used). Any other all-digit name (a
user's ``2024/`` folder or file, an export's timestamped folder) is ignored
with a debug log; an all-digit folder with estlab's items but no step
metadata is a step Orbax was deleting when the process died (its deleter
unlinks the top-level files first): it is ignored with a warning, and
``clean_half_deleted`` removes it when a newer committed step exists.
"""
from __future__ import annotations

import logging
import os
import shutil

__all__ = ["ITEMS", "TRASH", "clean_half_deleted", "empty_trash",
           "is_committed", "local_steps"]

logger = logging.getLogger("estlab")

# What makes a step directory a committed checkpoint (Orbax's commit).
_MARKERS = ("_CHECKPOINT_METADATA",)
# The entries an estlab step directory may hold (Orbax's and estlab's items).
ITEMS = frozenset({"_CHECKPOINT_METADATA", "commit_success.txt", "params",
                   "opt_state", "extra", "metadata",
                   "estlab_checksums.json"})  # (``_integrity.MANIFEST``)
# Where Orbax moves a step it deletes (``todelete_subdir``: an atomic rename,
# so a kill never leaves a half-deleted ``<step>``); emptied by the trainer.
TRASH = ".estlab-deleted"
_warned: set[str] = set()  # half-deleted folders warned about (once each)


def is_committed(step_dir: str) -> bool:
  """Whether ``step_dir`` (a local ``model_dir/<step>``) is a committed
  checkpoint: a directory with Orbax's step metadata file."""
  return all(os.path.isfile(os.path.join(step_dir, marker))
             for marker in _MARKERS)


def _looks_like_ours(step_dir: str) -> bool:
  """An uncommitted folder holding only estlab's items (half-deleted)."""
  try:
    names = set(os.listdir(step_dir))
  except OSError:  # a file, or unreadable
    return False
  return bool(names) and names <= ITEMS


def local_steps(directory: str) -> list[int] | None:
  """Committed steps under a local ``directory``, ascending, from its
  listing and two ``stat`` calls per step.

  On a local filesystem Orbax writes ``<step>.orbax-checkpoint-tmp-...``
  and renames it to ``<step>`` when complete, so the committed digit-only
  names are exactly the finished steps, found for ~0.1 ms instead of ~30 ms
  (``CheckpointManager.reload`` reads every step's metadata). Other
  digit-only names are ignored (see the module docstring). None for a
  remote directory (``gs://...``: no atomic rename; ask Orbax).

  Example:
    >>> local_steps('/tmp/no/such/dir')
    []
  """
  if "://" in directory:
    return None
  try:
    names = os.listdir(directory)
  except (FileNotFoundError, NotADirectoryError):
    return []
  steps = []
  for name in names:
    if not name.isdigit():
      continue
    path = os.path.join(directory, name)
    if is_committed(path):
      steps.append(int(name))
    elif _looks_like_ours(path):
      if path in _warned:
        continue
      _warned.add(path)
      logger.warning(
          "Ignoring %s: an estlab step folder without its step metadata "
          "(_CHECKPOINT_METADATA), e.g. one whose "
          "deletion was interrupted; it is never restored.", path)
    else:
      logger.debug("Ignoring %s: not an estlab checkpoint (only committed "
                   "step folders count as steps).", path)
  return sorted(steps)


def empty_trash(directory: str) -> None:
  """Removes the steps Orbax moved to ``directory/TRASH`` when deleting them
  (called while no save, hence no deletion, is under way).

  Example:
    >>> empty_trash('/tmp/no/such/dir')
  """
  trash = os.path.join(directory, TRASH)
  if "://" not in trash and os.path.isdir(trash):
    shutil.rmtree(trash, ignore_errors=True)


def clean_half_deleted(directory: str) -> list[str]:
  """Removes what interrupted deletions left in a local ``directory``: the
  ``TRASH`` folder, and uncommitted step folders holding only
  estlab's items below the newest committed step. Returns the removed
  paths. Called by the one trainer holding the model_dir's lock.

  Example:
    >>> clean_half_deleted('/tmp/no/such/dir')
    []
  """
  removed = []
  trash = os.path.join(directory, TRASH)
  if os.path.isdir(trash):
    removed.append(trash)
  steps = local_steps(directory) or []
  if steps:
    for name in os.listdir(directory):
      path = os.path.join(directory, name)
      if (name.isdigit() and int(name) < steps[-1] and
          not is_committed(path) and _looks_like_ours(path)):
        removed.append(path)
  for path in removed:
    logger.info("Removing %s, left by an interrupted checkpoint deletion.",
                path)
    shutil.rmtree(path, ignore_errors=True)
  return removed
