"""Crossed columns: hashed conjunctions of categorical features, TF's ids.

A cross runs on the host and gives TF's ids (``tf.sparse.cross_hashed``,
see ``_fingerprint``). Each leaf key gives uint64 values: a raw feature's
strings their FarmHash ``Fingerprint64``, its integers themselves (floats cut
to integers, as TF casts them to int64); a categorical column its ids. One
value of each key is folded with ``FingerprintCat64`` starting from
``hash_key`` (None or 0: TF's ``0xDECAFCAFFE``), and the id is the result
``% hash_bucket_size``. As in TF, keys that are sparse there come first:
categorical columns and ragged features (lists per row, as ``VarLenFeature``
parses them), then rectangular (dense) raw features, each group in key
order. A raw feature's ``''`` and -1 are crossed as values (TF crosses them
too); only None and NaN are missing there. A vocabulary column's unknown
value with ``default_value=-1`` is crossed as id -1, as TF's lookup keeps it. Rows with several values per
key get every combination (the cartesian product, the last key varying
fastest), and a row with no value for some key gets none.

Example:
  >>> from estlab import feature_column as fc
  >>> cross = fc.crossed_column(['a', 'b'], hash_bucket_size=1000)
  >>> batch = {'a': np.array(['x', 'x'], object), 'b': np.array(['y', None], object)}
  >>> fc.encode([cross], batch)['a_X_b']['ids'][1].tolist()
  [-1]
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from estlab.feature_column import _base, _fingerprint, _host
from estlab.feature_column.categorical import (HashedCategoricalColumn,
                                               WeightedCategoricalColumn)

__all__ = ["CrossedColumn", "crossed_column", "DEFAULT_HASH_KEY"]

DEFAULT_HASH_KEY = 0xDECAFCAFFE  # TF's SPARSE_FEATURE_CROSS_DEFAULT_HASH_KEY


def _leaves(keys: tuple) -> list:
  """Keys of nested crosses flattened, as TF's ``_collect_leaf_level_keys``."""
  leaves = []
  for key in keys:
    leaves.extend(_leaves(key.keys) if isinstance(key, CrossedColumn) else [key])
  return leaves


@dataclasses.dataclass(frozen=True)
class CrossedColumn(_base.CategoricalColumn):
  """See ``crossed_column``."""

  keys: tuple
  hash_bucket_size: int
  hash_key: int | None = None

  @property
  def name(self) -> str:
    names = [k if isinstance(k, str) else k.name for k in _leaves(self.keys)]
    return "_X_".join(sorted(names))

  @property
  def parents(self) -> list:
    return list(self.keys)

  @property
  def parse_example_spec(self) -> dict:
    config = {}
    for key in self.keys:
      if isinstance(key, str):
        config[key] = _base.VarLenFeature("string")
      else:
        config.update(key.parse_example_spec)
    return config

  @property
  def num_buckets(self) -> int:
    return self.hash_bucket_size

  def _fingerprints(self, key: Any, features: Any, cache: dict
                    ) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(uint64 [B, K], present [B, K], sparse)`` of one leaf key."""
    if not isinstance(key, str):
      ids, present = key._cross_ids(features, cache)  # pylint: disable=protected-access
      return _fingerprint.int_fingerprints(ids), present, True
    cells, ragged = _host.read_cells_and_layout(
        _host.get_feature(features, key, self.name), key)
    label = f"{self.name} (key {key!r})"
    if _host.is_numeric(cells):
      # TF casts a float key to int64 before crossing: 22.5 crosses as 22.
      ints, present = _host.as_int(cells, label, truncate=True,
                                   keep_minus_one=True)
      return _fingerprint.int_fingerprints(ints), present, ragged
    text, present = _host.as_text(cells, label, allow_ints=False,
                                  keep_empty=True)
    prints = np.zeros(text.shape, dtype=np.uint64)
    prints[present] = _fingerprint.fingerprint64(text[present])
    return prints, present, ragged

  def _host_ids(self, features: Any, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    seed = self.hash_key or DEFAULT_HASH_KEY  # TF: hash_key or the default
    leaves = [self._fingerprints(key, features, cache)
              for key in _leaves(self.keys)]
    # TF's sparse_cross takes its sparse inputs first, then the dense ones.
    leaves = [leaf for leaf in leaves if leaf[2]] + [
        leaf for leaf in leaves if not leaf[2]]
    batch = leaves[0][0].shape[0]
    crossed = np.full((batch, 1), seed, dtype=np.uint64)
    present = np.ones((batch, 1), dtype=bool)
    for prints, here, _ in leaves:
      crossed = _fingerprint.fingerprint_cat64(
          crossed[:, :, None], prints[:, None, :]).reshape(batch, -1)
      present = (present[:, :, None] & here[:, None, :]).reshape(batch, -1)
    ids = (crossed % np.uint64(self.hash_bucket_size)).astype(np.int64)
    ids[~present] = -1
    return ids, np.ones(ids.shape, dtype=np.float32)


def crossed_column(keys: Any, hash_bucket_size: int, hash_key: int | None = None
                   ) -> CrossedColumn:
  """Hashed crosses of categorical features, as ``tf.feature_column.crossed_column``.

  Example:
    >>> cross = crossed_column(['country', 'language'], hash_bucket_size=10_000)
    >>> cross.name, cross.num_buckets
    ('country_X_language', 10000)

  Args:
    keys: two or more of: a feature key (string; its values are crossed as
      text) or a categorical column (its ids are crossed), except
      ``categorical_column_with_hash_bucket`` columns (hash before crossing
      collides more: cross the raw key instead) and weighted columns.
    hash_bucket_size: number of ids, >= 1.
    hash_key: seed of the fingerprint combination; None (or 0, as in TF)
      uses TF's default, ``DEFAULT_HASH_KEY``.

  Raises:
    ValueError: fewer than two keys, a key of the wrong kind, or
      hash_bucket_size < 1.
  """
  if not hash_bucket_size or not isinstance(hash_bucket_size, (int, np.integer)) or (
      hash_bucket_size < 1):
    raise ValueError(f"hash_bucket_size must be an int >= 1; crossed_column "
                     f"got {hash_bucket_size!r}.")
  if isinstance(keys, (str, _base.FeatureColumn)) or not keys or len(keys) < 2:
    raise ValueError(f"keys must be a list of two or more keys or categorical "
                     f"columns; got {keys!r}.")
  for key in keys:
    if isinstance(key, HashedCategoricalColumn):
      raise ValueError(
          f"categorical_column_with_hash_bucket is not supported for crossing "
          f"(given {key!r}): hashing before crossing collides more. Cross the "
          f"feature's name instead: crossed_column([..., {key.key!r}, ...]).")
    if isinstance(key, WeightedCategoricalColumn):
      raise ValueError(f"crossed_column does not support weighted columns; "
                       f"given {key!r}. Cross its categorical_column instead.")
    if not isinstance(key, (str, _base.CategoricalColumn)):
      raise ValueError(f"Unsupported key {key!r}: each key must be a feature "
                       "name (string) or a categorical column.")
  if hash_key is not None and not 0 <= int(hash_key) < 2 ** 64:
    raise ValueError(f"hash_key must fit in 64 unsigned bits; got {hash_key!r}.")
  return CrossedColumn(tuple(keys), int(hash_bucket_size),
                       None if hash_key is None else int(hash_key))
