"""Orbax plumbing for ``checkpoint``: the manager, step paths, quiet logs.

Split from ``checkpoint`` so that module reads as the Estimator's contract.
"""
from __future__ import annotations

import importlib.metadata
import logging
import os

import orbax.checkpoint as ocp

ARRAY_ITEMS = ('params', 'opt_state', 'extra')
METADATA_ITEM = 'metadata'
RESERVED_METADATA = ('step', 'estlab_version', 'time', 'variables')


class _DropHarmlessOrbaxWarnings(logging.Filter):
  """Orbax warns on every read-only manager and on saves of empty trees."""

  _HARMLESS = ('CheckpointManagerOptions.read_only=True',
               'Given directory is read only',
               'Skipping merge of OCDBT checkpoints')

  def filter(self, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(text in message for text in self._HARMLESS)


logging.getLogger('absl').addFilter(_DropHarmlessOrbaxWarnings())

def make_manager(
    directory: str,
    *,
    max_to_keep: int | None = None,
    async_save: bool = False,
    read_only: bool = False,
) -> ocp.CheckpointManager:
  """Builds the CheckpointManager that writes or reads our layout."""
  registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
  for name in ARRAY_ITEMS:
    registry.add(name, ocp.args.StandardSave)
    registry.add(name, ocp.args.StandardRestore)
  registry.add(METADATA_ITEM, ocp.args.JsonSave)
  registry.add(METADATA_ITEM, ocp.args.JsonRestore)
  latest_n = getattr(getattr(ocp, 'checkpoint_managers', None), 'LatestN', None)
  if latest_n is None:  # Older Orbax: before preservation policies.
    keep = {'max_to_keep': max_to_keep}
  else:  # `max_to_keep` is deprecated in favour of this.
    keep = {'preservation_policy': latest_n(n=max_to_keep)}
  options = ocp.CheckpointManagerOptions(
      **keep,
      enable_async_checkpointing=async_save,
      read_only=read_only,
      create=not read_only,
  )
  return ocp.CheckpointManager(
      directory, options=options, handler_registry=registry)


def steps(mngr: ocp.CheckpointManager | None) -> list[int]:
  """Steps on disk (plus this manager's in-flight save), ascending."""
  if mngr is None:
    return []
  # Re-read the directory so another process's saves show up, except while
  # our own async save is in flight (its step is not on disk yet).
  if not mngr.is_saving_in_progress():
    mngr.reload()
  return sorted(mngr.all_steps())


def split_step_path(path: str | os.PathLike) -> tuple[str, int]:
  """'model_dir/<step>' -> (model_dir, step); ValueError naming the path."""
  text = normalize(path)
  parent, name = text.rsplit('/', 1) if '/' in text else ('.', text)
  if not name.isdigit():
    raise ValueError(
        f'{os.fspath(path)!r} is not a checkpoint path: expected a step '
        "directory 'model_dir/<step>', e.g. the result of "
        'latest_checkpoint(model_dir).'
    )
  return normalize(parent or '/'), int(name)


def normalize(directory: str | os.PathLike) -> str:
  text = os.fspath(directory)
  if '://' in text:
    return text.rstrip('/')
  return os.path.abspath(os.path.expanduser(text))


def join(directory: str, step: int) -> str:
  return f'{directory.rstrip("/")}/{step}'


def version() -> str:
  try:
    return importlib.metadata.version('estlab')
  except importlib.metadata.PackageNotFoundError:
    return '0+unknown'
