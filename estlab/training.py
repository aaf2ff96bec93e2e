"""``train_and_evaluate``, ``TrainSpec`` and ``EvalSpec``, as tf.estimator's.

tf.estimator's local mode: one ``train`` call, and after each checkpoint it
writes an evaluation of that checkpoint, no sooner than ``throttle_secs``
after the last one, then the exporters; the last checkpoint is always
evaluated. The checkpoint cadence is ``RunConfig``'s. Multi-process runs
(``estlab.distribute.MultiWorkerMirroredStrategy``) run the same loop in
every process.

With ``TF_CONFIG`` naming an ``evaluator`` task, TF's roles apply: the chief
and workers only train, and the evaluator (``RunConfig().task_type ==
'evaluator'``, which joins no ``jax.distributed`` run) evaluates the newest
finished checkpoint in ``model_dir`` whenever there is a new one, then runs
the exporters, and returns once it evaluated a checkpoint at or past
``TrainSpec.max_steps`` (``_evaluate_continuously``).

Example:
  >>> train_spec = estlab.TrainSpec(train_input_fn, max_steps=1000)
  >>> eval_spec = estlab.EvalSpec(eval_input_fn, steps=None, throttle_secs=60)
  >>> metrics, exports = estlab.train_and_evaluate(est, train_spec, eval_spec)  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Callable, Sequence

from etils import epath

from estlab.distribute._cluster import check_cluster_strategy
from estlab.distribute._strategies import chief_decides
from estlab.estimator import Estimator
from estlab.hooks import CheckpointSaverListener, SessionRunHook

__all__ = ["TrainSpec", "EvalSpec", "train_and_evaluate"]

logger = logging.getLogger("estlab")


def _positive_or_none(owner: str, name: str, value: Any) -> None:
  if value is not None and (isinstance(value, bool) or not isinstance(
      value, int) or value <= 0):
    raise ValueError(f"{owner}({name}={value!r}): must be a positive int or "
                     "None.")


def _check_hooks(owner: str, hooks: Sequence[Any], kind: type) -> tuple:
  hooks = tuple(hooks or ())
  wrong = [h for h in hooks if not isinstance(h, kind)]
  if wrong:
    raise TypeError(f"{owner}: every hook must be an estlab.hooks."
                    f"{kind.__name__}, got {wrong!r}.")
  return hooks


@dataclasses.dataclass(frozen=True)
class TrainSpec:
  """What to train on: ``input_fn`` until ``max_steps`` (None: until the
  input ends), with ``hooks`` and ``saving_listeners``."""

  input_fn: Callable
  max_steps: int | None = None
  hooks: Sequence[SessionRunHook] = ()
  saving_listeners: Sequence[CheckpointSaverListener] = ()

  def __post_init__(self):
    if not callable(self.input_fn):
      raise TypeError(f"TrainSpec(input_fn={self.input_fn!r}): must be "
                      "callable (it returns the training batches).")
    _positive_or_none("TrainSpec", "max_steps", self.max_steps)
    object.__setattr__(self, "hooks",
                       _check_hooks("TrainSpec", self.hooks, SessionRunHook))
    object.__setattr__(self, "saving_listeners", _check_hooks(
        "TrainSpec", self.saving_listeners, CheckpointSaverListener))


@dataclasses.dataclass(frozen=True)
class EvalSpec:
  """What to evaluate on and when: ``steps`` batches of ``input_fn`` (None:
  all), after a checkpoint no sooner than ``throttle_secs`` after the last
  evaluation; then each exporter. ``start_delay_secs``: how long the
  evaluator task of a ``TF_CONFIG`` cluster waits before its first look, as
  TF's (the local mode ignores it, as tf.estimator's)."""

  input_fn: Callable
  steps: int | None = 100
  name: str | None = None
  hooks: Sequence[SessionRunHook] = ()
  exporters: Sequence[Any] = ()
  start_delay_secs: float = 120
  throttle_secs: float = 600

  def __post_init__(self):
    if not callable(self.input_fn):
      raise TypeError(f"EvalSpec(input_fn={self.input_fn!r}): must be "
                      "callable (it returns the evaluation batches).")
    _positive_or_none("EvalSpec", "steps", self.steps)
    for name in ("start_delay_secs", "throttle_secs"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"EvalSpec({name}={value!r}): must be a number >= 0 "
                         "(seconds).")
    object.__setattr__(self, "hooks",
                       _check_hooks("EvalSpec", self.hooks, SessionRunHook))
    exporters = self.exporters
    if exporters is None:
      exporters = ()
    elif not isinstance(exporters, (list, tuple)):
      exporters = (exporters,)
    for exporter in exporters:
      if not (isinstance(getattr(exporter, "name", None), str)
              and callable(getattr(exporter, "export", None))):
        raise TypeError(f"EvalSpec: exporter {exporter!r} needs a str .name and "
                        "an .export(estimator, export_path, checkpoint_path, "
                        "eval_result, is_the_final_export) method, as "
                        "estlab.export.LatestExporter has.")
    names = [e.name for e in exporters]
    if len(set(names)) != len(names):
      raise ValueError(f"EvalSpec: exporter names must differ, got {names!r}: "
                       "each exports to model_dir/export/<name>.")
    object.__setattr__(self, "exporters", tuple(exporters))


class _EvaluateAfterSaves(CheckpointSaverListener):
  """Evaluates (and exports) the checkpoint just written, throttled."""

  def __init__(self, estimator: Any, train_spec: TrainSpec,
               eval_spec: EvalSpec):
    self._estimator = estimator
    self._train_spec = train_spec
    self._eval_spec = eval_spec
    self._evaluated_step: int | None = None
    self._last_time: float | None = None
    self.eval_result: dict | None = None
    self.export_results: list = []
    self._first = True

  def begin(self):
    self._first = True

  def after_save(self, session, global_step_value):
    del session
    if self._first:  # the start checkpoint: not trained yet (TF skips it too)
      self._first = False
      return False
    if global_step_value == self._evaluated_step:
      return False
    # Every process of a multi-process run evaluates together: process 0's
    # clock decides.
    if not chief_decides(
        self._last_time is None or
        time.monotonic() - self._last_time >= self._eval_spec.throttle_secs):
      logger.info("Skipping the evaluation of step %d: throttle_secs=%s have "
                  "not passed since the last one.", global_step_value,
                  self._eval_spec.throttle_secs)
      return False
    self.evaluate(global_step_value)
    return False

  def end(self, session, global_step_value):
    del session
    if global_step_value != self._evaluated_step:
      self.evaluate(global_step_value)

  def evaluate(self, global_step_value: int | None) -> None:
    """Evaluates the latest checkpoint, then runs the exporters on it."""
    self._evaluated_step = global_step_value
    self._last_time = time.monotonic()
    estimator, spec = self._estimator, self._eval_spec
    path = estimator.latest_checkpoint()
    if path is None:
      raise ValueError(f"train_and_evaluate: no checkpoint in "
                       f"{estimator.model_dir!r} to evaluate; train first.")
    self.eval_result = estimator.evaluate(
        spec.input_fn, steps=spec.steps, name=spec.name, hooks=spec.hooks,
        checkpoint_path=path)
    max_steps = self._train_spec.max_steps
    final = (max_steps is not None and
             int(self.eval_result["global_step"]) >= max_steps)
    self.export_results = [
        exporter.export(
            estimator=estimator,
            export_path=os.path.join(estimator.model_dir, "export",
                                     exporter.name),
            checkpoint_path=path, eval_result=self.eval_result,
            is_the_final_export=final)
        for exporter in spec.exporters]


def train_and_evaluate(estimator: Any, train_spec: TrainSpec,
                       eval_spec: EvalSpec) -> tuple[dict, list]:
  """Trains ``estimator`` and evaluates (and exports) after its checkpoints.

  One ``train(train_spec.input_fn, max_steps=...)`` call; after each
  checkpoint it writes (``RunConfig.save_checkpoints_steps`` /
  ``_secs``) the checkpoint is evaluated on ``eval_spec`` when
  ``throttle_secs`` passed since the last evaluation, then each exporter
  runs (``is_the_final_export`` once the global step reached ``max_steps``);
  the last checkpoint is always evaluated. When ``max_steps`` was reached
  before the call, the latest checkpoint is evaluated (tf.estimator
  returned ``(None, None)`` then).

  In a ``TF_CONFIG`` cluster with an ``evaluator`` task, the chief and
  workers only train (returning ``(None, None)``) and the evaluator task
  evaluates each new checkpoint as it appears (see the module docstring);
  without one, the training processes evaluate together as above.

  Returns:
    ``(metrics, export_results)``: the last evaluation's metrics and the
    exporters' results for it, as tf.estimator's local mode (TF returned
    None on the tasks of a cluster; estlab returns the evaluator's last
    evaluation there, and ``(None, None)`` on training tasks that did not
    evaluate).
  """
  if not isinstance(estimator, Estimator):
    raise TypeError(f"train_and_evaluate(estimator={estimator!r}): needs an "
                    "estlab.Estimator (or a premade estimator).")
  if not isinstance(train_spec, TrainSpec):
    raise TypeError(f"train_and_evaluate(train_spec={train_spec!r}): needs an "
                    "estlab.TrainSpec(input_fn, max_steps=...).")
  if not isinstance(eval_spec, EvalSpec):
    raise TypeError(f"train_and_evaluate(eval_spec={eval_spec!r}): needs an "
                    "estlab.EvalSpec(input_fn, steps=...).")
  config = estimator.config
  if config.task_type == "evaluator":
    return _evaluate_continuously(estimator, train_spec, eval_spec)
  check_cluster_strategy(config)
  if "evaluator" in config.cluster_spec:  # TF: the evaluator task evaluates
    estimator.train(train_spec.input_fn, max_steps=train_spec.max_steps,
                    hooks=train_spec.hooks,
                    saving_listeners=train_spec.saving_listeners)
    return None, None
  listener = _EvaluateAfterSaves(estimator, train_spec, eval_spec)
  estimator.train(train_spec.input_fn, max_steps=train_spec.max_steps,
                  hooks=train_spec.hooks,
                  saving_listeners=[*train_spec.saving_listeners, listener])
  if listener.eval_result is None:  # max_steps was reached before this call
    listener.evaluate(None)
  return listener.eval_result, listener.export_results


_POLL_SECS = 1.0  # How often the evaluator looks for a new checkpoint, at most.


def _exists(path: str) -> bool:
  return epath.Path(path).exists()


def _evaluate_continuously(estimator: Any, train_spec: TrainSpec,
                           eval_spec: EvalSpec, *,
                           clock: Callable[[], float] = time.monotonic,
                           sleep: Callable[[float], None] = time.sleep,
                           poll_secs: float = _POLL_SECS,
                           timeout_secs: float | None = None
                           ) -> tuple[dict | None, list]:
  """TF's evaluator task (``_TrainingExecutor.run_evaluator``).

  After ``eval_spec.start_delay_secs``, repeatedly: evaluate the newest
  finished checkpoint of ``model_dir`` if it is new (one still being written
  has an Orbax temporary name and is not listed), run the exporters on it
  (``is_the_final_export`` at or past ``max_steps``), and return once its
  global step reached ``train_spec.max_steps`` (never when that is None, as
  TF). Passes start no sooner than ``throttle_secs`` apart; without a new
  checkpoint the next look is at least ``poll_secs`` later (TF spins when
  ``throttle_secs=0``). A checkpoint deleted while being read (the trainer's
  ``keep_checkpoint_max``) is skipped for a newer one.

  Args:
    clock, sleep: time, passed in (tests drive the trainer from ``sleep``).
    timeout_secs: give up (``TimeoutError``) when no new checkpoint appears
      for this long; None waits forever, as TF's evaluator.

  Returns:
    The last evaluation's metrics and export results.
  """
  if eval_spec.start_delay_secs:
    logger.info("Waiting %s secs before starting eval.",
                eval_spec.start_delay_secs)
    sleep(eval_spec.start_delay_secs)
  max_steps = train_spec.max_steps
  evaluated, metrics, exports = None, None, []
  last_new = clock()
  while True:
    start = clock()
    path = estimator.latest_checkpoint()
    if path is None or path == evaluated:
      if timeout_secs is not None and start - last_new > timeout_secs:
        raise TimeoutError(
            f"The evaluator found no new checkpoint in {estimator.model_dir!r} "
            f"for {timeout_secs}s (last evaluated: {evaluated!r}); is the "
            "chief training into this model_dir?")
      sleep(max(eval_spec.throttle_secs - (clock() - start), poll_secs))
      continue
    last_new = start
    try:
      result = estimator.evaluate(eval_spec.input_fn, steps=eval_spec.steps,
                                  name=eval_spec.name, hooks=eval_spec.hooks,
                                  checkpoint_path=path)
      final = max_steps is not None and int(result["global_step"]) >= max_steps
      export_path = os.path.join(estimator.model_dir, "export")
      exports = [
          exporter.export(estimator=estimator,
                          export_path=os.path.join(export_path, exporter.name),
                          checkpoint_path=path, eval_result=result,
                          is_the_final_export=final)
          for exporter in eval_spec.exporters]
    except Exception:  # pylint: disable=broad-except
      if _exists(path):
        raise
      logger.warning("Checkpoint %s was deleted while being evaluated (the "
                     "trainer keeps only keep_checkpoint_max); moving on to a "
                     "newer one.", path)
      evaluated = path
      continue
    evaluated, metrics = path, result
    if final:
      logger.info("Exiting evaluation, global_step=%s >= train max_steps=%s",
                  result["global_step"], max_steps)
      return metrics, exports
    wait = eval_spec.throttle_secs - (clock() - start)
    if wait > 0:
      sleep(wait)
