"""Early stopping, as ``tf.estimator.experimental``: hooks that stop
``train`` (and so ``train_and_evaluate``) from the evaluations on disk.

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

import logging
import operator
import os
from typing import Any, Callable

from estlab import summary
from estlab.distribute._strategies import chief_decides
from estlab.hooks import SecondOrStepTimer, SessionRunHook

__all__ = ["read_eval_metrics", "make_early_stopping_hook",
           "stop_if_higher_hook", "stop_if_lower_hook",
           "stop_if_no_increase_hook", "stop_if_no_decrease_hook",
           "RNNClassifier", "RNNEstimator"]

# tf.estimator.experimental's RNN estimators, loaded on first use (Flax).
_RNN = ("RNNClassifier", "RNNEstimator")


def __getattr__(name: str) -> Any:
  if name in _RNN:
    from estlab.premade import rnn  # pylint: disable=g-import-not-at-top
    return getattr(rnn, name)
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
