"""tf.estimator's session-run hooks (TF's ``basic_session_run_hooks``) on JAX.

``CheckpointSaverHook``, ``SummarySaverHook``, ``StepCounterHook``,
``NanTensorHook``, ``FinalOpsHook``, ``FeedFnHook`` and
``GlobalStepWaiterHook``, public as ``estlab.X`` (TF: ``tf.estimator.X``).
They are ``estlab.SessionRunHook``s: pass them to ``train(hooks=)``,
``TrainSpec(hooks=)`` or an ``EstimatorSpec``'s hooks. Where TF fetched a
tensor, they read a step output by name (``SessionRunArgs``); where TF ran a
saver or a summary op, they write estlab's Orbax checkpoints and
tensorboardX events. With ``RunConfig(steps_per_loop=N)`` a run is a loop of
N steps: cadences are checked at loop boundaries, on the global step after
the loop, and step outputs are the loop's last step's.

This module sits above ``estlab.hooks`` (the engine's hook protocol) because
these hooks use the checkpoints, the summary writers and the engine's
``NanLossDuringTrainingError``, which that low layer must not import.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from estlab import summary
from estlab._engine.loops import NanLossDuringTrainingError
from estlab.checkpoint._model_dir import ModelDir
from estlab.hooks import (HookSession, SecondOrStepTimer, SessionRunArgs,
                          SessionRunHook, resolve_fetches)
from estlab.spec import HOOK_OUTPUTS

__all__ = ["CheckpointSaverHook", "FeedFnHook", "FinalOpsHook",
           "GlobalStepWaiterHook", "NanTensorHook", "StepCounterHook",
           "SummarySaverHook"]

logger = logging.getLogger("estlab")


def _no_scaffold(owner: str, scaffold: Any) -> None:
  if scaffold is not None:
    raise ValueError(f"{owner}(scaffold={scaffold!r}): Scaffold is a TF1 graph "
                     "concept with no JAX meaning; pass scaffold=None.")


def _same_dir(a: str | os.PathLike | None, b: str | None) -> bool:
  if a is None or b is None:
    return False
  if "://" in str(a) or "://" in str(b):
    return str(a).rstrip("/") == str(b).rstrip("/")
  return os.path.realpath(a) == os.path.realpath(b)


def _training_session(owner: str, session: Any) -> HookSession:
  if getattr(session, "_save_checkpoint", None) is None:
    raise ValueError(
        f"{owner} saves the training state: pass it to train(hooks=...), "
        "TrainSpec(hooks=...) or EstimatorSpec(training_hooks=...), not to "
        "evaluate or predict.")
  return session


def _writer(output_dir: Any, summary_writer: Any, owner: str
            ) -> tuple[Any, bool]:
  """``(writer, owned)``: the given ``summary_writer`` (an estlab.summary
  ``MetricWriter``), or a ``TensorBoardWriter`` on ``output_dir`` this hook
  opens and closes."""
  if summary_writer is not None:
    if not callable(getattr(summary_writer, "write_scalars", None)):
      raise TypeError(f"{owner}(summary_writer={summary_writer!r}): pass an "
                      "estlab.summary writer (e.g. estlab.summary."
                      "TensorBoardWriter(logdir)), or output_dir=logdir.")
    return summary_writer, False
  if output_dir is None:
    return None, False
  return summary.TensorBoardWriter(os.fspath(output_dir)), True


class CheckpointSaverHook(SessionRunHook):
  """Saves the train state every N steps or seconds, as tf.estimator's.

  Saves at the session's start (the state at the step training starts
  from, in ``after_create_session``), whenever ``save_steps`` or
  ``save_secs`` have passed since the last save (checked after each run),
  and at the end unless that step was just saved. Each save calls the
  ``listeners``' ``before_save`` / ``after_save`` (which may return True to
  stop training; ignored at the start save, as TF); ``begin`` and ``end``
  frame them. As in TF, an Estimator given this hook adds no saver of its
  own: the ``RunConfig`` cadence is not used and ``train(saving_listeners=)``
  join this hook's listeners (estlab still writes the last step in
  ``model_dir`` when this hook saves elsewhere).

  The checkpoints are estlab's (Orbax step directories,
  ``estlab.checkpoint.Checkpointer``); with ``checkpoint_dir`` the
  estimator's ``model_dir`` they are the estimator's own
  (``estimator.latest_checkpoint()``), else a ``Checkpointer`` there keeps
  the newest 5 (TF's ``Saver`` default). Only in training.

  Args:
    checkpoint_dir: where checkpoints go.
    save_secs / save_steps: the cadence; exactly one.
    saver: an ``estlab.checkpoint.Checkpointer`` to save with instead (JAX
      meaning of TF's ``Saver``).
    checkpoint_basename: TF's file prefix; Orbax step directories
      (``checkpoint_dir/<step>``) have none, so it is not used.
    scaffold: must be None (TF1 graphs).
    listeners: ``estlab.CheckpointSaverListener``s.
    save_graph_def: there is no graph to write on JAX; not used.

  Example:
    >>> est.train(input_fn, steps=12, hooks=[  # doctest: +SKIP
    ...     estlab.CheckpointSaverHook(est.model_dir, save_steps=5)])
    >>> # checkpoints at steps 0, 5, 10 and 12, as TF's
  """

  _replaces_checkpoint_cadence = True  # (TrainLoop: no saver of its own)

  def __init__(self, checkpoint_dir: str | os.PathLike,
               save_secs: float | None = None, save_steps: int | None = None,
               saver: Any = None, checkpoint_basename: str = "model.ckpt",
               scaffold: Any = None,
               listeners: Sequence[Any] | None = None,
               save_graph_def: bool = True):
    _no_scaffold("CheckpointSaverHook", scaffold)
    if saver is not None and not callable(getattr(saver, "save", None)):
      raise TypeError(f"CheckpointSaverHook(saver={saver!r}): pass an "
                      "estlab.checkpoint.Checkpointer, or None.")
    if (save_secs is None) == (save_steps is None):
      raise ValueError(f"CheckpointSaverHook(save_secs={save_secs!r}, "
                       f"save_steps={save_steps!r}): give exactly one.")
    self._checkpoint_dir = os.fspath(checkpoint_dir)
    self._timer = SecondOrStepTimer(every_secs=save_secs,
                                    every_steps=save_steps)
    self._saver = saver
    self._checkpoint_basename = checkpoint_basename
    self._save_graph_def = save_graph_def
    self._listeners = list(listeners or [])
    for listener in self._listeners:
      if not all(callable(getattr(listener, name, None)) for name in
                 ("begin", "before_save", "after_save", "end")):
        raise TypeError(
            f"CheckpointSaverHook(listeners=...): {listener!r} is no "
            "CheckpointSaverListener; subclass estlab.CheckpointSaverListener.")
    self._own: ModelDir | None = None

  def begin(self) -> None:
    self._timer.reset()
    for listener in self._listeners:
      listener.begin()

  def after_create_session(self, session=None, coord=None):
    del coord
    step = session.global_step
    self._save(session, step)  # the state at the step training starts from
    self._timer.update_last_triggered_step(step)

  def after_run(self, run_context, run_values):
    del run_values
    step = run_context.global_step
    if self._timer.should_trigger_for_step(step):
      self._timer.update_last_triggered_step(step)
      if self._save(run_context.session, step):
        run_context.request_stop()

  def end(self, session=None):
    step = session.global_step
    if step != self._timer.last_triggered_step():
      self._save(session, step)
    for listener in self._listeners:
      listener.end(None, step)

  def _save(self, session: Any, step: int) -> bool:
    """Saves the loop's state at ``step`` between the listeners' calls;
    True when a listener asks to stop."""
    session = _training_session("CheckpointSaverHook", session)
    for listener in self._listeners:
      listener.before_save(None, step)
    logger.info("Saving checkpoints for %d into %s.", step,
                self._checkpoint_dir)
    if self._saver is None and _same_dir(self._checkpoint_dir,
                                         session.model_dir):
      session._save_checkpoint(bool(self._listeners))  # pylint: disable=protected-access
    else:
      saver = self._saver
      if saver is None:
        if self._own is None:
          self._own = ModelDir(self._checkpoint_dir, max_to_keep=5,
                               async_save=False)
        saver = self._own
      saver.save(session._checkpoint_state())  # pylint: disable=protected-access
      wait = getattr(saver, "wait_until_finished", None)
      if callable(wait):
        wait()
    return any([bool(listener.after_save(None, step))
                for listener in self._listeners])


def _scalars_and_arrays(results: Mapping[str, Any]
                        ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """A step's summaries: its outputs but the engine's bookkeeping."""
  values = {k: np.asarray(v) for k, v in results.items()
            if k not in ("bad_step", "global_step")
            and not k.startswith(HOOK_OUTPUTS)}
  return ({k: float(v) for k, v in values.items() if v.size == 1},
          {k: v for k, v in values.items() if v.size != 1})


class SummarySaverHook(SessionRunHook):
  """Writes a step's summaries as TensorBoard events every N steps or secs.

  As tf.estimator's: the first run's summaries, then those of the first run
  ``save_steps`` steps (or ``save_secs``) after the last written, at the
  global step after the run (steps 1, 6, 11, ... with ``save_steps=5``).
  The summaries are the step's outputs: ``loss``, ``learning_rate`` (when
  the optimizer exposes it) and the model_fn's
  ``EstimatorSpec(summaries={...})``; scalars as scalar events, larger
  arrays as histograms. Before its first write it writes TF's
  ``SessionLog.START`` at that step (TensorBoard then drops points at that
  step and above left by a run killed after its last checkpoint).

  Args:
    save_steps / save_secs: the cadence; exactly one.
    output_dir: where a ``TensorBoardWriter`` writes (one of this and
      ``summary_writer``).
    summary_writer: an ``estlab.summary`` writer to write to instead.
    scaffold: must be None (TF1 graphs).
    summary_op: JAX meaning: the names of the outputs to write (a name or a
      list of names); None writes all of them (TF required a summary_op or a
      scaffold; there is no graph to merge summaries from).

  Example:
    >>> est.train(input_fn, steps=100, hooks=[estlab.SummarySaverHook(
    ...     save_steps=10, output_dir='/tmp/summaries')])  # doctest: +SKIP
  """

  def __init__(self, save_steps: int | None = None,
               save_secs: float | None = None,
               output_dir: str | os.PathLike | None = None,
               summary_writer: Any = None, scaffold: Any = None,
               summary_op: str | Sequence[str] | None = None):
    _no_scaffold("SummarySaverHook", scaffold)
    if (output_dir is None) == (summary_writer is None):
      raise ValueError(f"SummarySaverHook(output_dir={output_dir!r}, "
                       f"summary_writer={summary_writer!r}): give exactly one.")
    if (save_steps is None) == (save_secs is None):
      raise ValueError(f"SummarySaverHook(save_steps={save_steps!r}, "
                       f"save_secs={save_secs!r}): give exactly one.")
    if isinstance(summary_op, str):
      summary_op = [summary_op]
    if summary_op is not None and not all(isinstance(n, str)
                                          for n in summary_op):
      raise TypeError(f"SummarySaverHook(summary_op={summary_op!r}): on JAX "
                      "it names step outputs (e.g. ['loss']); add arrays to "
                      "EstimatorSpec(summaries={name: array}).")
    self._names = None if summary_op is None else list(summary_op)
    self._timer = SecondOrStepTimer(every_secs=save_secs,
                                    every_steps=save_steps)
    self._output_dir, self._given_writer = output_dir, summary_writer
    self._writer, self._owned = None, False
    self._written_once = False

  def begin(self) -> None:
    self._writer, self._owned = _writer(self._output_dir, self._given_writer,
                                        "SummarySaverHook")
    self._timer.reset()
    self._written_once = False

  def before_run(self, run_context):
    del run_context
    if self._names is not None:  # only these outputs
      return SessionRunArgs({name: name for name in self._names})
    return None

  def after_run(self, run_context, run_values):
    step = run_context.global_step
    if self._written_once and not self._timer.should_trigger_for_step(step):
      return
    if not self._written_once:  # as TF: its SessionLog.START, then the step
      start = getattr(self._writer, "write_session_start", None)
      if start is not None:
        start(step)
    self._written_once = True
    self._timer.update_last_triggered_step(step)
    scalars, arrays = _scalars_and_arrays(run_values.results)
    if scalars:
      self._writer.write_scalars(step, scalars)
    if arrays:
      self._writer.write_histograms(step, arrays)

  def end(self, session=None):
    del session
    if self._owned:
      self._writer.close()
    elif self._writer is not None:
      self._writer.flush()


class StepCounterHook(SessionRunHook):
  """Writes training speed, ``global_step/sec``, every N steps or seconds.

  As tf.estimator's: it starts timing at the first run and writes (and
  logs) the steps per second since the last measure whenever
  ``every_n_steps`` (or ``every_n_secs``) have passed, at the global step
  after the run (steps 6, 11, ... with ``every_n_steps=5``), under TF's tag
  ``global_step/sec``. With ``steps_per_loop`` a loop's steps count.

  Args:
    every_n_steps / every_n_secs: the cadence; exactly one (pass
      ``every_n_steps=None`` with ``every_n_secs``).
    output_dir: where a ``TensorBoardWriter`` writes; or
    summary_writer: an ``estlab.summary`` writer. With neither it only logs.

  Example:
    >>> est.train(input_fn, steps=1000, hooks=[estlab.StepCounterHook(
    ...     every_n_steps=100, output_dir=est.model_dir)])  # doctest: +SKIP
  """

  def __init__(self, every_n_steps: int | None = 100,
               every_n_secs: float | None = None,
               output_dir: str | os.PathLike | None = None,
               summary_writer: Any = None):
    if (every_n_steps is None) == (every_n_secs is None):
      raise ValueError(f"StepCounterHook(every_n_steps={every_n_steps!r}, "
                       f"every_n_secs={every_n_secs!r}): give exactly one "
                       "(every_n_steps=None with every_n_secs).")
    self._timer = SecondOrStepTimer(every_steps=every_n_steps,
                                    every_secs=every_n_secs)
    self._output_dir, self._given_writer = output_dir, summary_writer
    self._writer, self._owned = None, False
    self._summary_tag = "global_step/sec"
    self._last_global_step = None

  def begin(self) -> None:
    self._writer, self._owned = _writer(self._output_dir, self._given_writer,
                                        "StepCounterHook")

  def after_create_session(self, session=None, coord=None):
    del session, coord
    self._last_global_step = None
    self._timer.reset()

  def after_run(self, run_context, run_values):
    del run_values
    step = run_context.global_step
    if self._timer.should_trigger_for_step(step):
      elapsed_time, elapsed_steps = self._timer.update_last_triggered_step(
          step)
      if elapsed_time is not None:
        rate = elapsed_steps / max(elapsed_time, 1e-9)
        if self._writer is not None:
          self._writer.write_scalars(step, {self._summary_tag: rate})
        logger.info("%s: %g", self._summary_tag, rate)
    if step == self._last_global_step:
      logger.warning("It seems that global step has not been increased. "
                     "Current value (could be stable): %s vs previous value: "
                     "%s.", step, self._last_global_step)
    self._last_global_step = step

  def end(self, session=None):
    del session
    if self._owned:
      self._writer.close()
    elif self._writer is not None:
      self._writer.flush()


class NanTensorHook(SessionRunHook):
  """Stops training when the loss is NaN, as tf.estimator's.

  On JAX ``loss_tensor`` is the name of a step output: ``'loss'`` (the
  model_fn's loss) or a name of its ``EstimatorSpec(summaries={...})``;
  built inside a model_fn and returned in its training hooks it may also be
  the array itself, as TF took the loss tensor. When the value has a NaN
  after a run it raises ``estlab.NanLossDuringTrainingError``
  (``fail_on_nan_loss``), else logs a warning and requests a stop. (The
  Estimator checks the loss for NaN by itself, as TF added this hook for
  the loss: a NaN loss raises whatever this hook says, as in TF.) With
  ``steps_per_loop`` it reads the loop's last step's value; the Estimator's
  own check sees every step.

  Example:
    >>> est.train(input_fn, hooks=[estlab.NanTensorHook(  # doctest: +SKIP
    ...     'grad_norm', fail_on_nan_loss=False)])
  """

  def __init__(self, loss_tensor: Any = "loss", fail_on_nan_loss: bool = True):
    self._name = loss_tensor if isinstance(loss_tensor, str) else None
    self._value = None if self._name is not None else loss_tensor
    self._fail_on_nan_loss = fail_on_nan_loss

  def take_traced_tensors(self, prefix: str) -> dict:
    """The loss array this hook was given in a model_fn, as a step output
    (see ``LoggingTensorHook.take_traced_tensors``)."""
    if self._name is not None:
      return {}
    self._name = prefix + "loss"
    return {self._name: self._value}

  def before_run(self, run_context):
    del run_context
    if self._name is None:
      raise ValueError(
          f"NanTensorHook({self._value!r:.80}): an array works only in a "
          "model_fn's EstimatorSpec(training_hooks=...); elsewhere pass the "
          "name of a step output, e.g. NanTensorHook('loss').")
    return SessionRunArgs(self._name)

  def after_run(self, run_context, run_values):
    if not np.isnan(np.asarray(run_values.results)).any():
      return
    message = "Model diverged with loss = NaN."
    if self._fail_on_nan_loss:
      logger.error(message)
      raise NanLossDuringTrainingError(run_context.global_step,
                                       run_context.session.model_dir)
    logger.warning(message)
    run_context.request_stop()


class FinalOpsHook(SessionRunHook):
  """The last values of some step outputs, read when the loop ends.

  TF evaluated ``final_ops`` tensors at the end of a session; on JAX
  ``final_ops`` names step outputs (one name, or a list, tuple or dict of
  names, as ``SessionRunArgs`` fetches), or is a function of the last run's
  outputs (``{name: numpy value}``). After the loop, ``final_ops_values``
  holds them for the last run (the loop's last step's with
  ``steps_per_loop``), None if no step ran. Works in training, evaluation
  (outputs ``loss``, ``batches``) and prediction (the predictions).

  Args:
    final_ops: names, or ``fn(outputs) -> value``.
    final_ops_feed_dict: TF's feed for them; must be None.

  Example:
    >>> hook = estlab.FinalOpsHook({'loss': 'loss', 'step': 'global_step'})
    >>> est.train(input_fn, steps=7, hooks=[hook])  # doctest: +SKIP
    >>> hook.final_ops_values['step']  # doctest: +SKIP
    7
  """

  def __init__(self, final_ops: Any, final_ops_feed_dict: Any = None):
    if final_ops_feed_dict is not None:
      raise ValueError(f"FinalOpsHook(final_ops_feed_dict="
                       f"{final_ops_feed_dict!r:.80}): nothing is fed on JAX; "
                       "pass final_ops as names of step outputs or a function "
                       "of them.")
    self._final_ops = final_ops
    self._last = None
    self._final_ops_values = None

  @property
  def final_ops_values(self) -> Any:
    return self._final_ops_values

  def begin(self) -> None:
    self._last, self._final_ops_values = None, None

  def after_run(self, run_context, run_values):
    del run_context
    self._last = run_values

  def end(self, session=None):
    del session
    if self._last is None:
      return
    results = self._last.results
    if callable(self._final_ops):
      self._final_ops_values = self._final_ops(results)
    else:
      self._final_ops_values = resolve_fetches(self._final_ops, results)


class FeedFnHook(SessionRunHook):
  """Edits each batch on the host before its step (JAX meaning of TF's).

  TF's ``feed_fn()`` returned a feed dict for the next ``session.run``; on
  JAX ``feed_fn(features, labels)`` takes the step's batch as numpy arrays
  and returns ``(features, labels)`` edited (same keys), which go to the
  devices the batch was on. It runs in ``before_run`` order, once per step,
  in step order (so it may keep state); with ``steps_per_loop`` once per
  batch of the loop. Works in training, evaluation and prediction. It costs
  a copy of each batch to the host and back: edit in the input_fn where
  the edit is fixed.

  Example:
    >>> def noisy(features, labels):
    ...   return {**features, 'x': features['x'] + 0.1}, labels
    >>> est.train(input_fn, hooks=[estlab.FeedFnHook(noisy)])  # doctest: +SKIP
  """

  def __init__(self, feed_fn: Callable[[Any, Any], tuple[Any, Any]]):
    if not callable(feed_fn):
      raise TypeError(f"FeedFnHook(feed_fn={feed_fn!r}): pass a function "
                      "(features, labels) -> (features, labels).")
    self.feed_fn = feed_fn

  def before_run(self, run_context):
    del run_context
    return SessionRunArgs(fetches=None, feed_dict=self.feed_fn)


class GlobalStepWaiterHook(SessionRunHook):
  """Delays training until ``model_dir``'s global step reaches a step.

  TF's worker waiter read the shared global step; on JAX the global step
  other trainers share is the latest checkpoint of the estimator's
  ``model_dir``. Before the first run it checks it every 0.5 seconds
  (``sleep``) until it is at least ``wait_until_step``, as TF's before_run
  did; ``wait_until_step <= 0`` does not wait. Only in training.

  Args:
    wait_until_step: the global step to wait for.
    sleep: waits between checks (``time.sleep``; pass another function to
      poll differently).

  Example:
    >>> est.train(input_fn, hooks=[  # doctest: +SKIP
    ...     estlab.GlobalStepWaiterHook(wait_until_step=1000)])
  """

  _POLL_SECS = 0.5

  def __init__(self, wait_until_step: int, *,
               sleep: Callable[[float], None] = time.sleep):
    self._wait_until_step = wait_until_step
    self._sleep = sleep
    self._worker_is_started = False

  def begin(self) -> None:
    self._worker_is_started = False

  def before_run(self, run_context):
    if self._worker_is_started:
      return None
    if self._wait_until_step <= 0:
      self._worker_is_started = True
      return None
    model_dir = run_context.session.model_dir
    if model_dir is None:
      raise ValueError("GlobalStepWaiterHook waits for the model_dir's "
                       "checkpoints: pass it to train(hooks=...) or a "
                       "training hook.")
    checkpoints = ModelDir(model_dir, max_to_keep=None, async_save=False)
    logger.info("Waiting for global step %d before starting training.",
                self._wait_until_step)
    last_logged = 0
    while True:
      current = checkpoints.latest_step() or 0
      if current >= self._wait_until_step:
        self._worker_is_started = True
        return None
      if current - last_logged > 1000:
        logger.info("Waiting for global step %d before starting training. "
                    "Current step is %d.", self._wait_until_step, current)
        last_logged = current
      self._sleep(self._POLL_SECS)

