"""Signatures from a PREDICT spec's export outputs, by TF's rules.

The outputs themselves (``PredictOutput``, ``ClassificationOutput``,
``RegressionOutput``) are part of what a model_fn returns and live below the
heads in ``estlab._export_outputs``; ``estlab.export`` re-exports them.
``signature_outputs`` completes a traced spec's ``export_outputs`` into the
signatures the exporter writes (``estlab.export._signatures``).

Example:
  >>> import numpy as np
  >>> sorted(signature_outputs(None, {'y': np.zeros((1, 1))}))
  ['predict', 'serving_default']
"""
from __future__ import annotations

from typing import Any, Mapping

from estlab._export_outputs import (DEFAULT_SERVING_KEY, PREDICT_SERVING_KEY,
                                    ExportOutput, PredictOutput)

__all__ = ["signature_outputs"]


def signature_outputs(export_outputs: Mapping | None, predictions: Any
                      ) -> dict[str, ExportOutput]:
  """The export outputs of a PREDICT spec, completed by TF's rules.

  None gives ``serving_default`` (a ``PredictOutput`` of the predictions);
  a single output is also ``serving_default``; several need one named so.
  estlab also adds ``predict`` (the predictions) when it is missing.

  Raises:
    TypeError: a value is not an ``estlab.export`` output.
    ValueError: several outputs and none is ``serving_default``.
  """
  outputs = dict(export_outputs or {})
  for name, output in outputs.items():
    if not isinstance(name, str) or not isinstance(output, ExportOutput):
      raise TypeError(
          f"export_outputs[{name!r}] = {output!r:.100} must be an "
          "estlab.export output keyed by a string: PredictOutput, "
          "ClassificationOutput, RegressionOutput or EvalOutput.")
  if not outputs:
    outputs[DEFAULT_SERVING_KEY] = PredictOutput(predictions)
  elif DEFAULT_SERVING_KEY not in outputs:
    if len(outputs) > 1:
      raise ValueError(
          f"Multiple export_outputs were provided ({sorted(outputs)!r}), but "
          f"none is the default; key one of them {DEFAULT_SERVING_KEY!r}.")
    outputs[DEFAULT_SERVING_KEY] = next(iter(outputs.values()))
  if PREDICT_SERVING_KEY not in outputs:
    outputs[PREDICT_SERVING_KEY] = PredictOutput(predictions)
  return outputs
