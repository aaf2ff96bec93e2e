"""The training loop: dispatch compiled steps, summaries, logs, checkpoints.

Steps are dispatched asynchronously; the host reads each step's outputs one
step late (for the NaN check), so the device never waits on Python. Outputs
are fetched in full only when a summary, log line or hook needs them.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np
from tqdm import auto as tqdm

from estlab.hooks import HookRunner, PeriodicTrigger, SessionRunHook

__all__ = ["NanLossDuringTrainingError", "TrainLoop"]

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


def _last(tree: Any, n: int) -> Any:
  """Outputs of the last step: loops return them stacked on axis 0."""
  return tree if n == 1 else jax.tree.map(lambda a: a[-1], tree)


class TrainLoop:
  """Runs compiled train steps over device batches until the input or limit ends.

  Args:
    step_fns: ``(train_step, train_loop)`` compiled functions.
    save: ``save(state) -> None`` writes a checkpoint.
    writer: summary writer for the train events.
    config: the RunConfig (cadences, progress bar).
    model_dir: for messages.
    hooks: user hooks; ``spec_hooks()`` returns the model_fn's hooks once the
      step was traced.
  """

  def __init__(self, *, step_fns: tuple[Callable, Callable],
               save: Callable[[Any], None], writer: Any, config: Any,
               model_dir: str, hooks: Sequence[SessionRunHook],
               spec_hooks: Callable[[], Sequence[SessionRunHook]]):
    self._train_step, self._train_loop = step_fns
    self._save = save
    self._writer = writer
    self._config = config
    self._model_dir = model_dir
    self._hooks = list(hooks)
    self._spec_hooks = spec_hooks

  def _check(self, outputs: Any, n: int) -> None:
    bad = int(jax.device_get(_last(outputs["bad_step"], n)))
    if bad >= 0:
      raise NanLossDuringTrainingError(bad, self._model_dir)

  def run(self, state: Any, batches: Any, limit: int | None) -> Any:
    """Trains until ``batches`` or ``limit`` (steps) ends or a hook stops.

    Returns:
      ``(state, saved_step)``: the final state and the step last saved.
    """
    config = self._config
    start = int(jax.device_get(state.step))
    step, saved = start, None
    now = time.monotonic()
    summary_due = PeriodicTrigger(config.save_summary_steps, start_step=start)
    log_due = PeriodicTrigger(config.log_step_count_steps, start_step=start)
    ckpt_due = PeriodicTrigger(config.save_checkpoints_steps,
                               config.save_checkpoints_secs, start_step=start)
    rate_from = (start, now)
    runner = HookRunner(self._hooks, "train")
    bar = tqdm.tqdm(total=limit, desc="train", unit="step",
                    disable=not config.progress_bar)
    previous = None
    try:
      for n, (features, labels) in batches:
        context = runner.before_run(step)
        fn = self._train_step if n == 1 else self._train_loop
        state, outputs = fn(state, features, labels)
        if previous is None:
          runner.add(self._spec_hooks())
        if previous is not None:
          self._check(*previous)
        previous = (outputs, n)
        step += n
        context.global_step = step
        bar.update(n)
        now = time.monotonic()
        want_summary, want_log = summary_due(step, now), log_due(step, now)
        if want_summary or want_log:
          self._check(outputs, n)
          scalars = {k: float(v) for k, v in jax.device_get(
              _last(outputs, n)).items() if k not in ("bad_step", "global_step")}
          rate = (step - rate_from[0]) / max(now - rate_from[1], 1e-9)
          rate_from = (step, now)
          scalars["global_step/sec"] = rate
          if want_summary:
            self._writer.write_scalars(step, scalars)
          if want_log:
            logger.info("loss = %.6g, step = %d (%.1f global_step/sec)",
                        scalars["loss"], step, rate)
            bar.set_postfix(loss=f"{scalars['loss']:.4g}", refresh=False)
        stop = runner.after_run(context, lambda o=outputs, n=n: {
            k: np.asarray(v) for k, v in jax.device_get(_last(o, n)).items()})
        if ckpt_due(step, now):
          self._check(outputs, n)
          self._save(state)
          saved = step
        if stop:
          break
      if previous is not None:
        self._check(*previous)
    except KeyboardInterrupt:
      # A notebook user pressed stop: keep the work done so far.
      if previous is not None and step != saved:
        self._check(*previous)
        self._save(state)
      raise
    finally:
      bar.close()
      self._writer.flush()
    if step != saved and step != start:
      self._save(state)
      saved = step
    runner.end()
    return state, saved
