"""``add_metrics``: more evaluation metrics on an existing estimator, as
``tf.estimator.add_metrics``."""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

from estlab.spec import ModeKeys, call_model_fn, model_fn_args

__all__ = ["add_metrics"]

_METRIC_FN_ARGS = ("labels", "predictions", "features", "config")


def add_metrics(estimator: Any, metric_fn: Callable) -> Any:
  """A copy of ``estimator`` whose evaluation also reports ``metric_fn``'s.

  ``metric_fn`` takes any of ``labels``, ``predictions``, ``features``
  (as the model_fn sees them: a premade estimator's are encoded ids) and
  ``config``, and returns ``{name: metric}`` (``estlab.metrics``), computed
  inside the compiled eval step; a name the model already reports is
  replaced. The copy shares the model_dir (it evaluates the same
  checkpoints) but nothing compiled. Its short last eval batch runs as it
  is, not padded, so the added metrics count real rows only.

  Example:
    >>> est = estlab.add_metrics(est, lambda labels, predictions: {
    ...     "pr_auc": estlab.metrics.auc(labels, predictions["logistic"],
    ...                                  curve="PR")})  # doctest: +SKIP
  """
  if not callable(metric_fn):
    raise TypeError(f"add_metrics: metric_fn={metric_fn!r} must be callable.")
  args = tuple(inspect.signature(metric_fn).parameters)
  wrong = [a for a in args if a not in _METRIC_FN_ARGS]
  if wrong:
    raise ValueError(f"add_metrics: metric_fn takes {list(args)!r}; it may take "
                     f"only {list(_METRIC_FN_ARGS)!r} (wrong: {wrong!r}).")
  original = estimator.model_fn
  original_args = model_fn_args(original)

  def model_fn(features, labels, mode, params, config):
    spec = call_model_fn(original, original_args, features, labels, mode,
                         params, config)
    if mode != ModeKeys.EVAL:
      return spec
    available = dict(labels=labels, predictions=spec.predictions,
                     features=features, config=config)
    added = metric_fn(**{name: available[name] for name in args})
    if not isinstance(added, dict):
      raise TypeError(f"add_metrics: metric_fn must return a dict of metrics, "
                      f"got {type(added).__name__}: {added!r:.200}.")
    return spec._replace(
        eval_metric_ops={**dict(spec.eval_metric_ops or {}), **added})

  model_fn.__name__ = f"{getattr(original, '__name__', 'model_fn')}_with_metrics"
  copy = estimator._with_model_fn(model_fn)  # pylint: disable=protected-access
  # (the metric_fn sees every row: no padded rows that it would count)
  copy._host = dataclasses.replace(  # pylint: disable=protected-access
      copy._host, pads_eval_batches=False)  # pylint: disable=protected-access
  return copy
