"""Variable names estlab wrote before TF 2.x's, mapped when a checkpoint loads.

Until the premade DNN took TF 2.x's checkpoint names, it wrote::

  dnn/input_from_feature_columns/<col>_embedding/embedding_weights
  dnn/batchnorm_<i>/scale, dnn/batchnorm_<i>/bias        (params)
  dnn/batchnorm_<i>/mean, dnn/batchnorm_<i>/var          (batch_stats)

where TF (and estlab now) writes::

  dnn/input_from_feature_columns/input_layer/<col>_embedding/embedding_weights
  dnn/hiddenlayer_<i>/batchnorm_<i>/gamma, .../beta
  dnn/hiddenlayer_<i>/batchnorm_<i>/moving_mean, .../moving_variance

A checkpoint with the old names keeps restoring: ``restore_checked`` asks
``legacy_renames`` whether the model's names, written the old way, are exactly
the checkpoint's, and if so restores every item (params, the optimizer's
slots, batch_stats) under the old names and renames them back
(``rename_tree``). ``upgrade`` renames a checkpoint's old names to the new
ones for reading without a model (``get_variable_names``, warm start).
Only names under a ``dnn`` scope are touched.

Example:
  >>> to_old('dnn/hiddenlayer_0/batchnorm_0/gamma')
  'dnn/batchnorm_0/scale'
  >>> to_new('dnn/input_from_feature_columns/c_embedding/embedding_weights')
  'dnn/input_from_feature_columns/input_layer/c_embedding/embedding_weights'
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Callable

from flax import traverse_util

__all__ = ["legacy_renames", "rename_tree", "to_new", "to_old", "upgrade"]

_BATCH_NORM = {"gamma": "scale", "beta": "bias", "moving_mean": "mean",
               "moving_variance": "var"}
_BATCH_NORM_BACK = {old: new for new, old in _BATCH_NORM.items()}

_NEW_INPUT = re.compile(r"(^|/)dnn/input_from_feature_columns/input_layer/")
_NEW_BATCH_NORM = re.compile(
    r"(^|/)dnn/hiddenlayer_(\d+)/batchnorm_\2/"
    r"(gamma|beta|moving_mean|moving_variance)$")
_OLD_INPUT = re.compile(r"(^|/)dnn/input_from_feature_columns/(?!input_layer/)")
_OLD_BATCH_NORM = re.compile(r"(^|/)dnn/batchnorm_(\d+)/(scale|bias|mean|var)$")


def to_old(name: str) -> str:
  """A variable's name as estlab wrote it before TF 2.x's names."""
  name = _NEW_INPUT.sub(r"\1dnn/input_from_feature_columns/", name)
  return _NEW_BATCH_NORM.sub(
      lambda m: f"{m[1]}dnn/batchnorm_{m[2]}/{_BATCH_NORM[m[3]]}", name)


def to_new(name: str) -> str:
  """An old name (see the module docstring) as TF 2.x writes it."""
  name = _OLD_INPUT.sub(r"\1dnn/input_from_feature_columns/input_layer/", name)
  return _OLD_BATCH_NORM.sub(
      lambda m: (f"{m[1]}dnn/hiddenlayer_{m[2]}/batchnorm_{m[2]}/"
                 f"{_BATCH_NORM_BACK[m[3]]}"), name)


def upgrade(values: Mapping[str, Any]) -> dict[str, Any]:
  """``values`` keyed by TF 2.x's names where a key is an old one."""
  return {to_new(name): value for name, value in values.items()}


def legacy_renames(saved: Mapping[str, Any], wanted: Mapping[str, Any]
                   ) -> bool:
  """Whether a checkpoint holding ``saved`` names was written with the old
  names of a model whose variables are ``wanted`` (names -> anything)."""
  old = {to_old(name) for name in wanted}
  return set(saved) != set(wanted) and old != set(wanted) and old == set(saved)


def rename_tree(tree: Any, rename: Callable[[str], str]) -> Any:
  """``tree`` with every nested-dict path renamed by ``rename``.

  Paths are relative to the outermost dict of each dict subtree (inside
  optax NamedTuples and tuples too), so an optimizer slot that mirrors the
  params (``ScaleByRssState(sum_of_squares={'dnn': ...})``) is renamed as
  the params are. A path ``rename`` leaves alone keeps its keys as they are.
  """
  if isinstance(tree, Mapping):
    flat = traverse_util.flatten_dict(dict(tree), keep_empty_nodes=True)
    out = {}
    for path, leaf in flat.items():
      joined = "/".join(str(k) for k in path)
      new = rename(joined)
      key = path if new == joined else tuple(new.split("/"))
      out[key] = leaf if leaf is traverse_util.empty_node else rename_tree(
          leaf, rename)
    return traverse_util.unflatten_dict(out)
  if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # NamedTuple
    return type(tree)(*(rename_tree(x, rename) for x in tree))
  if isinstance(tree, (tuple, list)):
    return type(tree)(rename_tree(x, rename) for x in tree)
  return tree
