"""``tf.estimator.experimental``: early stopping hooks, which stop ``train``
(and so ``train_and_evaluate``) from the evaluations on disk; evaluation
in the training process (``InMemoryEvaluatorHook``); stopping at a
checkpoint's step (``make_stop_at_checkpoint_step_hook``); ``call_logit_fn``;
``LinearSDCA`` (SDCA for the linear estimators, ``premade.sdca``);
``build_raw_supervised_input_receiver_fn``, TF's path to ``estlab.export``'s
(the receiver of an EVAL export).

The hooks read the eval event files (``read_eval_metrics``) every
``run_every_secs`` seconds or ``run_every_steps`` steps and request a stop
when ``should_stop_fn()`` says so. Use them with ``train_and_evaluate``,
which writes an evaluation after checkpoints: as in TF, the evaluation of a
checkpoint is written before the hooks see that step, so a hook asked at
that step reads it.

Example:
  >>> hook = estlab.experimental.stop_if_no_decrease_hook(
  ...     estimator, "loss", max_steps_without_decrease=1000)  # doctest: +SKIP
  >>> estlab.train_and_evaluate(estimator, estlab.TrainSpec(
  ...     train_fn, hooks=[hook]), eval_spec)  # doctest: +SKIP
"""
from __future__ import annotations

import inspect
import logging
import numbers
import operator
import os
import time
from typing import Any, Callable, Mapping, Sequence

from estlab import summary
from estlab.distribute._strategies import chief_decides
from estlab.export._receivers import build_raw_supervised_input_receiver_fn
from estlab.hooks import SecondOrStepTimer, SessionRunHook, StopAtStepHook

__all__ = ["build_raw_supervised_input_receiver_fn",
           "read_eval_metrics", "make_early_stopping_hook",
           "stop_if_higher_hook", "stop_if_lower_hook",
           "stop_if_no_increase_hook", "stop_if_no_decrease_hook",
           "InMemoryEvaluatorHook", "make_stop_at_checkpoint_step_hook",
           "call_logit_fn", "RNNClassifier", "RNNEstimator", "LinearSDCA"]

# tf.estimator.experimental's RNN estimators, loaded on first use (Flax).
_RNN = ("RNNClassifier", "RNNEstimator")


def __getattr__(name: str) -> Any:
  if name in _RNN:
    from estlab.premade import rnn  # pylint: disable=g-import-not-at-top
    return getattr(rnn, name)
  if name == "LinearSDCA":  # loaded on first use (JAX, Flax)
    from estlab.premade import sdca  # pylint: disable=g-import-not-at-top
    return sdca.LinearSDCA
  raise AttributeError(f"module 'estlab.experimental' has no attribute {name!r}")

logger = logging.getLogger("estlab")


def read_eval_metrics(eval_dir: str | os.PathLike) -> dict[int, dict[str, float]]:
  """``{step: {metric: value}}`` of the evaluations in ``eval_dir``, steps
  ascending; empty when nothing was evaluated yet."""
  if not os.path.isdir(eval_dir):
    return {}
  by_step: dict[int, dict[str, float]] = {}
  for tag, points in summary.read_scalars(eval_dir).items():
    for step, value in points:
      by_step.setdefault(step, {})[tag] = value
  return dict(sorted(by_step.items()))


class _StopOnPredicateHook(SessionRunHook):
  """Requests a stop when ``should_stop_fn()``, asked periodically, is True.

  Asked as TF's hook is (``SecondOrStepTimer`` on the global step before each
  run): after the first run, then after the first run that starts
  ``run_every_steps`` steps (or ``run_every_secs`` seconds) after the one it
  was last asked at. In a multi-process run every process must stop at the
  same step: it is asked every ``run_every_steps`` steps (a seconds cadence
  would ask at different steps) and process 0's answer counts.
  """

  def __init__(self, should_stop_fn: Callable[[], bool],
               run_every_secs: float | None, run_every_steps: int | None):
    self._should_stop_fn = should_stop_fn
    self._secs, self._steps = run_every_secs, run_every_steps
    self._timer = SecondOrStepTimer(every_secs=run_every_secs,
                                    every_steps=run_every_steps)
    self._run_from = 0  # the global step before the current run

  def begin(self):
    import jax  # pylint: disable=g-import-not-at-top
    if jax.process_count() > 1 and self._steps is None:
      raise ValueError(
          f"An early-stopping hook with run_every_secs={self._secs!r} in a "
          f"{jax.process_count()}-process run: the processes would ask at "
          "different steps and one would stop alone. Pass run_every_secs=None"
          ", run_every_steps=N.")
    self._timer.reset()

  def before_run(self, run_context):
    self._run_from = run_context.global_step

  def after_run(self, run_context, run_values):
    del run_values
    if not self._timer.should_trigger_for_step(self._run_from):
      return
    self._timer.update_last_triggered_step(self._run_from)
    if chief_decides(self._should_stop_fn()):
      logger.info("Requesting early stopping at global step %d.",
                  run_context.global_step)
      run_context.request_stop()


def _check_cadence(run_every_secs: Any, run_every_steps: Any) -> None:
  if (run_every_secs is None) == (run_every_steps is None):
    raise ValueError(
        f"Early stopping: give exactly one of run_every_secs="
        f"{run_every_secs!r} and run_every_steps={run_every_steps!r}.")
  for name, value in (("run_every_secs", run_every_secs),
                      ("run_every_steps", run_every_steps)):
    if value is not None and (isinstance(value, bool) or
                              not isinstance(value, (int, float)) or value <= 0):
      raise ValueError(f"Early stopping: {name}={value!r} must be > 0.")


def make_early_stopping_hook(estimator: Any, should_stop_fn: Callable[[], bool],
                             run_every_secs: float | None = 60,
                             run_every_steps: int | None = None
                             ) -> SessionRunHook:
  """A training hook that stops when ``should_stop_fn()`` returns True,
  asking it every ``run_every_secs`` seconds or ``run_every_steps`` steps."""
  del estimator  # (tf.estimator's signature; the hook needs only the fn)
  if not callable(should_stop_fn):
    raise TypeError(f"should_stop_fn={should_stop_fn!r} must be callable.")
  _check_cadence(run_every_secs, run_every_steps)
  return _StopOnPredicateHook(should_stop_fn, run_every_secs, run_every_steps)


def _metrics_fn(estimator: Any, eval_dir: str | None, min_steps: int,
                metric_name: str) -> Callable[[], list[tuple[int, float]]]:
  eval_dir = eval_dir or estimator.eval_dir()

  def metric_values():
    values = []
    for step, metrics in read_eval_metrics(eval_dir).items():
      if step < min_steps:
        continue
      if metric_name not in metrics:
        raise ValueError(f"Early stopping on {metric_name!r}, but the "
                         f"evaluation at step {step} in {eval_dir!r} has only "
                         f"{sorted(metrics)!r}.")
      values.append((step, metrics[metric_name]))
    return values
  return metric_values


def _threshold_hook(estimator, metric_name, threshold, better, eval_dir,
                    min_steps, run_every_secs, run_every_steps):
  values = _metrics_fn(estimator, eval_dir, min_steps, metric_name)

  def crossed() -> bool:
    for step, value in values():
      if better(value, threshold):
        logger.info("At step %d, metric %r = %s crossed the threshold %s.",
                    step, metric_name, value, threshold)
        return True
    return False
  return make_early_stopping_hook(estimator, crossed, run_every_secs,
                                  run_every_steps)


def _no_improvement_hook(estimator, metric_name, max_steps, better, eval_dir,
                         min_steps, run_every_secs, run_every_steps):
  values = _metrics_fn(estimator, eval_dir, min_steps, metric_name)

  def stalled() -> bool:
    best = best_step = None
    for step, value in values():
      if best is None or better(value, best):
        best, best_step = value, step
      if step - best_step >= max_steps:
        logger.info("Metric %r did not improve on %s (step %d) for %d "
                    "steps.", metric_name, best, best_step, step - best_step)
        return True
    return False
  return make_early_stopping_hook(estimator, stalled, run_every_secs,
                                  run_every_steps)


def stop_if_higher_hook(estimator, metric_name, threshold, eval_dir=None,
                        min_steps=0, run_every_secs=60, run_every_steps=None):
  """Stops once an evaluation's ``metric_name`` is above ``threshold``."""
  return _threshold_hook(estimator, metric_name, threshold, operator.gt,
                         eval_dir, min_steps, run_every_secs, run_every_steps)


def stop_if_lower_hook(estimator, metric_name, threshold, eval_dir=None,
                       min_steps=0, run_every_secs=60, run_every_steps=None):
  """Stops once an evaluation's ``metric_name`` is below ``threshold``."""
  return _threshold_hook(estimator, metric_name, threshold, operator.lt,
                         eval_dir, min_steps, run_every_secs, run_every_steps)


def stop_if_no_increase_hook(estimator, metric_name, max_steps_without_increase,
                             eval_dir=None, min_steps=0, run_every_secs=60,
                             run_every_steps=None):
  """Stops once ``metric_name`` has not risen above its best for
  ``max_steps_without_increase`` steps of evaluations."""
  return _no_improvement_hook(estimator, metric_name,
                              max_steps_without_increase, operator.gt,
                              eval_dir, min_steps, run_every_secs,
                              run_every_steps)


def stop_if_no_decrease_hook(estimator, metric_name, max_steps_without_decrease,
                             eval_dir=None, min_steps=0, run_every_secs=60,
                             run_every_steps=None):
  """Stops once ``metric_name`` has not fallen below its best for
  ``max_steps_without_decrease`` steps of evaluations."""
  return _no_improvement_hook(estimator, metric_name,
                              max_steps_without_decrease, operator.lt,
                              eval_dir, min_steps, run_every_secs,
                              run_every_steps)


# -- evaluation inside the training process -----------------------------------


class InMemoryEvaluatorHook(SessionRunHook):
  """Evaluates the train state in memory every N runs, no checkpoint read.

  As tf.estimator's: once when training starts (``after_create_session``),
  after every ``every_n_iter``-th run, and at the end; each evaluation is
  ``estimator.evaluate``'s on the variables the training loop holds then
  (``HookSession.variables()``), written as events to
  ``estimator.eval_dir(name)`` at that global step. With
  ``RunConfig(steps_per_loop=k)`` a run is a loop of k steps. Pass it to the
  same estimator's ``train(hooks=...)`` (or ``TrainSpec(hooks=...)``).

  Example:
    >>> evaluator = estlab.experimental.InMemoryEvaluatorHook(
    ...     estimator, eval_input_fn, every_n_iter=100)  # doctest: +SKIP
    >>> estimator.train(train_input_fn, hooks=[evaluator])  # doctest: +SKIP

  Args:
    estimator: the ``estlab.Estimator`` that trains.
    input_fn: the evaluation's input_fn, as ``evaluate``'s.
    steps: evaluate this many batches (None: until the input ends).
    hooks: ``SessionRunHook``s of each evaluation.
    name: the evaluation's name (``eval_dir(name)``).
    every_n_iter: evaluate once every this many training runs.

  Raises:
    ValueError: ``every_n_iter`` or ``steps`` is not positive, or the
      training spans several machines (TF's limit; in memory each would
      evaluate its own state).
    TypeError: a hook is no ``SessionRunHook``.
  """

  def __init__(self, estimator: Any, input_fn: Callable,
               steps: int | None = None,
               hooks: Sequence[SessionRunHook] | None = None,
               name: str | None = None, every_n_iter: int = 100):
    if (every_n_iter is None or isinstance(every_n_iter, bool) or
        not isinstance(every_n_iter, numbers.Integral) or every_n_iter <= 0):
      raise ValueError(f"invalid every_n_iter={every_n_iter!r}: "
                       "InMemoryEvaluatorHook needs a positive int.")
    if steps is not None and (isinstance(steps, bool) or
                              not isinstance(steps, numbers.Integral) or
                              steps <= 0):
      raise ValueError(f"InMemoryEvaluatorHook(steps={steps!r}): must be a "
                       "positive int or None (until the input ends).")
    config = estimator.config
    if config.num_ps_replicas > 0 or config.num_worker_replicas > 1:
      raise ValueError(
          "InMemoryEvaluator supports only single machine (aka Local) "
          f"setting; this RunConfig has num_worker_replicas="
          f"{config.num_worker_replicas!r}. Evaluate checkpoints instead: "
          "estlab.train_and_evaluate, or an evaluator task.")
    hooks = list(hooks or ())
    for hook in hooks:
      if not isinstance(hook, SessionRunHook):
        raise TypeError(f"All hooks must be SessionRunHook instances, given: "
                        f"{hook!r}. Subclass estlab.SessionRunHook.")
    self._estimator = estimator
    self._input_fn = input_fn
    self._steps = steps
    self._hooks = hooks
    self._name = name
    self._every_n_iter = every_n_iter
    self._eval_dir = estimator.eval_dir(name)
    self._timer = SecondOrStepTimer(every_steps=every_n_iter)
    self._iter_count = 0

  def begin(self) -> None:
    import jax  # pylint: disable=g-import-not-at-top
    if jax.process_count() > 1:
      raise ValueError(
          "InMemoryEvaluator supports only single machine (aka Local) "
          f"setting; this is a {jax.process_count()}-process run. Evaluate "
          "checkpoints instead (estlab.train_and_evaluate).")
    self._timer.reset()
    self._iter_count = 0

  def after_create_session(self, session=None, coord=None):
    """Evaluates the starting state, before the first step."""
    del coord
    self._evaluate(session)

  def after_run(self, run_context, run_values):
    del run_values
    self._iter_count += 1
    if self._timer.should_trigger_for_step(self._iter_count):
      self._evaluate(run_context.session)

  def end(self, session=None):
    """Evaluates the final state."""
    self._evaluate(session)

  def _evaluate(self, session: Any) -> None:
    if session is None or not callable(getattr(session, "variables", None)):
      raise ValueError(f"InMemoryEvaluatorHook got session={session!r}, "
                       "which holds no train state: pass the hook to "
                       "train(hooks=...) or TrainSpec(hooks=...).")
    self._estimator._evaluate(  # pylint: disable=protected-access
        self._input_fn, self._steps, self._hooks, self._name,
        in_memory=(session.variables(), int(session.global_step)))
    self._timer.update_last_triggered_step(self._iter_count)


# -- stopping at a checkpoint's step ------------------------------------------


class _StopAtCheckpointStepHook(SessionRunHook):
  """Requests a stop once the latest checkpoint in ``model_dir`` is at
  ``last_step`` or later, asked after each run from ``last_step`` on; while
  it is not, waits ``wait_after_file_check_secs`` (through ``sleep``) after
  each look, so many workers do not read the directory at once."""

  def __init__(self, model_dir: str, last_step: int,
               wait_after_file_check_secs: float = 30,
               sleep: Callable[[float], None] = time.sleep):
    if last_step is None:
      raise ValueError("last_step must be specified.")
    if model_dir is None:
      raise ValueError("model_dir must be specified.")
    self._model_dir = os.fspath(model_dir)
    self._last_step = last_step
    self._wait_after_file_check_secs = wait_after_file_check_secs
    self._sleep = sleep

  def _checkpoint_step(self) -> int:
    """The latest checkpoint's global step (0 without one, as TF)."""
    from estlab.checkpoint._model_dir import ModelDir  # pylint: disable=g-import-not-at-top
    step = ModelDir(self._model_dir, max_to_keep=None,
                    async_save=False).latest_step()
    return 0 if step is None else int(step)

  def after_run(self, run_context, run_values):
    del run_values
    if run_context.global_step < self._last_step:
      return
    if self._checkpoint_step() >= self._last_step:
      run_context.request_stop()
    else:
      self._sleep(self._wait_after_file_check_secs)


def make_stop_at_checkpoint_step_hook(
    estimator: Any, last_step: int, wait_after_file_check_secs: float = 30,
    *, sleep: Callable[[float], None] = time.sleep) -> SessionRunHook:
  """A hook that stops training at ``last_step``, as tf.estimator's.

  The chief gets ``StopAtStepHook(last_step=last_step)``. A task that is not
  the chief (``RunConfig.is_chief``) and trains alone gets a hook that stops
  once the latest checkpoint in ``estimator.model_dir`` reaches
  ``last_step``, sleeping ``wait_after_file_check_secs`` after each look
  that finds it short. In a multi-process run (``jax.distributed``) every
  process trains in step with the chief, so each gets ``StopAtStepHook``:
  they stop together (one process stopping alone would hang the others).

  Example:
    >>> hook = estlab.experimental.make_stop_at_checkpoint_step_hook(
    ...     estimator, last_step=1000)  # doctest: +SKIP
    >>> estimator.train(input_fn, hooks=[hook])  # doctest: +SKIP

  Args:
    estimator: the ``estlab.Estimator`` whose ``config`` and ``model_dir``
      count.
    last_step: the global step to stop at.
    wait_after_file_check_secs: seconds to wait after each look at the
      checkpoints that finds them short of ``last_step``.
    sleep: how to wait (``time.sleep``; a test passes its own).
  """
  if last_step is None:
    raise ValueError("last_step must be specified.")
  import jax  # pylint: disable=g-import-not-at-top
  if estimator.config.is_chief or jax.process_count() > 1:
    return StopAtStepHook(last_step=last_step)
  return _StopAtCheckpointStepHook(
      model_dir=estimator.model_dir, last_step=last_step,
      wait_after_file_check_secs=wait_after_file_check_secs, sleep=sleep)


# -- logit functions ----------------------------------------------------------


def call_logit_fn(logit_fn: Callable, features: Any, mode: str, params: Any,
                  config: Any) -> Any:
  """Calls ``logit_fn(features=..., [mode=...], [params=...], [config=...])``
  with the arguments it takes, as tf.estimator's; returns its logits.

  Example:
    >>> def logit_fn(features, mode):
    ...   return flax.linen.Dense(3)(features['x'])  # doctest: +SKIP
    >>> logits = estlab.experimental.call_logit_fn(
    ...     logit_fn, features, mode, params, config)  # doctest: +SKIP

  Raises:
    ValueError: the logit_fn returned neither an array nor a dict of
      string names to arrays.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  try:
    taken = set(inspect.signature(logit_fn).parameters)
  except (TypeError, ValueError) as e:
    raise TypeError(f"logit_fn {logit_fn!r} is not a callable whose "
                    "signature can be read.") from e
  kwargs = {name: value for name, value in
            (("mode", mode), ("params", params), ("config", config))
            if name in taken}
  logits = logit_fn(features=features, **kwargs)
  is_array = lambda value: isinstance(value, (jax.Array, np.ndarray))
  if not (is_array(logits) or (
      isinstance(logits, Mapping) and
      all(isinstance(k, str) and is_array(v) for k, v in logits.items()))):
    raise ValueError(
        "logit_fn should return a Tensor or a dictionary mapping strings to "
        f"Tensors.  logit_fn returned: {logits!r}. Return a jax array, or a "
        "dict of names to jax arrays.")
  return logits
