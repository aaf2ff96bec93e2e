"""What a model_fn takes and returns: ModeKeys, EstimatorSpec, argument handling.

The contract is tf.estimator's: ``model_fn(features, labels, mode, params,
config)`` (any subset of these names) returns an ``EstimatorSpec``. On JAX,
``train_op`` is an ``optax.GradientTransformation`` rather than a graph op,
and ``eval_metric_ops`` values are ``estlab.metrics`` pytrees rather than
``(value_op, update_op)`` pairs.
"""
from __future__ import annotations

import collections
import copy
import inspect
from typing import Any, Callable, Mapping

import jax
import numpy as np

__all__ = ["ModeKeys", "EstimatorSpec", "model_fn_args", "model_fn_params",
           "call_model_fn"]


class ModeKeys:
  """The three modes of a model_fn, with tf.estimator's string values."""

  TRAIN = "train"
  EVAL = "eval"
  PREDICT = "infer"

  ALL = (TRAIN, EVAL, PREDICT)


_MODEL_FN_ARGS = ("features", "labels", "mode", "params", "config")

# The feature the engine adds in EVAL when it pads a short last batch to the
# compiled batch size: True for real rows, False for padding. Heads weight
# padded rows by zero; estimators whose model_fn honours it set
# ``HostStep.pads_eval_batches`` (``estlab._engine.host_step``).
VALID_ROWS_KEY = "__estlab_valid_rows__"

# Step outputs a hook asked for by value (``LoggingTensorHook({'w': w})``
# built in the model_fn) are named under this prefix: read by that hook,
# never written as summaries.
HOOK_OUTPUTS = "__estlab_hook__/"


def _is_gradient_transformation(obj: Any) -> bool:
  return callable(getattr(obj, "init", None)) and callable(
      getattr(obj, "update", None))


_SPEC_FIELDS = ("mode", "predictions", "loss", "train_op", "eval_metric_ops",
                "export_outputs", "training_chief_hooks", "training_hooks",
                "scaffold", "evaluation_hooks", "prediction_hooks", "summaries",
                "host_postprocess")


class EstimatorSpec(collections.namedtuple("EstimatorSpec", _SPEC_FIELDS)):
  """What a model_fn returns, as ``tf.estimator.EstimatorSpec``.

  Required per mode, as in tf.estimator: TRAIN needs ``loss`` and
  ``train_op``; EVAL needs ``loss``; PREDICT needs ``predictions``.

  Attributes:
    mode: one of ``ModeKeys``.
    predictions: an array or a dict of arrays, batch dimension first.
    loss: a scalar array.
    train_op: an ``optax.GradientTransformation`` (on JAX the optimizer, not an
      op); the engine computes gradients of ``loss`` and applies it.
    eval_metric_ops: dict name -> ``estlab.metrics`` metric built from the
      batch; merged across batches by the engine.
    export_outputs: dict name -> ``estlab.export`` output, for serving.
    training_chief_hooks, training_hooks, evaluation_hooks, prediction_hooks:
      ``estlab.SessionRunHook`` instances run by the matching method.
    scaffold: TF1 graph concept; must be None.
    summaries: dict name -> array, written to TensorBoard every
      ``save_summary_steps`` in TRAIN mode: a scalar (shape ``()`` or
      ``(1,)``) as a scalar, any other array as a histogram (estlab's
      replacement for ``tf.summary.scalar`` / ``tf.summary.histogram`` calls
      inside a model_fn). Each is also a step output that hooks read by
      name (``LoggingTensorHook({'kernel': 'kernel'})``).
    host_postprocess: a function the Estimator applies on the host to each
      batch of PREDICT predictions (numpy), after the compiled step: what
      cannot be made inside jit, such as a head's string ``classes``
      (``head.create_estimator_spec`` sets it; estlab's addition).
  """

  __slots__ = ()

  def __new__(cls, mode, predictions=None, loss=None, train_op=None,
              eval_metric_ops=None, export_outputs=None,
              training_chief_hooks=None, training_hooks=None, scaffold=None,
              evaluation_hooks=None, prediction_hooks=None, summaries=None,
              host_postprocess=None):
    if mode not in ModeKeys.ALL:
      raise ValueError(f"EstimatorSpec(mode={mode!r}): mode must be one of "
                       f"{ModeKeys.ALL!r} (use estlab.ModeKeys).")
    if mode == ModeKeys.TRAIN and (loss is None or train_op is None):
      missing = [n for n, v in (("loss", loss), ("train_op", train_op))
                 if v is None]
      raise ValueError(
          f"EstimatorSpec in TRAIN mode is missing {missing}: return e.g. "
          "EstimatorSpec(mode, loss=loss, train_op=optax.adam(1e-3)).")
    if mode == ModeKeys.EVAL and loss is None:
      raise ValueError("EstimatorSpec in EVAL mode needs a loss: return "
                       "EstimatorSpec(mode, loss=loss, eval_metric_ops=...).")
    if mode == ModeKeys.PREDICT and predictions is None:
      raise ValueError("EstimatorSpec in PREDICT mode needs predictions: return "
                       "EstimatorSpec(mode, predictions={'name': array}).")
    if loss is not None:
      shape = np.shape(loss)
      if shape not in ((), (1,)):
        raise ValueError(
            f"EstimatorSpec(loss=...) must be a scalar, got shape {shape}: "
            "reduce it, e.g. loss = jnp.mean(per_example_loss).")
      loss = jax.numpy.reshape(loss, ())
      if mode == ModeKeys.TRAIN and not jax.numpy.issubdtype(
          loss.dtype, jax.numpy.floating):
        raise TypeError(
            f"EstimatorSpec(loss=...) in TRAIN mode has dtype "
            f"{np.dtype(loss.dtype).name!r}, but gradients need a real "
            "floating-point loss (an int loss has none): compute it in "
            "floats, e.g. loss = jnp.mean(errors.astype(jnp.float32)).")
    if train_op is not None and not _is_gradient_transformation(train_op):
      raise TypeError(
          f"EstimatorSpec(train_op={train_op!r}): train_op must be an optax "
          "GradientTransformation such as optax.adam(1e-3); estlab computes "
          "the gradients of loss and applies it.")
    if predictions is not None and not isinstance(predictions, Mapping):
      if not hasattr(predictions, "shape"):
        raise TypeError(f"EstimatorSpec(predictions={predictions!r}) must be an "
                        "array or a dict of arrays.")
    if eval_metric_ops is not None:
      from estlab import metrics as _metrics  # pylint: disable=g-import-not-at-top
      for name, metric in eval_metric_ops.items():
        if not isinstance(metric, _metrics.Metric):
          raise TypeError(
              f"eval_metric_ops[{name!r}] = {metric!r} is not an estlab metric:"
              f" use e.g. estlab.metrics.accuracy(labels, predictions) (TF's "
              "(value_op, update_op) pairs do not exist on JAX).")
    if scaffold is not None:
      raise ValueError(
          f"EstimatorSpec(scaffold={scaffold!r}): Scaffold is a TF1 graph "
          "concept with no JAX meaning; use Estimator(warm_start_from=...) to "
          "initialise from a checkpoint.")
    if summaries is not None:
      if not isinstance(summaries, Mapping):
        raise TypeError(f"EstimatorSpec(summaries={summaries!r:.200}): pass a "
                        "dict name -> array, e.g. summaries={'acc': acc}.")
      for name, value in summaries.items():
        if not isinstance(name, str):
          raise TypeError(f"summaries key {name!r} must be a string (a "
                          "TensorBoard tag).")
        if np.ndim(value) and not np.size(value):
          raise ValueError(f"summaries[{name!r}] is empty (shape "
                           f"{np.shape(value)}); pass a scalar or an array.")
    if host_postprocess is not None and not callable(host_postprocess):
      raise TypeError(f"EstimatorSpec(host_postprocess={host_postprocess!r:.100})"
                      " must be a function of a dict of numpy predictions.")
    return super().__new__(
        cls, mode, predictions, loss, train_op, eval_metric_ops,
        export_outputs, tuple(training_chief_hooks or ()),
        tuple(training_hooks or ()), None, tuple(evaluation_hooks or ()),
        tuple(prediction_hooks or ()), summaries, host_postprocess)


def model_fn_args(model_fn: Callable) -> tuple[str, ...]:
  """Returns which of tf.estimator's model_fn arguments ``model_fn`` takes.

  Raises:
    TypeError: ``model_fn`` has an argument tf.estimator does not pass and no
      default for it, or does not take ``features``.
  """
  try:
    sig = inspect.signature(model_fn)
  except (TypeError, ValueError) as e:
    raise TypeError(f"model_fn {model_fn!r} is not a callable whose signature "
                    "can be read.") from e
  taken = []
  for p in sig.parameters.values():
    if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
      continue
    if p.name in _MODEL_FN_ARGS:
      taken.append(p.name)
    elif p.default is p.empty:
      raise TypeError(
          f"model_fn {getattr(model_fn, '__name__', model_fn)!r} has an "
          f"argument {p.name!r} that estlab cannot pass: a model_fn takes any "
          f"subset of {_MODEL_FN_ARGS}. Pass extra values through "
          "Estimator(params={...}) and read them from `params`.")
  if "features" not in taken:
    raise TypeError(
        f"model_fn {getattr(model_fn, '__name__', model_fn)!r} must take a "
        f"`features` argument; its signature is {sig}.")
  return tuple(taken)


def model_fn_params(params: Any, args: tuple[str, ...]) -> dict:
  """A deep copy of ``Estimator(params=...)`` as a dict (``{}`` for None).

  Example:
    >>> model_fn_params({'units': [8, 4]}, ('features', 'params'))
    {'units': [8, 4]}

  Raises:
    TypeError: ``params`` is no mapping (tf.estimator documents a dict and
      passed anything through), e.g. ``params=[1, 2]``.
    ValueError: ``params`` is given but the model_fn (``args``, from
      ``model_fn_args``) takes no ``params`` argument.
  """
  if params is None:
    return {}
  if not isinstance(params, Mapping):
    raise TypeError(
        f"Estimator(params={params!r:.200}): params must be a dict of "
        f"hyperparameters, got {type(params).__name__}; the model_fn reads "
        "them by name, e.g. params={'hidden_units': [1, 2]} and "
        "params['hidden_units'].")
  if params and "params" not in args:
    raise ValueError(f"Estimator(params={params!r}) was given, but model_fn "
                     "takes no `params` argument; add one or drop params.")
  return copy.deepcopy(dict(params))


def call_model_fn(model_fn: Callable, args: tuple[str, ...], features: Any,
                  labels: Any, mode: str, params: Any, config: Any
                  ) -> EstimatorSpec:
  """Calls ``model_fn`` with the arguments it takes; checks what it returns."""
  available = dict(features=features, labels=labels, mode=mode, params=params,
                   config=config)
  try:
    spec = model_fn(**{name: available[name] for name in args})
  except (TypeError, AttributeError, IndexError, KeyError) as e:
    if labels is None and "labels" in args and mode != ModeKeys.PREDICT:
      raise ValueError(
          f"model_fn raised {type(e).__name__}: {e} in {mode!r} mode while "
          "labels were None, because the input_fn yields features only. Make "
          "the input_fn yield (features, labels) tuples.") from e
    raise
  if not isinstance(spec, EstimatorSpec):
    raise TypeError(f"model_fn must return an estlab.EstimatorSpec, got "
                    f"{type(spec).__name__}: {spec!r:.200}.")
  if spec.mode != mode:
    raise ValueError(f"model_fn was called with mode={mode!r} but returned "
                     f"EstimatorSpec(mode={spec.mode!r}); pass `mode` through.")
  return spec
