"""The EVAL part of an export: a module of the EVAL-mode model_fn and its labels.

``eval_fn`` wraps the EVAL-mode model_fn as ``evaluate(variables, features,
labels) -> {'eval': {'loss': scalar, <metric>: scalar}}``: each of the
spec's ``eval_metric_ops`` is built from the batch and computed at once, so a
call on one batch gives what ``Estimator.evaluate`` gives on that batch.
``label_inputs`` describes, as JSON the loader reads, how a request's
``'labels'`` become the module's labels: as they are (a model_fn's own), or
through the estimator head's host step (``transform_labels``: shape, dtype,
``label_vocabulary``), rebuilt without the head's code.

Example:
  >>> from estlab import heads
  >>> spec = head_labels(heads.BinaryClassHead(label_vocabulary=['no', 'yes']))
  >>> spec['dtype'], spec['shape'], spec['vocabulary']
  ('float32', [None, 1], ['no', 'yes'])
"""
from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp
import numpy as np

from estlab.export import _receivers
from estlab.export._servable import Servable

__all__ = ["SIGNATURE", "METHOD_NAME", "eval_fn", "head_labels",
           "label_inputs", "sample_labels"]

SIGNATURE = "eval"                          # TF's key: ModeKeys.EVAL
METHOD_NAME = "tensorflow/supervised/eval"  # TF's SUPERVISED_EVAL_METHOD_NAME


def eval_fn(module: Any) -> Callable:
  """``evaluate(variables, features, labels)`` of the EVAL-mode Flax module."""
  def evaluate(variables, features, labels):
    spec = module.apply(variables, features, labels)
    out = {name: jnp.reshape(jnp.asarray(metric.compute(), jnp.float32), ())
           for name, metric in dict(spec.eval_metric_ops or {}).items()}
    out["loss"] = jnp.reshape(jnp.asarray(spec.loss, jnp.float32), ())
    return {SIGNATURE: out}
  return evaluate


def head_labels(head: Any) -> dict:
  """The JSON of ``head.transform_labels`` for the heads whose step it covers.

  Raises:
    ValueError: a head whose labels the loader cannot encode (multi-label,
      multi-head, custom heads) or one with a ``weight_column``.
  """
  from estlab import heads  # pylint: disable=g-import-not-at-top
  if getattr(head, "weight_column", None) is not None:
    raise ValueError(
        f"{head!r} has weight_column={head.weight_column!r}, which the EVAL "
        "export cannot read from the request yet. Export EVAL for a head "
        "without weight_column, or evaluate with Estimator.evaluate.")
  vocab = getattr(head, "_vocab", None)
  vocabulary = list(vocab.names) if vocab is not None else None
  if type(head) is heads.RegressionHead:  # pylint: disable=unidiomatic-typecheck
    return {"kind": "head", "dtype": "float32",
            "shape": [None, head.logits_dimension], "vocabulary": None,
            "range": None, "integer": False}
  if type(head) is heads.BinaryClassHead:  # pylint: disable=unidiomatic-typecheck
    return {"kind": "head", "dtype": "float32", "shape": [None, 1],
            "vocabulary": vocabulary, "range": [0, 1], "integer": False}
  if type(head) is heads.MultiClassHead:  # pylint: disable=unidiomatic-typecheck
    return {"kind": "head", "dtype": "int32", "shape": [None, 1],
            "vocabulary": vocabulary, "range": [0, head.logits_dimension - 1],
            "integer": True}
  raise ValueError(
      f"EVAL export encodes the labels of RegressionHead, BinaryClassHead and "
      f"MultiClassHead; {type(head).__name__} ({head!r}) encodes its labels "
      "with host code the export cannot describe. Evaluate it with "
      "Estimator.evaluate, or export PREDICT only.")


def label_inputs(servable: Servable, receiver: Any) -> dict[str, dict]:
  """``{'labels' | 'labels/<k>': JSON}``: the eval request's labels.

  ``servable``: the estimator's (``estlab.export._servable``); a premade's
  head encodes the labels, other estimators take them as they are.

  Raises:
    ValueError: the receiver has no labels, or the estimator transforms its
      labels with host code no JSON describes.
    TypeError: labels of strings for a model_fn that reads them as they are.
  """
  if not isinstance(receiver, _receivers.SupervisedInputReceiver):
    raise ValueError(
        f"An EVAL export needs features and labels; the receiver fn returned "
        f"{receiver!r:.100}. Use estlab.export.build_raw_supervised_input_"
        "receiver_fn(features, labels) (or a SupervisedInputReceiver).")
  described = _receivers.describe_labels(receiver)
  if servable.host.feature_columns is not None:  # a premade: head's labels
    if list(described) != [_receivers.LABELS]:
      raise ValueError(f"{servable.model} takes one labels array; "
                       f"the receiver's labels are {sorted(described)!r}.")
    spec = head_labels(servable.host.head)
    spec["shape"][0] = receiver.default_batch_size
    return {_receivers.LABELS: spec}
  if servable.host.python_transform:
    raise ValueError(
        f"{servable.model} transforms its features with Python on the host "
        "(its HostStep.transform), code "
        "that may change the labels and cannot be exported; EVAL export takes "
        "estimators whose labels reach the model_fn as they are.")
  strings = sorted(k for k, d in described.items() if d["dtype"] == "string")
  if strings:
    raise TypeError(f"Labels {strings!r} are strings, which cannot enter the "
                    "exported module; give numeric labels (encode them first).")
  return described


def sample_labels(inputs: dict[str, dict], batch: int) -> dict[str, np.ndarray]:
  """Zeros as the module takes them, ``{'labels' | 'labels/<k>': array}``."""
  return {name: np.zeros([batch, *d["shape"][1:]], d["dtype"])
          for name, d in inputs.items()}
