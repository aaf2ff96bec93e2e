"""Compiled steps: a model_fn becomes jitted init / train / eval / predict.

Every function here is pure over pytrees (the model_fn applied through
``model_fn.ModelFnModule``) and compiled once per input shape; ``traces``
counts how often each was traced (one trace per compilation), so tests can
assert it. Compile options come from ``xla_options``; small params ride the
steps as one vector (``flat``).
"""
from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from estlab._engine import xla_options
from estlab._engine.flat import FlatParams
from estlab._engine.model_fn import ModelFnModule
from estlab._engine.shape_log import ShapeLog
from estlab._engine.startup import compile_ahead
from estlab._engine.state import TrainState
from estlab.data._packing import Packed, pack
from estlab.spec import HOOK_OUTPUTS, EstimatorSpec, ModeKeys

__all__ = ["CompiledSteps"]


def _learning_rate(opt_state: Any) -> jax.Array | None:
  """The learning rate, when the optimizer exposes it (inject_hyperparams)."""
  for node in jax.tree_util.tree_leaves(
      opt_state, is_leaf=lambda x: hasattr(x, "hyperparams")):
    hyperparams = getattr(node, "hyperparams", None)
    if isinstance(hyperparams, Mapping) and "learning_rate" in hyperparams:
      return jnp.asarray(hyperparams["learning_rate"], jnp.float32)
  return None


def _select(ok: jax.Array, new: Any, old: Any) -> Any:
  return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


_STEPS = ("train_step", "train_loop", "eval_step", "predict_step")


class CompiledSteps:
  """The jitted functions of one Estimator, built once and reused.

  Attributes:
    traces: Counter of traces per function name.
    hooks: mode -> hooks the model_fn returned when last traced (TRAIN:
      its ``training_hooks``; ``init``'s trace records them too, so they are
      known before the first train step runs).
    chief_hooks: the TRAIN spec's ``training_chief_hooks`` on the chief
      (process 0; every single-process run), else ().
    export_outputs: export_outputs the PREDICT model_fn returned when traced.
    host_postprocess: that spec's ``host_postprocess`` (or None).
    shape_log: the input shapes each step was traced for (``ShapeLog``:
      a warning past a few).
    compiler_options: the XLA options the steps compile with (None until
      the params' shapes are known; ``xla_options.dot_options``).
    flat: how training carries small params as one vector (``flat``), or
      None (set with the train state's shapes).
  """

  def __init__(self, call: Callable[..., EstimatorSpec]):
    self.traces = collections.Counter()
    self.shape_log = ShapeLog()
    self.hooks: dict[str, tuple] = {m: () for m in ModeKeys.ALL}
    self.chief_hooks: tuple = ()
    self.export_outputs = None
    self.host_postprocess = None
    self._ahead: list[threading.Thread] = []  # compiling eval/predict ahead
    self._ahead_done: set = set()             # signatures compiled ahead
    self._module = {m: ModelFnModule(call=call, mode=m) for m in ModeKeys.ALL}
    self._init_jit = jax.jit(self._init)  # compiled by ``init``
    xla_options.probe_ahead()  # while the first batch is prepared
    self.compiler_options: dict[str, Any] | None = None  # by ``_use_options``
    self.flat: FlatParams | None = None  # by ``abstract_state``
    self._flat_jit: tuple[Callable, Callable] | None = None
    self._jit_steps({})

  def module(self, mode: str) -> ModelFnModule:
    """The Flax module running the model_fn in ``mode`` (export applies it)."""
    return self._module[mode]

  def _jit_steps(self, options: dict[str, Any]) -> None:
    kwargs = xla_options.jit_kwargs(options)
    self.train_step = jax.jit(self._train_step, donate_argnums=0, **kwargs)
    self.train_loop = jax.jit(self._train_loop, donate_argnums=0, **kwargs)
    self.eval_step = jax.jit(self._eval_step, donate_argnums=0, **kwargs)
    self.eval_result = jax.jit(self._eval_result)
    self.empty_eval_accumulator = jax.jit(self._empty_eval_accumulator)
    self.predict_step = jax.jit(self._predict_step, static_argnames="keys",
                                **kwargs)

  def _use_options(self, params: Any) -> None:
    """Sets the steps' compile options from the params' shapes, once, before
    any step is traced (``xla_options.dot_options``)."""
    if self.compiler_options is not None:
      return
    if any(self.traces[name] for name in _STEPS):  # keep their compilations
      self.compiler_options = {}
      return
    self.compiler_options = xla_options.dot_options(
        params, jax.default_backend())
    if self.compiler_options:
      self._jit_steps(self.compiler_options)

  # -- initialisation ---------------------------------------------------------

  def init(self, rng, features, labels, *,
           on: jax.Device | None = None) -> TrainState:
    """The initial state: ``_init`` traced once, compiled for running once.

    With ``on`` (a device), it runs there and the state is copied to the
    default device (``init_on_host``); JAX traces again for the committed
    arguments (~0.1 s, against seconds of an accelerator's compile).
    """
    args = (rng, features, labels)
    if on is not None:
      args = jax.device_put(args, on)
    compiled = self._init_jit.lower(*args).compile(
        xla_options.run_once_options())
    state = compiled(*args)
    if on is None:
      return state
    # Through numpy: the copy is then uncommitted, as a default-device init
    # is; a state committed to a device compiles the steps (compiled ahead
    # for uncommitted arguments) once more.
    return jax.device_put(jax.device_get(state))

  def abstract_state(self, rng, features, labels) -> TrainState:
    """``init``'s shapes; its trace is the one ``init`` compiles."""
    state = jax.eval_shape(self._init_jit, rng, features, labels)
    self._use_options(state.params)
    if self.flat is None:
      self.flat = FlatParams.of(state.params)
    return state

  def _init(self, rng, features, labels) -> TrainState:
    self.traces["init"] += 1
    init_rng, dropout_rng, rng = jax.random.split(rng, 3)
    spec, variables = self._module[ModeKeys.TRAIN].init_with_output(
        {"params": init_rng, "dropout": dropout_rng}, features, labels)
    self._note_train_hooks(spec)
    variables = dict(variables)
    params = variables.pop("params", {})
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      model_state=variables,
                      opt_state=spec.train_op.init(params), rng=rng,
                      bad_step=jnp.full((), -1, jnp.int32))

  def _note_train_hooks(self, spec: EstimatorSpec) -> dict:
    """Records the TRAIN spec's hooks; returns the arrays they asked for by
    value (``LoggingTensorHook({'kernel': kernel})`` built in the model_fn)
    as extra step outputs, named the same in every trace (by position)."""
    self.hooks[ModeKeys.TRAIN] = tuple(spec.training_hooks)
    self.chief_hooks = (tuple(spec.training_chief_hooks)
                        if jax.process_index() == 0 else ())
    outputs = {}
    for kind, hooks in (("chief", spec.training_chief_hooks),
                        ("train", spec.training_hooks)):
      for i, hook in enumerate(hooks):
        take = getattr(hook, "take_traced_tensors", None)
        if take is not None:
          outputs.update(take(f"{HOOK_OUTPUTS}{kind}{i}/"))
    return outputs

  def abstract_variables(self, mode: str, features, labels) -> dict:
    """Shapes of ``{'params': ..., <collections>}`` as the model_fn makes them."""
    def init(features, labels):
      rngs = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
      return dict(self._module[mode].init(rngs, features, labels))
    variables = jax.eval_shape(init, features, labels)
    self._use_options(variables.get("params", {}))
    return variables

  # -- training ---------------------------------------------------------------

  def _train_body(self, state: TrainState, features, labels,
                  flat: FlatParams | None = None):
    """One step. With ``flat``, ``state.params`` is its vector (``flat``)."""
    self.shape_log.note("train", (features, labels))
    as_tree = flat.unravel if flat is not None else (lambda p: p)
    dropout_rng = jax.random.fold_in(state.rng, state.step)
    mutable = list(state.model_state)
    static = {}

    def loss_fn(params):
      spec, new_model_state = self._module[ModeKeys.TRAIN].apply(
          {"params": as_tree(params), **state.model_state}, features, labels,
          rngs={"dropout": dropout_rng}, mutable=mutable)
      static["train_op"] = spec.train_op
      hook_outputs = self._note_train_hooks(spec)
      return spec.loss, (dict(new_model_state),
                         {**(spec.summaries or {}), **hook_outputs})

    (loss, (model_state, summaries)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    updates, opt_state = static["train_op"].update(
        as_tree(grads), state.opt_state, as_tree(state.params))
    if flat is not None:
      updates = flat.ravel(updates)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss)
    ok = finite & (state.bad_step < 0)
    new_state = state.replace(
        step=state.step + ok.astype(jnp.int32),
        params=_select(ok, params, state.params),
        opt_state=_select(ok, opt_state, state.opt_state),
        model_state=_select(ok, model_state, state.model_state),
        bad_step=jnp.where(finite | (state.bad_step >= 0), state.bad_step,
                           state.step + 1))
    outputs = {"loss": loss, "global_step": new_state.step,
               "bad_step": new_state.bad_step}
    lr = _learning_rate(opt_state)
    if lr is not None:
      outputs["learning_rate"] = lr
    outputs.update({k: jnp.reshape(v, ()) if jnp.size(v) == 1 else jnp.asarray(v)
                    for k, v in summaries.items()})
    return new_state, outputs

  def _carried_flat(self, state) -> FlatParams | None:
    """The layout when ``state`` carries its params raveled, else None."""
    flat = self.flat
    return flat if flat is not None and flat.is_raveled(state.params) else None

  def _train_step(self, state, features, labels):
    self.traces["train_step"] += 1
    return self._train_body(state, features, labels,
                            self._carried_flat(state))

  def _train_loop(self, state, features, labels, steps):
    """Up to ``steps_per_loop`` steps in one call, as TPUEstimator's loop.

    ``features`` and ``labels`` carry a leading loop axis of
    ``steps_per_loop`` batches; the first ``steps`` (an int32 the caller
    passes, traced) are trained on and the rest, padding, is never read. So
    one program serves full loops and partial ones (the tail of a call that
    is no multiple of ``steps_per_loop``, a finite input's end), where a
    static trip count compiled one program per length. Returns the state
    and the last step's outputs (all the host reads of a loop). Params
    arriving as a tree ride the loop raveled when small (``FlatParams.of``):
    one copy each way per loop.
    """
    self.traces["train_loop"] += 1
    flat = self._carried_flat(state)
    carried = flat is not None
    if not carried:
      flat = FlatParams.of(state.params)
      if flat is not None:
        state = state.replace(params=flat.ravel(state.params))

    def step(i, carry):
      batch = jax.tree.map(
          lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False),
          (features, labels))
      return self._train_body(carry[0], *batch, flat)
    # The outputs' structure (scalars the model_fn chose, as summaries) comes
    # from one abstract step: the loop carries the last step's outputs.
    _, shapes = jax.eval_shape(step, 0, (state, None))
    outputs = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    state, outputs = jax.lax.fori_loop(0, steps, step, (state, outputs))
    if flat is not None and not carried:
      state = state.replace(params=flat.unravel(state.params))
    return state, outputs

  # -- params as one vector between steps (``flat``) -------------------------

  def ravel_params(self, state: TrainState) -> TrainState:
    """``state`` with its params raveled where ``flat`` says so (else as is).

    The steps then carry them so from call to call; ``unravel_params``
    gives the tree back (checkpoints, the end of ``train``).
    """
    if self.flat is None or self.flat.is_raveled(state.params):
      return state
    return state.replace(params=self._flat_jits()[0](state.params))

  def unravel_params(self, state: TrainState) -> TrainState:
    """``state`` with its params as the tree the model_fn made."""
    if self._carried_flat(state) is None:
      return state
    return state.replace(params=self._flat_jits()[1](state.params))

  def _flat_jits(self) -> tuple[Callable, Callable]:
    """``flat``'s ravel and unravel, jitted to compile fast (run once per
    train call or checkpoint: 30-50 ms each on 2 cores, 160 ms otherwise).

    They compile on first use, not ahead: traced and lowered in a background
    thread they held the GIL against init's lowering, and the first step of
    a DNNLinearCombinedClassifier came 0.2-0.5 s later (2.82-2.88 s against
    2.32-2.66 s).
    """
    if self._flat_jit is None:
      kwargs = xla_options.jit_kwargs(xla_options.run_once_options())
      self._flat_jit = (jax.jit(self.flat.ravel, **kwargs),
                        jax.jit(self.flat.unravel, **kwargs))
    return self._flat_jit

  def raveled_abstract(self, abstract: TrainState) -> TrainState:
    """``ravel_params`` on shapes: what the steps are compiled ahead for."""
    if self.flat is None:
      return abstract
    return abstract.replace(params=self.flat.abstract())

  # -- evaluation -------------------------------------------------------------

  def _eval_batch(self, variables, features, labels, valid=None):
    self.shape_log.note("eval", (features, labels))
    spec = self._module[ModeKeys.EVAL].apply(variables, features, labels,
                                             valid)
    self.hooks[ModeKeys.EVAL] = spec.evaluation_hooks
    return {"loss": spec.loss, "metrics": dict(spec.eval_metric_ops or {})}

  def _empty_eval_accumulator(self, variables, features, labels,
                              valid=None) -> dict:
    """Zeros shaped like one batch's metric states: the empty accumulator.

    Jitted as ``empty_eval_accumulator``: an ``eval_shape`` here on every
    ``evaluate`` traced the model_fn each time (40-90 ms on the census
    Linear model, ~half of evaluating 20k rows)."""
    shapes = jax.eval_shape(self._eval_batch, variables, features, labels,
                            valid)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes["metrics"])
    return {"loss_sum": jnp.zeros((), jnp.float32),
            "batches": jnp.zeros((), jnp.int32), "metrics": zeros}

  def _eval_step(self, acc, variables, features, labels, valid=None):
    """Merges one batch into ``acc``; ``valid`` counts a padded batch's rows."""
    self.traces["eval_step"] += 1
    out = self._eval_batch(variables, features, labels, valid)
    merged = {name: acc["metrics"][name].merge(metric)
              for name, metric in out["metrics"].items()}
    return {"loss_sum": acc["loss_sum"] + out["loss"].astype(jnp.float32),
            "batches": acc["batches"] + 1, "metrics": merged}

  def _eval_result(self, acc):
    self.traces["eval_result"] += 1
    result = {name: m.compute() for name, m in acc["metrics"].items()}
    result["loss"] = acc["loss_sum"] / jnp.maximum(acc["batches"], 1)
    return result

  def compile_inference_ahead(self, variables: Any, features: Any,
                              valid: bool) -> None:
    """Compiles eval and predict steps in low-priority background threads.

    Called once a train call's first step runs, for the train batch's shapes
    (once per layout; single device only: shardings would differ), so they
    compile while training goes on. ``join_compiles_ahead`` waits for them:
    the train call before it returns (so nothing overlaps a later call),
    evaluate and predict before they start, which then compile nothing.

    Args:
      variables: shapes of ``{'params': ..., <collections>}``.
      features: the first train batch; only a ``Packed`` one is used: eval
        batches of the same size have its layout, predict batches have it
        without the labels.
      valid: whether eval steps take the count of real rows (padding).
    """
    if not isinstance(features, Packed):
      return
    signature = (features.layout, features.buffers[0].shape[0])
    if signature in self._ahead_done:
      return
    self._ahead_done.add(signature)
    host_features, _ = jax.device_get(features).unpack()
    predict_features = pack((host_features, None))
    abstract = lambda tree: jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)
    variables, features = abstract(variables), abstract(features)
    valid_args = (jax.ShapeDtypeStruct((), jnp.int32),) if valid else ()

    def eval_steps():
      empty = (variables, features, None, *valid_args)
      self.empty_eval_accumulator.lower(*empty).compile()
      acc = jax.eval_shape(self.empty_eval_accumulator, *empty)
      args = (acc, variables, features, None, *valid_args)
      self.eval_step.lower(*args).compile()
      self.eval_result.lower(jax.eval_shape(self.eval_step, *args)).compile()
    self._ahead.append(compile_ahead(eval_steps, low_priority=True))
    if predict_features is not None:
      self._ahead.append(compile_ahead(
          self.predict_step, variables, abstract(predict_features), keys=None,
          low_priority=True))

  def join_compiles_ahead(self) -> None:
    """Waits for compilations started ahead, so none runs twice."""
    while self._ahead:
      self._ahead.pop().join()

  # -- prediction -------------------------------------------------------------

  def _predict_step(self, variables, features, keys=None):
    self.traces["predict_step"] += 1
    self.shape_log.note("predict", (features, None))
    spec = self._module[ModeKeys.PREDICT].apply(variables, features, None)
    self.hooks[ModeKeys.PREDICT] = spec.prediction_hooks
    self.export_outputs = spec.export_outputs
    self.host_postprocess = spec.host_postprocess
    predictions = spec.predictions
    if keys is not None and spec.host_postprocess is None:
      # (with a host_postprocess, keys are picked on the host after it)
      if not isinstance(predictions, Mapping):
        raise ValueError(f"predict_keys={list(keys)!r} given, but the model_fn "
                         "returns a single predictions array, not a dict.")
      unknown = [k for k in keys if k not in predictions]
      if unknown:
        raise ValueError(f"predict_keys {unknown!r} are not among the "
                         f"predictions {sorted(predictions)!r}.")
      predictions = {k: predictions[k] for k in keys}
    return predictions
