"""Signatures of an export: the served function and its JSON description.

``serve_fn`` wraps the PREDICT-mode model_fn as ``serve(variables, features)
-> {signature: {output: array}}`` and records, while it is traced, the
export outputs (TF's rules: ``estlab.export._outputs.signature_outputs``).
``describe`` turns them into the JSON the loader reads: method names, output
shapes, and the host ops that add strings (class names) after the module,
taken from the export outputs and from the estimator's head (its
``Servable``, ``estlab.export._servable``). The outputs are
``estlab._export_outputs``'s, completed by ``estlab.export._outputs``.

Example:
  >>> from estlab import heads
  >>> from estlab._engine.host_step import HostStep
  >>> from estlab.export._servable import Servable
  >>> ops = host_ops(Servable('LinearClassifier', module=None, variables=None,
  ...                         host=HostStep(head=heads.BinaryClassHead())))
  >>> ops['classes']
  {'op': 'lookup', 'source': 'class_ids', 'names': ['0', '1']}
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from estlab._export_outputs import PredictOutput, lookup_op
from estlab.export import _outputs
from estlab.export._servable import Servable

__all__ = ["serve_fn", "host_ops", "describe"]


def serve_fn(module: Any, signatures: dict, single: str | None = None
             ) -> Callable:
  """``serve(variables, features)``; fills ``signatures`` when traced.

  Args:
    module: the estimator's PREDICT-mode Flax module (it runs the model_fn).
    signatures: cleared and filled with ``{name: ExportOutput}`` on trace.
    single: a ``TensorServingInputReceiver``'s input name: the module still
      takes ``{single: array}``, and the model_fn gets the bare array.
  """
  def serve(variables, features):
    given = features[single] if single is not None else features
    try:
      spec = module.apply(variables, given, None)
    except (TypeError, AttributeError, IndexError) as e:
      if single is not None:
        raise ValueError(
            f"The model_fn raised {type(e).__name__}: {e} on the receiver's "
            f"one array (TensorServingInputReceiver, input {single!r}). If the"
            " model_fn reads a dict of features, export with "
            "ServingInputReceiver({name: ...}) instead.") from e
      raise ValueError(
          f"The model_fn raised {type(e).__name__}: {e} on the receiver's "
          f"features, a dict of {sorted(dict(features))!r}. If the model_fn "
          "takes features as one array (as numpy_input_fn(x=array) feeds "
          "them), export with estlab.export.TensorServingInputReceiver(array)"
          ": the model_fn then gets the bare array.") from e
    outputs = _outputs.signature_outputs(spec.export_outputs, spec.predictions)
    signatures.clear()
    signatures.update(outputs)
    return {name: out.device_outputs() for name, out in outputs.items()}
  return serve


def _head_ops(head: Any, prefix: str = "") -> dict:
  """Host ops that add the head's string predictions (``classes``, ...)."""
  from estlab import heads  # pylint: disable=g-import-not-at-top
  if isinstance(head, heads.MultiHead):
    ops = {}
    for h in head.heads:
      ops.update(_head_ops(h, f"{prefix}{h.name}/"))
    return ops
  if isinstance(head, (heads.BinaryClassHead, heads.MultiClassHead)):
    n = max(head.logits_dimension, 2)
    ids = np.arange(n, dtype=np.int32)[:, None]
    names = head.postprocess_predictions({"class_ids": ids})["classes"][:, 0]
    return {prefix + "classes": lookup_op(prefix + "class_ids", names),
            prefix + "all_classes": lookup_op(prefix + "all_class_ids", names)}
  if isinstance(head, heads.MultiLabelHead):
    logits = np.zeros((1, head.logits_dimension), np.float32)
    names = head.postprocess_predictions({"logits": logits})["classes"][0]
    return {prefix + "classes": {
        "op": "tile", "like": [prefix + "logits", prefix + "probabilities"],
        "names": [str(n) for n in names]}}
  if type(head).postprocess_predictions is not heads.Head.postprocess_predictions:
    raise ValueError(f"{head!r} adds predictions on the host "
                     "(postprocess_predictions), which cannot be exported.")
  return {}


def host_ops(servable: Servable) -> dict:
  """``{prediction key: JSON op}`` that the estimator adds on the host.

  Raises:
    ValueError: the estimator (or its head) runs Python on the predictions
      that no op describes.
  """
  if servable.host.head is not None:
    return _head_ops(servable.host.head)
  if servable.host.python_postprocess:
    raise ValueError(f"{servable.model} postprocesses its predictions with "
                     "Python on the host (its HostStep.postprocess), code that cannot be "
                     "exported; compute those predictions in the model_fn.")
  return {}


def describe(signatures: dict, exported: Any, inputs: dict, head_ops: dict
             ) -> dict:
  """The ``signatures`` entry of ``estlab_export.json``.

  Args:
    signatures: ``{name: ExportOutput}`` recorded by ``serve_fn``.
    exported: the ``jax.export.Exported`` (its output shapes and dtypes).
    inputs: the receiver's inputs (the same for every signature).
    head_ops: ``host_ops(servable)``; added to ``PredictOutput`` signatures
      holding their source keys.
  """
  out_tree = exported.out_tree.unflatten(exported.out_avals)
  described = {}
  for name, output in signatures.items():
    avals = out_tree[name]
    host = dict(output.host_outputs())
    if isinstance(output, PredictOutput):
      host.update({k: op for k, op in head_ops.items() if k not in avals and (
          op.get("source") in avals or set(op.get("like", ())) & set(avals))})
    outputs = {}
    order = list(avals)  # sorted, as jit returns them (and Estimator.predict)
    for key in order + [k for k in host if k not in avals]:
      if key in host:
        like = avals.get(host[key].get("source")) or next(
            avals[k] for k in host[key]["like"] if k in avals)
        outputs[key] = {"dtype": "string", "shape": _shape(like.shape)}
      else:
        outputs[key] = {"dtype": avals[key].dtype.name,
                        "shape": _shape(avals[key].shape)}
    described[name] = {"method_name": output.method_name, "inputs": inputs,
                       "outputs": outputs, "device_outputs": order,
                       "host_outputs": host}
  return described


def _shape(shape: tuple) -> list:
  return [d if isinstance(d, int) else None for d in shape]
