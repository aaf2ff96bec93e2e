"""The servable protocol: what the exporter needs from an estimator, as data.

``Estimator._servable()`` builds a ``Servable`` (with its ``HostStep``: a
premade's feature columns and head) and hands it to ``estlab.export._exporter``; the
exporter reads nothing else of the estimator, so ``estlab.export`` imports
neither ``estlab.estimator`` nor ``estlab.premade``: the estimator depends
on export, never the other way round.

The host step (Python the estimator runs around the compiled step) comes as
data, the estimator's ``HostStep`` (``estlab._engine.host_step``), since
only what JSON describes can be exported: feature columns and a head (a
premade's), the batch-size feature (a premade without columns), nothing
(features and labels reach the model_fn as they are), or Python that no
JSON describes, which the exporter refuses, saying so.

Example:
  >>> s = Servable(model='MyEstimator', module=lambda mode: None,
  ...              variables=lambda mode, features, labels, path: ({}, 0))
  >>> s.host.feature_columns is None, s.host.python_transform
  (True, False)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from estlab._engine.host_step import HostStep

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
    host: the estimator's host step: ``host.feature_columns`` encode the
      features (``column.spec()`` is their JSON) and ``host.head`` the
      labels (and names the classes of predictions); a ``transform`` or
      ``postprocess`` without them is Python the export refuses.
    model_dir: the estimator's model_dir (None: unknown), which an export
      may not be written into: its timestamped folder would sit among the
      checkpoints' step folders.
  """
  model: str
  module: Callable[[str], Any]
  variables: Callable[..., tuple[dict, int]]
  host: HostStep = HostStep()
  model_dir: str | None = None
