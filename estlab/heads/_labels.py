"""Host-side label helpers shared by the heads: arrays, vocabularies, checks.

These run on numpy before the compiled step (strings and value errors cannot
live inside ``jit``); every error shows the offending values and the fix.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["as_array", "is_strings", "Vocabulary", "class_names", "reshape",
           "check_numeric", "check_range", "bad_values", "add_classes"]

_MISSING = ("", b"", None)


def as_array(labels: Any) -> np.ndarray:
  """Labels as a numpy array; ragged lists become a 1-D object array."""
  if hasattr(labels, "to_numpy"):  # pandas Series / DataFrame
    labels = labels.to_numpy()
  if isinstance(labels, (list, tuple)):
    try:
      labels = np.asarray(labels)
    except ValueError:  # ragged rows: keep one object per row
      rows = np.empty(len(labels), dtype=object)
      for i, row in enumerate(labels):
        rows[i] = row
      return rows
  return np.asarray(labels)


def is_strings(array: np.ndarray) -> bool:
  """Whether ``array`` holds text (str or bytes), including object arrays."""
  if array.dtype.kind in "US":
    return True
  return array.dtype.kind == "O" and any(
      isinstance(v, (str, bytes)) for v in array.ravel()[:1000])


def bad_values(values: np.ndarray, mask: np.ndarray, limit: int = 5) -> list:
  """Up to ``limit`` distinct offending values, as Python scalars."""
  return pd.unique(np.asarray(values)[mask].ravel())[:limit].tolist()


class Vocabulary:
  """A label vocabulary: str or bytes labels -> int ids, vectorised by pandas.

  Args:
    vocabulary: list or tuple of distinct class names (str; bytes are decoded
      as UTF-8, so both ``'cat'`` and ``b'cat'`` labels find the same id).
    owner: the head, named in error messages.
  """

  def __init__(self, vocabulary: Sequence, owner: str):
    if not isinstance(vocabulary, (list, tuple)):
      raise ValueError(f"{owner}: label_vocabulary={vocabulary!r} must be a list "
                       "or a tuple of strings, e.g. label_vocabulary=['no', "
                       "'yes'].")
    names = [v.decode("utf-8") if isinstance(v, bytes) else v for v in vocabulary]
    if not all(isinstance(v, str) for v in names):
      raise ValueError(f"{owner}: label_vocabulary={vocabulary!r} must hold "
                       "strings only; map other labels to strings first.")
    if len(set(names)) != len(names):
      dups = sorted({v for v in names if names.count(v) > 1})
      raise ValueError(f"{owner}: label_vocabulary has duplicates {dups!r}; each "
                       "class name must appear once.")
    self.names = tuple(names)
    self._owner = owner
    self._index = pd.Index(list(names) + [v.encode("utf-8") for v in names],
                           dtype=object)

  def __len__(self) -> int:
    return len(self.names)

  def lookup(self, labels: np.ndarray) -> np.ndarray:
    """Ids (int32) of ``labels``; unknown labels are a ValueError naming them."""
    flat = np.asarray(labels, dtype=object).ravel()
    ids = self._index.get_indexer(flat)
    if (ids < 0).any():
      unknown = bad_values(flat, ids < 0)
      shown = list(self.names[:20]) + (["..."] if len(self.names) > 20 else [])
      raise ValueError(
          f"{self._owner}: labels {unknown!r} are not in label_vocabulary "
          f"{shown!r}. Fix the labels, or add these values to label_vocabulary.")
    return (ids % len(self.names)).astype(np.int32).reshape(np.shape(labels))


def class_names(n_classes: int, vocabulary: Vocabulary | None) -> np.ndarray:
  """Object array of the class names (vocabulary, else ``'0'``, ``'1'``, ...)."""
  names = vocabulary.names if vocabulary else [str(i) for i in range(n_classes)]
  return np.asarray(names, dtype=object)


def reshape(labels: np.ndarray, dim: int, owner: str, what: str) -> np.ndarray:
  """``[B]`` -> ``[B, 1]`` when ``dim == 1``; else the last axis must be ``dim``."""
  if labels.ndim == 0:
    raise ValueError(f"{owner}: labels {labels!r} is a scalar; give one label "
                     f"per example, shape [batch, {dim}].")
  if labels.ndim == 1 and dim == 1:
    return labels[:, None]
  if labels.ndim < 2 or labels.shape[-1] != dim:
    raise ValueError(
        f"{owner}: labels of shape {labels.shape!r} do not fit {what}: expected "
        f"shape [batch, {dim}]" + (" or [batch]" if dim == 1 else "") +
        f" (e.g. {labels.ravel()[:3].tolist()!r}...). Fix the label shape, or "
        f"the head's {what}.")
  return labels


def check_numeric(labels: np.ndarray, owner: str, integer: bool = False
                  ) -> np.ndarray:
  """Numbers (float64) from ``labels``: strings, NaN or fractions are errors."""
  if is_strings(labels):
    raise ValueError(
        f"{owner}: labels are strings (e.g. {labels.ravel()[:3].tolist()!r}) "
        "but the head has no label_vocabulary; pass label_vocabulary=[...] "
        "listing the class names, or give numeric labels.")
  try:
    values = labels.astype(np.float64)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{owner}: labels {labels.ravel()[:3].tolist()!r}... are "
                     "not numbers; give a numeric array.") from e
  finite = np.isfinite(values)
  if not finite.all():
    raise ValueError(f"{owner}: labels hold {bad_values(values, ~finite)!r} at "
                     f"rows {np.argwhere(~finite)[:5, 0].tolist()!r}; drop or "
                     "fill these examples before training.")
  if integer and (values != np.round(values)).any():
    bad = bad_values(values, values != np.round(values))
    raise ValueError(f"{owner}: class labels must be integer ids, got {bad!r}; "
                     "give ints in [0, n_classes) (or strings with "
                     "label_vocabulary).")
  return values


def check_range(values: np.ndarray, low: float, high: float, owner: str,
                fix: str) -> None:
  """ValueError naming the values outside ``[low, high]``."""
  outside = (values < low) | (values > high)
  if outside.any():
    raise ValueError(f"{owner}: labels {bad_values(values, outside)!r} are "
                     f"outside [{low:g}, {high:g}]. {fix}")


def add_classes(predictions: dict, names: np.ndarray) -> dict:
  """Adds ``classes`` / ``all_classes`` (str, object arrays) from the id keys."""
  out = dict(predictions)
  if "class_ids" in out:
    out["classes"] = names[np.asarray(out["class_ids"])]
  if "all_class_ids" in out:
    out["all_classes"] = names[np.asarray(out["all_class_ids"])]
  return out
