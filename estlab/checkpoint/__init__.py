"""Checkpoints: where the Estimator's ``TrainState`` is committed to disk.

One job: write a ``model_dir``'s step directories (``model_dir/<step>``, an
Orbax ``CheckpointManager`` layout readable without estlab), read them back
checked against the model, and report what they hold. A checkpoint is
committed in one place: ``Checkpointer.save`` (``_checkpointer``), whose
write Orbax makes atomic.

Modules, from the bottom up:

* ``_step_dirs``: the committed steps of a local ``model_dir`` from its
  listing, without importing Orbax (the Estimator asks on every call);
  stray all-digit names are ignored, half-deleted steps cleaned.
* ``_lock``: one trainer per ``model_dir`` (an flock the OS drops when
  the process dies) and the read-only check train and evaluate make first.
* ``_trees``: pytree helpers for checkpoints: '/'-joined variable names,
  abstract restore targets, and the variables check that raises
  ``CheckpointMismatchError``.
* ``_legacy_names``: the variable names estlab wrote before TF 2.x's,
  mapped when such a checkpoint is restored or read.
* ``_integrity``: checksums of a step's files, written as it commits and
  checked before it is read (``CorruptCheckpointError``; the newest intact
  step is the latest).
* ``_orbax``: the Orbax plumbing: the manager, step paths, item readers
  (a checkpoint with the old names is restored through ``_legacy_names``).
* ``_checkpointer``: ``Checkpointer`` (save, restore, metadata) and
  ``latest_checkpoint``; the on-disk layout is documented there.
* ``_model_dir``: ``ModelDir``, one model_dir's checkpoints as the
  Estimator asks for them (the latest from the listing; the
  ``Checkpointer`` opened on the first read or write).
* ``_tf_format``: TensorFlow's checkpoints (a tf.estimator model_dir's
  ``checkpoint`` file, ``model.ckpt-N.index`` and ``.data-*``) read
  without TensorFlow, for warm start and ``inspect``.
* ``inspect``: tables of a ``model_dir``'s checkpoints for ``estlab
  inspect`` and ``estlab.widgets.CheckpointInspector`` (public as
  ``estlab.inspect``).

Orbax takes ~0.6 s to import, so this package is lazy: its names load their
module on first use, and importing ``estlab.checkpoint._step_dirs`` loads no
Orbax.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# public name -> module that defines it
_EXPORTS = {
    'CheckpointMismatchError': 'estlab.checkpoint._trees',
    'Checkpointer': 'estlab.checkpoint._checkpointer',
    'CorruptCheckpointError': 'estlab.checkpoint._integrity',
    'flatten_names': 'estlab.checkpoint._trees',
    'latest_checkpoint': 'estlab.checkpoint._checkpointer',
    'ModelDirBusyError': 'estlab.checkpoint._lock',
    'ReadOnlyModelDirError': 'estlab.checkpoint._lock',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
  if name in _EXPORTS:
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(
      f"module 'estlab.checkpoint' has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs; not executed at run time
  from estlab.checkpoint._checkpointer import Checkpointer, latest_checkpoint
  from estlab.checkpoint._integrity import CorruptCheckpointError
  from estlab.checkpoint._lock import ModelDirBusyError, ReadOnlyModelDirError
  from estlab.checkpoint._trees import CheckpointMismatchError, flatten_names
