"""The model_fn of a converted Keras model: its inputs, loss, optimizer,
metrics and outputs in an ``EstimatorSpec``.

Features reach the model by its input names, labels its outputs by their
names; the forward pass is ``model.stateless_call`` over the Flax variables
that hold the Keras ones (``_variables``), the loss the compiled one
(``model.stateless_compute_loss``, with the layers' regularisation losses),
the train_op the compiled optimizer (``_optimizer``), the eval metrics the
compiled ones (``_metrics``) and the predictions ``{output name: array}``.

Example:
  >>> fn = KerasModelFn(model)                                 # doctest: +SKIP
  >>> estlab.Estimator(fn).train(input_fn, steps=10)           # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from estlab._export_outputs import DEFAULT_SERVING_KEY, PredictOutput
from estlab.keras import _metrics, _optimizer, _variables
from estlab.spec import EstimatorSpec, ModeKeys

__all__ = ["KerasModelFn", "FeatureKeyError", "input_names", "output_names"]

# TF's sample weights: features {'features': ..., 'sample_weights': ...}.
_WEIGHTED = frozenset({"features", "sample_weights"})


class FeatureKeyError(KeyError, ValueError):
  """A features or labels dict misses one of the model's names (TF raised a
  KeyError; a ValueError too, as estlab's input errors)."""

  def __str__(self) -> str:  # KeyError would quote the message
    return str(self.args[0])


def _history_name(tensor: Any) -> str:
  return tensor._keras_history[0].name  # pylint: disable=protected-access


def input_names(model: Any) -> list[str]:
  """The feature keys the model reads: a dict-input model's keys, else its
  ``keras.Input`` layers' names."""
  struct = getattr(model, "_inputs_struct", None)
  if isinstance(struct, Mapping):
    return list(struct)
  return [_history_name(t) for t in model.inputs]


def output_names(model: Any) -> list[str]:
  """The prediction (and label) keys: a dict-output model's keys, else its
  output layers' names (TF's ``model.output_names``)."""
  struct = getattr(model, "_outputs_struct", None)
  if isinstance(struct, Mapping):
    return list(struct)
  names = getattr(model, "output_names", None)
  return list(names) if names else [_history_name(t) for t in model.outputs]


def _structured(model: Any, struct_name: str, arrays: list) -> Any:
  """``arrays`` in the model's input or output structure."""
  struct = getattr(model, struct_name, None)
  names = (input_names if struct_name == "_inputs_struct" else output_names)(model)
  if isinstance(struct, Mapping):
    return dict(zip(names, arrays))
  if isinstance(struct, (list, tuple)):
    return list(arrays)
  return arrays[0]


def _by_name(value: Any, names: list[str], what: str, role: str) -> list:
  """``value`` (a dict by name, a list in order, or one array) as a list."""
  if isinstance(value, Mapping):
    missing = [n for n in names if n not in value]
    if missing:
      raise FeatureKeyError(
          f"The {what} dict does not cover the Keras model's {role} names "
          f"{names!r}: missing {missing!r} (got keys {sorted(value)!r}). Key "
          f"the {what} by the model's {role} names (keras.Input(name=...) / "
          "the output layers' names).")
    return [value[n] for n in names]
  if isinstance(value, (list, tuple)):
    if len(value) != len(names):
      raise ValueError(f"{len(value)} {what} given as a list for the Keras "
                       f"model's {len(names)} {role}s {names!r}; give one "
                       f"per {role}, or a dict keyed by name.")
    return list(value)
  if len(names) != 1:
    raise ValueError(
        f"The {what} are one array, but the Keras model has {len(names)} "
        f"{role}s {names!r}: give a dict keyed by these names.")
  return [value]


class KerasModelFn:
  """``model_fn(features, labels, mode)`` running a compiled Keras model.

  Attributes:
    model: the Keras model (built and compiled; its compiled loss and
      metrics are built on the first trace, as ``fit`` does).
    layout: its variables' Flax layout and starting values.
    train_op: the compiled optimizer as an optax transformation.
    metric_names_map: renames of the compiled metrics (TF's argument).
    export_outputs: ``{output name: ExportOutput class}`` (TF's argument).
  """

  def __init__(self, model: Any, *, metric_names_map: Mapping | None = None,
               export_outputs: Mapping | None = None):
    self.model = model
    self.layout = _variables.Layout.of(model)
    if not model.optimizer.built:
      model.optimizer.build(model.trainable_variables)
    self.train_op = _optimizer.keras_optimizer(model.optimizer, self.layout)
    self.metric_names_map = dict(metric_names_map or {})
    self.input_names = input_names(model)
    self.output_names = output_names(model)
    unknown = [k for k in (export_outputs or {}) if k not in self.output_names]
    if unknown:
      raise FeatureKeyError(
          f"export_outputs keys {unknown!r} are not among the Keras model's "
          f"output names {self.output_names!r}: key each ExportOutput class "
          "by the output it serves, e.g. {'label': "
          "estlab.export.ClassificationOutput}.")
    self.export_outputs = dict(export_outputs or {})
    self._training_arg = getattr(model, "_call_has_training_arg", True)

  def __call__(self, features, labels, mode):
    weights = None
    if isinstance(features, Mapping) and set(features) == _WEIGHTED:
      features, weights = features["features"], features["sample_weights"]
    x = _structured(self.model, "_inputs_struct",
                    _by_name(features, self.input_names, "features", "input"))
    trainable, frozen, nodes = _variables.read(self.layout)
    kwargs = {"training": mode == ModeKeys.TRAIN} if self._training_arg else {}
    if mode == ModeKeys.PREDICT:
      y_pred, _ = self.model.stateless_call(trainable, frozen, x, **kwargs)
      return self._predict_spec(y_pred)
    if labels is None:
      raise ValueError(f"A Keras model's estimator needs labels in {mode!r} "
                       "mode: make the input_fn yield (features, labels).")
    y = _structured(self.model, "_outputs_struct",
                    _by_name(labels, self.output_names, "labels", "output"))
    self._build_compiled(x, y, weights)
    y_pred, frozen, losses = self.model.stateless_call(
        trainable, frozen, x, return_losses=True, **kwargs)
    loss, frozen = self._loss(trainable, frozen, losses, x, y, y_pred,
                              weights, mode == ModeKeys.TRAIN)
    if mode == ModeKeys.TRAIN:
      _variables.write(nodes, frozen)
      return EstimatorSpec(mode, loss=loss, train_op=self.train_op,
                           predictions=self._named(y_pred))
    ops = _metrics.eval_metric_ops(
        getattr(self.model, "_compile_metrics", None), y,
        y_pred, sample_weight=weights, names_map=self.metric_names_map)
    return EstimatorSpec(mode, loss=loss, eval_metric_ops=ops,
                         predictions=self._named(y_pred))

  def _named(self, y_pred: Any) -> dict:
    if isinstance(y_pred, Mapping):
      return {n: y_pred[n] for n in self.output_names}
    if isinstance(y_pred, (list, tuple)):
      return dict(zip(self.output_names, y_pred))
    return {self.output_names[0]: y_pred}

  def _predict_spec(self, y_pred: Any) -> EstimatorSpec:
    predictions = self._named(y_pred)
    outputs = {DEFAULT_SERVING_KEY: PredictOutput(predictions)}
    outputs.update({key: cls(predictions[key])
                    for key, cls in self.export_outputs.items()})
    return EstimatorSpec(ModeKeys.PREDICT, predictions=predictions,
                         export_outputs=outputs)

  def _build_compiled(self, x, y, weights) -> None:
    """Builds the compiled loss and metrics for these shapes (as ``fit``
    does before its first step), outside the trace."""
    compiled = [getattr(self.model, "_compile_loss", None),
                getattr(self.model, "_compile_metrics", None)]
    if all(c is None or c.built for c in compiled):
      return
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
                          (x, y) if weights is None else (x, y, weights))
    with jax.ensure_compile_time_eval():
      self.model._symbolic_build(data_batch=shapes)  # pylint: disable=protected-access

  def _loss(self, trainable, frozen, losses, x, y, y_pred, weights, training):
    """The compiled loss plus the layers' losses, as Keras' JAX trainer
    computes it (``compute_loss_and_updates``)."""
    model = self.model
    metrics_values = [jnp.asarray(v.value) for v in model.metrics_variables]
    if losses:
      model._losses_override = list(losses)  # pylint: disable=protected-access
    try:
      loss, (_, frozen, _) = model.stateless_compute_loss(
          trainable, frozen, metrics_values, x=x, y=y, y_pred=y_pred,
          sample_weight=weights, training=training)
    finally:
      if losses:
        model._losses_override = []  # pylint: disable=protected-access
    return loss, frozen
