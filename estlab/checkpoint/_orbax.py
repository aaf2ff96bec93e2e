"""Orbax plumbing for ``estlab.checkpoint``: the manager, step paths, quiet
logs, reading items (checked against a target).

Split from ``estlab.checkpoint._checkpointer`` so that module reads as the
Estimator's contract.
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from estlab.checkpoint import _integrity, _step_dirs
from estlab.checkpoint._legacy_names import (legacy_renames, rename_tree,
                                             to_old)
from estlab.checkpoint._trees import (CheckpointMismatchError, abstract_like,
                                      check_variables, flatten_names,
                                      reassemble_like)

ARRAY_ITEMS = ('params', 'opt_state', 'extra')
METADATA_ITEM = 'metadata'
RESERVED_METADATA = ('step', 'estlab_version', 'time', 'variables',
                     'checksums', 'train_state')


class _DropHarmlessOrbaxWarnings(logging.Filter):
  """Orbax warns on every read-only manager and on saves of empty trees."""

  _HARMLESS = ('CheckpointManagerOptions.read_only=True',
               'Given directory is read only',
               'Skipping merge of OCDBT checkpoints')

  def filter(self, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(text in message for text in self._HARMLESS)


logging.getLogger('absl').addFilter(_DropHarmlessOrbaxWarnings())


class ChecksummedRename(ocp.path.atomicity.AtomicRenameTemporaryPath):
  """Orbax's atomic rename, with ``estlab_checksums.json`` written into the
  temporary step directory just before it is renamed (``_integrity``): when
  every item is written (in the background thread for async saves), before
  the step counts as committed."""

  async def finalize(self):
    tmp, final = str(self.get()), str(self.get_final())
    # Orbax uses this class for the items' folders too (params/, ...), which
    # are committed first; the step's manifest lists their files.
    if os.path.basename(final).isdigit():
      await asyncio.to_thread(_integrity.write_manifest, tmp, final)
    await super().finalize()


class _CommittedSteps:
  """Orbax's standard step names, where a local directory's steps are only
  its committed estlab checkpoints (``_step_dirs.is_committed``): a stray
  all-digit folder is neither restored nor deleted by ``max_to_keep``."""

  def __init__(self):
    self._names = ocp.step.standard_name_format()

  def __getattr__(self, name: str) -> Any:
    return getattr(self._names, name)

  def build_name(self, step: int) -> str:
    return self._names.build_name(step)

  def find_all(self, base_path: Any) -> Any:
    return [m for m in self._names.find_all(base_path) if _committed(m.path)]

  def find_step(self, base_path: Any, step: int) -> Any:
    metadata = self._names.find_step(base_path, step)
    if not _committed(metadata.path):
      raise ValueError(f'{os.fspath(metadata.path)!r} is not a committed '
                       'estlab checkpoint.')
    return metadata


def _committed(path: Any) -> bool:
  text = os.fspath(path)
  return '://' in text or _step_dirs.is_committed(text)


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
    # Two ways to write an item (``save_args`` picks one per item and save);
    # any Orbax restore reads both.
    registry.add(name, ocp.args.StandardSave)  # arrays zstd-compressed
    registry.add(name, ocp.args.PyTreeSave,
                 ocp.PyTreeCheckpointHandler(use_compression=False))
    registry.add(name, ocp.args.StandardRestore)
  registry.add(METADATA_ITEM, ocp.args.JsonSave)
  registry.add(METADATA_ITEM, ocp.args.JsonRestore)
  latest_n = getattr(getattr(ocp, 'checkpoint_managers', None), 'LatestN', None)
  if latest_n is None:  # Older Orbax: before preservation policies.
    keep = {'max_to_keep': max_to_keep}
  else:  # `max_to_keep` is deprecated in favour of this.
    keep = {'preservation_policy': latest_n(n=max_to_keep)}
  if '://' not in directory:  # local: checksummed (remote: Orbax's own)
    keep['temporary_path_class'] = ChecksummedRename
  options = ocp.CheckpointManagerOptions(
      **keep,
      enable_async_checkpointing=async_save,
      read_only=read_only,
      create=not read_only,
      step_name_format=_CommittedSteps(),
      # A deleted step is renamed away first (atomic), never half-deleted
      # in place; ``_step_dirs.clean_half_deleted`` empties the folder.
      todelete_subdir=None if read_only else _step_dirs.TRASH,
  )
  return ocp.CheckpointManager(
      directory, options=options, handler_registry=registry)


# Orbax compresses each array (zstd) by default. Measured (2 cores): dense
# float weights saved faster without it (95 MB: 0.45-0.63 vs 0.54-0.84 s) and
# restored faster (0.25-0.28 vs 0.46-0.77 s) for files 8% larger (async-save
# throughput: no clear change, 0.82-0.93x vs 0.79-0.84x of no saves), while a wide model's tables, mostly zeros and untouched optimizer
# slots, took 20x the disk uncompressed (3 x 1M buckets: 11 vs 0.5 MB) and
# longer. So an item with a leaf of at least this many rows (hash buckets,
# vocabularies, embedding tables) is compressed, other items are not.
COMPRESS_ROWS = 1 << 16


def save_args(tree: Any) -> ocp.args.CheckpointArgs:
  """How to write one array item: compressed where it holds a table."""
  if any(np.ndim(leaf) and np.shape(leaf)[0] >= COMPRESS_ROWS
         for leaf in jax.tree.leaves(tree)):
    return ocp.args.StandardSave(tree)
  return ocp.args.PyTreeSave(tree)


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


def restore_checked(
    mngr: ocp.CheckpointManager, step: int, params: Any,
    abstract: dict[str, Any], info: dict | None = None,
) -> dict[str, Any]:
  """Checks variables, then restores ``params`` and the ``abstract`` items
  (``info``: the step's metadata JSON when the caller has read it)."""
  if mngr.is_saving_in_progress():  # the step may be the one being written
    mngr.wait_until_finished()
  where = join(str(mngr.directory), step)
  saved = saved_variables(mngr, step, info)
  abstract = {'params': abstract_like(params), **abstract}
  if legacy_renames(saved, flatten_names(params)):
    # Written with estlab's names before TF 2.x's: restore every item under
    # the old names, then name it back (``_legacy_names``).
    back = {}

    def old(name: str) -> str:
      back[to_old(name)] = name
      return to_old(name)

    renamed = {name: rename_tree(tree, old) for name, tree in abstract.items()}
    got = restore_checked(mngr, step, renamed.pop('params'), renamed, info)
    return {name: reassemble_like(
        abstract[name], rename_tree(tree, lambda n: back.get(n, n)))
            for name, tree in got.items()}
  check_variables(saved, params, where)
  empty = {name for name, tree in abstract.items() if is_empty(tree)}
  saved = {name for name in abstract if (epath.Path(where) / name).is_dir()}
  differ = sorted(empty & saved) + sorted(set(abstract) - empty - saved)
  if differ:
    raise CheckpointMismatchError(
        f'The checkpoint {where!r} does not match the target state: '
        f'{differ} are empty in one and not in the other (an optimizer '
        'without state, such as optax.identity(), saves no opt_state; a '
        'model without model_state collections such as batch_stats saves '
        'no extra). The optimizer or the model_state collections probably '
        'changed. Fix: use a new model_dir, or start from this checkpoint '
        'with warm_start_from to load the variables only.')
  try:
    restored = dict(mngr.restore(step, args=ocp.args.Composite(**{
        name: ocp.args.StandardRestore(tree)
        for name, tree in abstract.items() if name not in empty
    })))
  except ValueError as e:
    # Orbax: "... tree structures do not match: ..." for opt_state/extra.
    raise CheckpointMismatchError(
        f'The checkpoint {where!r} does not match the target state: {e}\n'
        'The variables match, so the optimizer or the model_state '
        'collections probably changed. Fix: use a new model_dir, or start '
        'from this checkpoint with warm_start_from to load the matching '
        'variables only.'
    ) from e
  return {name: tree if name in empty else reassemble_like(tree, restored[name])
          for name, tree in abstract.items()}


def is_empty(tree: Any) -> bool:
  """A tree Orbax will not save: no leaves and itself empty (``()``, ``{}``,
  ``optax.EmptyState()``). It is not written; restoring gives the target's."""
  return not jax.tree.leaves(tree) and not tree


def read_json(mngr: ocp.CheckpointManager, step: int) -> dict:
  if mngr.is_saving_in_progress():  # the step may be the one being written
    mngr.wait_until_finished()
  restored = mngr.restore(
      step, args=ocp.args.Composite(metadata=ocp.args.JsonRestore()))
  return dict(restored[METADATA_ITEM] or {})


def item_tree(mngr: ocp.CheckpointManager, step: int, item: str) -> Any:
  """Orbax's per-leaf metadata (shape, dtype) for ``item``, or None."""
  try:
    tree = mngr.item_metadata(step)[item]
  except (KeyError, ValueError):
    return None
  return getattr(tree, 'tree', tree)


def saved_variables(
    mngr: ocp.CheckpointManager, step: int, info: dict | None = None
) -> dict[str, tuple[int, ...]]:
  """Variable name -> shape, from our metadata item (``info``, else read
  here) or else Orbax's."""
  if info is None:
    info = read_json(mngr, step)
  variables = info.get('variables')
  if variables is not None:
    return {name: tuple(shape) for name, (shape, _) in variables.items()}
  tree = item_tree(mngr, step, 'params') or {}
  return {name: tuple(m.shape) for name, m in flatten_names(tree).items()}


