"""A model's variables across calls: kept in memory, restored, or initialised.

``Session`` is one estimator's train state between its calls in a process.
``train_state`` gives a train call the state to start from: the one the
last call left on the device while it is still the latest checkpoint, else
the latest checkpoint restored, else a fresh (and warm-started) state, with
the first train step compiling in a thread meanwhile. ``variables`` gives
evaluate and predict a checkpoint's variables (the state in memory when it
is that checkpoint). Checkpoints are reached through the ``checkpoints``
handle the estimator passes in (``estlab.checkpoint.ModelDir``'s
``latest_step``, ``path``, ``checkpoint_path``, ``restore``,
``restore_variables``, ``read_metadata``), so nothing here imports Orbax.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any, Callable, Iterator, Sequence

import jax
import numpy as np

from estlab import summary
from estlab._engine.loops import TrainLoop, evaluate_batches, predict_batches
from estlab._engine.startup import compile_ahead, host_for_init
from estlab._engine.state import TrainState
from estlab._engine.step_counts import step_count
from estlab._engine.steps import CompiledSteps
from estlab.distribute._strategies import strategy_for
from estlab.hooks import renewed
from estlab.spec import ModeKeys

__all__ = ["Session", "check_eval_steps", "train_limit"]

logger = logging.getLogger("estlab")


def train_limit(steps: int | None, max_steps: int | None,
                latest_step: Callable[[], int | None]) -> int | None:
  """Steps a ``train(steps=, max_steps=)`` call may run: None (until the
  input or a hook ends), or 0 when ``max_steps`` is already reached.

  Raises:
    ValueError: both are given; InvalidStepCountError (a ValueError and a
      TypeError): one is not a positive int.
  """
  if steps is not None and max_steps is not None:
    raise ValueError(f"train(steps={steps!r}, max_steps={max_steps!r}): give "
                     "at most one (steps adds to the global step, max_steps "
                     "is absolute).")
  steps = step_count(steps, "train(steps=...)")
  max_steps = step_count(max_steps, "train(max_steps=...)")
  if max_steps is None:
    return steps
  start = latest_step() or 0
  if start >= max_steps:
    logger.info("Skipping training since max_steps=%d has already been "
                "reached (global step %d).", max_steps, start)
    return 0
  return max_steps - start


def check_eval_steps(steps: Any) -> int | None:
  """``evaluate(steps=)`` as an int, or None (``step_counts.step_count``)."""
  return step_count(steps, "evaluate(steps=...)")


class Session:
  """The train state of one estimator between calls.

  Args:
    steps: the estimator's ``CompiledSteps``.
    checkpoints: its checkpoint handle (see the module docstring).
    config: the estimator's RunConfig: its ``model_dir`` (train events),
      distribution strategies (``distribute.strategy_for``), progress bars
      and ``tf_random_seed``, the PRNG seed a fresh state is drawn with (None
      draws one at random, as TF, once per session).
    model_name: the estimator's class name, in each checkpoint's metadata.
    warm_start: ``params -> params`` applied to a fresh state, or None.
  """

  def __init__(self, steps: CompiledSteps, checkpoints: Any, *, config: Any,
               model_name: str = "Estimator",
               warm_start: Callable[[Any], Any] | None = None):
    self._steps = steps
    self._config = config
    self._model_name = model_name
    self._checkpoints = checkpoints
    seed = config.tf_random_seed
    self._seed = (int(np.random.SeedSequence().generate_state(1)[0] >> 1)
                  if seed is None else seed)
    self._warm_start = warm_start
    self._state: TrainState | None = None  # on the device, or None
    self._state_step: int | None = None    # the checkpointed step it equals
    self._restored = None  # (path, variables, step) for eval/predict
    self._checked: set = set()  # variable shapes evaluated from memory

  @property
  def steps(self) -> CompiledSteps:
    """The compiled steps this session runs."""
    return self._steps

  def strategy(self, mode: str) -> Any:
    """The distribution strategy of ``mode``, or None (one device)."""
    return strategy_for(self._config, mode)

  def pads_eval(self, pads: bool) -> bool:
    """Whether EVAL pads short batches, when the model_fn allows it
    (``pads``): padding marks a global batch's first rows real, so not
    across processes, each of which holds its own rows."""
    return pads and not getattr(self.strategy(ModeKeys.EVAL), "multiprocess",
                                False)

  def train_state(self, features: Any, labels: Any, per_loop: int,
                  strategy: Any) -> TrainState:
    """The state to train from, given the first batch's shapes.

    Without a strategy the train step (or loop of ``per_loop``, on params
    raveled as ``CompiledSteps.flat`` says) is traced, then compiles in a
    thread while the state is initialised or restored (both traces here, one
    after the other: side by side they share the GIL). The state is donated
    to the steps: ``keep`` the one they return.
    """
    if (self._state is not None and
        self._checkpoints.latest_step() == self._state_step):
      state, self._state = self._state, None
      return state
    steps = self._steps
    rng = jax.random.PRNGKey(self._seed)
    abstract = steps.abstract_state(rng, features, labels)
    ahead = None
    if strategy is None:
      raveled = steps.raveled_abstract(abstract)
      if per_loop == 1:
        lowered = steps.train_step.lower(raveled, features, labels)
      else:
        stacked = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct((per_loop,) + a.shape, a.dtype),
            (features, labels))
        lowered = steps.train_loop.lower(
            raveled, *stacked, jax.ShapeDtypeStruct((), np.int32))
      ahead = compile_ahead(lowered.compile)
    try:
      latest = self._checkpoints.latest_step()
      self._state = None
      if latest is None:
        state = steps.init(rng, features, labels,
                           on=host_for_init(abstract, strategy is not None))
        if self._warm_start is not None:
          state = state.replace(params=self._warm_start(state.params))
        return strategy.put_replicated(state) if strategy else state
      if strategy is not None:
        abstract = strategy.abstract_replicated(abstract)
      logger.info("Restoring parameters from %s",
                  self._checkpoints.path(latest))
      return self._checkpoints.restore(abstract, step=latest)
    finally:
      if ahead is not None:
        ahead.join()

  def keep(self, state: TrainState, step: int | None) -> None:
    """Keeps a train call's final ``state``, equal to checkpoint ``step``."""
    self._state, self._state_step = state, step

  def variables(self, mode: str, features: Any, labels: Any,
                checkpoint_path: str | None) -> tuple[dict, int]:
    """``({'params': ..., <collections>}, global_step)`` of a checkpoint (the
    latest for None), shaped for these sample features and labels."""
    path = self._checkpoints.checkpoint_path(checkpoint_path)
    strategy = self.strategy(mode)
    state = self._state
    if (state is not None and self._state_step is not None and
        path == os.path.abspath(self._checkpoints.path(self._state_step))):
      return _variables(state), self._state_step
    if self._restored is None or self._restored[0] != path:
      abstract = self._steps.abstract_variables(mode, features, labels)
      if strategy is not None:
        abstract = strategy.abstract_replicated(abstract)
      variables = self._checkpoints.restore_variables(abstract, path=path)
      step = int(self._checkpoints.read_metadata(path=path)["step"])
      self._restored = (path, variables, step)
    return self._restored[1], self._restored[2]

  @property
  def state(self) -> TrainState | None:
    """The state the last train call left on the device, or None."""
    return self._state

  def forget(self) -> None:
    """Drops what is held in memory: the next call restores a checkpoint."""
    self._state = self._state_step = self._restored = None

  def train(self, first: tuple, rest: Iterator, *, limit: int | None,
            hooks: Sequence[Any], listeners: Sequence[Any], pads: bool) -> None:
    """Trains on ``(n, (features, labels))`` items (``first``, then
    ``rest``): the state from ``train_state``, carried raveled where small
    (``CompiledSteps.ravel_params``), through a ``loops.TrainLoop``; the
    final state is kept.

    Args:
      limit: steps to train at most (None: until the input or a hook ends).
      hooks: the caller's hooks (the spec's are added in tf.estimator's order).
      listeners: ``CheckpointSaverListener``s.
      pads: whether eval steps will take padded batches (``VALID_ROWS_KEY``):
        they are compiled ahead for the train batch's shapes once the first
        step ran (on one device).

    Events go to ``config.model_dir`` (by the chief); pending checkpoint
    saves are waited for at the end, also after an error.
    """
    writer = summary.chief_writer(self._config.model_dir)
    try:
      self._train(first, rest, limit, hooks, listeners, pads, writer)
    finally:
      writer.close()
      self._checkpoints.wait_until_finished()  # also after an error: keep saves

  def _train(self, first, rest, limit, hooks, listeners, pads, writer):
    steps, config = self._steps, self._config
    strategy = self.strategy(ModeKeys.TRAIN)
    compile_inference = self.strategy(ModeKeys.EVAL) is None
    per_loop = config.steps_per_loop
    features, labels = first[1]
    one = features, labels
    if per_loop > 1:  # a loop's padded stack of batches
      one = jax.tree.map(lambda a: a[0], (features, labels))
    state = self.train_state(*one, per_loop, strategy)
    on_disk = self._checkpoints.latest_step()  # unless initialised: its step
    variables = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
        _variables(state))
    if strategy is None:  # (sharded params stay trees)
      state = steps.ravel_params(state)  # small params: one vector

    def save(s):
      self._checkpoints.save(steps.unravel_params(s),
                             metadata={"model": self._model_name})

    def after_first_step():
      if compile_inference:
        steps.compile_inference_ahead(variables, one[0], valid=pads)

    loop = TrainLoop(
        step_fns=(steps.train_step, steps.train_loop), save=save,
        writer=writer, config=config, model_dir=config.model_dir,
        hooks=[*renewed(steps.chief_hooks), *hooks,
               *renewed(steps.hooks[ModeKeys.TRAIN])],
        after_first_step=after_first_step, listeners=listeners,
        wait_saved=self._checkpoints.wait_until_finished,
        multiprocess=getattr(strategy, "multiprocess", False),
        unravel=steps.unravel_params,
        variables_of=lambda s: _variables(steps.unravel_params(s)),
        defer_start_save=(config.async_checkpoints and
                          "orbax.checkpoint" not in sys.modules))

    state, saved = loop.run(state, _chain(first, rest), limit, saved=on_disk)
    self.keep(steps.unravel_params(state), saved)
    steps.join_compiles_ahead()  # never overlaps a later train call

  def evaluate(self, first: tuple, rest: Iterator, *, path: str | None,
               events_dir: str,
               in_memory: tuple[dict, int] | None = None,
               **kwargs: Any) -> dict:
    """``loops.evaluate_batches`` of checkpoint ``path`` (None: the latest;
    its variables restored for the first batch's shapes) over ``first``, then
    ``rest``; the scalars are written as events to ``events_dir`` (by the chief).
    ``in_memory``: ``(variables, global_step)`` to evaluate instead of a
    checkpoint (a training loop's, ``HookSession.variables``), checked
    against this model's variables."""
    self._steps.join_compiles_ahead()
    (features, labels), _ = first[1]
    strategy = self.strategy(ModeKeys.EVAL)
    if in_memory is None:
      variables, global_step = self.variables(ModeKeys.EVAL, features, labels,
                                              path)
    else:
      variables, global_step = in_memory
      self._check_variables(variables, features, labels)
      if strategy is not None:
        variables = strategy.put_replicated(variables)
    result = evaluate_batches(self._steps, variables, _chain(first, rest),
                              global_step=global_step,
                              progress_bar=self._config.progress_bar, **kwargs)
    with summary.chief_writer(events_dir) as writer:
      writer.write_scalars(global_step, {k: float(v) for k, v in result.items()
                                         if k != "global_step" and np.ndim(v) == 0})
    return result

  def _check_variables(self, variables: dict, features: Any,
                       labels: Any) -> None:
    """Raises a ValueError unless ``variables`` are shaped as this model's
    (checked once per layout: a trace of the model's init)."""
    given = _shapes(variables)
    key = tuple(given.items())
    if key in self._checked:
      return
    want = _shapes(self._steps.abstract_variables(ModeKeys.EVAL, features,
                                                  labels))
    if given != want:
      raise ValueError(
          f"The variables to evaluate {given!r} are not this model's "
          f"{want!r}: an InMemoryEvaluatorHook evaluates the estimator it was "
          "made with; pass it to that estimator's train(hooks=...).")
    self._checked.add(key)

  def predict(self, first: tuple, rest: Iterator, *, path: str | None,
              **kwargs: Any) -> Iterator[Any]:
    """``loops.predict_batches`` of checkpoint ``path``, as ``evaluate``."""
    self._steps.join_compiles_ahead()
    (features, _), _ = first[1]
    variables, global_step = self.variables(ModeKeys.PREDICT, features, None,
                                            path)
    yield from predict_batches(self._steps, variables, _chain(first, rest),
                               global_step=global_step,
                               progress_bar=self._config.progress_bar, **kwargs)


def _variables(state: TrainState) -> dict:
  """``{'params': ..., <collections>}`` of a train state (what eval reads)."""
  return {"params": state.params, **state.model_state}


def _shapes(tree: Any) -> dict[str, str]:
  """``{'params/dense/kernel': 'float32[3, 1]', ...}`` of a variables tree."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {"/".join(str(getattr(k, "key", k)) for k in path):
          f"{np.dtype(leaf.dtype).name}{list(np.shape(leaf))}"
          for path, leaf in leaves}


def _chain(first: Any, rest: Iterator) -> Iterator:
  yield first
  yield from rest
