"""Exporters for ``EvalSpec(exporters=...)``, as tf.estimator's.

``train_and_evaluate`` calls ``export(estimator, export_path,
checkpoint_path, eval_result, is_the_final_export)`` after each evaluation,
with ``export_path`` = ``model_dir/export/<name>``; each export is a
timestamped ``export_saved_model`` directory there; ``format`` is passed
on (``'tf_saved_model'``: a TensorFlow SavedModel, for TF Serving).
"""
from __future__ import annotations

import os
import shutil
from typing import Any, Callable, Mapping

__all__ = ["Exporter", "LatestExporter", "FinalExporter", "BestExporter"]


class Exporter:
  """Base of exporters: a ``name`` and ``export(...)`` returning a path."""

  def __init__(self, name: str, serving_input_receiver_fn: Callable,
               assets_extra: Mapping | None = None, as_text: bool = False,
               format: str = "estlab"):  # pylint: disable=redefined-builtin
    if not isinstance(name, str) or not name or os.sep in name:
      raise ValueError(f"{type(self).__name__}(name={name!r}): a non-empty "
                       "directory name without separators, e.g. 'latest'.")
    if not callable(serving_input_receiver_fn):
      raise TypeError(f"{type(self).__name__}(serving_input_receiver_fn="
                      f"{serving_input_receiver_fn!r}): must be callable, e.g. "
                      "estlab.export.build_raw_serving_input_receiver_fn(...).")
    if format not in ("estlab", "tf_saved_model"):
      raise ValueError(f"{type(self).__name__}(format={format!r}): 'estlab' "
                       "(the default) or 'tf_saved_model' (for TF Serving).")
    self._name = name
    self._receiver_fn = serving_input_receiver_fn
    self._assets_extra = assets_extra
    self._as_text = as_text
    self._format = format

  @property
  def name(self) -> str:
    return self._name

  def _export(self, estimator: Any, export_path: str,
              checkpoint_path: str | None) -> str:
    return estimator.export_saved_model(
        export_path, self._receiver_fn, assets_extra=self._assets_extra,
        as_text=self._as_text, checkpoint_path=checkpoint_path,
        format=self._format)

  def export(self, estimator: Any, export_path: str,
             checkpoint_path: str | None, eval_result: dict,
             is_the_final_export: bool) -> str | None:
    raise NotImplementedError


def _check_keep(owner: str, exports_to_keep: Any) -> None:
  if exports_to_keep is not None and (isinstance(exports_to_keep, bool) or
                                      not isinstance(exports_to_keep, int) or
                                      exports_to_keep < 1):
    raise ValueError(f"{owner}(exports_to_keep={exports_to_keep!r}): a "
                     "positive int, or None to keep every export.")


def _keep_newest(export_path: str, keep: int | None) -> None:
  """Deletes all but the newest ``keep`` timestamped exports."""
  if keep is None:
    return
  stamps = sorted(int(d) for d in os.listdir(export_path) if d.isdigit())
  for stamp in stamps[:-keep]:
    shutil.rmtree(os.path.join(export_path, str(stamp)), ignore_errors=True)


class LatestExporter(Exporter):
  """Exports after every evaluation; keeps the newest ``exports_to_keep``
  (None keeps all)."""

  def __init__(self, name: str, serving_input_receiver_fn: Callable,
               assets_extra: Mapping | None = None, as_text: bool = False,
               exports_to_keep: int | None = 5,
               format: str = "estlab"):  # pylint: disable=redefined-builtin
    super().__init__(name, serving_input_receiver_fn, assets_extra, as_text,
                     format)
    _check_keep("LatestExporter", exports_to_keep)
    self._keep = exports_to_keep

  def export(self, estimator, export_path, checkpoint_path, eval_result,
             is_the_final_export):
    del eval_result, is_the_final_export
    path = self._export(estimator, export_path, checkpoint_path)
    _keep_newest(export_path, self._keep)
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


def _loss_smaller(best_eval_result: Mapping, current_eval_result: Mapping) -> bool:
  """tf.estimator's default ``compare_fn``: the current ``loss`` is smaller."""
  for name, result in (("best_eval_result", best_eval_result),
                       ("current_eval_result", current_eval_result)):
    if not result or "loss" not in result:
      raise ValueError(f"{name} has no 'loss' to compare: {result!r}. Pass "
                       "BestExporter(compare_fn=...) for another metric.")
  return float(best_eval_result["loss"]) > float(current_eval_result["loss"])


class BestExporter(Exporter):
  """Exports when an evaluation beats the best so far (``compare_fn(
  best_eval_result=..., current_eval_result=...)``, by default a smaller
  ``loss``); keeps the newest ``exports_to_keep``.

  The best so far starts from the evaluations already in the event files of
  ``event_file_pattern`` (relative to the model_dir; None: none), as
  tf.estimator's, so a restarted run exports only what beats its earlier
  evaluations; those of the step being exported are left out (its own
  evaluation wrote them just before).
  """

  def __init__(self, name: str = "best_exporter",
               serving_input_receiver_fn: Callable | None = None,
               event_file_pattern: str | None = "eval/*.tfevents.*",
               compare_fn: Callable[..., bool] = _loss_smaller,
               assets_extra: Mapping | None = None, as_text: bool = False,
               exports_to_keep: int | None = 5,
               format: str = "estlab"):  # pylint: disable=redefined-builtin
    super().__init__(name, serving_input_receiver_fn, assets_extra, as_text,
                     format)
    if not callable(compare_fn):
      raise TypeError(f"BestExporter(compare_fn={compare_fn!r}): a callable "
                      "(best_eval_result, current_eval_result) -> bool.")
    _check_keep("BestExporter", exports_to_keep)
    self._pattern = event_file_pattern
    self._compare = compare_fn
    self._keep = exports_to_keep
    self._model_dir: str | None = None
    self._best: Mapping | None = None

  def _best_in_events(self, model_dir: str, step: int) -> Mapping | None:
    from estlab import summary  # pylint: disable=g-import-not-at-top
    logdir = os.path.join(model_dir, os.path.dirname(self._pattern))
    if not os.path.isdir(logdir):
      return None
    by_step: dict[int, dict] = {}
    for tag, points in summary.read_scalars(logdir).items():
      for at, value in points:
        if at != step:
          by_step.setdefault(at, {"global_step": at})[tag] = value
    best = None
    for result in by_step.values():
      if best is None or self._compare(best_eval_result=best,
                                       current_eval_result=result):
        best = result
    return best

  def export(self, estimator, export_path, checkpoint_path, eval_result,
             is_the_final_export):
    del is_the_final_export
    if self._pattern and self._model_dir != estimator.model_dir:
      self._model_dir = estimator.model_dir
      self._best = self._best_in_events(self._model_dir,
                                        int(eval_result["global_step"]))
    if self._best is not None and not self._compare(
        best_eval_result=self._best, current_eval_result=eval_result):
      return None
    self._best = dict(eval_result)
    path = self._export(estimator, export_path, checkpoint_path)
    _keep_newest(export_path, self._keep)
    return path
