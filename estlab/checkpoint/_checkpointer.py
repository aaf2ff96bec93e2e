"""``Checkpointer``: an Orbax ``CheckpointManager`` behind a small API.

``Checkpointer`` saves and restores a ``TrainState`` under ``model_dir``, and
answers what tf.estimator's checkpoint functions answered (latest checkpoint,
variable names and values). Orbax does the work; this module only fixes the
layout and checks that a checkpoint fits the model before reading arrays
(``estlab.checkpoint._orbax`` holds the Orbax plumbing and the item readers,
``estlab.checkpoint._trees`` the pytree helpers and the variables check).
``estlab.checkpoint`` re-exports the public names.

On-disk layout (a contract: readable with plain Orbax, without estlab)::

  model_dir/
    <step>/                  one Orbax CheckpointManager step directory
      _CHECKPOINT_METADATA   Orbax's step metadata (items, commit time)
      params/                Orbax PyTree item of TrainState.params
      opt_state/             ... of TrainState.opt_state (absent for an
                             optimizer without state, e.g. optax.scale)
      extra/                 ... of {'step', 'rng', 'bad_step', 'model_state'}
                             only for a model with model_state collections
                             (batch_stats); else those three scalars are
                             the metadata's 'train_state' (one Orbax item
                             less per save: ~15 % of a 95 MB save here)
                             (each item zstd-compressed when it holds a
                             table, ``_orbax.save_args``; else raw)
      metadata/metadata      JSON: {'step': int, 'estlab_version': str,
                             'time': unix seconds, 'variables':
                             {'Dense_0/kernel': [shape, dtype], ...},
                             'train_state': {'step': int, 'rng': [int],
                             'bad_step': int} (without extra/),
                             'checksums': 'estlab_checksums.json',
                             **the caller's metadata}
      estlab_checksums.json  size and checksum of every file above (written
                             last, before the commit; ``_integrity``), checked
                             before a step is read: a damaged step raises
                             ``CorruptCheckpointError``, and the latest
                             checkpoint is the newest intact one

Reading it with Orbax alone (the snippet the README shows)::

  import orbax.checkpoint as ocp

  mngr = ocp.CheckpointManager(model_dir)  # an absolute path
  step = mngr.latest_step()
  restored = mngr.restore(step, args=ocp.args.Composite(
      params=ocp.args.StandardRestore(),
      metadata=ocp.args.JsonRestore()))
  params, info = restored['params'], restored['metadata']

Notes on Orbax (checked against orbax-checkpoint 0.12):

* Saves are atomic: Orbax writes ``<step>.orbax-checkpoint-tmp`` and renames
  it to ``<step>`` once every item is written (on GCS, where renames are not
  atomic, it writes a ``commit_success.txt`` marker instead). Step listing
  ignores unfinished directories, so a crash mid-save never becomes the
  latest checkpoint.
* optax states (NamedTuples, ``optax.EmptyState()``, empty tuples and dicts)
  and an empty ``model_state`` round-trip as they are when restored onto a
  target, so they are stored unflattened and stay readable by plain Orbax.
  As a safety net, restored subtrees are re-assembled into the target's exact
  treedef, matching leaves by their '/'-joined path.
"""
from __future__ import annotations

import errno
import glob
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from estlab._engine.state import TrainState
from estlab.checkpoint import _integrity, _orbax
from estlab.checkpoint._integrity import CorruptCheckpointError
from estlab.checkpoint._step_dirs import empty_trash, local_steps
from estlab.checkpoint._trees import (CheckpointMismatchError, abstract_like,
                                      dtype_of, flatten_names)

logger = logging.getLogger('estlab')

__all__ = [
    'CheckpointMismatchError',
    'Checkpointer',
    'CorruptCheckpointError',
    'flatten_names',
    'latest_checkpoint',
]



def latest_checkpoint(model_dir: str | os.PathLike) -> str | None:
  """Returns the newest complete checkpoint directory under ``model_dir``.

  Like ``tf.train.latest_checkpoint``; the result is a valid ``path=`` for
  ``Checkpointer.restore`` and Estimator's ``checkpoint_path``.

  Args:
    model_dir: the Estimator's model directory.

  Returns:
    ``'model_dir/<step>'`` for the highest finished step, or None if there is
    none (or ``model_dir`` does not exist).

  Example:
    >>> latest_checkpoint('/tmp/no/such/dir') is None
    True
  """
  directory = _orbax.normalize(model_dir)
  if not epath.Path(directory).is_dir():
    return None
  steps = local_steps(directory)
  if steps is not None:  # local: the newest intact step (warns of others)
    step = _integrity.newest_intact(directory, steps)
    return None if step is None else _orbax.join(directory, step)
  mngr = _orbax.make_manager(directory, read_only=True)
  try:
    step = mngr.latest_step()
  finally:
    mngr.close()
  return None if step is None else _orbax.join(directory, step)


class Checkpointer:
  """Saves and restores ``TrainState``s as Orbax checkpoints in a directory.

  Example:
    >>> ckpt = Checkpointer('/tmp/model')       # doctest: +SKIP
    >>> ckpt.save(state)                        # doctest: +SKIP
    '/tmp/model/100'
    >>> state = ckpt.restore(jax.eval_shape(lambda: state))  # doctest: +SKIP
    >>> ckpt.close()                            # doctest: +SKIP
  """

  def __init__(
      self,
      directory: str | os.PathLike,
      *,
      max_to_keep: int | None = 5,
      async_save: bool = True,
  ):
    """Stores the settings; the directory is created on the first save.

    Args:
      directory: the model_dir; step directories go directly under it.
      max_to_keep: keep the newest this many checkpoints (None keeps all).
      async_save: if True, ``save`` returns once the arrays are on the host and
        the files are written in a background thread.
    """
    if max_to_keep is not None and (
        isinstance(max_to_keep, bool)
        or not isinstance(max_to_keep, int)
        or max_to_keep < 1
    ):
      raise ValueError(
          f'max_to_keep must be a positive int or None, got {max_to_keep!r}. '
          'Pass e.g. max_to_keep=5, or None to keep every checkpoint.'
      )
    self.directory = _orbax.normalize(directory)
    self.max_to_keep = max_to_keep
    self.async_save = async_save
    self._mngr: ocp.CheckpointManager | None = None
    self._readers: dict[str, ocp.CheckpointManager] = {}
    self._saving: int | None = None  # the step of a save not yet waited for

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def latest_step(self) -> int | None:
    """Returns the newest finished (or in-flight, from this object) step."""
    steps = self.all_steps()
    return steps[-1] if steps else None

  def all_steps(self) -> list[int]:
    """Returns the steps of all checkpoints in the directory, ascending."""
    return _orbax.steps(self._manager(create=False))

  def path(self, step: int) -> str:
    """Returns the directory of ``step``'s checkpoint: ``model_dir/<step>``."""
    return _orbax.join(self.directory, int(step))

  def save(
      self, state: TrainState, metadata: Mapping[str, Any] | None = None
  ) -> str:
    """Saves ``state`` as the checkpoint for step ``int(state.step)``.

    The write is atomic (see the module docstring). With ``async_save`` this
    returns once the arrays are copied to host memory, so the caller may then
    donate or overwrite the device buffers; call ``wait_until_finished`` to
    wait for the files.

    Args:
      state: the state to save.
      metadata: extra JSON-serializable entries for the ``metadata`` item.

    Returns:
      The checkpoint's path. If that step is already saved, nothing is
      written and its path is returned.

    Example:
      >>> Checkpointer('/tmp/m').save(state, {'loss': 0.3})  # doctest: +SKIP
      '/tmp/m/100'
    """
    step = int(state.step)
    info = dict(metadata or {})
    clash = sorted(set(info) & set(_orbax.RESERVED_METADATA))
    if clash:
      raise ValueError(
          f'metadata may not set the reserved keys {clash!r} (got {info!r}); '
          'estlab writes them itself. Rename those entries.'
      )
    try:
      json.dumps(info)
    except TypeError as e:
      raise TypeError(
          f'metadata must be JSON-serializable, got {info!r} ({e}). '
          'Convert arrays with float(...) or .tolist().'
      ) from None
    mngr = self._manager(create=True)
    if not mngr.is_saving_in_progress():  # steps Orbax deleted: renamed away
      empty_trash(self.directory)
    if self._has_step(mngr, step) and not self._set_aside_if_damaged(step):
      return self.path(step)
    info.update(
        step=step,
        estlab_version=_orbax.version(),
        time=time.time(),
        variables={
            name: [list(np.shape(leaf)), dtype_of(leaf).name]
            for name, leaf in flatten_names(state.params).items()
        },
    )
    if '://' not in self.directory:  # a local step gets checksums
      info['checksums'] = _integrity.MANIFEST
    items = {'params': state.params, 'opt_state': state.opt_state}
    if _orbax.is_empty(state.model_state):
      info['train_state'] = _scalars_to_json(state)
    else:
      items['extra'] = _extra(state)
    with self._explained(self._saving):  # a failed earlier async save
      mngr.wait_until_finished()
    self._saving = step
    with self._explained(step):
      mngr.save(
          step,
          args=ocp.args.Composite(
              **{name: _orbax.save_args(tree) for name, tree in items.items()
                 if not _orbax.is_empty(tree)},
              metadata=ocp.args.JsonSave(info),
          ),
          # Our own "already saved" check is above; `force` lets a run that
          # restarted from an older checkpoint save steps below the latest.
          force=True,
      )
      if not self.async_save:
        mngr.wait_until_finished()
    return self.path(step)

  def is_saving(self) -> bool:
    """Whether an asynchronous save is still being written."""
    return self._mngr is not None and self._mngr.is_saving_in_progress()

  def wait_until_finished(self) -> None:
    """Blocks until background saves are written (re-raises their errors).

    Raises:
      OSError: the disk filled up while a save was written (``errno.ENOSPC``;
        the message names the step and the directory). Nothing of that step
        was committed: the previous checkpoint stays the latest.
    """
    if self._mngr is not None:
      with self._explained(self._saving):
        self._mngr.wait_until_finished()
      self._saving = None
      empty_trash(self.directory)

  def restore(
      self,
      target: TrainState,
      step: int | None = None,
      path: str | os.PathLike | None = None,
  ) -> TrainState:
    """Restores a checkpoint onto ``target``'s structure, dtypes and shardings.

    Before reading arrays, checks the checkpoint's variable names and shapes
    against ``target.params``.

    Args:
      target: a ``TrainState`` with concrete leaves, or abstract ones
        (``jax.ShapeDtypeStruct`` from ``jax.eval_shape``). Leaves with a
        ``.sharding`` are restored onto it; others onto the default device.
      step: the step to restore; default the latest.
      path: a checkpoint directory ``model_dir/<step>`` (tf.estimator's
        ``checkpoint_path``), instead of ``step``.

    Returns:
      A ``TrainState`` with the same pytree structure as ``target``.

    Raises:
      CheckpointMismatchError: the checkpoint does not fit the target.
      ValueError: there is no such checkpoint.

    Example:
      >>> abstract = jax.eval_shape(init_state)       # doctest: +SKIP
      >>> state = Checkpointer(model_dir).restore(abstract)  # doctest: +SKIP
    """
    mngr, step = self._locate(step, path)
    info = _orbax.read_json(mngr, step)
    scalars = info.get('train_state')
    got = _orbax.restore_checked(mngr, step, target.params, {
        'opt_state': abstract_like(target.opt_state),
        # Without scalars in the JSON (a model_state, or a checkpoint from
        # before them) all of extra is an item; else only a model_state
        # would be, and none was saved: a target with one does not fit.
        'extra': abstract_like(_extra(target) if scalars is None
                               else target.model_state),
    }, info)
    if scalars is None:
      extra = got['extra']
    else:
      extra = dict(_scalars_from_json(scalars, target, step),
                   model_state=got['extra'])
    return target.replace(
        step=extra['step'],
        params=got['params'],
        opt_state=got['opt_state'],
        model_state=extra['model_state'],
        rng=extra['rng'],
        bad_step=extra['bad_step'],
    )

  def restore_variables(
      self,
      target: Mapping[str, Any],
      step: int | None = None,
      path: str | os.PathLike | None = None,
  ) -> dict:
    """Restores the Flax variables only, for evaluation and prediction.

    Like ``restore`` (same checks, shardings and ``step``/``path``), but needs
    no optimizer: reads the ``params`` and the ``model_state`` collections.

    Args:
      target: ``{'params': ..., <collections>}``, concrete or abstract, e.g.
        ``jax.eval_shape(module.init, rngs, x)``.
      step: the step to restore; default the latest.
      path: a checkpoint directory ``model_dir/<step>``, instead of ``step``.

    Returns:
      A dict with ``target``'s keys and structure.

    Example:
      >>> abstract = jax.eval_shape(model.init, rngs, x)   # doctest: +SKIP
      >>> variables = ckpt.restore_variables(abstract)      # doctest: +SKIP
      >>> model.apply(variables, x)                          # doctest: +SKIP
    """
    mngr, step = self._locate(step, path)
    collections = {k: v for k, v in target.items() if k != 'params'}
    # The scalars beside model_state are read as saved (shapes from Orbax).
    saved = _orbax.item_tree(mngr, step, 'extra')
    if saved is None:  # no model_state saved: a target with one does not fit
      got = _orbax.restore_checked(mngr, step, target['params'],
                                   {'extra': abstract_like(collections)})
      return {'params': got['params'], **got['extra']}
    extra = {
        name: jax.ShapeDtypeStruct(saved[name].shape, saved[name].dtype)
        for name in ('step', 'rng', 'bad_step') if name in saved
    }
    extra = abstract_like(extra)
    extra['model_state'] = abstract_like(collections)
    got = _orbax.restore_checked(mngr, step, target['params'], {'extra': extra})
    return {'params': got['params'], **got['extra']['model_state']}

  def restore_params(
      self, step: int | None = None, path: str | os.PathLike | None = None
  ) -> dict:
    """Returns a checkpoint's params as saved, without a target.

    For ``Estimator.get_variable_value`` and warm-starting.

    Args:
      step: the step to read; default the latest.
      path: a checkpoint directory ``model_dir/<step>``, instead of ``step``.

    Returns:
      The params: nested dicts of ``jax.Array`` on the default device.

    Example:
      >>> flatten_names(ckpt.restore_params())['Dense_0/bias']  # doctest: +SKIP
      Array([0.1, 0.2], dtype=float32)
    """
    mngr, step = self._locate(step, path)
    return _restore_as_saved(mngr, step, 'params')

  def restore_model_state(
      self, step: int | None = None, path: str | os.PathLike | None = None
  ) -> dict:
    """Returns a checkpoint's ``model_state`` (e.g. ``{'batch_stats': ...}``)
    as saved, without a target; ``{}`` if the model had none.

    For ``Estimator.get_variable_names``, which lists batch normalization's
    moving statistics as TF does.

    Args:
      step: the step to read; default the latest.
      path: a checkpoint directory ``model_dir/<step>``, instead of ``step``.
    """
    mngr, step = self._locate(step, path)
    if _orbax.item_tree(mngr, step, 'extra') is None:
      return {}
    return dict(_restore_as_saved(mngr, step, 'extra').get('model_state') or {})

  def read_metadata(
      self, step: int | None = None, path: str | os.PathLike | None = None
  ) -> dict:
    """Returns a checkpoint's ``metadata`` JSON item as a dict.

    Args:
      step: the step to read; default the latest.
      path: a checkpoint directory ``model_dir/<step>``, instead of ``step``.

    Example:
      >>> ckpt.read_metadata()['variables']   # doctest: +SKIP
      {'Dense_0/bias': [[2], 'float32'], 'Dense_0/kernel': [[4, 2], 'float32']}
    """
    mngr, step = self._locate(step, path)
    return _orbax.read_json(mngr, step)

  def close(self) -> None:
    """Waits for background saves, then releases Orbax's resources."""
    managers, writer = list(self._readers.values()), self._mngr
    if self._mngr is not None:
      managers.insert(0, self._mngr)
    self._mngr, self._readers = None, {}
    for mngr in managers:
      mngr.close()
    if writer is not None:
      empty_trash(self.directory)

  def _explained(self, step: int | None) -> _SaveErrors:
    return _SaveErrors(self, step)

  def _set_aside_if_damaged(self, step: int) -> bool:
    """Renames a damaged committed ``step`` (a run resumed from an older
    checkpoint is saving it again) to ``<step>.damaged-<time>``, which no
    step listing counts; True if it did."""
    path = self.path(step)
    if '://' in path or not os.path.isdir(path):
      return False
    error = _integrity.damage(path)
    if error is None:
      return False
    aside = f'{path}.damaged-{time.time_ns()}'
    os.replace(path, aside)
    logger.warning('Step %d is being saved again over its damaged checkpoint '
                   '(%s %s); the damaged one was moved to %s.', step,
                   error.file, error.reason, aside)
    if self._mngr is not None:
      self._mngr.reload()
    return True

  def _has_step(self, mngr: ocp.CheckpointManager, step: int) -> bool:
    """Whether ``step`` is saved or being saved by ``mngr``; a local
    directory is listed rather than reloaded (``local_steps``)."""
    on_disk = local_steps(self.directory)
    if on_disk is None:
      return step in _orbax.steps(mngr)
    return step in on_disk or (mngr.is_saving_in_progress()
                               and step in mngr.all_steps())

  def _manager(self, create: bool) -> ocp.CheckpointManager | None:
    """The manager of ``self.directory``; None if absent and not creating."""
    if self._mngr is None:
      if not create and not epath.Path(self.directory).is_dir():
        return None
      self._mngr = _orbax.make_manager(
          self.directory,
          max_to_keep=self.max_to_keep,
          async_save=self.async_save,
      )
    return self._mngr

  def _locate(
      self, step: int | None, path: str | os.PathLike | None
  ) -> tuple[ocp.CheckpointManager, int]:
    """Resolves ``step``/``path`` to (manager of its directory, step)."""
    if path is not None:
      if step is not None:
        raise ValueError(
            f'Pass step or path, not both (got step={step!r}, path={path!r}).'
        )
      directory, step = _orbax.split_step_path(path)
      if directory == self.directory:
        mngr = self._manager(create=False)
      elif directory in self._readers:
        mngr = self._readers[directory]
      elif epath.Path(directory).is_dir():
        mngr = self._readers[directory] = _orbax.make_manager(
            directory, read_only=True)
      else:
        mngr = None
      if step not in _orbax.steps(mngr):
        raise ValueError(
            f'{os.fspath(path)!r} is not a finished checkpoint. Pass an '
            "existing step directory 'model_dir/<step>', e.g. the result of "
            'latest_checkpoint(model_dir).'
        )
      _raise_if_damaged(mngr, step)
      return mngr, step
    mngr = self._manager(create=False)
    steps = _orbax.steps(mngr)
    if not steps:
      raise ValueError(
          f'There is no checkpoint in {self.directory!r}. Train first, or '
          'check the model_dir.'
      )
    if step is None:
      if '://' in self.directory or mngr.is_saving_in_progress():
        return mngr, steps[-1]
      newest = _integrity.newest_intact(self.directory, steps)
      if newest is None:  # every step is damaged: name the newest's file
        _raise_if_damaged(mngr, steps[-1])
      return mngr, newest
    if int(step) not in steps:
      raise ValueError(
          f'There is no checkpoint for step {step!r} in {self.directory!r}. '
          f'Pass one of the saved steps {steps!r}.'
      )
    _raise_if_damaged(mngr, int(step))
    return mngr, int(step)


def _raise_if_damaged(mngr: ocp.CheckpointManager, step: int) -> None:
  """Raises ``CorruptCheckpointError`` if a local committed ``step`` does
  not match its checksums (a step still being saved is not checked)."""
  path = _orbax.join(str(mngr.directory), step)
  if '://' in path or not os.path.isdir(path):
    return
  error = _integrity.damage(path)
  if error is not None:
    raise error


def _is_disk_full(error: BaseException) -> bool:
  """Whether ``error`` (or one it wraps: TensorStore's errors are not
  OSErrors) says the disk is full."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if getattr(error, 'errno', None) in (errno.ENOSPC, errno.EDQUOT):
      return True
    text = str(error)
    if 'No space left on device' in text or 'Disk quota exceeded' in text:
      return True
    error = error.__cause__ or error.__context__
  return False


class _SaveErrors:
  """Turns a disk-full error while saving ``step`` into an ``OSError``
  (``ENOSPC``) that says so, after removing the step's unfinished files."""

  def __init__(self, checkpointer: Checkpointer, step: int | None):
    self._ckpt, self._step = checkpointer, step

  def __enter__(self) -> None:
    return None

  def __exit__(self, kind, error, tb) -> bool:
    if error is None or not isinstance(error, Exception) or not _is_disk_full(
        error):
      return False
    ckpt, step = self._ckpt, self._step
    ckpt._saving = None  # pylint: disable=protected-access
    directory = ckpt.directory
    for tmp in glob.glob(glob.escape(f'{directory}/{step}') +
                         '.orbax-checkpoint-tmp*'):
      shutil.rmtree(tmp, ignore_errors=True)  # give the space back
    steps = local_steps(directory) or []
    steps = [s for s in steps if s != step]
    latest = (_integrity.newest_intact(directory, steps)
              if '://' not in directory else None)
    kept = ('no earlier checkpoint is there' if latest is None else
            f'the latest checkpoint is still step {latest} '
            f'({_orbax.join(directory, latest)!r})')
    raise OSError(
        errno.ENOSPC,
        f'The disk is full: saving the checkpoint of step {step} to '
        f'{directory!r} failed ({error}). Nothing of step {step} was '
        f'committed; {kept}. Fix: free space on that disk (or lower '
        'keep_checkpoint_max, or use a model_dir on a larger disk) and train '
        'again: it resumes from the latest checkpoint.') from error


def _restore_as_saved(mngr: ocp.CheckpointManager, step: int, item: str
                      ) -> Any:
  """One array item as saved, on the default device."""
  tree = _orbax.item_tree(mngr, step, item)
  if tree is None:
    args = ocp.args.StandardRestore()
  else:
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    args = ocp.args.StandardRestore(jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
        tree,
    ))
  return mngr.restore(step, args=ocp.args.Composite(**{item: args}))[item]


def _scalars_to_json(state: TrainState) -> dict[str, Any]:
  """``step``, ``rng`` and ``bad_step`` as JSON numbers (each process's
  copy: they are replicated)."""
  def value(leaf):
    if isinstance(leaf, jax.Array):
      leaf = leaf.addressable_data(0)
    return np.asarray(jax.device_get(leaf)).tolist()
  return {name: value(getattr(state, name))
          for name in ('step', 'rng', 'bad_step')}


def _scalars_from_json(scalars: Mapping[str, Any], target: TrainState,
                       step: int) -> dict[str, Any]:
  """``_scalars_to_json``'s values as arrays like ``target``'s leaves (their
  dtype, shape and sharding)."""
  out = {}
  for name in ('step', 'rng', 'bad_step'):
    like = getattr(target, name)
    value = np.asarray(scalars[name], dtype=like.dtype)
    if value.shape != tuple(like.shape):
      raise CheckpointMismatchError(
          f'The checkpoint of step {step} holds {name} of shape '
          f'{value.shape}, the target {tuple(like.shape)}: another PRNG '
          'implementation (jax_default_prng_impl)? Fix: restore with the '
          'setting it was saved with, or warm-start from it.')
    sharding = getattr(like, 'sharding', None)
    if sharding is None:
      out[name] = jnp.asarray(value)
    else:
      out[name] = jax.make_array_from_callback(
          value.shape, sharding, lambda index, v=value: v[index])
  return out


def _extra(state: TrainState) -> dict[str, Any]:
  return {
      'step': state.step,
      'rng': state.rng,
      'bad_step': state.bad_step,
      'model_state': state.model_state,
  }
