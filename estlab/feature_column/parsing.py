"""Parse specs for a premade's input pipeline: the columns' spec plus the label.

``classifier_parse_example_spec`` and ``regressor_parse_example_spec`` are
tf.estimator's (``tf.estimator.X``, public as ``estlab.X``): the
``make_parse_example_spec`` of the feature columns, plus a
``FixedLenFeature`` for the label (and one for the weight column), as one
dict, since features, label and weight are all read from the same record.

Example:
  >>> from estlab import feature_column as fc
  >>> spec = classifier_parse_example_spec(
  ...     [fc.numeric_column('age')], label_key='clicked', label_default=0)
  >>> spec['clicked']
  FixedLenFeature(shape=(1,), dtype='int64', default_value=0)
"""
from __future__ import annotations

from typing import Any

from estlab.feature_column._base import FixedLenFeature, canonical_dtype
from estlab.feature_column.encoding import make_parse_example_spec
from estlab.feature_column.numeric import NumericColumn, numeric_column

__all__ = ["classifier_parse_example_spec", "regressor_parse_example_spec"]


def _with_label_and_weight(spec: dict, label_key: Any, label: FixedLenFeature,
                           weight_column: Any) -> dict:
  """Adds the label's and the weight's specs, as TF's
  ``_add_label_and_weight_to_parsing_spec``."""
  if not isinstance(label_key, str) or not label_key:
    raise ValueError(f"label_key={label_key!r} must be the label's feature name"
                     " in each record, a non-empty string, e.g. 'label'.")
  if label_key in spec:
    raise ValueError(f"label_key={label_key!r} is also a feature of the "
                     f"feature_columns {sorted(spec)!r}; the label should not "
                     "be used as a feature. Rename one of them.")
  spec[label_key] = label
  if weight_column is None:
    return spec
  if isinstance(weight_column, str):
    weight_column = numeric_column(weight_column)
  if not isinstance(weight_column, NumericColumn):
    raise ValueError(f"weight_column={weight_column!r:.100} must be a feature "
                     "name or an estlab.feature_column.numeric_column, e.g. "
                     "weight_column='example-weight'.")
  if weight_column.key in spec:
    raise ValueError(f"weight_column {weight_column.key!r} is also a feature "
                     f"(or the label) of {sorted(spec)!r}; the weight should not"
                     " be used as a feature. Rename one of them.")
  spec.update(weight_column.parse_example_spec)
  return spec


def classifier_parse_example_spec(feature_columns: Any, label_key: str,
                                  label_dtype: Any = "int64",
                                  label_default: Any = None,
                                  weight_column: Any = None) -> dict:
  """The parse spec of a classifier's records: features, label and weight.

  ``tf.estimator.classifier_parse_example_spec``: the columns'
  ``make_parse_example_spec``, plus ``FixedLenFeature((1,), label_dtype,
  label_default)`` under ``label_key`` and the weight column's spec. Pop the
  label from the parsed features in the input_fn.

  Example:
    >>> from estlab import feature_column as fc
    >>> spec = classifier_parse_example_spec(
    ...     [fc.numeric_column('age')], 'label', label_dtype='string',
    ...     weight_column='w')
    >>> sorted(spec), spec['label'].dtype
    (['age', 'label', 'w'], 'string')

  Args:
    feature_columns: the feature columns (an iterable of them).
    label_key: the label's name in each record.
    label_dtype: the label's dtype: ``'int64'`` (the default; class ids) or
      ``'string'`` with a ``label_vocabulary``; float labels only for binary
      classification. Any dtype or name (``np.int64``, ``'string'``).
    label_default: the label of a record that has none (e.g. 0 for a
      ``clicked`` label recorded only when 1); None: a record needs one.
    weight_column: a feature name or a ``numeric_column`` for example
      weights, as the estimator's ``weight_column``.

  Returns:
    ``{key: FixedLenFeature | VarLenFeature}``.

  Raises:
    ValueError: the label or the weight is also a feature, an item is not a
      feature column, the weight column is not numeric.
  """
  spec = make_parse_example_spec(feature_columns)
  label = FixedLenFeature((1,), canonical_dtype(label_dtype, label_key),
                          label_default)
  return _with_label_and_weight(spec, label_key, label, weight_column)


def regressor_parse_example_spec(feature_columns: Any, label_key: str,
                                 label_dtype: Any = "float32",
                                 label_default: Any = None,
                                 label_dimension: int = 1,
                                 weight_column: Any = None) -> dict:
  """The parse spec of a regressor's records: features, label and weight.

  ``tf.estimator.regressor_parse_example_spec``: the columns'
  ``make_parse_example_spec``, plus ``FixedLenFeature((label_dimension,),
  label_dtype, label_default)`` under ``label_key`` and the weight column's.

  Example:
    >>> from estlab import feature_column as fc
    >>> regressor_parse_example_spec([fc.numeric_column('x')], 'price',
    ...                              label_dimension=2)['price']
    FixedLenFeature(shape=(2,), dtype='float32', default_value=None)

  Args:
    feature_columns: the feature columns (an iterable of them).
    label_key: the label's name in each record.
    label_dtype: the label's dtype, ``'float32'`` by default.
    label_default: the label of a record that has none; None: it needs one.
    label_dimension: regression targets per example (the estimator's
      ``label_dimension``).
    weight_column: a feature name or a ``numeric_column`` for example weights.

  Returns:
    ``{key: FixedLenFeature | VarLenFeature}``.

  Raises:
    ValueError: as ``classifier_parse_example_spec``'s, or a
      ``label_dimension`` that is not a positive int.
  """
  if isinstance(label_dimension, bool) or not isinstance(
      label_dimension, int) or label_dimension < 1:
    raise ValueError(f"label_dimension={label_dimension!r} must be a positive "
                     "int: the regression targets per example.")
  spec = make_parse_example_spec(feature_columns)
  label = FixedLenFeature((label_dimension,),
                          canonical_dtype(label_dtype, label_key), label_default)
  return _with_label_and_weight(spec, label_key, label, weight_column)
