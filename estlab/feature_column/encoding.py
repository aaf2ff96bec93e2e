"""``encode``: a host batch of raw features to the numbers the device reads.

Runs on the host, per batch, before the compiled step (premade estimators
call it in their ``HostStep``, ``estlab._engine.host_step``). Strings never leave the host:
the result holds only numeric numpy arrays, keyed by column name:

* ``out[numeric.key]``: float32 ``[B, prod(shape)]``, NaN replaced by
  ``default_value``, for each numeric column used directly or as the source
  of a bucketized column (``normalizer_fn`` is applied later, on the device);
* ``out[categorical.name]``: ``{'ids': int32 [B, K]}`` for each categorical
  column the device reads (used directly, or wrapped by an embedding, shared
  embedding or indicator column; bucketized and crossed columns included),
  plus ``'weights': float32 [B, K]`` for a weighted column (an unweighted
  column's weights would all be 1: they are left out, a third less to copy
  per row). ``ids == -1`` (weight 0) is "no value"; each row's values come
  first. K is 1 for single-valued features, else the most values in a row,
  rounded up to a power of two (at most the input width) so the compiled
  step sees few shapes;
* ``out[sequence_column.name]``: ``{'ids' | 'values', 'sequence_length'}``
  for each sequence column (``sequence``), padded to a power-of-two length.

Each column is computed once per batch, however many columns reach it.

Example:
  >>> import numpy as np
  >>> from estlab import feature_column as fc
  >>> cols = [fc.numeric_column('age'), fc.indicator_column(
  ...     fc.categorical_column_with_vocabulary_list('city', ['a', 'b']))]
  >>> out = fc.encode(cols, {'age': np.array([31., 42.]),
  ...                        'city': np.array(['b', ''], object)})
  >>> out['age'].tolist(), out['city']['ids'].tolist()
  ([[31.0], [42.0]], [[1], [-1]])
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np

from estlab.feature_column import _base, _host, sequence
from estlab.feature_column.categorical import WeightedCategoricalColumn
from estlab.feature_column.dense import (EmbeddingColumn, IndicatorColumn,
                                         SharedEmbeddingColumn)
from estlab.feature_column.numeric import BucketizedColumn, NumericColumn

__all__ = ["encode", "make_parse_example_spec"]

_WRAPPERS = (EmbeddingColumn, SharedEmbeddingColumn, IndicatorColumn)


def device_inputs(column: _base.FeatureColumn) -> Iterator[_base.FeatureColumn]:
  """The numeric and categorical columns whose encodings ``column`` reads."""
  if isinstance(column, _WRAPPERS):
    yield from device_inputs(column.categorical_column)
    return
  if isinstance(column, BucketizedColumn):
    yield column.source_column
  yield column


def _same_encoding(a: _base.FeatureColumn, b: _base.FeatureColumn) -> bool:
  """Whether two columns of one name encode alike (normalizer_fn runs later)."""
  if a is b:
    return True
  if isinstance(a, NumericColumn) and isinstance(b, NumericColumn):
    return a.spec() == b.spec()
  return a == b


def encode(feature_columns: Any, features: Mapping[str, Any]) -> dict:
  """Encodes one batch of raw features for ``DenseFeatures`` / ``LinearModel``.

  See the module docstring for the returned format.

  Args:
    feature_columns: the model's columns (as given to ``DenseFeatures`` or
      ``LinearModel``; for a combined model, both lists together). Columns
      of one name must encode alike: they may differ in ``normalizer_fn``
      (applied on the device), not in their host-side settings.
    features: a dict of arrays with one row per example: numbers, strings
      as object arrays (missing: ``''``, None, NaN), 2-D arrays or
      list-valued cells for several values per example.

  Returns:
    A dict of numeric numpy arrays (see above); features no column reads are
    left out.

  Raises:
    MissingFeatureError: (a KeyError and ValueError) a feature is not in
      the batch.
    TypeError: a feature has the wrong type for its column (text for a
      numeric column, numbers for a text column, ...).
    ValueError: a value a column cannot take (NaN without default_value, an
      identity value out of range, ...).
  """
  if not isinstance(features, Mapping):
    raise TypeError(f"features must be a dict of arrays, got "
                    f"{type(features).__name__}: {features!r:.200}.")
  out: dict[str, Any] = {}
  owners: dict[str, _base.FeatureColumn] = {}
  cache: dict = {}
  for column in _base.normalize_feature_columns(feature_columns,
                                               unique_names=False):
    for needed in device_inputs(column):
      name = needed.name
      if name in owners:
        if not _same_encoding(owners[name], needed):
          raise ValueError(
              f"Two different columns are named {name!r}: {owners[name]!r} and "
              f"{needed!r}. Their encodings would collide; rename the feature "
              "of one of them.")
        continue
      owners[name] = needed
      if isinstance(needed, sequence.SequenceColumn):
        out[name] = needed._host_sequence(features, cache)  # pylint: disable=protected-access
      elif isinstance(needed, NumericColumn):
        out[name] = needed._host_values(features, cache)  # pylint: disable=protected-access
      else:
        ids, weights = _base.cached_ids(needed, features, cache)
        ids, weights = _host.compact(ids, weights)
        out[name] = ({"ids": ids, "weights": weights}
                     if isinstance(needed, WeightedCategoricalColumn)
                     else {"ids": ids})
  _check_sequence_lengths(owners, out)
  return out


def _check_sequence_lengths(owners: Mapping, out: Mapping) -> None:
  """All sequence columns of a batch have the same length per example, as
  TF's ``SequenceFeatures`` requires (an RNN reads them step by step)."""
  names = [n for n, c in owners.items()
           if isinstance(c, sequence.SequenceColumn)]
  for name in names[1:]:
    first, this = (out[n][sequence.SEQUENCE_LENGTH] for n in (names[0], name))
    if (first != this).any():
      row = int(np.argmax(first != this))
      raise _base.FeatureValueError(
          f"Sequence columns {names[0]!r} and {name!r} have different lengths "
          f"in row {row} of the batch ({int(first[row])} and {int(this[row])})"
          "; every sequence feature of an example needs one value per step. "
          "Pad the shorter one with a value (e.g. 0) where it has none.")


def make_parse_example_spec(feature_columns: Any) -> dict:
  """``{feature key: FixedLenFeature | VarLenFeature}`` for all the columns.

  TF's ``tf.feature_column.make_parse_example_spec``: what an input pipeline
  must provide for these columns.

  Example:
    >>> from estlab import feature_column as fc
    >>> fc.make_parse_example_spec([fc.numeric_column('age')])
    {'age': FixedLenFeature(shape=(1,), dtype='float32', default_value=None)}

  Raises:
    ValueError: an item is not a feature column, or two columns need
      different specs for the same key.
  """
  if isinstance(feature_columns, _base.FeatureColumn):
    feature_columns = [feature_columns]
  result: dict = {}
  for column in feature_columns:
    if not isinstance(column, _base.FeatureColumn):
      raise ValueError(f"All feature_columns must be feature columns; given "
                       f"{column!r} ({type(column).__name__}).")
    for key, value in column.parse_example_spec.items():
      if key in result and result[key] != value:
        raise ValueError(f"feature_columns contain different parse_spec for key "
                         f"{key!r}: {value!r} and {result[key]!r}.")
      result[key] = value
  return result

