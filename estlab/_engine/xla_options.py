"""XLA compile options for estlab's own steps, and which ones this XLA takes.

XLA reads its options from the ``XLA_FLAGS`` environment variable for the
whole process; ``jax.jit(..., compiler_options=...)`` sets them for one
function. estlab passes a few per function, where measured (below), and
never one the user set in ``XLA_FLAGS``: theirs wins.

Options name XLA internals that come and go between releases (jaxlib 0.11
dropped ``xla_cpu_use_fusion_emitters``), so ``supported`` asks this XLA
once per option and process with a trivial compile, and drops the ones it
refuses ("No such compile option"); ``probe_ahead`` asks in the background
while the first batch is prepared.
"""
from __future__ import annotations

import inspect
import logging
import os
import threading
from typing import Any

import jax
import numpy as np

__all__ = ["dot_options", "jit_kwargs", "probe_ahead", "run_once_options",
           "supported"]

logger = logging.getLogger("estlab")

# Init runs once: XLA's backend optimisations would cost seconds of compile
# (measured 3.6 s -> 1.0 s for a DNNClassifier on CPU) to save microseconds.
_RUN_ONCE = {"xla_backend_optimization_level": 0}
# Init is many small fusions (an initializer and its random bits per
# variable); XLA:CPU's older loop emitters compile them faster (0.8 -> 0.5 s
# for a DNNClassifier, while the train step compiles beside it on 2 cores).
# Not for the train step: its code runs slower that way.
_RUN_ONCE_CPU = {"xla_cpu_use_fusion_emitters": False}

# XLA:CPU (jaxlib 0.10) hands dots to YNNPACK fusions. For an estimator's
# small dense layers its own dot emitter (Eigen) was faster on a 2-core
# EPYC VM, same process, interleaved: a [128, 64] DNN step at batch 256
# 425 -> 308 us (the census DNN end to end 1.1-1.6x), [256, 128] 1091 ->
# 824 us, [512, 256] even (batch 256) to 8% faster (batch 4096). From
# 512 x 512 kernels on YNNPACK was even or faster ([1024, 512]: 3-15%), so
# larger models keep XLA's choice. Same compile time either way.
_SMALL_DOTS_CPU = {"xla_cpu_experimental_ynn_fusion_type": ""}
# Dense kernels (2-D ``kernel`` params, Flax's Dense) below this many
# elements take ``_SMALL_DOTS_CPU``.
_SMALL_KERNEL_ELEMENTS = 1 << 18

_ACCEPTED: dict[str, bool] = {}  # option -> whether this XLA takes it
_LOCK = threading.Lock()  # held while probing
_AHEAD: list[threading.Thread] = []  # ``probe_ahead``'s thread
_AHEAD_LOCK = threading.Lock()


def _user_flags() -> str:
  return os.environ.get("XLA_FLAGS", "")


def _compiles_with(options: dict[str, Any]) -> bool:
  """Whether XLA compiles ``x + 1`` with ``options`` (on the host CPU where
  there is one: options are parsed alike everywhere, and an accelerator's
  compile costs more)."""
  x = np.float32(0)
  try:
    x = jax.device_put(x, jax.local_devices(backend="cpu")[0])
  except RuntimeError:  # JAX_PLATFORMS without "cpu"
    pass
  try:
    jax.jit(lambda v: v + 1).lower(x).compile(options)
    return True
  except Exception as e:  # pylint: disable=broad-except
    if "No such compile option" not in str(e):
      raise
    logger.debug("This XLA refuses one of %s.", sorted(options))
    return False


def _probe(options: dict[str, Any]) -> None:
  """Records which of ``options`` this XLA takes: one compile for all of
  them, one per option only where XLA refuses some."""
  with _LOCK:
    new = {k: v for k, v in options.items() if k not in _ACCEPTED}
    if not new:
      return
    if len(new) > 1 and _compiles_with(new):
      _ACCEPTED.update(dict.fromkeys(new, True))
      return
    for name, value in new.items():
      _ACCEPTED[name] = _compiles_with({name: value})


def probe_ahead() -> None:
  """Starts asking XLA about every option here, in a background thread (a
  compile, ~50 ms), so that the first step does not wait for it. Once per
  process; ``supported`` joins it."""
  with _AHEAD_LOCK:
    if _AHEAD:
      return
    thread = threading.Thread(
        target=lambda: _probe({**_RUN_ONCE_CPU, **_SMALL_DOTS_CPU}),
        daemon=False, name="estlab-xla-probe")
    _AHEAD.append(thread)
  thread.start()


def supported(options: dict[str, Any]) -> dict[str, Any]:
  """The entries of ``options`` this XLA accepts and the user did not set."""
  user = _user_flags()
  options = {k: v for k, v in options.items() if k not in user}
  for thread in list(_AHEAD):
    thread.join()
  _probe(options)
  return {k: v for k, v in options.items() if _ACCEPTED[k]}


def run_once_options() -> dict[str, Any]:
  """Compile options for a function run once (init): compiles fast."""
  return {**_RUN_ONCE, **supported(_RUN_ONCE_CPU)}


def dot_options(params: Any, backend: str) -> dict[str, Any]:
  """Compile options for the steps of a model with ``params`` (shapes will do).

  On XLA:CPU, when the model has dense kernels (2-D leaves named
  ``kernel``) and all of them are small (``_SMALL_KERNEL_ELEMENTS``), and no
  other ``kernel`` (a convolution's, 3-D and up), dots use XLA's own
  emitter instead of YNNPACK fusions (see ``_SMALL_DOTS_CPU``). Otherwise,
  and on accelerators: no options (XLA's defaults).
  """
  if backend != "cpu":
    return {}
  kernels = [
      leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params)
      if path and getattr(path[-1], "key", None) == "kernel"]
  if not kernels or any(np.ndim(k) != 2 for k in kernels):
    return {}
  if max(int(np.prod(np.shape(k))) for k in kernels) >= _SMALL_KERNEL_ELEMENTS:
    return {}
  return supported(_SMALL_DOTS_CPU)


def jit_kwargs(options: dict[str, Any]) -> dict[str, Any]:
  """``jax.jit`` keyword arguments for ``options`` ({} where this JAX's jit
  takes no ``compiler_options``: older releases had none)."""
  if not options:
    return {}
  if "compiler_options" not in inspect.signature(jax.jit).parameters:
    return {}
  return {"compiler_options": dict(options)}
