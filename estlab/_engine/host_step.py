"""The host step: the Python an estimator runs around its compiled step.

Before the step, a batch's features and labels may be encoded on the host
(feature columns turn strings into ids; a head checks and maps labels);
after it, predictions may be finished on the host (class ids -> class
names). An ``Estimator`` holds one ``HostStep`` as data: the plain
``Estimator`` the identity (features and labels reach the model_fn as they
are), ``PremadeEstimator`` its feature columns and head. The input path
(``estlab.data``) calls ``transform`` in chunks of ``chunk_rows``; the loops
call ``postprocess``; the export writes ``feature_columns`` and ``head`` as
JSON and refuses a transform or postprocess that nothing describes.

Example:
  >>> step = HostStep()
  >>> step.apply({'x': [1.0]}, [0], 'train')
  ({'x': [1.0]}, [0])
  >>> step.python_transform, step.python_postprocess
  (False, False)
  >>> HostStep(transform=lambda f, l, mode: (f, l)).python_transform
  True
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

__all__ = ["HostStep"]


@dataclasses.dataclass(frozen=True)
class HostStep:
  """What runs on the host before and after an estimator's compiled step.

  Attributes:
    transform: ``transform(features, labels, mode) -> (features, labels)``
      before the step, or None (the identity). Row by row: transforming
      batches joined and splitting the result must equal transforming each
      (an array input_fn's table is transformed once; streamed batches are
      joined ``chunk_rows`` at a time).
    chunk_rows: rows an input_fn's batches are transformed at a time (read
      ahead and joined, ``data._encode.prepare_batches``); 0: batch by batch.
    pads_eval_batches: the model_fn weighs rows by ``spec.VALID_ROWS_KEY``
      (the heads do), so a short last EVAL batch is padded to the compiled
      shape instead of compiled anew.
    postprocess: ``postprocess(predictions) -> predictions`` on the host
      after the PREDICT step (a head's class names), or None: the model_fn
      spec's own ``host_postprocess``, if any.
    feature_columns: the columns ``transform`` encodes, which the export
      describes in JSON; None when ``transform`` is not theirs.
    batch_key: with empty ``feature_columns``, the feature that carries only
      the batch size; else None.
    head: the head whose label encoding and ``postprocess`` the export
      describes; None without one.
  """
  transform: Callable[[Any, Any, str], tuple[Any, Any]] | None = None
  chunk_rows: int = 0
  pads_eval_batches: bool = False
  postprocess: Callable[[Any], Any] | None = None
  feature_columns: tuple | None = None
  batch_key: str | None = None
  head: Any = None

  def apply(self, features: Any, labels: Any, mode: str) -> tuple[Any, Any]:
    """``transform`` (or the identity) of one batch."""
    if self.transform is None:
      return features, labels
    return self.transform(features, labels, mode)

  @property
  def python_transform(self) -> bool:
    """A transform that no JSON describes (it cannot be exported)."""
    return self.transform is not None and self.feature_columns is None

  @property
  def python_postprocess(self) -> bool:
    """A postprocess that no head describes (it cannot be exported)."""
    return self.postprocess is not None and self.head is None
