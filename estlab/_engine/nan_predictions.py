"""A warning when predictions come out NaN, naming the examples and the features.

An ``inf`` feature gives NaN where it meets a zero weight (``0 * inf``) or
another ``inf`` (``inf - inf``, a DNN's layers), as in TF, which said
nothing. ``NanPredictions.check`` looks at each predicted batch on the host
(a pass over the floats; the features are fetched only when some
prediction is NaN) and logs one warning per ``predict`` call naming the
examples, the predictions and the features with non-finite values there.

Example:
  >>> check = NanPredictions()
  >>> check({'p': np.array([0.5, np.nan])}, {'x': np.array([1.0, np.inf])})
  >>> check.warned
  True
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

import jax
import numpy as np

from estlab.data._packing import unpacked

__all__ = ["NanPredictions"]

logger = logging.getLogger("estlab")


class NanPredictions:
  """Checks a ``predict`` call's batches in turn; warns once."""

  def __init__(self):
    self.warned = False
    self._examples = 0  # examples before the batch checked next

  def __call__(self, predictions: Any, features: Any,
               to_host: Callable[[Any], Any] = lambda tree: tree) -> None:
    """``predictions``: one batch's, on the host (its real rows);
    ``features``: that batch's input (``to_host`` fetches it)."""
    named = _named(predictions)
    rows = next((len(a) for a in named.values() if np.ndim(a)), 0)
    first, self._examples = self._examples, self._examples + rows
    if self.warned or not rows:
      return
    nan = np.zeros(rows, bool)
    keys = []
    for key, value in named.items():
      if np.ndim(value) and len(value) == rows and _floating(value):
        bad = np.isnan(value).reshape(rows, -1).any(axis=1)
        if bad.any():
          nan |= bad
          keys.append(key)
    if not nan.any():
      return
    self.warned = True
    inputs = _named(unpacked(*_as_pair(to_host(features)))[0])
    causes = []
    for key, value in inputs.items():
      if not (np.ndim(value) and len(value) >= rows and _floating(value)):
        continue
      odd = ~np.isfinite(np.asarray(value)[:rows].reshape(rows, -1)).all(axis=1)
      hit = np.flatnonzero(odd & nan)
      if hit.size:
        sample = np.asarray(value)[hit[0]].ravel()
        causes.append(f"{key!r} in examples {_list(first + hit)} (e.g. "
                      f"{float(sample[~np.isfinite(sample)][0])!r})")
    where = (f"their features hold non-finite values: {'; '.join(causes)}"
             if causes else "their features are all finite (the model made "
             "the NaN: check its parameters)")
    logger.warning(
        "predict: examples %s gave NaN predictions %s; %s. An inf times a "
        "zero weight or inf - inf is NaN (as in TF). Replace or clip such "
        "values before predicting (np.nan_to_num, np.clip, or a "
        "numeric_column normalizer_fn). Warned once per predict call.",
        _list(first + np.flatnonzero(nan)), keys, where)


def _as_pair(features: Any) -> tuple[Any, Any]:
  return features, None


def _named(tree: Any) -> dict[str, Any]:
  """Leaves of a dict (``{'key': array}``) or one array (``{'': array}``)."""
  if isinstance(tree, Mapping):
    return {str(k): v for k, v in tree.items()}
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {jax.tree_util.keystr(path) or "predictions": leaf
          for path, leaf in leaves}


def _floating(value: Any) -> bool:
  return np.issubdtype(np.asarray(value).dtype, np.floating)


def _list(indices: np.ndarray, most: int = 10) -> str:
  shown = [int(i) for i in indices[:most]]
  more = f" and {len(indices) - most} more" if len(indices) > most else ""
  return f"{shown}{more}"
