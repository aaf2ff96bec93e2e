"""Hooks around the training, evaluation and prediction loops.

``SessionRunHook`` keeps tf.estimator's method names so ported hooks read the
same; there is no session on JAX, so ``run_context`` carries the global step
and ``run_values.results`` the step's outputs (``loss`` and summaries) as
numpy values, fetched from the device only when a hook reads them; where a
TF hook ran ``session.run(global_step)``, ``session.global_step`` (a
``HookSession``) holds it. A hook's ``before_run`` may return
``SessionRunArgs``: names of step outputs its ``run_values.results`` then
holds (in the fetches' structure), or a feed that edits the step's batch on
the host. With ``RunConfig(steps_per_loop=N)`` hooks run once per loop of N
steps, as with TPUEstimator. TF's ready-made hooks (CheckpointSaverHook,
SummarySaverHook, ...) are in ``estlab._tf_hooks``, a layer above, as they
write checkpoints and events.

Every loop calls its hooks as tf's ``MonitoredSession`` did, the hooks a
model_fn returns in its ``EstimatorSpec`` included (``HookRunner``).

Periodic work inside the engine (summaries, logs, checkpoints) uses
``PeriodicTrigger`` (CLU's ``every_steps``/``every_secs``), not hooks.
"""
from __future__ import annotations

import collections
import logging
import time
from typing import Any, Callable, Mapping, Sequence

__all__ = ["SessionRunHook", "SessionRunContext", "SessionRunValues",
           "SessionRunArgs", "HookSession", "StopAtStepHook", "LoggingTensorHook",
           "CheckpointSaverListener", "SecondOrStepTimer", "PeriodicTrigger",
           "HookRunner", "renewed"]


class HookSession:
  """What hooks get as ``session`` on JAX, where there is no ``tf.Session``.

  ``global_step`` is the loop's global step now: the one restored (or
  initialised) in ``after_create_session``, the one after the step in
  ``after_run``, the last one in ``end``; a TF hook's
  ``session.run(tf.train.get_global_step())`` becomes
  ``session.global_step``. ``mode`` is the loop's ``ModeKeys`` value.
  ``model_dir`` is the estimator's in the training loop (None elsewhere).
  In a training loop ``variables()`` gives the train state's variables now,
  where a TF hook ran ``session.run(tf.compat.v1.global_variables())``.

  The training loop also gives the hooks that save checkpoints
  (``estlab.CheckpointSaverHook``) two private callables: ``_save_checkpoint
  (wait)`` saves the loop's current state in ``model_dir`` through the
  estimator's checkpointer (once per step: a step saved already is not
  written again) and, with ``wait``, returns once it is on disk;
  ``_checkpoint_state()`` is that state as a checkpoint holds it, to save
  elsewhere. Both are None outside the training loop.
  """

  def __init__(self, global_step: int, mode: str, *,
               model_dir: str | None = None,
               save_checkpoint: Callable[[bool], None] | None = None,
               checkpoint_state: Callable[[], Any] | None = None,
               variables: Callable[[], dict] | None = None):
    self.global_step = global_step
    self.mode = mode
    self.model_dir = model_dir
    self._save_checkpoint = save_checkpoint
    self._checkpoint_state = checkpoint_state
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
  """The outputs of a step; ``results`` fetches them to numpy on first use.

  ``results`` is every output of the step by name, unless the hook's
  ``before_run`` returned ``SessionRunArgs(fetches=...)``: then it is those
  outputs in the structure of ``fetches``, as TF's. ``options`` and
  ``run_metadata`` are TF's ``RunOptions``/``RunMetadata``: None on JAX.
  """

  def __init__(self, fetch: Callable[[], Any]):
    self._fetch = fetch
    self._results = None
    self.options = None
    self.run_metadata = None

  @property
  def results(self) -> Mapping[str, Any]:
    if self._results is None:
      self._results = self._fetch()
      if isinstance(self._results, Mapping):
        self._results = dict(self._results)
    return self._results


class SessionRunArgs(collections.namedtuple(
    "SessionRunArgs", ["fetches", "feed_dict", "options"])):
  """What a hook's ``before_run`` may return, as tf.estimator's.

  On JAX there are no tensors to fetch or placeholders to feed:

  * ``fetches``: names of the step's outputs (``'loss'``, ``'global_step'``
    (the step after the run), ``'learning_rate'``, the model_fn's
    ``EstimatorSpec(summaries={...})`` names; in evaluation ``'loss'`` and
    ``'batches'``; in prediction the prediction names), one name or a
    list, tuple or dict of them (nested). The hook's
    ``run_values.results`` then holds those outputs as numpy values in the
    same structure (one name: its value). With ``steps_per_loop`` they are
    the loop's last step's.
  * ``feed_dict``: ``{feature name: value}`` replacing those features of the
    step's batch on the host (TF's feed of an input placeholder), or a
    function ``(features, labels) -> (features, labels)`` editing the batch
    (what ``estlab.FeedFnHook`` returns). With ``steps_per_loop`` it applies
    to every batch of the loop.
  * ``options``: TF's ``RunOptions``; must be None.

  Example:
    >>> class LossPrinter(estlab.SessionRunHook):
    ...   def before_run(self, run_context):
    ...     return estlab.SessionRunArgs({'loss': 'loss'})
    ...   def after_run(self, run_context, run_values):
    ...     print(run_values.results['loss'])  # doctest: +SKIP
  """

  def __new__(cls, fetches: Any, feed_dict: Any = None, options: Any = None):
    if options is not None:
      raise ValueError(f"SessionRunArgs(options={options!r}): RunOptions are "
                       "TF's and have no JAX meaning; pass options=None.")
    if not (feed_dict is None or callable(feed_dict) or
            isinstance(feed_dict, Mapping)):
      raise TypeError(
          f"SessionRunArgs(feed_dict={feed_dict!r}): pass {{feature name: "
          "value}} or a function (features, labels) -> (features, labels).")
    return super().__new__(cls, fetches, feed_dict, options)


def resolve_fetches(fetches: Any, outputs: Mapping[str, Any]) -> Any:
  """``fetches`` (names, nested in lists, tuples and dicts) with each name
  replaced by ``outputs[name]``; None stays None.

  Raises:
    ValueError: a name is not among ``outputs`` (the message lists them).
    TypeError: a fetch is not a name.
  """
  if fetches is None:
    return None
  if isinstance(fetches, str):
    if fetches not in outputs:
      raise ValueError(
          f"SessionRunArgs fetches {fetches!r}, which is not among the step's "
          f"outputs {sorted(outputs)!r}. Fetch one of those, or add the array "
          "to the model_fn's EstimatorSpec(summaries={name: array}).")
    return outputs[fetches]
  if isinstance(fetches, Mapping):
    return {k: resolve_fetches(v, outputs) for k, v in fetches.items()}
  if isinstance(fetches, (list, tuple)):
    return type(fetches)(resolve_fetches(v, outputs) for v in fetches)
  raise TypeError(
      f"SessionRunArgs fetches {fetches!r:.200}: on JAX a fetch is the name of "
      "a step output ('loss', 'global_step', a summaries name), or a list, "
      "tuple or dict of names; add an array made in the model_fn to "
      "EstimatorSpec(summaries={name: array}) and fetch its name.")


def feed_edits(feed_dict: Any) -> Callable[[Any, Any], tuple[Any, Any]]:
  """``SessionRunArgs.feed_dict`` as ``edit(features, labels) -> (features,
  labels)`` on host (numpy) batches."""
  if callable(feed_dict):
    def edit(features, labels):
      out = feed_dict(features, labels)
      if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"feed_fn {feed_dict!r} returned {out!r:.200}: it must "
                        "return the edited (features, labels).")
      return out
    return edit

  def replace(features, labels):
    if not isinstance(features, Mapping):
      raise TypeError(f"SessionRunArgs(feed_dict={{...}}) replaces features "
                      f"by name, but the batch's features are {features!r:.80}"
                      "; feed a function (features, labels) -> (features, "
                      "labels) instead.")
    unknown = sorted(set(feed_dict) - set(features))
    if unknown:
      raise ValueError(f"SessionRunArgs(feed_dict=...) names {unknown!r}, which "
                       f"are not features of the batch {sorted(features)!r}.")
    return {**features, **feed_dict}, labels
  return replace


class SessionRunHook:
  """Base class of hooks; override any of the methods (all no-ops here)."""

  def begin(self) -> None:
    """Called once before the loop starts."""

  def after_create_session(self, session: Any = None, coord: Any = None) -> None:
    """Called once the state is initialised or restored, after every hook's
    ``begin``; ``session.global_step`` is the step training starts from."""

  def before_run(self, run_context: SessionRunContext
                 ) -> "SessionRunArgs | None":
    """Called before each step (or loop); may return ``SessionRunArgs``
    naming the outputs this hook's ``run_values.results`` holds, or a feed
    editing the step's batch."""

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
  ``after_create_session``. ``session`` holds the other keywords
  (``HookSession``: ``variables`` gives its ``variables()``, a training
  loop's state now).

  A hook's ``before_run`` may return ``SessionRunArgs``: its fetches become
  that hook's ``run_values.results``, its feed an edit of the step's batch
  (``feeds``, which the loop applies on the host).
  """

  def __init__(self, hooks: Sequence[SessionRunHook], mode: str,
               global_step: int, *,
               after_begin: Callable[[], None] = lambda: None,
               **session: Any):
    self._hooks = list(hooks)
    for hook in self._hooks:
      if not isinstance(hook, SessionRunHook):
        raise TypeError(f"hooks must be estlab.SessionRunHook instances, got "
                        f"{hook!r}: subclass estlab.SessionRunHook.")
    self.session = HookSession(int(global_step), mode, **session)
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
    context._run_args = []  # pylint: disable=protected-access
    for hook in self._hooks:
      args = hook.before_run(context)
      if args is not None and not isinstance(args, SessionRunArgs):
        raise TypeError(f"{hook!r}.before_run returned {args!r:.200}: return "
                        "None or estlab.SessionRunArgs(fetches=...).")
      context._run_args.append(args)  # pylint: disable=protected-access
    return context

  def feeds(self, context: SessionRunContext) -> list[Callable]:
    """The batch edits the hooks' ``SessionRunArgs.feed_dict`` asked for in
    ``context``'s ``before_run``, in hook order (``edit(features, labels)
    -> (features, labels)`` on the host)."""
    return [feed_edits(args.feed_dict)
            for args in getattr(context, "_run_args", ())
            if args is not None and args.feed_dict is not None]

  def after_run(self, context: SessionRunContext,
                fetch: Callable[[], Mapping[str, Any]]) -> bool:
    """Runs after_run; returns whether a hook requested a stop."""
    self.session.global_step = context.global_step
    if self._hooks:
      values = SessionRunValues(fetch)
      run_args = getattr(context, "_run_args", None) or [None] * len(self._hooks)
      for hook, args in zip(self._hooks, run_args):
        if args is not None and args.fetches is not None:
          hook.after_run(context, SessionRunValues(
              lambda f=args.fetches: resolve_fetches(f, values.results)))
        else:
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
