"""The export's host step as TensorFlow ops, for a TF SavedModel's signatures.

estlab's own export runs its host step in Python from JSON (``_parsing``:
parse the request, encode it with the feature columns). In a SavedModel for
TF Serving nothing runs but the graph, so ``TFHostStep`` rebuilds that step
with TF ops, column by column, and gives the features the ``jax.export``ed
model reads (``fc.encode``'s layout), with the ids estlab's columns give
(TF's own, FarmHash included):

* numeric columns: NaN replaced by ``default_value``;
* bucketized and identity columns;
* vocabulary columns (list or file): a ``tf.lookup.StaticHashTable``, or
  with ``num_oov_buckets`` TF's ``StaticVocabularyTable``
  (``vocabulary_size + Fingerprint64(value) % num_oov_buckets``, integers as
  their decimal strings);
* hash-bucket columns: ``tf.strings.to_hash_bucket_fast`` (integers through
  ``tf.strings.as_string`` first);
* crossed columns (of raw features, bucketized, identity, vocabulary and
  nested crossed columns): ``tf.sparse.cross_hashed`` with the column's
  ``hash_key`` (None or 0: TF's default), categorical ids and ``VarLen``
  features as SparseTensors, fixed-length features dense, as TF crosses
  them (``''`` and -1 in a fixed-length feature are values);
* weighted columns: the ids of their column with the weight feature's values
  (zero weights drop their id; an id without a weight is an error);

under indicator, embedding and shared embedding columns. Sequence columns
(and anything else) are an ``UnconvertibleColumnError`` (a ``ValueError``)
naming the column and the alternative: estlab's own export and ``estlab
serve``.

Inputs are tensors, batch first: a ``FixedLenFeature`` (or a raw receiver's
array) dense ``[batch, *shape]``; a ``VarLenFeature`` a ``SparseTensor``
``[batch, None]``, as ``tf.io.parse_example`` gives it, or dense with its
rows padded by ``''`` (strings) or ``-1`` (numbers), padding that is then no
value. A parsing receiver's signatures take serialized ``tf.train.Example``s,
as TF's export does: ``parse_examples`` parses them with the export's
feature spec (``example_spec``).
(Not the estimator's ``estlab._engine.host_step.HostStep``, which runs this
step in Python.)

Needs TensorFlow: imported by ``estlab.export._tf_saved_model`` only, on the
``format='tf_saved_model'`` path.

Example:
  >>> import tensorflow as tf                               # doctest: +SKIP
  >>> inputs = {'x': {'kind': 'fixed', 'dtype': 'float32', 'shape': [None, 1]}}
  >>> host = TFHostStep(tf, inputs, {
  ...     'kind': 'feature_columns', 'feature_columns':
  ...     [fc.numeric_column('x', default_value=0.).spec()]})  # doctest: +SKIP
  >>> host({'x': tf.constant([[float('nan')]])})['x'].numpy()  # doctest: +SKIP
  array([[0.]], dtype=float32)
"""
from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple

import numpy as np

from estlab import feature_column as fc
from estlab.export import _parsing
from estlab.feature_column import _base, encoding
from estlab.feature_column.categorical import (HashedCategoricalColumn,
                                               IdentityCategoricalColumn,
                                               WeightedCategoricalColumn)
from estlab.feature_column.crossed import DEFAULT_HASH_KEY, CrossedColumn
from estlab.feature_column.numeric import BucketizedColumn, NumericColumn
from estlab.feature_column.sequence import SequenceColumn
from estlab.feature_column.vocabulary import (VocabularyFileCategoricalColumn,
                                              VocabularyListCategoricalColumn)

__all__ = ["TFHostStep", "UnconvertibleColumnError", "input_specs",
           "example_spec", "parse_examples"]

_VOCABULARY = (VocabularyListCategoricalColumn, VocabularyFileCategoricalColumn)
_CONVERTED = (NumericColumn, BucketizedColumn, IdentityCategoricalColumn,
              HashedCategoricalColumn, CrossedColumn, WeightedCategoricalColumn,
              *_VOCABULARY)


class UnconvertibleColumnError(ValueError):
  """A feature column whose host step has no TF ops in the SavedModel export."""


def _refuse(column: Any, why: str) -> None:
  raise UnconvertibleColumnError(
      f"Feature column {column.name!r} ({type(column).__name__}) {why}, so "
      "export_saved_model(format='tf_saved_model') cannot put its host step "
      "into the SavedModel (it converts numeric, bucketized, identity, "
      "vocabulary, hash-bucket, crossed and weighted columns). Export with "
      "format='estlab' (the default) and serve it with `estlab serve`, or use"
      " one of those columns.")


def _leaves(column: CrossedColumn) -> list:
  """The crossed keys, nested crosses flattened (TF's leaf-level keys)."""
  leaves = []
  for key in column.keys:
    leaves.extend(_leaves(key) if isinstance(key, CrossedColumn) else [key])
  return leaves


def _parts(column: Any) -> list:
  """The categorical columns ``column``'s ids are made of, itself first."""
  if isinstance(column, CrossedColumn):
    return [column] + [p for key in _leaves(column) if not isinstance(key, str)
                       for p in _parts(key)]
  if isinstance(column, WeightedCategoricalColumn):
    return [column] + _parts(column.categorical_column)
  return [column]


def _check(column: Any) -> None:
  for part in _parts(column):
    if isinstance(part, SequenceColumn):
      _refuse(part, "is a sequence column, whose steps are padded in Python "
              "on the host with no TF ops here")
    if not isinstance(part, _CONVERTED):
      _refuse(part, "has no TF ops here")


def input_specs(tf: Any, inputs: Mapping[str, dict]) -> dict:
  """``{name: tf.TensorSpec}`` of the signature inputs (see module docstring)."""
  specs = {}
  for name, desc in inputs.items():
    shape = list(desc["shape"])
    if desc["kind"] == "varlen":
      shape = [shape[0], None]
    specs[name] = tf.TensorSpec(shape, tf.as_dtype(desc["dtype"]), name=name)
  return specs


def _parsed_dtype(tf: Any, dtype: str) -> Any:
  """The dtype ``tf.io.parse_example`` gives: float32, int64 or string."""
  if dtype == "string":
    return tf.string
  return tf.float32 if np.dtype(dtype).kind in "fc" else tf.int64


def example_spec(tf: Any, inputs: Mapping[str, dict]) -> dict:
  """``tf.io.parse_example``'s spec of a parsing receiver's inputs.

  A ``fixed`` input is a ``tf.io.FixedLenFeature`` of its shape (less the
  batch) and ``default_value`` (none: the feature is required); a ``varlen``
  input a ``tf.io.VarLenFeature``. Floats parse as float32, integers as
  int64 (``parse_examples`` casts them to the input's dtype).
  """
  spec = {}
  for name, desc in inputs.items():
    dtype = _parsed_dtype(tf, desc["dtype"])
    if desc["kind"] == "varlen":
      spec[name] = tf.io.VarLenFeature(dtype)
      continue
    shape = [int(d) for d in desc["shape"][1:]]
    default = desc.get("default_value")
    if default is not None:
      default = np.asarray(default, dtype=object if dtype == tf.string else
                           dtype.as_numpy_dtype).reshape(shape).tolist()
    spec[name] = tf.io.FixedLenFeature(shape, dtype, default_value=default)
  return spec


def parse_examples(tf: Any, inputs: Mapping[str, dict], serialized: Any
                   ) -> dict:
  """The inputs ``TFHostStep`` takes, from serialized Examples.

  Args:
    tf: the ``tensorflow`` module.
    inputs: a parsing receiver's inputs (``estlab_export.json``'s).
    serialized: a ``[batch]`` string tensor of serialized
      ``tf.train.Example``s.

  Returns:
    ``{name: tensor}``: a ``FixedLenFeature`` dense ``[batch, *shape]``, a
    ``VarLenFeature`` a ``[batch, None]`` SparseTensor (its values only: an
    Example's ``''`` stays a value), cast to the input's dtype.
  """
  parsed = tf.io.parse_example(serialized, example_spec(tf, inputs))
  out = {}
  for name, desc in inputs.items():
    value = parsed[name]
    if desc["dtype"] != "string":
      value = tf.cast(value, tf.as_dtype(desc["dtype"]))
    out[name] = value
  return out


class _Read(NamedTuple):
  """One input as ``[batch, k]`` cells (``_host.Cells``'s TF counterpart).

  Attributes:
    values: the values; padding where ``filled`` is False.
    filled: bool, False only in a VarLen feature's padding.
    sparse: whether TF holds the feature as a SparseTensor (a VarLen one).
  """

  values: Any
  filled: Any
  sparse: bool


class TFHostStep:
  """``host(features) -> model features``: the export's transform in TF ops.

  Args:
    tf: the ``tensorflow`` module (imported by the caller).
    inputs: the receiver's inputs (``estlab_export.json``'s).
    transform: the export's ``transform`` entry.

  Attributes:
    tables: the vocabulary lookup tables; the caller tracks them on its
      ``tf.Module`` so the SavedModel holds them.

  Raises:
    UnconvertibleColumnError: a column has no TF ops here.
  """

  def __init__(self, tf: Any, inputs: Mapping[str, dict], transform: Mapping):
    self._tf = tf
    self._inputs = dict(inputs)
    self._kind = transform["kind"]
    self._key = transform.get("key")
    self._needed: list = []
    self.tables: list = []
    self._table_of: dict = {}
    if self._kind == "feature_columns":
      names: set = set()
      for column in _base.normalize_feature_columns(
          [fc.from_spec(s) for s in transform["feature_columns"]],
          unique_names=False):
        for needed in encoding.device_inputs(column):
          _check(needed)
          if needed.name not in names:
            names.add(needed.name)
            self._needed.append(needed)
      for needed in self._needed:
        for part in _parts(needed):
          if isinstance(part, _VOCABULARY) and id(part) not in self._table_of:
            self._table_of[id(part)] = len(self.tables)
            self.tables.append(self._table(part))

  def _table(self, column: Any) -> Any:
    """TF's lookup for a vocabulary column (``index_table_from_tensor``'s)."""
    tf = self._tf
    string = column.dtype == "string"
    keys = np.asarray(column._vocabulary, dtype=object if string else np.int64)  # pylint: disable=protected-access
    initializer = tf.lookup.KeyValueTensorInitializer(
        tf.constant(keys, tf.string if string else tf.int64),
        tf.range(len(keys), dtype=tf.int64))
    if column.num_oov_buckets:
      return tf.lookup.StaticVocabularyTable(initializer,
                                             column.num_oov_buckets)
    return tf.lookup.StaticHashTable(
        initializer, default_value=np.int64(column.default_value))

  def __call__(self, features: Mapping[str, Any]) -> dict:
    tf = self._tf
    if self._kind == "none":  # a raw receiver's inputs, 'column/ids' nested
      return _parsing.unflatten(features)
    first = next(iter(features.values()))
    batch = (tf.cast(first.dense_shape[0], tf.int32)
             if isinstance(first, tf.SparseTensor) else tf.shape(first)[0])
    if self._kind == "batch_size":
      return {self._key: tf.zeros([batch], tf.int8)}
    out = {}
    cache: dict = {}
    for column in self._needed:
      if isinstance(column, NumericColumn):
        out[column.name] = self._numeric(column, features)
        continue
      # One "no value" column more: the model's id width k is at least 1
      # even for a [batch, 0] input, and -1 ids are skipped by the model.
      pad = tf.fill([batch, 1], tf.constant(-1, tf.int64))
      if isinstance(column, WeightedCategoricalColumn):
        ids, weights = self._weighted(column, features, cache)
        out[column.name] = {
            "ids": tf.cast(tf.concat([ids, pad], 1), tf.int32),
            "weights": tf.concat([weights, tf.zeros([batch, 1])], 1)}
      else:
        ids = self._ids(column, features, cache)
        out[column.name] = {"ids": tf.cast(tf.concat([ids, pad], 1), tf.int32)}
    return out

  def _read(self, features: Mapping, key: str, column: str) -> _Read:
    """``features[key]`` as ``[batch, k]`` values and where they are filled."""
    tf = self._tf
    if key not in features:
      raise ValueError(f"Feature column {column!r} reads feature {key!r}, which "
                       f"the receiver does not give (it gives {sorted(features)!r}).")
    value = features[key]
    pad = "" if value.dtype == tf.string else tf.cast(-1, value.dtype)
    if isinstance(value, tf.SparseTensor):
      filled = tf.SparseTensor(value.indices, tf.ones_like(value.values, tf.bool),
                               value.dense_shape)
      return _Read(tf.sparse.to_dense(value, default_value=pad),
                   tf.sparse.to_dense(filled, default_value=False), True)
    value = tf.reshape(value, [tf.shape(value)[0], -1])
    if self._inputs.get(key, {}).get("kind") == "varlen":  # dense, padded
      return _Read(value, tf.not_equal(value, pad), True)
    return _Read(value, tf.ones_like(value, tf.bool), False)

  def _sparse(self, values: Any, present: Any) -> Any:
    """The present ``[batch, k]`` values as a SparseTensor, row by row."""
    tf = self._tf
    indices = tf.where(present)
    return tf.SparseTensor(indices, tf.gather_nd(values, indices),
                           tf.shape(values, out_type=tf.int64))

  def _numeric(self, column: NumericColumn, features: Mapping) -> Any:
    """float32 ``[batch, prod(shape)]``, NaN replaced by ``default_value``."""
    tf = self._tf
    size = math.prod(column.shape)
    values = tf.cast(self._read(features, column.key, column.name).values,
                     tf.float32)
    values = tf.ensure_shape(values, [None, size])
    nan = tf.math.is_nan(values)
    if column.default_value is None:
      check = tf.debugging.assert_equal(
          tf.reduce_any(nan), False, message=(
              f"numeric_column {column.key!r} has a missing value (NaN) and no"
              " default_value."))
      with tf.control_dependencies([check]):
        return tf.identity(values)
    default = np.asarray(column.default_value, np.float32).reshape(1, size)
    return tf.where(nan, tf.broadcast_to(default, tf.shape(values)), values)

  def _values(self, column: Any, features: Mapping) -> tuple[Any, Any]:
    """``(values, present)`` of a keyed categorical column's feature: text,
    or int64 for integers; ``''``, -1 and padding are not present."""
    tf = self._tf
    read = self._read(features, column.key, column.name)
    if read.values.dtype == tf.string:
      return read.values, read.filled & tf.not_equal(read.values, "")
    values = tf.cast(read.values, tf.int64)
    return values, read.filled & tf.not_equal(values, -1)

  def _ids(self, column: Any, features: Mapping, cache: dict) -> Any:
    """int64 ``[batch, n]`` ids of a categorical column, -1 for no value."""
    if id(column) not in cache:
      cache[id(column)] = self._compute_ids(column, features, cache)
    return cache[id(column)]

  def _compute_ids(self, column: Any, features: Mapping, cache: dict) -> Any:
    tf = self._tf
    minus_one = tf.constant(-1, tf.int64)
    if isinstance(column, BucketizedColumn):
      values = self._numeric(column.source_column, features)
      ids = tf.cast(tf.raw_ops.Bucketize(
          input=values, boundaries=list(column.boundaries)), tf.int64)
      width = len(column.boundaries) + 1
      return ids + tf.range(column.source_column.shape[0], dtype=tf.int64) * width
    if isinstance(column, CrossedColumn):
      return self._crossed(column, features, cache)
    if isinstance(column, WeightedCategoricalColumn):
      return self._weighted(column, features, cache)[0]
    values, present = self._values(column, features)
    if isinstance(column, HashedCategoricalColumn):
      if values.dtype != tf.string:  # TF hashes integers' decimal strings
        values = tf.strings.as_string(values)
      return tf.where(present, tf.strings.to_hash_bucket_fast(
          values, column.hash_bucket_size), minus_one)
    if isinstance(column, IdentityCategoricalColumn):
      values = tf.cast(values, tf.int64)
      if column.default_value is not None:
        outside = present & ((values < 0) | (values >= column.number_buckets))
        return tf.where(outside, tf.constant(column.default_value, tf.int64),
                        tf.where(present, values, minus_one))
      check = tf.debugging.assert_less(
          tf.where(present, values, minus_one),
          tf.constant(column.number_buckets, tf.int64), message=(
              f"categorical_column_with_identity {column.key!r} got a value "
              f"outside [0, {column.number_buckets}) and has no default_value."))
      with tf.control_dependencies([check]):
        return tf.where(present & (values >= 0), values, minus_one)
    table = self.tables[self._table_of[id(column)]]
    if column.dtype == "string" and values.dtype != tf.string:
      values = tf.strings.as_string(values)
    return tf.where(present, table.lookup(values), minus_one)

  def _crossed(self, column: CrossedColumn, features: Mapping, cache: dict
               ) -> Any:
    """``tf.sparse.cross_hashed`` of the leaves, as ``CrossedColumn._host_ids``.

    A raw key's strings are crossed with ``''`` (no value only in a VarLen
    feature's padding), its integers with -1, its floats cut to int64 (NaN
    is no value); a categorical column's ids where they are >= 0 (a
    vocabulary column without OOV buckets keeps its unknown values' -1).
    TF's op crosses the sparse inputs first, then the dense ones.
    """
    tf = self._tf
    inputs = []
    for key in _leaves(column):
      if not isinstance(key, str):
        ids = self._ids(key, features, cache)
        present = ids >= 0
        if (isinstance(key, _VOCABULARY) and key.default_value == -1 and
            not key.num_oov_buckets):
          present = self._values(key, features)[1]
        inputs.append(self._sparse(ids, present))
        continue
      read = self._read(features, key, column.name)
      values, present = read.values, read.filled
      if values.dtype.is_floating:
        nan = tf.math.is_nan(values)
        present &= ~nan
        values = tf.cast(tf.where(nan, tf.zeros_like(values), values), tf.int64)
        if not read.sparse:
          check = tf.debugging.assert_equal(
              tf.reduce_any(nan), False, message=(
                  f"crossed_column {column.name!r} got NaN in the fixed-length "
                  f"feature {key!r}; give it a value, or parse it as a "
                  "VarLenFeature."))
          with tf.control_dependencies([check]):
            values = tf.identity(values)
      elif values.dtype != tf.string:
        values = tf.cast(values, tf.int64)
      inputs.append(self._sparse(values, present) if read.sparse else values)
    hash_key = column.hash_key or DEFAULT_HASH_KEY
    if hash_key >= 2 ** 63:  # the op's int64 attr holds the uint64's bits
      hash_key -= 2 ** 64
    crossed = tf.sparse.cross_hashed(inputs, num_buckets=column.hash_bucket_size,
                                     hash_key=hash_key)
    return tf.sparse.to_dense(crossed, default_value=tf.constant(-1, tf.int64))

  def _weighted(self, column: WeightedCategoricalColumn, features: Mapping,
                cache: dict) -> tuple[Any, Any]:
    """``(ids, float32 weights)``, as ``WeightedCategoricalColumn._host_ids``."""
    tf = self._tf
    ids = self._ids(column.categorical_column, features, cache)
    read = self._read(features, column.weight_feature_key, column.name)
    weights = tf.cast(read.values, tf.float32)
    present = read.filled & ~tf.math.is_nan(weights)
    same = tf.debugging.assert_equal(
        tf.shape(weights), tf.shape(ids), message=(
            f"Column {column.name!r}: the weights {column.weight_feature_key!r}"
            f" and the ids of {column.categorical_column.name!r} differ in "
            "layout; give one weight per value."))
    with tf.control_dependencies([same]):
      unweighted = (ids >= 0) & ~present
    check = tf.debugging.assert_equal(
        tf.reduce_any(unweighted), False, message=(
            f"Column {column.name!r}: a value of "
            f"{column.categorical_column.name!r} has no weight (NaN or absent "
            f"in {column.weight_feature_key!r}). Give every value a weight."))
    with tf.control_dependencies([check]):
      keep = (ids >= 0) & tf.not_equal(weights, 0.)
    return (tf.where(keep, ids, tf.constant(-1, tf.int64)),
            tf.where(keep, weights, tf.zeros_like(weights)))
