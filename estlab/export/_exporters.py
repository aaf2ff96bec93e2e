"""Exporters for ``EvalSpec(exporters=...)``, as tf.estimator's.

``train_and_evaluate`` calls ``export(estimator, export_path,
checkpoint_path, eval_result, is_the_final_export)`` after each evaluation,
with ``export_path`` = ``model_dir/export/<name>``; each export is a
timestamped ``export_saved_model`` directory there.
"""
from __future__ import annotations

import os
import shutil
from typing import Any, Callable, Mapping

__all__ = ["Exporter", "LatestExporter", "FinalExporter"]


class Exporter:
  """Base of exporters: a ``name`` and ``export(...)`` returning a path."""

  def __init__(self, name: str, serving_input_receiver_fn: Callable,
               assets_extra: Mapping | None = None, as_text: bool = False):
    if not isinstance(name, str) or not name or os.sep in name:
      raise ValueError(f"{type(self).__name__}(name={name!r}): a non-empty "
                       "directory name without separators, e.g. 'latest'.")
    if not callable(serving_input_receiver_fn):
      raise TypeError(f"{type(self).__name__}(serving_input_receiver_fn="
                      f"{serving_input_receiver_fn!r}): must be callable, e.g. "
                      "estlab.export.build_raw_serving_input_receiver_fn(...).")
    self._name = name
    self._receiver_fn = serving_input_receiver_fn
    self._assets_extra = assets_extra
    self._as_text = as_text

  @property
  def name(self) -> str:
    return self._name

  def _export(self, estimator: Any, export_path: str,
              checkpoint_path: str | None) -> str:
    return estimator.export_saved_model(
        export_path, self._receiver_fn, assets_extra=self._assets_extra,
        as_text=self._as_text, checkpoint_path=checkpoint_path)

  def export(self, estimator: Any, export_path: str,
             checkpoint_path: str | None, eval_result: dict,
             is_the_final_export: bool) -> str | None:
    raise NotImplementedError


class LatestExporter(Exporter):
  """Exports after every evaluation; keeps the newest ``exports_to_keep``
  (None keeps all)."""

  def __init__(self, name: str, serving_input_receiver_fn: Callable,
               assets_extra: Mapping | None = None, as_text: bool = False,
               exports_to_keep: int | None = 5):
    super().__init__(name, serving_input_receiver_fn, assets_extra, as_text)
    if exports_to_keep is not None and (isinstance(exports_to_keep, bool) or
                                        not isinstance(exports_to_keep, int) or
                                        exports_to_keep < 1):
      raise ValueError(f"LatestExporter(exports_to_keep={exports_to_keep!r}): "
                       "a positive int, or None to keep every export.")
    self._keep = exports_to_keep

  def export(self, estimator, export_path, checkpoint_path, eval_result,
             is_the_final_export):
    del eval_result, is_the_final_export
    path = self._export(estimator, export_path, checkpoint_path)
    if self._keep is not None:
      stamps = sorted(int(d) for d in os.listdir(export_path) if d.isdigit())
      for stamp in stamps[:-self._keep]:
        shutil.rmtree(os.path.join(export_path, str(stamp)), ignore_errors=True)
    return path


class FinalExporter(Exporter):
  """Exports once, after the evaluation of the final checkpoint (the global
  step reached ``TrainSpec.max_steps``)."""

  def export(self, estimator, export_path, checkpoint_path, eval_result,
             is_the_final_export):
    del eval_result
    if not is_the_final_export:
      return None
    return self._export(estimator, export_path, checkpoint_path)
