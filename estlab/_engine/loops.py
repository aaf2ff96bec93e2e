"""The training loop: dispatch compiled steps, summaries, logs, checkpoints.

Steps are dispatched asynchronously; the host reads each step's NaN flag a
few steps late (``_STEPS_IN_FLIGHT``), so the device never waits on Python.
Outputs are fetched in full only when a summary, log line or hook needs them.
Evaluation and prediction loops are here too.
"""
from __future__ import annotations

import collections
import functools
import itertools
import logging
import time
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import jax
import numpy as np
from tqdm import auto as tqdm

from estlab._engine.nan_predictions import NanPredictions
from estlab.data._device import fed, on_cpu
from estlab.data._packing import rows_of
from estlab.distribute._strategies import chief_decides
from estlab.hooks import HookRunner, PeriodicTrigger, SessionRunHook, renewed
from estlab.spec import HOOK_OUTPUTS, ModeKeys

__all__ = ["NanLossDuringTrainingError", "TrainLoop", "evaluate_batches",
           "predict_batches"]

logger = logging.getLogger("estlab")


class NanLossDuringTrainingError(RuntimeError):
  """The loss became NaN or infinite; no checkpoint of it was written."""

  def __init__(self, step: int, model_dir: str):
    self.step = step
    super().__init__(
        f"NaN or infinite loss at global step {step}; training stopped and the "
        f"parameters of that step were discarded (the latest checkpoint in "
        f"{model_dir!r} is the last good one). Lower the learning rate, clip "
        "gradients (optax.clip_by_global_norm) or check the inputs for NaN.")


# The host checks each step's outputs for NaN this many calls late: it runs
# ahead of the device by at most that much, and never waits on a step that is
# still queued behind others. (A NaN step freezes the state, so checking late
# loses nothing; checkpoints and summaries check the latest step first.)
_STEPS_IN_FLIGHT = 2


def _process_rows(array: Any) -> Any:
  """This process's value of an array of a multi-process run: the whole of a
  replicated one, its own rows of one split on the batch axis."""
  if not isinstance(array, jax.Array) or array.is_fully_addressable:
    return array
  if array.is_fully_replicated:
    return np.asarray(array.addressable_data(0))
  shards = {}  # batch-axis start -> rows (one copy of each)
  for shard in array.addressable_shards:
    shards.setdefault(shard.index[0].start or 0, shard.data)
  return np.concatenate([np.asarray(shards[k]) for k in sorted(shards)])


def _host(tree: Any) -> Any:
  """``jax.device_get(tree)``; on the CPU leaf by leaf with ``np.asarray``,
  which reads a host buffer in ~2 us where ``device_get``'s async copy took
  ~40 us a leaf (a classifier's predictions are 7 leaves, every batch). In a
  multi-process run each process gets its own rows (``_process_rows``)."""
  if jax.process_count() > 1:
    return jax.tree.map(_process_rows, tree)
  if not on_cpu():
    return jax.device_get(tree)
  return jax.tree.map(np.asarray, tree)


class TrainLoop:
  """Runs compiled train steps over device batches until the input or limit ends.

  Args:
    step_fns: ``(train_step, train_loop)`` compiled functions: with
      ``config.steps_per_loop`` 1 every item is one batch for ``train_step``,
      else ``n`` steps of a padded stack for ``train_loop``
      (``data._grouping``).
    save: ``save(state) -> None`` writes a checkpoint.
    writer: summary writer for the train events.
    config: the RunConfig (cadences, progress bar).
    model_dir: for messages.
    hooks: every hook of the call, in tf.estimator's order: the spec's
      ``training_chief_hooks``, the caller's, the spec's ``training_hooks``
      (known before the first step: the model_fn was traced for the state).
    after_first_step: called once, after the first step and its hooks.
    listeners: ``CheckpointSaverListener``s around each save; ``wait_saved``
      returns once the last save is on disk (before ``after_save``).
    multiprocess: the state spans several processes (``jax.distributed``):
      they must save the same checkpoints, so a seconds cadence follows the
      chief's clock (``_AgreedTrigger``) and an interrupt saves nothing.
    defer_start_save: the start checkpoint may be written once the first
      step and its hooks ran (from a copy of the state taken before it),
      where no listener sees it and one process saves: the caller says so
      when the save would first import the checkpointer (Orbax, ~1
      CPU-second), which then runs beside the next steps instead of before
      the first.
    unravel: ``unravel(state)`` is the state as a checkpoint holds it (what
      ``save`` writes): what a ``CheckpointSaverHook`` saves elsewhere.

  A hook whose class sets ``_replaces_checkpoint_cadence`` (the public
  ``estlab.CheckpointSaverHook``) saves the checkpoints itself, as in TF,
  where the Estimator then added no saver of its own: the loop writes no
  start and no periodic checkpoint, and ``listeners`` go to the first such
  hook. The loop still writes the last step in ``model_dir`` when no hook
  did (estlab always ends a train call with a checkpoint).
    variables_of: ``variables_of(state) -> {'params': ..., <collections>}``:
      what hooks read as ``run_context.session.variables()`` (the state
      after the last run; ``InMemoryEvaluatorHook``).
  """

  def __init__(self, *, step_fns: tuple[Callable, Callable],
               save: Callable[[Any], None], writer: Any, config: Any,
               model_dir: str, hooks: Sequence[SessionRunHook],
               after_first_step: Callable[[], None] = lambda: None,
               listeners: Sequence[Any] = (),
               wait_saved: Callable[[], None] = lambda: None,
               multiprocess: bool = False, defer_start_save: bool = False,
               unravel: Callable[[Any], Any] = lambda state: state,
               variables_of: Callable[[Any], dict] | None = None):
    self._multiprocess = multiprocess
    self._unravel = unravel
    self._variables_of = variables_of
    self._defer_start = (defer_start_save and not listeners
                         and not multiprocess)
    self._listeners = list(listeners)
    for listener in self._listeners:
      if not all(callable(getattr(listener, name, None)) for name in
                 ("begin", "before_save", "after_save", "end")):
        raise TypeError(
            f"saving_listeners: {listener!r} is no CheckpointSaverListener; "
            "subclass estlab.CheckpointSaverListener (begin, before_save, "
            "after_save, end).")
    self._wait_saved = wait_saved
    self._train_step, self._train_loop = step_fns
    self._save = save
    self._writer = writer
    self._config = config
    self._model_dir = model_dir
    self._hooks = list(hooks)
    savers = [h for h in self._hooks
              if getattr(h, "_replaces_checkpoint_cadence", False)]
    self._hook_saves = bool(savers)
    if savers:  # (as TF: saving_listeners join the first saver hook)
      for listener in self._listeners:
        if listener not in savers[0]._listeners:  # pylint: disable=protected-access
          savers[0]._listeners.append(listener)  # pylint: disable=protected-access
      self._listeners = []
      self._defer_start = False
    self._after_first_step = after_first_step
    self._rate_from = (0, 0.0)  # (step, time) of the last rate measured

  def _settle(self, outputs: Any, step: int, now: float,
              want_summary: bool, want_log: bool, *, bar: Any) -> None:
    """Checks a dispatched step (or loop: its last step's outputs) for NaN;
    writes the summary and log line that were due when it was dispatched,
    at ``step`` and ``now``."""
    # One scalar: np.asarray reads it in ~2 us on the CPU, where
    # jax.device_get's tree walk and async copy took ~40 us, every step.
    bad = int(np.asarray(outputs["bad_step"]))
    if bad >= 0:
      raise NanLossDuringTrainingError(bad, self._model_dir)
    if not (want_summary or want_log):
      return
    values = {k: v for k, v in _host(outputs).items()
              if k not in ("bad_step", "global_step")
              and not k.startswith(HOOK_OUTPUTS)}
    scalars = {k: float(v) for k, v in values.items() if np.size(v) == 1}
    rate = (step - self._rate_from[0]) / max(now - self._rate_from[1], 1e-9)
    self._rate_from = (step, now)
    scalars["global_step/sec"] = rate
    if want_summary:
      self._writer.write_scalars(step, scalars)
      arrays = {k: np.asarray(v) for k, v in values.items() if np.size(v) != 1}
      if arrays:  # non-scalar summaries: histograms, as tf.summary.histogram
        self._writer.write_histograms(step, arrays)
    if want_log:
      logger.info("loss = %.6g, step = %d (%.1f global_step/sec)",
                  scalars["loss"], step, rate)
      bar.set_postfix(loss=f"{scalars['loss']:.4g}", refresh=False)

  def _checkpoint(self, state: Any, step: int, *, write: bool = True) -> bool:
    """Saves ``state`` (at ``step``) between the listeners' calls; True when
    a listener asks to stop. Without ``write`` the step is on disk already:
    only the listeners are called (TF saved it again; Orbax refuses)."""
    for listener in self._listeners:
      listener.before_save(None, step)
    if write:
      self._writer.flush()  # the step's summaries reach the disk first
      self._save(state)
    if not self._listeners:
      return False
    self._wait_saved()
    return any([bool(listener.after_save(None, step))
                for listener in self._listeners])

  def run(self, state: Any, batches: Any, limit: int | None, *,
          saved: int | None = None) -> Any:
    """Trains until ``batches`` or ``limit`` (steps) ends or a hook stops.

    Hooks and listeners are called as by tf.estimator's MonitoredSession,
    whose CheckpointSaverHook came first: listeners' ``begin``, the hooks'
    ``begin``, the start checkpoint (listeners around it), the hooks'
    ``after_create_session``; per step (or loop) the hooks' ``before_run``,
    the step, a checkpoint when due (listeners around it), the hooks'
    ``after_run``; at the end the last checkpoint unless that step was just
    saved, the listeners' ``end``, the hooks' ``end``. When the input ends,
    the hooks' last ``before_run`` has no step (TF's input ended inside the
    run); ``limit`` ends the loop after a step, as TF's StopAtStepHook did.

    Events: TF's ``SessionLog.START`` at ``start + 1`` first (where TF's
    SummarySaverHook wrote it: TensorBoard then drops the points at steps
    above the checkpoint resumed from, written by a run killed after it),
    and the writer is flushed before each checkpoint is saved, so the
    summaries of every checkpointed step are on disk when it commits.

    The start checkpoint is TF's (CheckpointSaverHook.after_create_session):
    the state at the starting step, so a fresh ``model_dir`` trained N steps
    holds steps 0 and N. It is written when a cadence is set
    (``save_checkpoints_steps`` or ``_secs``; TF had no saver hook without
    one, and estlab then saves only at the end), not when that step is on
    disk already (``saved``: the listeners are still called, as TF saved it
    again), and a listener's stop request there is ignored, as in TF. It is
    written as every save is (asynchronously where the checkpointer is), so
    the first step waits only for the state's copy to the host, or, with
    ``defer_start_save``, for a copy of the state on its device.

    Args:
      state: the state to train from.
      batches: ``(n, (features, labels))`` items.
      limit: at most this many steps; None until the input ends.
      saved: the step whose checkpoint ``state`` is (restored from), if any.

    Returns:
      ``(state, saved_step)``: the final state and the step last saved.
    """
    config = self._config
    start = int(jax.device_get(state.step))
    step = start
    if saved != start:
      saved = None
    now = time.monotonic()
    summary_due = PeriodicTrigger(config.save_summary_steps, start_step=start)
    log_due = PeriodicTrigger(config.log_step_count_steps, start_step=start)
    ckpt_due = (PeriodicTrigger(start_step=start) if self._hook_saves else
                PeriodicTrigger(config.save_checkpoints_steps,
                                config.save_checkpoints_secs, start_step=start))
    start_save = ckpt_due.enabled
    if self._multiprocess and config.save_checkpoints_secs is not None:
      ckpt_due = _AgreedTrigger(ckpt_due, config.log_step_count_steps or 100,
                                start)
    self._rate_from = (start, now)
    # TF's SessionLog.START at the first step this call trains: TensorBoard
    # drops the points a killed run wrote after the checkpoint resumed from.
    self._writer.write_session_start(start + 1)
    for listener in self._listeners:
      listener.begin()

    pending = []  # the start state, when its save waits for the first step

    def save_start() -> None:
      nonlocal saved
      if not start_save:
        return
      if saved != start and self._defer_start:
        pending.append(jax.tree.map(  # (a copy compiles nothing, ``.copy()`` did)
            lambda a: jax.device_put(a, may_alias=False)
            if isinstance(a, jax.Array) else a, state))
      else:  # (a listener's stop request is ignored here, as in TF)
        self._checkpoint(state, start, write=saved != start)
      saved = start

    def save_pending() -> None:
      if pending:
        self._save(pending.pop())
    bar = tqdm.tqdm(total=limit, desc="train", unit="step",
                    disable=not config.progress_bar)
    # Dispatched steps not yet checked: (outputs, step, time, summary?,
    # log?). Their summaries and log lines are written when they are checked,
    # a few steps late, so the host never waits on the step it just queued.
    in_flight: collections.deque = collections.deque()
    first = True
    looped = config.steps_per_loop > 1

    def settle(pending: int) -> None:
      while len(in_flight) > pending:
        self._settle(*in_flight.popleft(), bar=bar)

    def checkpoint_state() -> Any:  # (HookSession._checkpoint_state)
      settle(0)  # a NaN step raises before its state is saved
      return self._unravel(state)

    def save_checkpoint(wait: bool) -> None:  # (HookSession._save_checkpoint)
      nonlocal saved
      settle(0)
      save_pending()
      if saved != step:
        self._writer.flush()
        self._save(state)
        saved = step
      if wait:
        self._wait_saved()
    try:
      variables_of = self._variables_of
      runner = HookRunner(  # (``variables`` reads ``state`` as it is then)
          self._hooks, ModeKeys.TRAIN, start, after_begin=save_start,
          model_dir=self._model_dir, save_checkpoint=save_checkpoint,
          checkpoint_state=checkpoint_state,
          variables=None if variables_of is None else
          lambda: variables_of(state))
    except BaseException:
      bar.close()
      raise
    batches = iter(batches)
    try:
      while limit is None or step - start < limit:
        context = runner.before_run(step)
        # (TF ran before_run once more when the input then ended: so here.)
        n, (features, labels) = next(batches, (0, (None, None)))
        if not n:
          break
        edits = runner.feeds(context)
        if edits:  # (FeedFnHook, SessionRunArgs(feed_dict=...))
          features, labels = fed(edits, features, labels, n if looped else None)
        if looped:  # n steps of a padded stack (``train_loop``)
          state, outputs = self._train_loop(state, features, labels,
                                            np.int32(n))
        else:
          state, outputs = self._train_step(state, features, labels)
        step += n
        context.global_step = step
        bar.update(n)
        now = time.monotonic()
        in_flight.append((outputs, step, now, summary_due(step, now),
                          log_due(step, now)))
        settle(_STEPS_IN_FLIGHT)
        stop = False
        if ckpt_due(step, now):  # before the hooks see the step, as in TF
          settle(0)
          save_pending()
          stop = self._checkpoint(state, step)
          saved = step
        stop = runner.after_run(context, lambda o=outputs: {
            k: np.asarray(v) for k, v in _host(o).items()}) or stop
        if first:
          self._after_first_step()  # the device runs the next steps meanwhile
          first = False
          save_pending()  # (after the first step's hooks: they time it)
        if stop:
          break
      settle(0)
    except KeyboardInterrupt:
      # A notebook user pressed stop: keep the work done so far.
      save_pending()
      if step not in (saved, start) and not self._multiprocess:
        settle(0)
        self._writer.flush()
        self._save(state)
      raise
    finally:
      bar.close()
      self._writer.flush()
    save_pending()  # (no step was made)
    if step != saved and step != start:
      self._checkpoint(state, step)
      saved = step
    for listener in self._listeners:
      listener.end(None, step)
    runner.end()
    return state, saved


class _AgreedTrigger:
  """A seconds cadence that every process of a multi-process run follows:
  the chief's trigger decides, asked once every ``check_every`` steps (one
  small broadcast then), so all processes save at the same steps (Orbax
  writes a checkpoint together). Step cadences agree by themselves."""

  def __init__(self, trigger: PeriodicTrigger, check_every: int, start: int):
    self._trigger = trigger
    self._every = check_every
    self._checked = start

  def __call__(self, step: int, now: float) -> bool:
    if step // self._every <= self._checked // self._every:
      return False
    self._checked = step
    return chief_decides(self._trigger(step, now) if jax.process_index() == 0
                         else False)


def evaluate_batches(compiled: Any, variables: Any, items: Iterable, *,
                     pads: bool, hooks: Sequence[SessionRunHook],
                     total: int | None, progress_bar: bool,
                     global_step: int) -> dict:
  """The eval metrics over ``items`` (``(1, (batch, valid))``), as TF's result.

  With ``pads`` every step gets the count of real rows (all rows but in a
  padded last batch), so full and padded batches share one compilation.
  ``hooks`` run as in TF, then the spec's ``evaluation_hooks`` (the empty
  accumulator traces the model_fn, if nothing did, before the first step);
  they end before the metrics are computed.

  Returns:
    ``loss`` (the mean over batches), every metric of ``eval_metric_ops``
    (0-d ones as numpy scalars, as TF) and ``global_step``; logged as TF did.
  """
  def valid(rows, features):
    return (np.int32(rows_of(features) if rows is None else rows),) if pads else ()
  items = iter(items)
  _, ((features, labels), rows) = first = next(items)
  acc = compiled.empty_eval_accumulator(variables, features, labels,
                                        *valid(None, features))
  runner = HookRunner([*hooks, *renewed(compiled.hooks[ModeKeys.EVAL])],
                      ModeKeys.EVAL, global_step)
  with tqdm.tqdm(desc="evaluate", unit="batch", total=total, leave=False,
                 disable=not progress_bar) as bar:
    items, count = itertools.chain([first], items), 0
    while total is None or count < total:
      context = runner.before_run(global_step)
      item = next(items, None)  # (input ends after before_run, as in TF)
      if item is None:
        break
      _, ((features, labels), rows) = item
      edits = runner.feeds(context)
      if edits:
        features, labels = fed(edits, features, labels, None)
      count += 1
      acc = compiled.eval_step(acc, variables, features, labels,
                               *valid(rows, features))
      bar.update()
      if runner.after_run(context, lambda a=acc: {
          "batches": int(a["batches"]),
          "loss": float(a["loss_sum"] / a["batches"])}):
        break
  runner.end()
  result = {k: np.asarray(v)[()] for k, v in  # 0-d: numpy scalars, as TF
            jax.device_get(compiled.eval_result(acc)).items()}
  result["global_step"] = np.int64(global_step)
  logger.info("Saving dict for global step %d: %s", global_step,
              ", ".join(f"{k} = {v:.6g}" for k, v in sorted(result.items())))
  return result


def _first_rows(predictions: Any, rows: int | None) -> Any:
  """The real rows of a padded batch's predictions (all when ``rows`` None)."""
  if rows is None:
    return predictions
  return jax.tree.map(lambda a: a[:rows] if np.ndim(a) else a, predictions)


def _emit(predictions: Any, rows: int | None, features: Any, *,
          postprocess: Callable, single: bool, keys: tuple[str, ...] | None,
          check: Callable) -> Iterator[Any]:
  """One batch's predictions on the host: per example or whole; ``check``
  (``NanPredictions``) warns of NaN ones, naming ``features``' odd values."""
  host = _first_rows(_host(predictions), rows)
  check(host, features, _host)
  host = postprocess(host)
  if keys is not None:
    unknown = [k for k in keys if k not in host]
    if unknown:
      raise ValueError(f"predict_keys {unknown!r} are not among the "
                       f"predictions {sorted(host)!r}.")
    host = {k: host[k] for k in keys}
  if not single:
    yield host
    return
  if isinstance(host, Mapping):
    # Rows split per array at once (``list`` of an array: its rows as
    # views or numpy scalars, as ``v[i]`` gives them): ~1.7 against ~2.1-3.4
    # us per example for a classifier's seven outputs in isolation (within
    # the noise end to end: the next batch's step runs meanwhile). Sizes
    # that differ are an error, as in tf.estimator (indexing raised an
    # IndexError or dropped rows).
    keys = list(host)
    sizes = {k: len(v) if np.ndim(v) else None for k, v in host.items()}
    if len(set(sizes.values())) > 1 or None in sizes.values():
      raise ValueError(
          f"predict(yield_single_examples=True) splits every prediction on "
          f"its first (batch) axis, but their leading sizes differ: "
          f"{sizes!r} (None: a scalar). Give each prediction the batch "
          "dimension first, or pass yield_single_examples=False.")
    for row in zip(*(list(v) for v in host.values())):
      yield dict(zip(keys, row))
  else:
    yield from host


def _same(predictions: Any) -> Any:
  return predictions


def predict_batches(compiled: Any, variables: Any, items: Iterable, *,
                    predict_keys: Sequence[str] | str | None,
                    postprocess: Callable | None, single: bool,
                    hooks: Sequence[SessionRunHook], progress_bar: bool,
                    global_step: int) -> Iterator[Any]:
  """Yields predictions of ``items`` (``(1, (batch, valid))``), one batch late.

  Batch i+1 is dispatched before batch i is fetched, so the device works
  while the host hands out predictions. ``hooks`` run as in TF, then the
  spec's ``prediction_hooks``: the step is traced (or found traced) for the
  first batch before any hook runs, so they are known. ``postprocess``: the
  estimator's host step after the step (``HostStep.postprocess``, which
  makes predictions: ``predict_keys`` are then selected after it on the
  host, else by the step); None: the spec's ``host_postprocess``, if any.
  """
  if isinstance(predict_keys, str):
    predict_keys = [predict_keys]
  keys = None if predict_keys is None else tuple(predict_keys)
  host_keys, keys = (keys, None) if postprocess is not None else (keys, keys)
  items = iter(items)
  first = next(items)
  jax.eval_shape(compiled.predict_step, variables, first[1][0][0],
                 keys=keys)  # the trace the step reuses
  postprocess = postprocess or compiled.host_postprocess or _same
  runner = HookRunner([*hooks, *renewed(compiled.hooks[ModeKeys.PREDICT])],
                      ModeKeys.PREDICT, global_step)
  emit = functools.partial(_emit, postprocess=postprocess, single=single,
                           keys=host_keys, check=NanPredictions())
  with tqdm.tqdm(desc="predict", unit="batch", leave=False,
                 disable=not progress_bar) as bar:
    pending = None
    items = itertools.chain([first], items)
    while True:
      context = runner.before_run(global_step)
      item = next(items, None)  # (input ends after before_run, as in TF)
      if item is None:
        break
      _, ((features, labels), rows) = item
      edits = runner.feeds(context)
      if edits:
        features, _ = fed(edits, features, labels, None)
      ready, pending = pending, (
          compiled.predict_step(variables, features, keys=keys), rows,
          features)
      bar.update()
      if ready is not None:
        yield from emit(*ready)
      if runner.after_run(context, lambda p=pending: _first_rows(
          _host(p[0]), p[1])):
        break
    yield from emit(*pending)
  runner.end()
