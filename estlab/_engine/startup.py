"""Start-up cost hidden: compiles in background threads, small states drawn on the host.

``compile_ahead`` starts a jitted function's compilation in a thread so it
overlaps other work (the first batch, restoring a checkpoint, training);
``host_for_init`` says where a fresh state is initialised.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

import jax

__all__ = ["compile_ahead", "host_for_init", "init_on_host"]

logger = logging.getLogger("estlab")

# On an accelerator a small state is initialised by the host CPU and then
# copied over: on an H100, init's compile for the GPU (many small kernels)
# took 1.8 s against 0.2 s for XLA:CPU on the same machine, on the first
# step's critical path. The draws are the host's (threefry gives the same
# bits on every backend; float transforms may differ in the last ulp). Only
# for states the host draws quickly (64 MB: ~0.3 s on 2 cores) and never
# under a strategy (each host of a multi-host run would draw its replicas).
_HOST_INIT_MAX_BYTES = 64 << 20


def init_on_host(backend: str, state_bytes: int, distributed: bool) -> bool:
  """Whether ``CompiledSteps.init`` should run on the host (see above)."""
  return (backend != "cpu" and not distributed
          and state_bytes <= _HOST_INIT_MAX_BYTES)


def host_for_init(abstract: Any, distributed: bool) -> jax.Device | None:
  """The host's CPU device where ``init_on_host`` says so, else None."""
  size = sum(x.size * getattr(x.dtype, "itemsize", 8)
             for x in jax.tree.leaves(abstract))
  if not init_on_host(jax.default_backend(), size, distributed):
    return None
  try:
    return jax.devices("cpu")[0]
  except RuntimeError:  # JAX_PLATFORMS without "cpu"
    return None


def compile_ahead(fn: Any, *args: Any, low_priority: bool = False,
                  **kwargs: Any) -> threading.Thread:
  """Starts compiling the jitted ``fn`` for ``args`` in a background thread.

  ``args`` may be arrays or ``jax.ShapeDtypeStruct``s. A later call with
  arguments of the same shapes finds the executable in ``jit``'s cache, so
  compilations overlap other work (XLA compiles without holding the GIL).
  Join the thread before that call, or it compiles twice. Errors are left
  for that call to raise, with the user's traceback. ``fn`` may also be a
  plain callable doing such compilations. ``low_priority`` lowers the
  thread's scheduling priority (Linux), so it yields to training.
  """
  def run():
    if low_priority and sys.platform.startswith("linux"):
      # On Linux a thread id is a valid "process" for setpriority: it lowers
      # this thread (and threads it starts) only. Elsewhere it is not.
      try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
      except OSError:
        pass
    try:
      if hasattr(fn, "lower"):
        fn.lower(*args, **kwargs).compile()
      else:
        fn(*args, **kwargs)
    except Exception as e:  # pylint: disable=broad-except
      logger.debug("Compiling ahead failed (the call will retry): %s", e)
  # Not a daemon: the interpreter waits for it at exit, as XLA aborts the
  # process when a thread is killed while compiling.
  thread = threading.Thread(target=run, daemon=False, name="estlab-compile")
  thread.start()
  return thread
