"""The servable protocol: what the exporter needs from an estimator, as data.

``Estimator._servable()`` builds a ``Servable`` (``PremadeEstimator`` adds its
feature columns and head) and hands it to ``estlab.export._exporter``; the
exporter reads nothing else of the estimator, so ``estlab.export`` imports
neither ``estlab.estimator`` nor ``estlab.premade``: the estimator depends
on export, never the other way round.

The host step (Python the estimator runs around the compiled step) is
described here, since only what JSON describes can be exported: feature
columns (a premade's), a batch-size feature (a premade without columns),
nothing (features and labels reach the model_fn as they are), or Python a
subclass overrides (``_host_transform``, ``_postprocess_predictions``),
which the exporter refuses with a message naming the method.

Example:
  >>> s = Servable(model='MyEstimator', module=lambda mode: None,
  ...              variables=lambda mode, features, labels, path: ({}, 0))
  >>> s.feature_columns is None, s.python_host_transform
  (True, False)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

__all__ = ["Servable"]


@dataclasses.dataclass(frozen=True)
class Servable:
  """What ``export_saved_model`` reads of an estimator, and nothing else.

  Attributes:
    model: the estimator's class name (``estlab_export.json``'s ``model``,
      log lines and error messages).
    module: ``module(mode)``: the Flax module that runs the model_fn in
      ``mode`` (``apply(variables, features, labels)`` gives its
      ``EstimatorSpec``); called when that mode is exported.
    variables: ``variables(mode, features, labels, checkpoint_path) ->
      (variables, global_step)``: ``{'params': ..., <collections>}`` of the
      checkpoint (the latest for None), shaped for those sample features.
    feature_columns: a premade's host step: these columns encode the
      features (``column.spec()`` is their JSON) and ``head`` encodes the
      labels. None: no such step, features and labels reach the model_fn as
      they are (unless ``python_host_transform``).
    batch_key: with empty ``feature_columns``, the feature that carries only
      the batch size (``estlab.premade._base.BATCH_KEY``), else None.
    head: the ``estlab.heads`` head whose host ops (class names) the export
      adds to predictions, and whose labels a premade's EVAL export encodes;
      None without one.
    python_host_transform: the estimator overrides ``_host_transform``:
      host Python no JSON describes (read only without ``feature_columns``).
    python_postprocess: the estimator overrides
      ``_postprocess_predictions``: host Python (read only without ``head``).
  """
  model: str
  module: Callable[[str], Any]
  variables: Callable[..., tuple[dict, int]]
  feature_columns: tuple | None = None
  batch_key: str | None = None
  head: Any = None
  python_host_transform: bool = False
  python_postprocess: bool = False
