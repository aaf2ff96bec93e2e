"""Warm start: initialise a new model's parameters from another checkpoint.

``WarmStartSettings`` and ``VocabInfo`` keep tf.estimator's names and
arguments. Variables are matched by name (parameter paths joined by ``/``,
TF 2.x's names for the premade estimators) with ``re.match`` on
``vars_to_warm_start``; the others keep their fresh initialisation. A
variable whose vocabulary changed (an embedding table, a linear model's
weights, a classifier's output layer) is remapped by token with a
``VocabInfo``, as ``tf.compat.v1.train.warm_start`` does: each token of the
new vocabulary gets the checkpoint's row (column, ``axis=1``) of the same
token; new tokens and the OOV buckets get the backup initializer's values
(zeros by default).

The checkpoint may also be TensorFlow's: a tf.estimator ``model_dir`` (its
``checkpoint`` state file names the latest) or a prefix
``model_dir/model.ckpt-N``, read without TensorFlow
(``estlab.checkpoint._tf_format``). The premade estimators use TF 2.x's
variable names, so a tf.estimator premade's variables load as they are; a
custom model_fn's Flax names match TF's directly (``nn.Dense(3,
name='hidden')`` is ``hidden/kernel``, as ``tf.compat.v1.layers.dense(...,
name='hidden')``) or through ``var_name_to_prev_var_name``. Only the new
model's params are loaded, so TF's optimizer slots and ``global_step`` are
not (as TF's default).

Example:
  >>> ws = estlab.WarmStartSettings('/tmp/old_model', vars_to_warm_start='Dense_0/.*')
  >>> est = estlab.Estimator(model_fn, warm_start_from=ws)  # doctest: +SKIP
"""
from __future__ import annotations

import collections
import collections.abc
import dataclasses
import os
import re
import zlib
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
from flax import traverse_util

from estlab.checkpoint import _legacy_names  # no Orbax: checkpoint is lazy
from estlab.checkpoint import _tf_format
from estlab.feature_column.vocabulary import read_vocabulary_file


def _checkpoint():
  """``estlab.checkpoint``, imported on use (Orbax takes ~0.6 s to import)."""
  from estlab import checkpoint  # pylint: disable=g-import-not-at-top
  return checkpoint


__all__ = ["VocabInfo", "WarmStartNotFoundError", "WarmStartSettings",
           "warm_start"]


class VocabInfo(collections.namedtuple("VocabInfo", [
    "new_vocab", "new_vocab_size", "num_oov_buckets", "old_vocab",
    "old_vocab_size", "backup_initializer", "axis"])):
  """How a variable's vocabulary changed, as ``tf.estimator.VocabInfo``.

  Args:
    new_vocab: the new model's vocabulary file (one token per line, TF's
      format; a list of tokens also works).
    new_vocab_size: how many of its first entries the new model uses.
    num_oov_buckets: the new model's OOV buckets: rows after the vocabulary,
      which get the backup initializer's values (as in TF: not copied).
    old_vocab: the vocabulary file of the checkpoint's variable.
    old_vocab_size: how many of its first entries the checkpoint used; -1
      (default) for all.
    backup_initializer: a JAX initializer ``init(key, shape, dtype)`` (e.g.
      ``jax.nn.initializers.truncated_normal(0.1)``) for new tokens and OOV
      buckets; called once with the variable's whole shape, its values used
      where nothing is copied. None: zeros. (TF's takes a TF initializer.)
    axis: 0 if the vocabulary indexes rows (embeddings, linear weights), 1 if
      it indexes columns (the output layer's kernel of a classifier whose
      ``label_vocabulary`` changed).

  Example:
    >>> info = VocabInfo('new_vocab.txt', new_vocab_size=3, num_oov_buckets=1,
    ...                  old_vocab='old_vocab.txt')
    >>> info.axis
    0
  """

  __slots__ = ()

  def __new__(cls, new_vocab: Any, new_vocab_size: int, num_oov_buckets: int,
              old_vocab: Any, old_vocab_size: int = -1,
              backup_initializer: Callable | None = None, axis: int = 0):
    if axis not in (0, 1):
      raise ValueError(f"The only supported values for the axis argument are "
                       f"0 and 1. Provided axis: {axis!r}.")
    if (not isinstance(num_oov_buckets, (int, np.integer))
        or num_oov_buckets < 0):
      raise ValueError(f"num_oov_buckets={num_oov_buckets!r} must be an int "
                       ">= 0.")
    if backup_initializer is not None and not callable(backup_initializer):
      raise TypeError(f"backup_initializer={backup_initializer!r} must be a "
                      "JAX initializer init(key, shape, dtype), e.g. "
                      "jax.nn.initializers.constant(0.5), or None for zeros.")
    return super().__new__(cls, new_vocab, new_vocab_size, num_oov_buckets,
                           old_vocab, old_vocab_size, backup_initializer, axis)


@dataclasses.dataclass(frozen=True)
class WarmStartSettings:
  """Where and what to warm-start from, as ``tf.estimator.WarmStartSettings``.

  Args:
    ckpt_to_initialize_from: a ``model_dir`` (its latest checkpoint is used)
      or a checkpoint path ``model_dir/<step>``; or a tf.estimator
      ``model_dir`` or TF checkpoint prefix ``model_dir/model.ckpt-N``.
    vars_to_warm_start: a regex (``re.match``) or a list of names/regexes
      selecting the variables to load; ``'.*'`` loads all; None loads only
      the variables of ``var_name_to_vocab_info``.
    var_name_to_vocab_info: maps a variable name to the ``VocabInfo`` that
      remaps its rows (or columns) by token.
    var_name_to_prev_var_name: maps a new variable name to its name in the
      old checkpoint, for renamed layers.

  Each name of the two maps must be a selected variable (else ValueError, as
  TF: a misspelt name would silently warm-start nothing).
  """

  ckpt_to_initialize_from: str
  vars_to_warm_start: Any = ".*"
  var_name_to_vocab_info: Mapping[str, VocabInfo] | None = None
  var_name_to_prev_var_name: Mapping[str, str] | None = None

  @classmethod
  def from_value(cls, value: Any) -> "WarmStartSettings":
    if isinstance(value, WarmStartSettings):
      return value
    if isinstance(value, (str, os.PathLike)):
      return cls(os.fspath(value))
    raise TypeError(f"warm_start_from={value!r} must be a checkpoint path, a "
                    "model_dir or an estlab.WarmStartSettings.")

  def __post_init__(self):
    for name, info in (self.var_name_to_vocab_info or {}).items():
      if not isinstance(info, VocabInfo):
        raise TypeError(f"var_name_to_vocab_info[{name!r}]={info!r} must be "
                        "an estlab.VocabInfo.")


class WarmStartNotFoundError(FileNotFoundError, ValueError):
  """``warm_start_from`` names a path that does not exist (TF raised a
  ``NotFoundError`` from its checkpoint reader)."""


def _resolve(path: str) -> str:
  """The checkpoint to read: a TF prefix, a model_dir's latest, or ``path``."""
  if _tf_format.is_tf_checkpoint(path):
    return _tf_format.TFCheckpointReader(path).prefix
  if not os.path.exists(path):
    raise WarmStartNotFoundError(
        f"warm_start_from={path!r} does not exist (resolved: "
        f"{os.path.abspath(path)!r}): pass the model_dir of a trained model, "
        "one of its checkpoints (model_dir/<step>), or a TensorFlow "
        "checkpoint prefix (model_dir/model.ckpt-<step>).")
  if _checkpoint().latest_checkpoint(path) is not None:
    return _checkpoint().latest_checkpoint(path)
  return path


class _TFValues(collections.abc.Mapping):
  """A TF checkpoint's tensors by name, each read when first asked for (a
  model_dir also holds optimizer slots a warm start never reads)."""

  def __init__(self, path: str):
    self._reader = _tf_format.TFCheckpointReader(path)
    self._names = list(self._reader.variable_shapes())

  def __getitem__(self, name: str) -> np.ndarray:
    if name not in self._reader:
      raise KeyError(name)
    return self._reader.read(name)

  def __iter__(self):
    return iter(self._names)

  def __len__(self) -> int:
    return len(self._names)


def _read_source(path: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
  """``(values by the names to match, values by the checkpoint's names)``
  of an estlab or a TF checkpoint."""
  if _tf_format.is_tf_checkpoint(path):
    values = _TFValues(path)
    return values, values
  raw = _checkpoint().flatten_names(_checkpoint().Checkpointer(
      os.path.dirname(path), max_to_keep=None).restore_params(path=path))
  # A checkpoint written before TF 2.x's names answers to both.
  return {**_legacy_names.upgrade(raw), **raw}, raw


def _tokens(vocab: Any, size: int, what: str) -> list:
  """The first ``size`` tokens (all for -1) of a vocabulary file or list."""
  if isinstance(vocab, (str, os.PathLike)):
    tokens = read_vocabulary_file(vocab, what)
  elif isinstance(vocab, Sequence):
    tokens = [str(t) for t in vocab]
  else:
    raise TypeError(f"{what}={vocab!r} must be a vocabulary file path (one "
                    "token per line) or a list of tokens.")
  if size == -1:
    return tokens
  if not isinstance(size, (int, np.integer)) or not 1 <= size <= len(tokens):
    raise ValueError(f"{what}_size={size!r} must be in [1, {len(tokens)}] "
                     f"(the entries of {what}) or -1 for all.")
  return tokens[:size]


def remap_vocab(old: np.ndarray, new: Any, info: VocabInfo, key: jax.Array,
                name: str = "variable") -> np.ndarray:
  """``new``'s value with the rows (``info.axis``) of ``old`` moved by token.

  Row ``i`` of the result is ``old``'s row of the token ``new_vocab[i]``
  when the old vocabulary has it; the other rows (new tokens, and the
  ``num_oov_buckets`` rows after the vocabulary) are the backup
  initializer's (zeros without one).

  Example:
    >>> info = VocabInfo(['c', 'a', 'd'], 3, 1, ['a', 'b', 'c'])
    >>> remap_vocab(np.array([[1.], [2.], [3.], [9.]]), np.zeros((4, 1)),
    ...             info, jax.random.PRNGKey(0))[:, 0].tolist()
    [3.0, 1.0, 0.0, 0.0]
  """
  axis = info.axis
  shape, dtype = tuple(np.shape(new)), np.dtype(new.dtype)
  new_tokens = _tokens(info.new_vocab, info.new_vocab_size, "new_vocab")
  old_tokens = _tokens(info.old_vocab, info.old_vocab_size, "old_vocab")
  if len(shape) != 2 and not (len(shape) == 1 and axis == 0):
    raise ValueError(f"{name!r} has shape {shape!r}: a VocabInfo remaps a 2-D "
                     "variable (or a 1-D one with axis=0).")
  rows = len(new_tokens) + info.num_oov_buckets
  if shape[axis] != rows:
    raise ValueError(
        f"{name!r} has {shape[axis]} entries on axis {axis} (shape {shape!r}),"
        f" but its VocabInfo gives new_vocab_size + num_oov_buckets = "
        f"{len(new_tokens)} + {info.num_oov_buckets} = {rows}. Pass the "
        "sizes of the new model's column.")
  old = np.asarray(old)
  other = lambda s: tuple(d for i, d in enumerate(s) if i != axis)
  if old.ndim != len(shape) or other(old.shape) != other(shape) or (
      old.shape[axis] < len(old_tokens)):
    raise ValueError(
        f"Cannot remap {name!r}: the checkpoint's value has shape "
        f"{old.shape!r}, which does not fit the new shape {shape!r} on the "
        f"axes other than {axis}, or has fewer than the {len(old_tokens)} "
        "entries of old_vocab on that axis. Check old_vocab/old_vocab_size "
        "and the variable's name.")
  if info.backup_initializer is None:
    out = np.zeros(shape, dtype)
  else:
    try:
      out = np.array(info.backup_initializer(key, shape, dtype), dtype)
    except TypeError as e:
      raise TypeError(
          f"backup_initializer {info.backup_initializer!r} of {name!r} failed "
          f"({e}): it must be a JAX initializer init(key, shape, dtype), e.g. "
          "jax.nn.initializers.constant(0.5).") from None
  index = {}
  for i, token in enumerate(old_tokens):
    index.setdefault(token, i)
  source = np.array([index.get(t, -1) for t in new_tokens], np.int64)
  found = np.flatnonzero(source >= 0)
  moved = np.moveaxis(out, axis, 0)  # a view: writes go to ``out``
  moved[found] = np.moveaxis(old, axis, 0)[source[found]].astype(dtype)
  return out


def warm_start(params: Any, settings: WarmStartSettings,
               key: jax.Array | None = None) -> Any:
  """Returns ``params`` with the selected variables loaded from the checkpoint.

  Args:
    params: the new model's fresh params (nested dicts).
    settings: what to load, from where.
    key: PRNG key for the ``VocabInfo`` backup initializers (default
      ``PRNGKey(0)``), folded with each variable's name.

  Raises:
    WarmStartNotFoundError: (a FileNotFoundError and a ValueError) the
      checkpoint's path does not exist.
    ValueError: the checkpoint is none, a selected variable is missing
      from it, its shape differs, or a name in ``var_name_to_vocab_info`` or
      ``var_name_to_prev_var_name`` is not a selected variable.
  """
  path = _resolve(settings.ckpt_to_initialize_from)
  old, raw = _read_source(path)
  patterns = settings.vars_to_warm_start
  only_vocab = patterns is None
  patterns = [".*"] if only_vocab else (
      [patterns] if isinstance(patterns, str) else list(patterns))
  renames = dict(settings.var_name_to_prev_var_name or {})
  vocabs = dict(settings.var_name_to_vocab_info or {})
  key = jax.random.PRNGKey(0) if key is None else key
  flat = traverse_util.flatten_dict(params, sep="/")
  selected = [n for n in flat if any(re.match(p, n) for p in patterns)]
  unused = sorted((set(renames) | set(vocabs)) - set(selected))
  if unused:
    raise ValueError(
        f"var_name_to_vocab_info / var_name_to_prev_var_name name {unused!r}, "
        f"which are not variables selected by vars_to_warm_start="
        f"{settings.vars_to_warm_start!r}. Perhaps they are misspelt; the "
        f"selected variables are {selected!r}.")
  missing, mismatched = [], []
  for name in selected:
    if only_vocab and name not in vocabs:
      continue
    value = flat[name]
    prev = renames.get(name, name)
    if prev not in old:
      missing.append(prev)
      continue
    source = old[prev]
    if name in vocabs:
      loaded = remap_vocab(source, value, vocabs[name], jax.random.fold_in(
          key, zlib.crc32(name.encode())), name)
    elif tuple(np.shape(source)) != tuple(np.shape(value)):
      mismatched.append(f"{name}: new {tuple(np.shape(value))} vs checkpoint "
                        f"{tuple(np.shape(source))}")
      continue
    else:
      loaded = np.asarray(source, dtype=value.dtype)
    flat[name] = jax.device_put(loaded, getattr(value, "sharding", None))
  if missing or mismatched:
    raise ValueError(
        f"Cannot warm-start from {path!r}: missing in the checkpoint "
        f"{missing!r}; shape mismatches {mismatched!r}. Narrow "
        f"vars_to_warm_start (now {settings.vars_to_warm_start!r}), map names "
        "with var_name_to_prev_var_name, or remap a changed vocabulary with "
        f"var_name_to_vocab_info. Checkpoint variables: {sorted(raw)!r}.")
  return traverse_util.unflatten_dict(flat, sep="/")
