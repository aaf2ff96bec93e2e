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
           "RegressionOutput", "DEFAULT_SERVING_KEY", "PREDICT_SERVING_KEY",
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
