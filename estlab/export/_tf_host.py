"""The export's host step as TensorFlow ops, for a TF SavedModel's signatures.

estlab's own export runs its host step in Python from JSON (``_parsing``:
parse the request, encode it with the feature columns). In a SavedModel for
TF Serving nothing runs but the graph, so ``TFHostStep`` rebuilds that step
with TF ops, column by column, and gives the features the ``jax.export``ed
model reads (``fc.encode``'s layout): numeric columns (NaN replaced by
``default_value``), bucketized, identity and vocabulary (list or file,
without ``num_oov_buckets``) categorical columns, under indicator and
embedding columns. Other columns (hashed, crossed, weighted, sequence, OOV
buckets: estlab hashes with SipHash, TF with FarmHash) are a
``ValueError`` naming the column and the alternative: estlab's own export
and ``estlab serve``.

Inputs are dense tensors, batch first: a ``FixedLenFeature`` ``[batch,
*shape]``; a ``VarLenFeature`` ``[batch, None]``, rows padded with ``''``
(strings) or ``-1`` (numbers), the values a categorical column reads as
"no value", as TF's columns read dense inputs. A parsing receiver's
signatures take serialized ``tf.train.Example``s instead, as TF's export
does: ``parse_examples`` turns them into those dense inputs with
``tf.io.parse_example`` and the export's feature spec (``example_spec``).
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
from typing import Any, Mapping

import numpy as np

from estlab import feature_column as fc
from estlab.feature_column import _base, encoding
from estlab.feature_column.categorical import IdentityCategoricalColumn
from estlab.feature_column.numeric import BucketizedColumn, NumericColumn
from estlab.feature_column.vocabulary import (VocabularyFileCategoricalColumn,
                                              VocabularyListCategoricalColumn)

__all__ = ["TFHostStep", "UnconvertibleColumnError", "input_specs",
           "example_spec", "parse_examples"]

_CONVERTED = (NumericColumn, BucketizedColumn, IdentityCategoricalColumn,
              VocabularyListCategoricalColumn, VocabularyFileCategoricalColumn)


class UnconvertibleColumnError(ValueError):
  """A feature column whose host step has no TF ops in the SavedModel export."""


def _refuse(column: Any, why: str) -> None:
  raise UnconvertibleColumnError(
      f"Feature column {column.name!r} ({type(column).__name__}) {why}, so "
      "export_saved_model(format='tf_saved_model') cannot put its host step "
      "into the SavedModel (it converts numeric, bucketized, identity and "
      "vocabulary columns without num_oov_buckets). Export with format="
      "'estlab' (the default) and serve it with `estlab serve`, or use one of"
      " those columns.")


def _check(column: Any) -> None:
  if not isinstance(column, _CONVERTED):
    _refuse(column, "runs Python on the host (hashing, crossing, weights or "
            "sequences) that has no TF equivalent here")
  if getattr(column, "num_oov_buckets", 0):
    _refuse(column, f"hashes out-of-vocabulary values into num_oov_buckets="
            f"{column.num_oov_buckets!r} with estlab's SipHash, not TF's "
            "FarmHash")


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
  """The dense inputs ``input_specs`` describes, from serialized Examples.

  Args:
    tf: the ``tensorflow`` module.
    inputs: a parsing receiver's inputs (``estlab_export.json``'s).
    serialized: a ``[batch]`` string tensor of serialized
      ``tf.train.Example``s.

  Returns:
    ``{name: tensor}``: a ``FixedLenFeature`` ``[batch, *shape]``, a
    ``VarLenFeature`` ``[batch, None]`` padded with ``''`` or ``-1``.
  """
  parsed = tf.io.parse_example(serialized, example_spec(tf, inputs))
  out = {}
  for name, desc in inputs.items():
    value = parsed[name]
    if desc["kind"] == "varlen":
      value = tf.sparse.to_dense(
          value, default_value="" if value.dtype == tf.string else tf.cast(
              -1, value.dtype))
    if desc["dtype"] != "string":
      value = tf.cast(value, tf.as_dtype(desc["dtype"]))
    out[name] = value
  return out


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
        if isinstance(needed, (VocabularyListCategoricalColumn,
                               VocabularyFileCategoricalColumn)):
          self._table_of[needed.name] = len(self.tables)
          self.tables.append(self._table(needed))

  def _table(self, column: Any) -> Any:
    tf = self._tf
    string = column.dtype == "string"
    keys = np.asarray(column._vocabulary, dtype=object if string else np.int64)  # pylint: disable=protected-access
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, tf.string if string else tf.int64),
            tf.range(len(keys), dtype=tf.int64)),
        default_value=np.int64(column.default_value))

  def __call__(self, features: Mapping[str, Any]) -> dict:
    tf = self._tf
    if self._kind == "none":
      return dict(features)
    batch = tf.shape(next(iter(features.values())))[0]
    if self._kind == "batch_size":
      return {self._key: tf.zeros([batch], tf.int8)}
    out = {}
    for column in self._needed:
      if isinstance(column, NumericColumn):
        out[column.name] = self._numeric(column, features)
      else:
        ids = self._ids(column, features)
        # One "no value" column more: the model's id width k is at least 1
        # even for a [batch, 0] input, and -1 ids are skipped by the model.
        pad = tf.fill([batch, 1], tf.constant(-1, tf.int64))
        out[column.name] = {"ids": tf.cast(tf.concat([ids, pad], 1), tf.int32)}
    return out

  def _feature(self, features: Mapping, key: str, column: str) -> Any:
    if key not in features:
      raise ValueError(f"Feature column {column!r} reads feature {key!r}, which "
                       f"the receiver does not give (it gives {sorted(features)!r}).")
    value = features[key]
    return self._tf.reshape(value, [self._tf.shape(value)[0], -1])

  def _numeric(self, column: NumericColumn, features: Mapping) -> Any:
    """float32 ``[batch, prod(shape)]``, NaN replaced by ``default_value``."""
    tf = self._tf
    size = math.prod(column.shape)
    values = tf.cast(self._feature(features, column.key, column.name), tf.float32)
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

  def _ids(self, column: Any, features: Mapping) -> Any:
    """int64 ``[batch, n]`` ids of a categorical column, -1 for no value."""
    tf = self._tf
    if isinstance(column, BucketizedColumn):
      values = self._numeric(column.source_column, features)
      ids = tf.cast(tf.raw_ops.Bucketize(
          input=values, boundaries=list(column.boundaries)), tf.int64)
      width = len(column.boundaries) + 1
      return ids + tf.range(column.source_column.shape[0], dtype=tf.int64) * width
    raw = self._feature(features, column.key, column.name)
    if isinstance(column, IdentityCategoricalColumn):
      values = tf.cast(raw, tf.int64)
      missing = tf.equal(values, -1)
      if column.default_value is not None:
        outside = ~missing & ((values < 0) | (values >= column.number_buckets))
        return tf.where(outside, tf.constant(column.default_value, tf.int64),
                        tf.where(missing, tf.constant(-1, tf.int64), values))
      check = tf.debugging.assert_less(
          values, tf.constant(column.number_buckets, tf.int64), message=(
              f"categorical_column_with_identity {column.key!r} got a value "
              f"outside [0, {column.number_buckets}) and has no default_value."))
      with tf.control_dependencies([check]):
        return tf.where(values < 0, tf.constant(-1, tf.int64), values)
    table = self.tables[self._table_of[column.name]]
    if column.dtype == "string":
      values = tf.cast(raw, tf.string) if raw.dtype != tf.string else raw
      present = tf.not_equal(values, "")
    else:
      values = tf.cast(raw, tf.int64)
      present = tf.not_equal(values, -1)
    return tf.where(present, table.lookup(values), tf.constant(-1, tf.int64))
