"""ProfilerHook: a ``jax.profiler`` trace of a training step every N steps.

tf.estimator's ``ProfilerHook`` wrote a Chrome timeline of one
``session.run`` every N steps or seconds; on JAX the same hook traces one
step (one loop with ``steps_per_loop``) with ``jax.profiler`` and leaves it
where TensorBoard's profile plugin reads it:
``<output_dir>/plugins/profile/<time>_step_<global step>/<host>.xplane.pb``.

Example:
  >>> hook = estlab.ProfilerHook(save_steps=100, output_dir=est.model_dir)
  >>> est.train(input_fn, hooks=[hook], steps=300)  # doctest: +SKIP
  # traces of steps 100, 200, 300: `tensorboard --logdir model_dir`, Profile
"""
from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile

from estlab.hooks import SecondOrStepTimer, SessionRunHook

__all__ = ["ProfilerHook"]

logger = logging.getLogger("estlab")


class ProfilerHook(SessionRunHook):
  """Captures a ``jax.profiler`` trace every N steps or seconds.

  As tf.estimator's: nothing is traced in the first run; then the run that
  reaches ``save_steps`` steps past the last trace (or starts ``save_secs``
  seconds after it) is traced, from its ``before_run`` until its outputs
  are on the host, so from a start at step 0 with ``save_steps=100`` the
  traces are of steps 100, 200, ... With ``steps_per_loop`` a run is a loop
  and its trace is named by the loop's last step. JAX runs one trace at a
  time: hooks due at the same run share it (each gets a copy).

  Args:
    save_steps: trace every this many steps (exactly one of the two).
    save_secs: trace every this many seconds.
    output_dir: TensorBoard's log directory (``''``: the current one); each
      trace is a run of the profile plugin, ``plugins/profile/<time>_step_N``.
    show_dataflow: keep the compiled steps' HLO in the trace (the producer
      and consumer of each array, in the plugin's graph and op views).
    show_memory: also write the device memory in use after the traced step
      (``memory.prof``, pprof format: the size and origin of each array).

  Raises:
    ValueError: both or neither of ``save_steps`` and ``save_secs``.
  """

  def __init__(self, save_steps: int | None = None,
               save_secs: float | None = None,
               output_dir: str | os.PathLike = "",
               show_dataflow: bool = True, show_memory: bool = False):
    self._timer = SecondOrStepTimer(every_secs=save_secs,
                                    every_steps=save_steps)
    self._output_dir = os.fspath(output_dir) or os.curdir
    self._show_dataflow = show_dataflow
    self._show_memory = show_memory
    self._next_step = None

  def begin(self) -> None:
    _TRACE.leave(self, None)  # (a trace an earlier call's error left open)
    self._timer.reset()
    self._next_step = None  # the last step of the coming run

  def before_run(self, run_context):
    self._run_from = run_context.global_step
    if (self._next_step is not None and
        self._timer.should_trigger_for_step(self._next_step)):
      _TRACE.join(self, (run_context.session, run_context.global_step),
                  show_dataflow=self._show_dataflow)

  def after_run(self, run_context, run_values):
    step = run_context.global_step
    if self._next_step is None:  # (no trace until N steps or secs passed)
      self._timer.update_last_triggered_step(self._run_from)
    if _TRACE.holds(self):
      run_values.results  # pylint: disable=pointless-statement
      # (the step's outputs are on the host now: it has run)
      _TRACE.leave(self, (os.path.join(self._output_dir, "plugins", "profile"),
                          step, self._show_memory))
      self._timer.update_last_triggered_step(step)
    self._next_step = step + max(step - self._run_from, 1)

  def end(self, session=None):
    del session
    _TRACE.leave(self, None)  # the input ended in before_run: no step ran


class _SharedTrace:
  """The process's one ``jax.profiler`` trace, shared by the ProfilerHooks
  due at the same run (JAX runs one trace at a time; TF traced a run once
  for every hook that asked). It is written to a temporary directory and
  copied, once the last of them leaves, into each one's profile directory
  as ``<time>_step_<step>``. A trace left open by a run that raised is
  dropped when a hook of another run joins."""

  def __init__(self):
    self._dir: str | None = None  # the running trace's log directory
    self._run: tuple | None = None  # (HookSession, step) it was started at
    self._hooks: set = set()  # the hooks inside it
    self._targets: list = []  # (profile dir, step, show_memory) to write

  def holds(self, hook: ProfilerHook) -> bool:
    return hook in self._hooks

  def join(self, hook: ProfilerHook, run: tuple, *, show_dataflow: bool
           ) -> None:
    import jax  # pylint: disable=g-import-not-at-top
    if self._dir is not None and (self._run[0] is not run[0] or
                                  self._run[1] != run[1]):
      self._close(write=False)  # (no hook of that run is left to end it)
    if self._dir is None:
      directory = tempfile.mkdtemp(prefix="estlab_profile_")
      kwargs = {}
      if hasattr(jax.profiler, "ProfileOptions"):
        options = jax.profiler.ProfileOptions()
        options.enable_hlo_proto = bool(show_dataflow)
        kwargs["profiler_options"] = options
      try:
        jax.profiler.start_trace(directory, **kwargs)
      except RuntimeError as e:
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(
            f"ProfilerHook could not start a trace: {e} Stop the "
            "jax.profiler trace running around train(), or drop the "
            "hook.") from e
      self._dir, self._run = directory, run
    self._hooks.add(hook)

  def leave(self, hook: ProfilerHook, target: tuple | None) -> None:
    """``hook`` leaves the trace; ``target``: ``(profile dir, step,
    show_memory)`` to write it to, None to drop its part."""
    if hook not in self._hooks:
      return
    self._hooks.discard(hook)
    if target is not None:
      self._targets.append(target)
    if not self._hooks:
      self._close(write=True)

  def _close(self, *, write: bool) -> None:
    import jax  # pylint: disable=g-import-not-at-top
    directory, targets = self._dir, self._targets if write else []
    self._dir, self._run, self._hooks, self._targets = None, None, set(), []
    try:
      jax.profiler.stop_trace()
      runs = sorted(glob.glob(os.path.join(directory, "plugins", "profile",
                                           "*")))
      if targets and not runs:
        logger.warning("ProfilerHook: the trace of step %d wrote nothing.",
                       targets[0][1])
      for profile_dir, step, show_memory in targets:
        for run in runs:
          target = os.path.join(profile_dir,
                                f"{os.path.basename(run)}_step_{step}")
          suffix = 1
          while os.path.exists(target):
            target = os.path.join(
                profile_dir, f"{os.path.basename(run)}_step_{step}_{suffix}")
            suffix += 1
          shutil.copytree(run, target)
          if show_memory:
            jax.profiler.save_device_memory_profile(
                os.path.join(target, "memory.prof"))
          logger.info("Saved the profile of step %d into %r.", step, target)
    finally:
      shutil.rmtree(directory, ignore_errors=True)


_TRACE = _SharedTrace()
