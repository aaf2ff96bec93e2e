"""Export outputs: what each serving signature returns, as TF's ``export_output``.

A model_fn (or a head) puts them in ``EstimatorSpec(export_outputs={name:
output})`` in PREDICT mode; each becomes a signature of the export. They are
part of what a model_fn returns (``estlab.spec``), so they live beside it,
below the heads that make them and the exporter that reads them
(``estlab.export._outputs`` completes them into signatures); their public
names are ``estlab.export.PredictOutput`` and so on. Arrays are computed by
the exported module; class names are strings, so they never enter it:
``ClassificationOutput`` takes integer class ids plus ``class_names``, and
the loader maps ids to names on the host (``host_outputs``: JSON ops such as
``lookup_op``'s).

Example:
  >>> import numpy as np
  >>> out = ClassificationOutput(scores=np.array([[.2, .8]]),
  ...                            classes=np.array([[0, 1]]), class_names=['no', 'yes'])
  >>> out.method_name, sorted(out.device_outputs()), out.host_outputs()['classes']['op']
  ('tensorflow/serving/classify', ['classes', 'scores'], 'lookup')
"""
from __future__ import annotations

import abc
from typing import Any, Mapping, Sequence

__all__ = ["ExportOutput", "PredictOutput", "ClassificationOutput",
           "RegressionOutput", "EvalOutput", "DEFAULT_SERVING_KEY", "PREDICT_SERVING_KEY",
           "CLASSIFY_SERVING_KEY", "REGRESS_SERVING_KEY", "lookup_op",
           "head_export_outputs"]

DEFAULT_SERVING_KEY = "serving_default"
PREDICT_SERVING_KEY = "predict"
CLASSIFY_SERVING_KEY = "classification"
REGRESS_SERVING_KEY = "regression"


def _check_array(value: Any, what: str) -> Any:
  if not (hasattr(value, "shape") and hasattr(value, "dtype")):
    raise TypeError(f"{what} must be an array, got {type(value).__name__}: "
                    f"{value!r:.100}.")
  if getattr(value.dtype, "kind", "") in "OSU":
    raise TypeError(f"{what} holds strings ({value.dtype}); strings cannot be "
                    "exported: give integer ids (and class_names for classes).")
  return value


def lookup_op(source: str, names: Sequence[str]) -> dict:
  """A host op: ``names[outputs[source]]``, as JSON."""
  return {"op": "lookup", "source": source, "names": [str(n) for n in names]}


class ExportOutput(abc.ABC):
  """One signature's outputs: arrays from the module plus host-side ops."""

  method_name: str = ""

  @abc.abstractmethod
  def device_outputs(self) -> dict[str, Any]:
    """``{output key: array}`` the exported module returns."""

  def host_outputs(self) -> dict[str, dict]:
    """``{output key: JSON op}`` computed on the host after the module."""
    return {}


class PredictOutput(ExportOutput):
  """Any dict of arrays (or one array, keyed ``'output'``), as TF's.

  Args:
    outputs: ``{name: array}`` or one array.
  """

  method_name = "tensorflow/serving/predict"

  def __init__(self, outputs: Any):
    if not isinstance(outputs, Mapping):
      outputs = {"output": outputs}
    for key, value in outputs.items():
      if not isinstance(key, str):
        raise ValueError(f"PredictOutput keys must be strings, got {key!r}.")
      _check_array(value, f"PredictOutput[{key!r}]")
    self.outputs = dict(outputs)

  def device_outputs(self) -> dict[str, Any]:
    return dict(self.outputs)


class ClassificationOutput(ExportOutput):
  """Scores and classes per example, as TF's (signature method ``classify``).

  Args:
    scores: float ``[B, n]`` (e.g. probabilities), or None.
    classes: integer class ids ``[B, n]``, or None; served as strings:
      ``class_names[id]``, or the id's decimal string without class_names
      (TF takes a string tensor here; strings cannot enter JAX).
    class_names: the name of each class id.
  """

  method_name = "tensorflow/serving/classify"

  def __init__(self, scores: Any = None, classes: Any = None,
               class_names: Sequence[str] | None = None):
    if scores is None and classes is None:
      raise ValueError("ClassificationOutput needs scores, classes or both; "
                       "got neither.")
    if scores is not None:
      _check_array(scores, "ClassificationOutput(scores=...)")
    if classes is not None:
      _check_array(classes, "ClassificationOutput(classes=...)")
      if getattr(classes.dtype, "kind", "") not in "iu":
        raise TypeError(
            f"ClassificationOutput(classes=...) must hold integer class ids, "
            f"got dtype {classes.dtype}; pass ids plus class_names=[...].")
    self.scores, self.classes = scores, classes
    self.class_names = None if class_names is None else tuple(
        str(n) for n in class_names)

  def device_outputs(self) -> dict[str, Any]:
    out = {}
    if self.classes is not None:
      out["classes"] = self.classes
    if self.scores is not None:
      out["scores"] = self.scores
    return out

  def host_outputs(self) -> dict[str, dict]:
    if self.classes is None:
      return {}
    if self.class_names is not None:
      return {"classes": lookup_op("classes", self.class_names)}
    return {"classes": {"op": "decimal", "source": "classes"}}


class RegressionOutput(ExportOutput):
  """One float per example, served as ``outputs`` (signature method ``regress``).

  Args:
    value: float ``[B]`` or ``[B, 1]``.
  """

  method_name = "tensorflow/serving/regress"

  def __init__(self, value: Any):
    _check_array(value, "RegressionOutput(value=...)")
    if getattr(value.dtype, "kind", "") != "f":
      raise TypeError(f"RegressionOutput(value=...) must be floats, got dtype "
                      f"{value.dtype}.")
    self.value = value

  def device_outputs(self) -> dict[str, Any]:
    return {"outputs": self.value}


def _output_key(key: Any, what: str) -> str:
  """A string key; a tuple of strings (a multi-head's) joined with '/'."""
  if isinstance(key, tuple) and all(isinstance(k, str) for k in key):
    key = "/".join(key)
  if not isinstance(key, str) or not key:
    raise ValueError(f"{what} output key must be a non-empty string (or a "
                     f"tuple of strings); got {key!r}.")
  return key


def _prefixed(key: str, prefix: str) -> str:
  """TF's ``_prefix_key``: ``prefix/key`` unless ``key`` starts with it."""
  return key if key.startswith(prefix) else f"{prefix}/{key}"


class EvalOutput(ExportOutput):
  """Loss, predictions and metrics of an evaluation, as TF's ``EvalOutput``.

  The keys are TF's: ``loss`` (or ``loss/<k>`` for a dict), ``predictions``
  (or ``predictions/<k>``) and ``metrics/<name>/value``; a key that already
  starts with its prefix keeps it, and a tuple key is joined with ``/``. A
  metric is an ``estlab.metrics`` state (its ``compute()`` is the value), a
  ``(value, update_op)`` pair (as TF's; JAX has no update ops, so the pair's
  second item is ignored and no ``metrics/<name>/update_op`` output is
  made), or an array. The signature's method is TF's
  ``tensorflow/supervised/eval``.

  Example:
    >>> import numpy as np
    >>> out = EvalOutput(loss=np.float32(0.5), predictions={'y': np.zeros(2)},
    ...                  metrics={'mae': (np.float32(0.1), None)})
    >>> sorted(out.device_outputs())
    ['loss', 'metrics/mae/value', 'predictions/y']

  Args:
    loss: an array or ``{key: array}``; None for none.
    predictions: an array or ``{key: array}``; None for none.
    metrics: ``{name: metric state | (value, update_op) | array}``, or one
      such metric (keyed ``metrics``); None for none.

  Raises:
    ValueError: a key that is not a string (or tuple of strings), or a
      metric pair that is not two items.
    TypeError: a value that is not an array, or holds strings.
  """

  method_name = "tensorflow/supervised/eval"

  LOSS_NAME = "loss"
  PREDICTIONS_NAME = "predictions"
  METRICS_NAME = "metrics"
  METRIC_VALUE_SUFFIX = "value"

  def __init__(self, loss: Any = None, predictions: Any = None,
               metrics: Any = None):
    if loss is None and predictions is None and metrics is None:
      raise ValueError("EvalOutput needs loss, predictions or metrics; got "
                       "none of them.")
    self._loss = (None if loss is None else
                  self._outputs(loss, self.LOSS_NAME))
    self._predictions = (None if predictions is None else
                         self._outputs(predictions, self.PREDICTIONS_NAME))
    self._metrics = None if metrics is None else self._metric_values(metrics)

  @staticmethod
  def _outputs(values: Any, name: str) -> dict[str, Any]:
    if not isinstance(values, Mapping):
      values = {name: values}
    out = {}
    for key, value in values.items():
      key = _prefixed(_output_key(key, name), name)
      out[key] = _check_array(value, f"EvalOutput({name}[{key!r}])")
    return out

  def _metric_values(self, metrics: Any) -> dict[str, Any]:
    if not isinstance(metrics, Mapping):
      metrics = {self.METRICS_NAME: metrics}
    out = {}
    for key, value in metrics.items():
      key = _prefixed(_output_key(key, self.METRICS_NAME), self.METRICS_NAME)
      if isinstance(value, tuple):
        if len(value) != 2:
          raise ValueError(
              f"EvalOutput(metrics[{key!r}]) = {value!r:.100}: a tuple must be"
              " TF's (value, update_op) pair; give the value, or a metric "
              "state from estlab.metrics.")
        value = value[0]
      elif callable(getattr(value, "compute", None)):  # an estlab.metrics state
        value = value.compute()
      out[f"{key}/{self.METRIC_VALUE_SUFFIX}"] = _check_array(
          value, f"EvalOutput(metrics[{key!r}])")
    return out

  @property
  def loss(self) -> dict[str, Any] | None:
    """``{'loss' | 'loss/<k>': array}``, or None."""
    return self._loss

  @property
  def predictions(self) -> dict[str, Any] | None:
    """``{'predictions' | 'predictions/<k>': array}``, or None."""
    return self._predictions

  @property
  def metrics(self) -> dict[str, Any] | None:
    """``{'metrics/<name>/value': array}``, or None."""
    return self._metrics

  def device_outputs(self) -> dict[str, Any]:
    return {**(self._loss or {}), **(self._predictions or {}),
            **(self._metrics or {})}


def head_export_outputs(predictions: Mapping, signature: str | None = None,
                        output: ExportOutput | None = None,
                        **others: ExportOutput) -> dict[str, ExportOutput]:
  """A canned head's outputs: ``signature`` (also the default) and ``predict``.

  Extra outputs are passed by signature name, e.g. ``regression=...``.
  """
  predict = PredictOutput(predictions)
  outputs = {DEFAULT_SERVING_KEY: output or predict,
             PREDICT_SERVING_KEY: predict, **others}
  if signature is not None and output is not None:
    outputs[signature] = output
  return outputs
