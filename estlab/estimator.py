"""Estimator: tf.estimator's train / evaluate / predict on compiled JAX steps.

Orchestration only: the input path is ``estlab.data`` (``data._pipeline.input_batches``),
the compiled steps, loops and train state are ``estlab._engine``, the
checkpoints ``estlab.checkpoint`` and the events ``estlab.summary``.
Parameters and optimizer state stay on the device between steps and between
calls in the same process; a new process resumes from the latest checkpoint
in ``model_dir``.

Example:
  >>> import flax.linen as nn, jax.numpy as jnp, numpy as np, optax, estlab
  >>> def model_fn(features, labels, mode):
  ...   y = nn.Dense(1)(features['x'])[:, 0]
  ...   loss = jnp.mean((y - labels) ** 2)
  ...   return estlab.EstimatorSpec(mode, predictions={'y': y}, loss=loss,
  ...                               train_op=optax.sgd(0.1))
  >>> x = np.linspace(0, 1, 64, dtype=np.float32)[:, None]
  >>> est = estlab.Estimator(model_fn, config=estlab.RunConfig(progress_bar=False))
  >>> est = est.train(lambda: [({'x': x}, 2 * x[:, 0])] * 20)
  >>> est.evaluate(lambda: [({'x': x}, 2 * x[:, 0])])['global_step']
  20
"""
from __future__ import annotations

import copy
import logging
import os
from typing import Any, Callable, Iterator, Mapping, Sequence

import jax
import numpy as np

from estlab import summary
from estlab._engine.loops import NanLossDuringTrainingError
from estlab._engine.session import Session, train_limit
from estlab._engine.steps import CompiledSteps
from estlab.checkpoint._model_dir import ModelDir
from estlab.data._device import Prefetcher
from estlab.data._input_fn import first_batch
from estlab.data._pipeline import input_batches
from estlab.data._tables import EncodedTables
from estlab.distribute._cluster import check_cluster_strategy
from estlab.distribute._strategies import strategy_for
from estlab.hooks import SessionRunHook
from estlab.run_config import RunConfig, resolve_model_dir
from estlab.spec import ModeKeys, call_model_fn, model_fn_args
from estlab.warm_starting import WarmStartSettings, warm_start

__all__ = ["Estimator", "NanLossDuringTrainingError"]

logger = logging.getLogger("estlab")


class Estimator:
  """Trains, evaluates and predicts with a ``model_fn``, as tf.estimator.

  Args:
    model_fn: ``model_fn(features, labels, mode, params, config)`` (any subset
      of these argument names) returning an ``estlab.EstimatorSpec``. It runs
      inside a Flax module, so linen modules are called directly in it.
    model_dir: where checkpoints and events go; None uses ``config.model_dir``
      or else a fresh temporary directory.
    config: an ``estlab.RunConfig``.
    params: hyperparameters passed to the model_fn's ``params`` argument.
    warm_start_from: a checkpoint path, a ``model_dir`` or a
      ``WarmStartSettings`` to initialise parameters from, when ``model_dir``
      holds no checkpoint yet.
  """

  def __init__(self, model_fn: Callable, model_dir: str | os.PathLike | None = None,
               config: RunConfig | None = None, params: Mapping | None = None,
               warm_start_from: Any = None):
    self._model_fn = model_fn
    self._model_fn_args = model_fn_args(model_fn)
    if params and "params" not in self._model_fn_args:
      raise ValueError(f"Estimator(params={params!r}) was given, but model_fn "
                       "takes no `params` argument; add one or drop params.")
    self._config = resolve_model_dir(model_dir, config)
    self._model_dir = self._config.model_dir
    self._params = copy.deepcopy(dict(params or {}))
    self._warm_start = (None if warm_start_from is None else
                        WarmStartSettings.from_value(warm_start_from))
    seed = self._config.tf_random_seed
    self._seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1) if (
        seed is None) else seed
    self._fresh()

  def _fresh(self) -> None:
    """Nothing compiled, restored or encoded yet (made on first use)."""
    self._steps: CompiledSteps | None = None
    self._session: Session | None = None  # the train state between calls
    self._dir = ModelDir(self._model_dir,
                         max_to_keep=self._config.keep_checkpoint_max,
                         async_save=self._config.async_checkpoints)
    self._tables = EncodedTables()  # (array table, mode) -> its encoding

  # -- tf.estimator's read-only properties ------------------------------------

  @property
  def model_dir(self) -> str:
    return self._model_dir

  @property
  def config(self) -> RunConfig:
    return self._config

  @property
  def params(self) -> dict:
    return copy.deepcopy(self._params)

  @property
  def model_fn(self) -> Callable:
    return self._model_fn

  def _with_model_fn(self, model_fn: Callable) -> "Estimator":
    """This estimator (class, model_dir, config, host transforms) running
    ``model_fn``; nothing compiled or held in memory is shared."""
    new = copy.copy(self)
    new._model_fn, new._model_fn_args = model_fn, model_fn_args(model_fn)
    new._fresh()
    return new

  # -- hooks for subclasses (premade estimators) ------------------------------

  # Whether the model_fn weighs rows by ``spec.VALID_ROWS_KEY`` (the heads
  # do): then a short last EVAL batch is padded instead of compiled anew.
  _pads_eval_batches = False

  # Rows an input_fn's batches are host-transformed at a time (read ahead
  # and joined, ``data._encode.prepare_batches``); 0: batch by batch. Nothing to
  # amortise for the identity transform here.
  _host_chunk_rows = 0

  def _host_transform(self, features: dict, labels: Any, mode: str
                      ) -> tuple[dict, Any]:
    """Host-side encoding before the compiled step (feature columns, vocab).

    Row by row: transforming batches joined and splitting the result must
    equal transforming each (array input_fns transform their whole table
    once; ``_host_chunk_rows`` joins batches).
    """
    del mode
    return features, labels

  def _postprocess_predictions(self, predictions: Any) -> Any:
    """Host-side work on a batch of predictions (e.g. class ids -> names):
    the PREDICT spec's ``host_postprocess`` (a head's class names)."""
    postprocess = self._compiled().host_postprocess
    return predictions if postprocess is None else postprocess(predictions)

  def _has_postprocess(self) -> bool:
    return (type(self)._postprocess_predictions
            is not Estimator._postprocess_predictions)

  # -- plumbing ---------------------------------------------------------------

  def _compiled(self) -> CompiledSteps:
    """The compiled steps and the ``Session`` around them, made on first use."""
    if self._steps is None:
      args, params, config = self._model_fn_args, self._params, self._config

      def call(features, labels, mode):
        return call_model_fn(self._model_fn, args, features, labels, mode,
                             params, config)
      self._steps = CompiledSteps(call)
      warm = self._warm_start
      self._session = Session(
          self._steps, self._dir, self._seed,
          warm_start=None if warm is None else lambda p: warm_start(p, warm))
    return self._steps

  def _batches(self, input_fn: Callable, mode: str, *, limit: int | None,
               steps_per_loop: int = 1, pad: bool = False) -> Prefetcher:
    """Device batches of ``input_fn`` (``data._pipeline.input_batches``); an array
    input_fn's table is encoded once per Estimator, table and mode."""
    return input_batches(
        input_fn, mode, strategy=strategy_for(self._config, mode), params=self.params,
        config=self._config, host_transform=self._host_transform,
        takes_labels="labels" in self._model_fn_args, tables=self._tables,
        limit=limit, steps_per_loop=steps_per_loop, pad=pad,
        chunk_rows=self._host_chunk_rows)

  def _run(self) -> Session:
    """The session running the compiled steps (``_engine.session``)."""
    self._compiled()
    return self._session

  def _variables(self, mode: str, features: Any, labels: Any,
                 checkpoint_path: str | None) -> tuple[dict, int]:
    """``({'params': ..., <collections>}, global_step)`` of a checkpoint."""
    return self._run().variables(mode, features, labels,
                                   self._dir.checkpoint_path(checkpoint_path),
                                   strategy_for(self._config, mode))

  # -- train / evaluate / predict ---------------------------------------------

  def train(self, input_fn: Callable, hooks: Sequence[SessionRunHook] | None = None,
            steps: int | None = None, max_steps: int | None = None,
            saving_listeners: Any = None) -> "Estimator":
    """Trains on ``input_fn``'s batches; returns ``self``.

    Checkpoints, as tf.estimator's: with a cadence (``save_checkpoints_steps``
    or ``_secs``, 600 s by default) one of the starting state (step 0 for a
    fresh ``model_dir``; not written again when resuming from it), one at
    each due step and one at the end; without a cadence only the end (TF
    wrote none).

    Args:
      input_fn: returns an iterable of ``(features, labels)`` batches (a
        Dataset, a list, a generator, ``numpy_input_fn``'s iterator), or one
        batch, trained on at every step (as tf.estimator); with neither
        ``steps`` nor ``max_steps`` that trains until a hook stops it. What
        counts as one batch: ``data._input_fn.call_input_fn``. ``features`` is a
        dict of arrays or one array (given to the model_fn as it is).
      hooks: ``SessionRunHook`` instances.
      steps: train this many more steps (or until the input ends).
      max_steps: train until the global step reaches this; a no-op when it
        already has. Giving both ``steps`` and ``max_steps`` is an error.
      saving_listeners: ``estlab.hooks.CheckpointSaverListener``s, called
        around each checkpoint (``train_and_evaluate`` evaluates so).
    """
    limit = train_limit(steps, max_steps, self._dir.latest_step)
    check_cluster_strategy(self._config)  # TF_CONFIG: train together or not
    if limit == 0:  # max_steps reached
      return self
    session = self._run()
    with self._batches(input_fn, ModeKeys.TRAIN, limit=limit,
                       steps_per_loop=self._config.steps_per_loop) as batches:
      first = first_batch(batches, input_fn)
      writer = summary.chief_writer(self._model_dir)
      try:
        session.train(
            first, batches, limit=limit, hooks=hooks or (),
            listeners=saving_listeners or (), writer=writer,
            config=self._config, model_dir=self._model_dir,
            model_name=type(self).__name__,
            strategy=strategy_for(self._config, ModeKeys.TRAIN),
            compile_inference=strategy_for(self._config, ModeKeys.EVAL) is None,
            pads=self._pads_eval_batches)
      finally:
        writer.close()
        self._dir.wait_until_finished()  # also after an error: keep saves
    return self

  def evaluate(self, input_fn: Callable, steps: int | None = None,
               hooks: Sequence[SessionRunHook] | None = None,
               checkpoint_path: str | None = None, name: str | None = None
               ) -> dict[str, Any]:
    """Evaluates a checkpoint (the latest by default) on ``input_fn``.

    Args:
      input_fn: returns an iterable of batches, or one batch (see
        ``train``).
      steps: evaluate on this many batches at most; None: until the input
        ends. An input_fn that returns one batch is read once with None and
        ``steps`` times with ``steps`` (tf.estimator, given a batch of
        tensors and no ``steps``, evaluated until stopped).
      hooks: ``SessionRunHook`` instances.
      checkpoint_path: the checkpoint to evaluate; None: the latest.
      name: evaluations with different names write to different
        directories (``eval_dir(name)``).

    Returns:
      A dict with ``loss`` (mean over batches), ``global_step`` and every
      metric in the model_fn's ``eval_metric_ops``; also written as events to
      ``eval_dir(name)``.
    """
    return self._evaluate(input_fn, steps, hooks, name,
                          checkpoint_path=checkpoint_path)

  def _evaluate(self, input_fn: Callable, steps: int | None,
                hooks: Sequence[SessionRunHook] | None, name: str | None, *,
                checkpoint_path: str | None = None,
                in_memory: tuple[dict, int] | None = None) -> dict[str, Any]:
    """``evaluate``; of ``in_memory``'s ``(variables, global_step)`` instead
    of a checkpoint when given (``experimental.InMemoryEvaluatorHook``)."""
    if steps is not None and (not isinstance(steps, (int, np.integer)) or steps <= 0):
      raise ValueError(f"evaluate(steps={steps!r}): must be a positive int or "
                       "None (until the input ends).")
    session = self._run()
    strategy = strategy_for(self._config, ModeKeys.EVAL)
    # (Padding marks a global batch's first rows real: one process's rows.)
    pads = self._pads_eval_batches and not getattr(strategy, "multiprocess",
                                                   False)
    with self._batches(input_fn, ModeKeys.EVAL, limit=steps,
                       pad=pads) as batches:
      return session.evaluate(
          first_batch(batches, input_fn), batches,
          path=(self._dir.checkpoint_path(checkpoint_path)
                if in_memory is None else None), in_memory=in_memory,
          strategy=strategy, events_dir=self.eval_dir(name), pads=pads,
          hooks=hooks or (),
          total=steps, progress_bar=self._config.progress_bar)

  def predict(self, input_fn: Callable, predict_keys: Sequence[str] | str | None = None,
              hooks: Sequence[SessionRunHook] | None = None,
              checkpoint_path: str | None = None,
              yield_single_examples: bool = True) -> Iterator[Any]:
    """Yields predictions of a checkpoint (the latest by default).

    ``input_fn`` returns an iterable of batches, or one batch (see
    ``train``), read once: tf.estimator, given a batch of tensors, predicted
    on it until stopped. The input's labels, if any, are ignored.

    Yields:
      One dict per example (``yield_single_examples=True``) or per batch; a
      bare array when the model_fn's predictions are not a dict.
    """
    session = self._run()
    with self._batches(input_fn, ModeKeys.PREDICT, limit=None,
                       pad=True) as batches:
      yield from session.predict(
          first_batch(batches, input_fn), batches,
          path=self._dir.checkpoint_path(checkpoint_path),
          strategy=strategy_for(self._config, ModeKeys.PREDICT),
          predict_keys=predict_keys, postprocess=self._postprocess_predictions,
          host_postprocess=self._has_postprocess(),
          single=yield_single_examples, hooks=hooks or (),
          progress_bar=self._config.progress_bar)

  # -- export -----------------------------------------------------------------

  def _servable(self) -> Any:
    """What the exporter reads of this estimator, as data: an
    ``estlab.export._servable.Servable`` (export imports no estimator)."""
    from estlab.export._servable import Servable  # pylint: disable=g-import-not-at-top
    return Servable(
        model=type(self).__name__,
        module=lambda mode: self._compiled().module(mode),
        variables=self._variables,
        head=getattr(self, "head", None),  # a subclass's head names classes
        python_host_transform=(type(self)._host_transform
                               is not Estimator._host_transform),
        python_postprocess=self._has_postprocess())

  def export_saved_model(self, export_dir_base: str | os.PathLike,
                         serving_input_receiver_fn: Callable,
                         assets_extra: Mapping | None = None,
                         as_text: bool = False,
                         checkpoint_path: str | None = None,
                         experimental_mode: str = ModeKeys.PREDICT) -> str:
    """Writes a servable ``export_dir_base/<timestamp>/``; returns its path.

    A ``jax.export`` module (cpu, cuda, tpu; any batch size), Orbax variables
    and a JSON description of the inputs and signatures; run it with
    ``estlab.export.load(path)``, no model code needed. See ``estlab.export``
    for the layout. ``ModeKeys.PREDICT`` (the default) or ``ModeKeys.EVAL``
    (an ``eval`` signature; pass a ``SupervisedInputReceiver`` fn).
    """
    from estlab.export import _exporter  # pylint: disable=g-import-not-at-top
    return _exporter.export_saved_model(
        self._servable(), export_dir_base, serving_input_receiver_fn,
        assets_extra=assets_extra, as_text=as_text,
        checkpoint_path=checkpoint_path, experimental_mode=experimental_mode)

  def experimental_export_all_saved_models(
      self, export_dir_base: str | os.PathLike,
      input_receiver_fn_map: Mapping, assets_extra: Mapping | None = None,
      as_text: bool = False, checkpoint_path: str | None = None) -> str:
    """``export_saved_model`` for ``{mode: receiver_fn}`` (PREDICT, EVAL) into
    one directory holding the signatures of every mode."""
    from estlab.export import _exporter  # pylint: disable=g-import-not-at-top
    return _exporter.experimental_export_all_saved_models(
        self._servable(), export_dir_base, input_receiver_fn_map,
        assets_extra=assets_extra, as_text=as_text,
        checkpoint_path=checkpoint_path)

  # -- variables and checkpoints ----------------------------------------------

  def latest_checkpoint(self) -> str | None:
    """Path of the newest checkpoint in ``model_dir`` (``model_dir/<step>``)."""
    return self._dir.latest_checkpoint()

  def get_variable_names(self) -> list[str]:
    """Names of the saved variables (paths joined by ``/``) and, as TF
    lists it, ``global_step``: the params and the other collections'
    variables (batch normalization's ``moving_mean``/``moving_variance``).
    The premade estimators' names are TF 2.x's (``dnn/hiddenlayer_0/kernel``,
    ``linear/linear_model/<column>/weights``). Optimizer slots and
    hyperparameters are not listed (TF lists them under ``training/
    <Optimizer>/``; here they live in the optax state)."""
    return self._dir.variable_names()

  def get_variable_value(self, name: str) -> np.ndarray:
    """Value of one saved variable (a name of ``get_variable_names()``), as
    numpy, from the latest checkpoint."""
    return self._dir.variable_value(name)

  def eval_dir(self, name: str | None = None) -> str:
    """``model_dir/eval`` or ``model_dir/eval_<name>``, where eval events go."""
    return os.path.join(self._model_dir, "eval" if not name else f"eval_{name}")

  def train_step_cache_size(self) -> int:
    """How many compiled versions of the train step exist (one per shape)."""
    return self._compiled().train_step._cache_size()  # pylint: disable=protected-access
