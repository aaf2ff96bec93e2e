"""Estimator: tf.estimator's train / evaluate / predict on compiled JAX steps.

Orchestration only: the input path is ``estlab.data``
(``data._pipeline.input_batches``); the compiled steps, loops and the train
state kept on the device between calls are ``estlab._engine`` (its
``Session``); the checkpoints ``estlab.checkpoint``.

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
import functools
import os
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from estlab._engine.host_step import HostStep
from estlab._engine.loops import NanLossDuringTrainingError
from estlab._engine.session import Session, check_eval_steps, train_limit
from estlab._engine.steps import CompiledSteps
from estlab.checkpoint._model_dir import ModelDir
from estlab.data._device import Prefetcher
from estlab.data._input_fn import first_batch
from estlab.data._pipeline import input_batches
from estlab.data._tables import EncodedTables
from estlab.distribute._cluster import check_cluster_strategy
from estlab.hooks import SessionRunHook
from estlab.run_config import RunConfig, resolve_model_dir
from estlab.spec import (ModeKeys, call_model_fn, model_fn_args,
                         model_fn_params)
from estlab.warm_starting import WarmStartSettings, warm_start

__all__ = ["Estimator", "NanLossDuringTrainingError"]


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
    self._params = model_fn_params(params, self._model_fn_args)
    self._config = resolve_model_dir(model_dir, config)
    self._model_dir = self._config.model_dir
    self._warm_start = (None if warm_start_from is None else
                        WarmStartSettings.from_value(warm_start_from))
    self._fresh()

  def _fresh(self) -> None:
    """Nothing compiled, restored or encoded yet (made on first use)."""
    self._session: Session | None = None  # compiled steps, train state
    self._dir = ModelDir(self._model_dir,
                         max_to_keep=self._config.keep_checkpoint_max,
                         async_save=self._config.async_checkpoints)
    self._tables = EncodedTables()  # (array table, mode) -> its encoding

  # What runs on the host around the compiled step: nothing here; a
  # premade's feature columns and head (``_engine.host_step``).
  _host = HostStep()

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

  def _run(self) -> Session:
    """The ``Session`` running the compiled steps, made on first use."""
    if self._session is None:
      steps = CompiledSteps(functools.partial(
          call_model_fn, self._model_fn, self._model_fn_args,
          params=self._params, config=self._config))
      warm = self._warm_start
      self._session = Session(
          steps, self._dir, config=self._config,
          model_name=type(self).__name__, warm_start=None if warm is None else
          functools.partial(warm_start, settings=warm))
    return self._session

  def _batches(self, input_fn: Callable, mode: str, *, limit: int | None,
               steps_per_loop: int = 1, pad: bool = False) -> Prefetcher:
    """Device batches of ``input_fn`` (``data._pipeline.input_batches``); an array
    input_fn's table is encoded once per Estimator, table and mode."""
    return input_batches(
        input_fn, mode, strategy=self._run().strategy(mode), params=self.params,
        config=self._config, host_transform=self._host.apply,
        takes_labels="labels" in self._model_fn_args, tables=self._tables,
        limit=limit, steps_per_loop=steps_per_loop, pad=pad,
        chunk_rows=self._host.chunk_rows)

  # -- train / evaluate / predict ---------------------------------------------

  def train(self, input_fn: Callable, hooks: Sequence[SessionRunHook] | None = None,
            steps: int | None = None, max_steps: int | None = None,
            saving_listeners: Any = None) -> "Estimator":
    """Trains on ``input_fn``'s batches; returns ``self``. Checkpoints are
    saved as ``RunConfig.save_checkpoints_steps`` / ``_secs`` say.

    Args:
      input_fn: returns an iterable of ``(features, labels)`` batches (a
        Dataset, a list, a generator), or one batch, trained on at every
        step as in tf.estimator (``data._input_fn.call_input_fn`` says what
        is one batch; the README's migration table, how it differs from
        TF). ``features``: a dict of arrays or one array.
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
    with self._dir.training():  # writable; one trainer per model_dir
      session = self._run()
      with self._batches(input_fn, ModeKeys.TRAIN, limit=limit,
                         steps_per_loop=self._config.steps_per_loop) as batches:
        session.train(first_batch(batches, input_fn), batches, limit=limit,
                      hooks=hooks or (), listeners=saving_listeners or (),
                      pads=self._host.pads_eval_batches)
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
        ends (one batch: once, where TF looped until stopped).
      hooks: ``SessionRunHook`` instances.
      checkpoint_path: the checkpoint to evaluate; None: the latest.
      name: evaluations with different names write to different
        directories (``eval_dir(name)``).

    Returns:
      A dict with ``loss`` (mean over batches), ``global_step`` and every
      metric in the model_fn's ``eval_metric_ops``; also written as events to
      ``eval_dir(name)``.
    """
    self._dir.check_writable("evaluate")  # events go to eval_dir(name)
    return self._evaluate(input_fn, steps, hooks, name,
                          checkpoint_path=checkpoint_path)

  def _evaluate(self, input_fn: Callable, steps: int | None,
                hooks: Sequence[SessionRunHook] | None, name: str | None, *,
                checkpoint_path: str | None = None,
                in_memory: tuple[dict, int] | None = None) -> dict[str, Any]:
    """``evaluate``; of ``in_memory``'s ``(variables, global_step)`` instead
    of a checkpoint when given (``experimental.InMemoryEvaluatorHook``)."""
    steps = check_eval_steps(steps)
    session = self._run()
    pads = session.pads_eval(self._host.pads_eval_batches)
    with self._batches(input_fn, ModeKeys.EVAL, limit=steps,
                       pad=pads) as batches:
      return session.evaluate(
          first_batch(batches, input_fn), batches,
          path=checkpoint_path, in_memory=in_memory,
          events_dir=self.eval_dir(name), pads=pads, hooks=hooks or (),
          total=steps)

  def predict(self, input_fn: Callable, predict_keys: Sequence[str] | str | None = None,
              hooks: Sequence[SessionRunHook] | None = None,
              checkpoint_path: str | None = None,
              yield_single_examples: bool = True) -> Iterator[Any]:
    """Yields predictions of a checkpoint (the latest by default).

    ``input_fn`` returns an iterable of batches, or one batch, read once
    (TF predicted on it until stopped); the input's labels are ignored.

    Yields:
      One dict per example (``yield_single_examples=True``) or per batch; a
      bare array when the model_fn's predictions are not a dict.
    """
    session = self._run()
    with self._batches(input_fn, ModeKeys.PREDICT, limit=None,
                       pad=True) as batches:
      yield from session.predict(
          first_batch(batches, input_fn), batches,
          path=checkpoint_path, predict_keys=predict_keys, postprocess=self._host.postprocess,
          single=yield_single_examples, hooks=hooks or ())

  # -- export -----------------------------------------------------------------

  def _servable(self) -> Any:
    """What the exporter reads of this estimator (``export._servable``)."""
    from estlab.export._servable import Servable  # pylint: disable=g-import-not-at-top
    return Servable(model=type(self).__name__, model_dir=self._model_dir,
                    module=lambda mode: self._run().steps.module(mode),
                    variables=lambda *args: self._run().variables(*args),
                    host=self._host)

  def export_saved_model(self, export_dir_base: str | os.PathLike,
                         serving_input_receiver_fn: Callable,
                         assets_extra: Mapping | None = None,
                         as_text: bool = False,
                         checkpoint_path: str | None = None,
                         experimental_mode: str = ModeKeys.PREDICT,
                         format: str = "estlab") -> str:  # pylint: disable=redefined-builtin
    """Writes ``export_dir_base/<timestamp>/`` and returns its path: estlab's
    export (``estlab.export``; EVAL: an ``eval`` signature) or, with
    ``format='tf_saved_model'``, a TensorFlow SavedModel for TF Serving."""
    from estlab.export import _exporter  # pylint: disable=g-import-not-at-top
    return _exporter.export_saved_model(
        self._servable(), export_dir_base, serving_input_receiver_fn,
        assets_extra=assets_extra, as_text=as_text,
        checkpoint_path=checkpoint_path, experimental_mode=experimental_mode,
        format=format)

  def experimental_export_all_saved_models(
      self, export_dir_base: str | os.PathLike,
      input_receiver_fn_map: Mapping, assets_extra: Mapping | None = None,
      as_text: bool = False, checkpoint_path: str | None = None,
      format: str = "estlab") -> str:  # pylint: disable=redefined-builtin
    """``export_saved_model`` for ``{mode: receiver_fn}`` (PREDICT, EVAL) into
    one directory holding the signatures of every mode."""
    from estlab.export import _exporter  # pylint: disable=g-import-not-at-top
    return _exporter.experimental_export_all_saved_models(
        self._servable(), export_dir_base, input_receiver_fn_map,
        assets_extra=assets_extra, as_text=as_text,
        checkpoint_path=checkpoint_path, format=format)

  # -- variables and checkpoints ----------------------------------------------

  def latest_checkpoint(self) -> str | None:
    """Path of the newest checkpoint in ``model_dir`` (``model_dir/<step>``)."""
    return self._dir.latest_checkpoint()

  def get_variable_names(self) -> list[str]:
    """Names of the saved variables and ``global_step``, as TF lists them
    (``ModelDir.variable_names``; the premades' are TF 2.x's names)."""
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
    return self._run().steps.train_step._cache_size()  # pylint: disable=protected-access
