"""Feature columns: ``tf.feature_column``'s names and semantics, host / device split.

Columns describe how raw features become model inputs. Strings never enter
``jit``: ``encode(columns, features)`` runs on the host, vectorised with
numpy/pandas (vocabulary lookups, stable hashing, bucketizing, crosses), and
returns numeric arrays; the Flax modules ``DenseFeatures`` and
``LinearModel`` then run on the device inside the model_fn and hold the
embedding tables and linear weights as parameters. ``column.spec()`` is the
JSON of everything host-side; ``from_spec`` rebuilds the column.

Modules: ``numeric`` (numeric, bucketized), ``vocabulary`` (vocabulary
list/file), ``categorical`` (identity, hash bucket, weighted), ``crossed``,
``dense`` (embedding, shared embeddings, indicator), ``encoding`` (``encode``,
``make_parse_example_spec``), ``layers`` (Flax; loaded on first use, so host
encoding does not import JAX).

Example:
  >>> import numpy as np
  >>> from estlab import feature_column as fc
  >>> city = fc.categorical_column_with_vocabulary_list('city', ['Oslo', 'Rome'])
  >>> columns = [fc.numeric_column('age'), fc.indicator_column(city)]
  >>> batch = fc.encode(columns, {'age': np.array([31., 42.]),
  ...                             'city': np.array(['Rome', ''], object)})
  >>> sorted(batch)
  ['age', 'city']
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from estlab.feature_column._base import (CategoricalColumn, DenseColumn,
                                         FeatureColumn, FeatureTypeError,
                                         FeatureValueError, FixedLenFeature,
                                         MissingFeatureError, VarLenFeature,
                                         from_spec)
from estlab.feature_column.categorical import (
    HashedCategoricalColumn, IdentityCategoricalColumn,
    WeightedCategoricalColumn, categorical_column_with_hash_bucket,
    categorical_column_with_identity, weighted_categorical_column)
from estlab.feature_column.crossed import CrossedColumn, crossed_column
from estlab.feature_column.dense import (EmbeddingColumn, IndicatorColumn,
                                         SharedEmbeddingColumn,
                                         embedding_column, indicator_column,
                                         shared_embeddings)
from estlab.feature_column.encoding import encode, make_parse_example_spec
from estlab.feature_column.sequence import (
    SequenceCategoricalColumn, SequenceNumericColumn,
    sequence_categorical_column_with_hash_bucket,
    sequence_categorical_column_with_identity,
    sequence_categorical_column_with_vocabulary_file,
    sequence_categorical_column_with_vocabulary_list, sequence_numeric_column)
from estlab.feature_column.numeric import (BucketizedColumn, NumericColumn,
                                           bucketized_column, numeric_column)
from estlab.feature_column.vocabulary import (
    VocabularyFileCategoricalColumn, VocabularyFileNotFoundError,
    VocabularyListCategoricalColumn, categorical_column_with_vocabulary_file,
    categorical_column_with_vocabulary_list)

_LAZY = {name: "estlab.feature_column.layers"
         for name in ("DenseFeatures", "LinearModel", "input_layer",
                      "linear_model")}
_LAZY["SequenceFeatures"] = "estlab.feature_column.sequence_layers"

__all__ = [
    # functions, as tf.feature_column
    "numeric_column", "bucketized_column",
    "categorical_column_with_vocabulary_list",
    "categorical_column_with_vocabulary_file",
    "categorical_column_with_identity", "categorical_column_with_hash_bucket",
    "crossed_column", "embedding_column", "shared_embeddings",
    "indicator_column", "weighted_categorical_column",
    "make_parse_example_spec",
    "sequence_numeric_column", "sequence_categorical_column_with_identity",
    "sequence_categorical_column_with_hash_bucket",
    "sequence_categorical_column_with_vocabulary_list",
    "sequence_categorical_column_with_vocabulary_file",
    # host / device
    "encode", "DenseFeatures", "LinearModel", "SequenceFeatures", "from_spec",
    # tf.compat.v1.feature_column's functional layers, for model_fns
    "input_layer", "linear_model",
    # classes and errors
    "FeatureColumn", "DenseColumn", "CategoricalColumn", "NumericColumn",
    "BucketizedColumn", "VocabularyListCategoricalColumn",
    "VocabularyFileCategoricalColumn", "IdentityCategoricalColumn",
    "HashedCategoricalColumn", "CrossedColumn", "EmbeddingColumn",
    "SharedEmbeddingColumn", "IndicatorColumn", "WeightedCategoricalColumn",
    "SequenceCategoricalColumn", "SequenceNumericColumn",
    "FixedLenFeature", "VarLenFeature", "MissingFeatureError",
    "VocabularyFileNotFoundError", "FeatureValueError", "FeatureTypeError",
]


def __getattr__(name: str):
  if name in _LAZY:
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'estlab.feature_column' has no attribute {name!r}")


def __dir__():
  return __all__


if TYPE_CHECKING:
  from estlab.feature_column.layers import (DenseFeatures, LinearModel,
                                            input_layer, linear_model)
  from estlab.feature_column.sequence_layers import SequenceFeatures
