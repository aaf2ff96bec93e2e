"""Hooks around the training, evaluation and prediction loops.

``SessionRunHook`` keeps tf.estimator's method names so ported hooks read the
same; there is no session on JAX, so ``run_context`` carries the global step
and ``run_values.results`` the step's outputs (``loss`` and summaries) as
numpy values, fetched from the device only when a hook reads them. With
``RunConfig(steps_per_loop=N)`` hooks run once per loop of N steps, as with
TPUEstimator.

Periodic work inside the engine (summaries, logs, checkpoints) uses
``PeriodicTrigger`` (CLU's ``every_steps``/``every_secs``), not hooks.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping, Sequence

__all__ = ["SessionRunHook", "SessionRunContext", "SessionRunValues",
           "StopAtStepHook", "LoggingTensorHook", "CheckpointSaverListener",
           "PeriodicTrigger", "HookRunner"]


class SessionRunContext:
  """What a hook sees around one step (or one loop of steps)."""

  def __init__(self, global_step: int, mode: str):
    self.global_step = global_step
    self.mode = mode
    self._stop_requested = False

  def request_stop(self) -> None:
    """Ends the loop after this step (training then saves a checkpoint)."""
    self._stop_requested = True

  @property
  def stop_requested(self) -> bool:
    return self._stop_requested


class SessionRunValues:
  """The outputs of a step; ``results`` fetches them to numpy on first use."""

  def __init__(self, fetch: Callable[[], Mapping[str, Any]]):
    self._fetch = fetch
    self._results = None

  @property
  def results(self) -> Mapping[str, Any]:
    if self._results is None:
      self._results = dict(self._fetch())
    return self._results


class SessionRunHook:
  """Base class of hooks; override any of the methods (all no-ops here)."""

  def begin(self) -> None:
    """Called once before the loop starts."""

  def after_create_session(self, session: Any = None, coord: Any = None) -> None:
    """Called once the state is initialised or restored (session is None)."""

  def before_run(self, run_context: SessionRunContext) -> None:
    """Called before each step (or loop); the return value is ignored."""

  def after_run(self, run_context: SessionRunContext,
                run_values: SessionRunValues) -> None:
    """Called after each step (or loop); may call run_context.request_stop()."""

  def end(self, session: Any = None) -> None:
    """Called once after the loop ends normally."""


class StopAtStepHook(SessionRunHook):
  """Requests a stop after ``num_steps`` more steps or at ``last_step``."""

  def __init__(self, num_steps: int | None = None, last_step: int | None = None):
    if (num_steps is None) == (last_step is None):
      raise ValueError(f"StopAtStepHook(num_steps={num_steps!r}, last_step="
                       f"{last_step!r}): give exactly one of them.")
    self._num_steps = num_steps
    self._last_step = last_step

  def after_create_session(self, session=None, coord=None):
    del session, coord

  def before_run(self, run_context):
    if self._last_step is None:
      self._last_step = run_context.global_step + self._num_steps

  def after_run(self, run_context, run_values):
    del run_values
    if run_context.global_step >= self._last_step:
      run_context.request_stop()


class LoggingTensorHook(SessionRunHook):
  """Logs step outputs by name every N steps or seconds, as tf.estimator's.

  The names are keys of ``run_values.results``: ``loss``, ``global_step``,
  ``learning_rate`` (when the optimizer exposes it) and the model_fn's
  ``EstimatorSpec(summaries={...})``; there are no graph tensors to name.
  Outputs are fetched from the device only when a line is due.

  Args:
    tensors: a name, a list of names, or ``{tag: name}``.
    every_n_iter / every_n_secs: the cadence (exactly one, unless only
      ``at_end``); the first step is always logged.
    at_end: also log the last step's values when the loop ends.
    formatter: ``formatter({tag: value}) -> str`` instead of ``tag = value``.
  """

  def __init__(self, tensors: str | Sequence[str] | Mapping[str, str],
               every_n_iter: int | None = None,
               every_n_secs: float | None = None, at_end: bool = False,
               formatter: Callable[[dict], str] | None = None):
    if isinstance(tensors, str):
      tensors = [tensors]
    self._tags = (dict(tensors) if isinstance(tensors, Mapping)
                  else {name: name for name in tensors})
    self._only_at_end = at_end and every_n_iter is None and every_n_secs is None
    if not self._only_at_end and (every_n_iter is None) == (every_n_secs is None):
      raise ValueError(
          f"LoggingTensorHook(every_n_iter={every_n_iter!r}, every_n_secs="
          f"{every_n_secs!r}, at_end={at_end!r}): give exactly one cadence, "
          "or only at_end=True.")
    for name, value in (("every_n_iter", every_n_iter),
                        ("every_n_secs", every_n_secs)):
      if value is not None and not value > 0:
        raise ValueError(f"LoggingTensorHook({name}={value!r}): must be > 0.")
    self._every = (every_n_iter, every_n_secs)
    self._at_end, self._formatter = at_end, formatter
    self._trigger: PeriodicTrigger | None = None
    self._last: SessionRunValues | None = None

  def begin(self) -> None:
    self._trigger, self._last = None, None

  def after_run(self, run_context, run_values):
    self._last = run_values
    if self._only_at_end:
      return
    step = run_context.global_step
    if self._trigger is None:  # the first step is logged, then the cadence
      self._trigger = PeriodicTrigger(*self._every, start_step=step)
      self._log(run_values.results)
    elif self._trigger(step):
      self._log(run_values.results)

  def end(self, session=None):
    del session
    if self._at_end and self._last is not None:
      self._log(self._last.results)

  def _log(self, results: Mapping[str, Any]) -> None:
    missing = [name for name in self._tags.values() if name not in results]
    if missing:
      raise ValueError(
          f"LoggingTensorHook: {missing!r} are not among the step's outputs "
          f"{sorted(results)!r}. Add them to the model_fn's "
          "EstimatorSpec(summaries={name: scalar}).")
    values = {tag: results[name] for tag, name in self._tags.items()}
    logging.getLogger("estlab").info(
        self._formatter(values) if self._formatter else
        ", ".join(f"{tag} = {value}" for tag, value in values.items()))


class CheckpointSaverListener:
  """Called around each checkpoint ``train`` writes, as tf.estimator's
  ``CheckpointSaverListener`` (``session`` is None on JAX). ``after_save``
  sees the checkpoint on disk (``estimator.latest_checkpoint()``) and may
  return True to stop training; ``end`` follows the last save."""

  def begin(self) -> None:
    """Called once before training starts."""

  def before_save(self, session: Any, global_step_value: int) -> None:
    """Called before each checkpoint is written."""

  def after_save(self, session: Any, global_step_value: int) -> bool | None:
    """Called once the checkpoint is written; True requests a stop."""

  def end(self, session: Any, global_step_value: int) -> None:
    """Called once at the end of training, after the last save."""


class HookRunner:
  """Calls a loop's hooks in tf.estimator's order; hooks may join late.

  Hooks a model_fn returns in its spec are known only once the step was
  traced, so they join with ``add`` after the first step.
  """

  def __init__(self, hooks: Sequence[SessionRunHook], mode: str):
    self._hooks: list[SessionRunHook] = []
    self._mode = mode
    self.add(hooks)

  def add(self, hooks: Sequence[SessionRunHook]) -> None:
    for hook in hooks:
      if not isinstance(hook, SessionRunHook):
        raise TypeError(f"hooks must be estlab.SessionRunHook instances, got "
                        f"{hook!r}.")
      if hook not in self._hooks:
        hook.begin()
        hook.after_create_session(None, None)
        self._hooks.append(hook)

  def __bool__(self) -> bool:
    return bool(self._hooks)

  def before_run(self, global_step: int) -> SessionRunContext:
    context = SessionRunContext(global_step, self._mode)
    for hook in self._hooks:
      hook.before_run(context)
    return context

  def after_run(self, context: SessionRunContext,
                fetch: Callable[[], Mapping[str, Any]]) -> bool:
    """Runs after_run; returns whether a hook requested a stop."""
    if self._hooks:
      values = SessionRunValues(fetch)
      for hook in self._hooks:
        hook.after_run(context, values)
    return context.stop_requested

  def end(self) -> None:
    for hook in self._hooks:
      hook.end(None)


class PeriodicTrigger:
  """Fires every N steps and/or every S seconds (CLU's periodic actions).

  Works with steps that advance by more than one (``steps_per_loop``): it
  fires when a multiple of ``every_steps`` was crossed. Time is passed in, so
  tests need no sleeps.
  """

  def __init__(self, every_steps: int | None = None,
               every_secs: float | None = None, *, start_step: int = 0,
               start_time: float | None = None):
    self.every_steps = every_steps or None
    self.every_secs = every_secs
    self._last_step = start_step
    self._last_time = time.monotonic() if start_time is None else start_time

  @property
  def enabled(self) -> bool:
    return self.every_steps is not None or self.every_secs is not None

  def __call__(self, step: int, now: float | None = None) -> bool:
    now = time.monotonic() if now is None else now
    fire = False
    if self.every_steps is not None:
      fire = step // self.every_steps > self._last_step // self.every_steps
    if self.every_secs is not None and now - self._last_time >= self.every_secs:
      fire = fire or step > self._last_step
    if fire:
      self._last_step, self._last_time = step, now
    return fire
