"""Distribution strategies as JAX meshes: tf.distribute's names, JAX's sharding.

A strategy says where batches and parameters live; the compiled steps are the
same ``jax.jit`` functions, and XLA inserts the collectives (gradient
all-reduce) from the shardings. No hand-written cluster code.
``MultiWorkerMirroredStrategy()`` joins the ``jax.distributed`` run that
``TF_CONFIG`` describes (``_tf_config``). Names load on first use, so
``RunConfig`` reads ``TF_CONFIG`` without importing JAX.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "InputContext": "estlab.distribute._strategies",
    "MirroredStrategy": "estlab.distribute._strategies",
    "MultiWorkerMirroredStrategy": "estlab.distribute._strategies",
    "OneDeviceStrategy": "estlab.distribute._strategies",
    "Strategy": "estlab.distribute._strategies",
    "ClusterSpec": "estlab.distribute._tf_config",
    "TFConfigError": "estlab.distribute._tf_config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
  if name in _EXPORTS:
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'estlab.distribute' has no attribute {name!r}")


def __dir__():
  return __all__


if TYPE_CHECKING:  # for type checkers and IDEs; not executed at run time
  from estlab.distribute._strategies import (InputContext, MirroredStrategy,
                                             MultiWorkerMirroredStrategy,
                                             OneDeviceStrategy, Strategy)
  from estlab.distribute._tf_config import ClusterSpec, TFConfigError
