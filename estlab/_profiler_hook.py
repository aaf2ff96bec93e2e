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

import logging
import os
import shutil
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
  and its trace is named by the loop's last step.

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
    self._tracing = None  # the run directories present when a trace began
    self._next_step = None

  @property
  def _profile_dir(self) -> str:
    return os.path.join(self._output_dir, "plugins", "profile")

  def begin(self) -> None:
    self._discard()  # (a trace an earlier call's error left running)
    self._timer.reset()
    self._next_step = None  # the last step of the coming run

  def before_run(self, run_context):
    self._run_from = run_context.global_step
    if (self._next_step is not None and
        self._timer.should_trigger_for_step(self._next_step)):
      self._start()

  def after_run(self, run_context, run_values):
    step = run_context.global_step
    if self._next_step is None:  # (no trace until N steps or secs passed)
      self._timer.update_last_triggered_step(self._run_from)
    if self._tracing is not None:
      run_values.results  # pylint: disable=pointless-statement
      # (the step's outputs are on the host now: it has run)
      self._stop(step)
      self._timer.update_last_triggered_step(step)
    self._next_step = step + max(step - self._run_from, 1)

  def end(self, session=None):
    del session
    self._discard()  # the input ended in before_run: no step was traced

  def _start(self) -> None:
    import jax  # pylint: disable=g-import-not-at-top
    profile_dir = self._profile_dir
    before = set(os.listdir(profile_dir)) if os.path.isdir(profile_dir) else set()
    kwargs = {}
    if hasattr(jax.profiler, "ProfileOptions"):
      options = jax.profiler.ProfileOptions()
      options.enable_hlo_proto = bool(self._show_dataflow)
      kwargs["profiler_options"] = options
    try:
      jax.profiler.start_trace(self._output_dir, **kwargs)
    except RuntimeError as e:
      raise RuntimeError(
          f"ProfilerHook(output_dir={self._output_dir!r}) could not start a "
          f"trace: {e} Stop the jax.profiler trace running around train(), "
          "or drop the hook.") from e
    self._tracing = before

  def _finish(self) -> list[str]:
    """Stops the trace; returns the run directories it wrote."""
    import jax  # pylint: disable=g-import-not-at-top
    before, self._tracing = self._tracing, None
    jax.profiler.stop_trace()
    profile_dir = self._profile_dir
    if not os.path.isdir(profile_dir):
      return []
    return sorted(os.path.join(profile_dir, name)
                  for name in set(os.listdir(profile_dir)) - before)

  def _stop(self, step: int) -> None:
    import jax  # pylint: disable=g-import-not-at-top
    written = self._finish()
    if not written:
      logger.warning("ProfilerHook: the trace of step %d wrote nothing under "
                     "%r.", step, self._profile_dir)
    for run_dir in written:
      target = f"{run_dir}_step_{step}"
      suffix = 1
      while os.path.exists(target):
        target, suffix = f"{run_dir}_step_{step}_{suffix}", suffix + 1
      os.rename(run_dir, target)
      if self._show_memory:
        jax.profiler.save_device_memory_profile(
            os.path.join(target, "memory.prof"))
      logger.info("Saved the profile of step %d into %r.", step, target)

  def _discard(self) -> None:
    if self._tracing is not None:
      for run_dir in self._finish():
        shutil.rmtree(run_dir, ignore_errors=True)
