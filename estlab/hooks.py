"""Hooks around the training, evaluation and prediction loops.

``SessionRunHook`` keeps tf.estimator's method names so ported hooks read the
same; there is no session on JAX, so ``run_context`` carries the global step
and ``run_values.results`` the step's outputs (``loss`` and summaries) as
numpy values, fetched from the device only when a hook reads them; where a
TF hook ran ``session.run(global_step)``, ``session.global_step`` (a
``HookSession``) holds it. With ``RunConfig(steps_per_loop=N)`` hooks run
once per loop of N steps, as with TPUEstimator.

Every loop calls its hooks as tf's ``MonitoredSession`` did, the hooks a
model_fn returns in its ``EstimatorSpec`` included (``HookRunner``).

Periodic work inside the engine (summaries, logs, checkpoints) uses
``PeriodicTrigger`` (CLU's ``every_steps``/``every_secs``), not hooks.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping, Sequence

__all__ = ["SessionRunHook", "SessionRunContext", "SessionRunValues",
           "HookSession", "StopAtStepHook", "LoggingTensorHook",
           "CheckpointSaverListener", "SecondOrStepTimer", "PeriodicTrigger",
           "HookRunner", "renewed"]


class HookSession:
  """What hooks get as ``session`` on JAX, where there is no ``tf.Session``.

  ``global_step`` is the loop's global step now: the one restored (or
  initialised) in ``after_create_session``, the one after the step in
  ``after_run``, the last one in ``end``; a TF hook's
  ``session.run(tf.train.get_global_step())`` becomes
  ``session.global_step``. ``mode`` is the loop's ``ModeKeys`` value.
  In a training loop ``variables()`` gives the train state's variables now,
  where a TF hook ran ``session.run(tf.compat.v1.global_variables())``.
  """

  def __init__(self, global_step: int, mode: str,
               variables: Callable[[], dict] | None = None):
    self.global_step = global_step
    self.mode = mode
    self._variables = variables

  def variables(self) -> dict:
    """``{'params': ..., <collections>}`` of the train state after the last
    run, on the device (read them before the hook returns: the next step
    donates them). Training loops only."""
    if self._variables is None:
      raise ValueError(f"{self!r} holds no train state: only a training "
                       "loop's hooks can read its variables; pass the hook "
                       "to train(hooks=...) or TrainSpec(hooks=...).")
    return self._variables()

  def __repr__(self) -> str:
    return f"HookSession(global_step={self.global_step!r}, mode={self.mode!r})"


class SessionRunContext:
  """What a hook sees around one step (or one loop of steps).

  ``global_step`` is the step before the run in ``before_run``, after it in
  ``after_run``; ``session`` is the loop's ``HookSession``.
  """

  def __init__(self, global_step: int, mode: str,
               session: HookSession | None = None):
    self.global_step = global_step
    self.mode = mode
    self.session = HookSession(global_step, mode) if session is None else session
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
    """Called once the state is initialised or restored, after every hook's
    ``begin``; ``session.global_step`` is the step training starts from."""

  def before_run(self, run_context: SessionRunContext) -> None:
    """Called before each step (or loop); the return value is ignored."""

  def after_run(self, run_context: SessionRunContext,
                run_values: SessionRunValues) -> None:
    """Called after each step (or loop); may call run_context.request_stop()."""

  def end(self, session: Any = None) -> None:
    """Called once after the loop ends normally (its input ended or a hook
    requested a stop), not after an error."""


class StopAtStepHook(SessionRunHook):
  """Requests a stop after ``num_steps`` more steps or at ``last_step``.

  As tf.estimator's: ``num_steps`` counts from the global step the hook's
  first session starts at (``after_create_session``), and the same object
  passed to a later ``train`` call keeps that last step (it then stops after
  one step). Returned by a model_fn (``EstimatorSpec(training_hooks=...)``)
  it counts anew on every call, as TF's model_fn built a new one per call
  (``renewed``). With ``steps_per_loop=k`` it stops after the first loop
  that reaches the last step.
  """

  def __init__(self, num_steps: int | None = None, last_step: int | None = None):
    if (num_steps is None) == (last_step is None):
      raise ValueError(f"StopAtStepHook(num_steps={num_steps!r}, last_step="
                       f"{last_step!r}): give exactly one of them.")
    self._num_steps = num_steps
    self._given_last_step = self._last_step = last_step

  def _renew(self) -> None:
    """Forgets the last step a previous session set (``renewed``)."""
    self._last_step = self._given_last_step

  def after_create_session(self, session=None, coord=None):
    del coord
    if self._last_step is None and session is not None:
      self._last_step = session.global_step + self._num_steps

  def before_run(self, run_context):
    if self._last_step is None:  # driven by hand, without a session
      self._last_step = run_context.global_step + self._num_steps

  def after_run(self, run_context, run_values):
    del run_values
    if run_context.global_step >= self._last_step:
      run_context.request_stop()


class LoggingTensorHook(SessionRunHook):
  """Logs step outputs by name every N steps or seconds, as tf.estimator's.

  The names are keys of ``run_values.results``: ``loss``, ``global_step``,
  ``learning_rate`` (when the optimizer exposes it) and the model_fn's
  ``EstimatorSpec(summaries={...})``. Built inside a model_fn and returned
  in ``EstimatorSpec(training_hooks=...)``, it also takes the arrays
  themselves, as TF took tensors (``{'kernel': kernel, 'loss': loss}``):
  they become step outputs only this hook reads. Outputs are fetched from
  the device only when a line is due.

  As TF's, it counts the runs of its session: it logs the first run's
  outputs, then those of every ``every_n_iter``-th run after the last line
  (runs 0, N, 2N, ...: global steps start+1, start+N+1, ... with one step a
  run; one run is one loop with ``steps_per_loop``), or of the first run
  ``every_n_secs`` after it; a line ends with the seconds since the last.

  Args:
    tensors: a name, a list of names, or ``{tag: name}``; in a model_fn's
      training hooks also arrays in place of names (``{tag: array}``).
    every_n_iter / every_n_secs: the cadence (exactly one, unless only
      ``at_end``).
    at_end: also log the last step's values when the loop ends.
    formatter: ``formatter({tag: value}) -> str`` instead of ``tag = value``.
  """

  def __init__(self, tensors: str | Sequence[str] | Mapping[str, str],
               every_n_iter: int | None = None,
               every_n_secs: float | None = None, at_end: bool = False,
               formatter: Callable[[dict], str] | None = None):
    if isinstance(tensors, str):
      tensors = [tensors]
    self._tags = (dict(tensors) if isinstance(tensors, Mapping) else
                  {(t if isinstance(t, str) else f"tensor_{i}"): t
                   for i, t in enumerate(tensors)})
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
    self._timer = (None if self._only_at_end else
                   SecondOrStepTimer(every_steps=every_n_iter,
                                     every_secs=every_n_secs))
    self._at_end, self._formatter = at_end, formatter
    self._iter_count, self._due = 0, False
    self._last: SessionRunValues | None = None

  def take_traced_tensors(self, prefix: str) -> dict:
    """The arrays this hook was given by value, made step outputs.

    Built inside a model_fn, ``LoggingTensorHook({'kernel': kernel})`` holds
    traced arrays, as TF's held graph tensors; the engine calls this while
    tracing the step and returns them as outputs named ``prefix + tag``,
    which the hook then reads by name (run by run, like any output).
    """
    taken = {}
    for tag, value in self._tags.items():
      if not isinstance(value, str):
        taken[prefix + str(tag)] = value
        self._tags[tag] = prefix + str(tag)
    return taken

  def begin(self) -> None:
    if self._timer is not None:
      self._timer.reset()
    self._iter_count, self._last = 0, None

  def before_run(self, run_context):
    del run_context
    self._due = (self._timer is not None and
                 self._timer.should_trigger_for_step(self._iter_count))

  def after_run(self, run_context, run_values):
    del run_context
    self._last = run_values
    if self._due:
      elapsed, _ = self._timer.update_last_triggered_step(self._iter_count)
      self._log(run_values.results, elapsed)
    self._iter_count += 1

  def end(self, session=None):
    del session
    if self._at_end and self._last is not None:
      self._log(self._last.results, None)

  def _log(self, results: Mapping[str, Any], elapsed: float | None) -> None:
    missing = [name for name in self._tags.values() if name not in results]
    if missing:
      raise ValueError(
          f"LoggingTensorHook: {missing!r} are not among the step's outputs "
          f"{sorted(results)!r}. Add them to the model_fn's "
          "EstimatorSpec(summaries={name: array}), or build the hook in the "
          "model_fn with the arrays themselves: LoggingTensorHook({'w': w}).")
    values = {tag: results[name] for tag, name in self._tags.items()}
    if self._formatter:
      line = self._formatter(values)
    else:
      line = ", ".join(f"{tag} = {value}" for tag, value in values.items())
      if elapsed is not None:
        line += f" ({elapsed:.3f} sec)"
    logging.getLogger("estlab").info(line)


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


def renewed(hooks: Sequence[SessionRunHook]) -> tuple[SessionRunHook, ...]:
  """The hooks a model_fn returned, ready for another train/evaluate/predict.

  TF called the model_fn on every call, so hooks made in it were new objects
  each time; estlab traces the model_fn once per compilation and reuses the
  hooks of that trace. Each call runs them from ``begin`` again, and a hook
  with a ``_renew()`` method (``StopAtStepHook``) first drops what an earlier
  call left in it, so it acts as new. A hook of your own returned by a
  model_fn should reset its per-call state in ``begin``, as TF's hooks do.
  """
  hooks = tuple(hooks)
  for hook in hooks:
    renew = getattr(hook, "_renew", None)
    if callable(renew):
      renew()
  return hooks


class HookRunner:
  """Calls a loop's hooks as tf's ``MonitoredSession`` did.

  At construction every hook's ``begin``, then every hook's
  ``after_create_session`` (the session's global step is the loop's start);
  ``before_run`` / ``after_run`` around each step, the first included (a
  stop requested in ``after_run`` ends the loop after every hook's
  ``after_run`` of that step); ``end`` when the loop ends normally. The hooks
  run in the order given; an object listed twice (in ``hooks=`` and in the
  spec) is called twice, as in TF. The caller lists the spec's hooks
  (``renewed``) with the user's: the model_fn was traced before the first
  step, so they are known. ``after_begin`` runs between the ``begin`` and
  ``after_create_session`` calls: the training loop's start checkpoint, which
  TF's CheckpointSaverHook (the first hook) wrote in its
  ``after_create_session``. ``variables`` gives the session's
  ``variables()`` (a training loop's state now).
  """

  def __init__(self, hooks: Sequence[SessionRunHook], mode: str,
               global_step: int, *,
               after_begin: Callable[[], None] = lambda: None,
               variables: Callable[[], dict] | None = None):
    self._hooks = list(hooks)
    for hook in self._hooks:
      if not isinstance(hook, SessionRunHook):
        raise TypeError(f"hooks must be estlab.SessionRunHook instances, got "
                        f"{hook!r}: subclass estlab.SessionRunHook.")
    self.session = HookSession(int(global_step), mode, variables)
    for hook in self._hooks:
      hook.begin()
    after_begin()  # (TF's CheckpointSaverHook, listed first, saved here)
    for hook in self._hooks:
      hook.after_create_session(self.session, None)

  def __bool__(self) -> bool:
    return bool(self._hooks)

  def before_run(self, global_step: int) -> SessionRunContext:
    """Runs before_run; set the returned context's ``global_step`` to the
    step after the run before passing it to ``after_run``."""
    self.session.global_step = global_step
    context = SessionRunContext(global_step, self.session.mode, self.session)
    for hook in self._hooks:
      hook.before_run(context)
    return context

  def after_run(self, context: SessionRunContext,
                fetch: Callable[[], Mapping[str, Any]]) -> bool:
    """Runs after_run; returns whether a hook requested a stop."""
    self.session.global_step = context.global_step
    if self._hooks:
      values = SessionRunValues(fetch)
      for hook in self._hooks:
        hook.after_run(context, values)
    return context.stop_requested

  def end(self) -> None:
    for hook in self._hooks:
      hook.end(self.session)


class SecondOrStepTimer:
  """tf.estimator's ``SecondOrStepTimer``: due every N steps or S seconds.

  ``should_trigger_for_step`` is True on the first call, then once ``step``
  is ``every_steps`` past (or ``every_secs`` after) the step last passed to
  ``update_last_triggered_step``, never twice for one step. The hooks TF
  wrote with it (``LoggingTensorHook``, early stopping) keep its cadence;
  the engine's own cadences use ``PeriodicTrigger``. Time may be passed in.
  """

  def __init__(self, every_secs: float | None = None,
               every_steps: int | None = None):
    if (every_secs is None) == (every_steps is None):
      raise ValueError(f"SecondOrStepTimer(every_secs={every_secs!r}, "
                       f"every_steps={every_steps!r}): give exactly one.")
    self._every_secs, self._every_steps = every_secs, every_steps
    self.reset()

  def reset(self) -> None:
    self._last_step: int | None = None
    self._last_time: float | None = None

  def should_trigger_for_step(self, step: int,
                              now: float | None = None) -> bool:
    if self._last_step is None:
      return True
    if self._last_step == step:
      return False
    if self._every_secs is not None:
      now = time.monotonic() if now is None else now
      return now >= self._last_time + self._every_secs
    return step >= self._last_step + self._every_steps

  def update_last_triggered_step(self, step: int, now: float | None = None
                                 ) -> tuple[float | None, int | None]:
    """Marks ``step`` triggered; returns the seconds and steps since the
    last trigger (None, None the first time)."""
    now = time.monotonic() if now is None else now
    elapsed = (None, None) if self._last_step is None else (
        now - self._last_time, step - self._last_step)
    self._last_step, self._last_time = step, now
    return elapsed

  def last_triggered_step(self) -> int | None:
    return self._last_step


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
