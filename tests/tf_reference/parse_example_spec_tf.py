"""Records TF 2.15's classifier/regressor_parse_example_spec, for
tests/feature_column/test_parsing.py.

Run with the TF reference venv (not at test time):
  /work/tf215/bin/python tests/tf_reference/parse_example_spec_tf.py
writes parse_example_spec_tf215.json next to this file: per case, the
``columns`` and ``kwargs`` as Python source (evaluated with ``fc`` bound to
``tf.feature_column`` here, to ``estlab.feature_column`` in the test, and
``dt`` to the dtypes: ``tf`` here, dtype names there), the ``function``
called, and the spec TF returned as JSON: ``{key: {"kind": "fixed", "shape",
"dtype", "default_value"} | {"kind": "varlen", "dtype"}}``, or the error
class TF raised.
"""
import json
import os

import tensorflow as tf

CASES = [
    ("numeric_and_hashed_classifier", "classifier_parse_example_spec",
     "[fc.numeric_column('age'), fc.categorical_column_with_hash_bucket("
     "'city', 10)]",
     "dict(label_key='y')"),
    ("string_label_with_weight_name", "classifier_parse_example_spec",
     "[fc.bucketized_column(fc.numeric_column('c'), [0., 1.]), "
     "fc.crossed_column(['a', 'b'], 5)]",
     "dict(label_key='my-label', label_dtype=dt.string, "
     "weight_column='example-weight')"),
    ("label_default_and_weight_column", "classifier_parse_example_spec",
     "[fc.indicator_column(fc.categorical_column_with_identity('id', 4)), "
     "fc.numeric_column('v', shape=(2,), default_value=0.5)]",
     "dict(label_key='clicked', label_default=0, "
     "weight_column=fc.numeric_column('w', dtype=dt.float64))"),
    ("regressor_defaults", "regressor_parse_example_spec",
     "[fc.numeric_column('x', shape=(3,))]",
     "dict(label_key='target')"),
    ("regressor_dimension_default", "regressor_parse_example_spec",
     "[fc.embedding_column(fc.categorical_column_with_vocabulary_list("
     "'word', ['a', 'b']), 2)]",
     "dict(label_key='t', label_dimension=3, label_dtype=dt.float64, "
     "label_default=0.0, weight_column='w')"),
    ("int_vocabulary", "regressor_parse_example_spec",
     "[fc.categorical_column_with_vocabulary_list('k', [1, 2, 3]), "
     "fc.weighted_categorical_column(fc.categorical_column_with_identity("
     "'ids', 10), 'ids_weight')]",
     "dict(label_key='y', label_dtype=dt.int32)"),
    ("label_is_a_feature", "classifier_parse_example_spec",
     "[fc.numeric_column('y')]", "dict(label_key='y')"),
    ("weight_is_a_feature", "regressor_parse_example_spec",
     "[fc.numeric_column('w')]", "dict(label_key='y', weight_column='w')"),
    ("weight_not_numeric", "classifier_parse_example_spec",
     "[fc.numeric_column('x')]",
     "dict(label_key='y', weight_column=fc.categorical_column_with_identity("
     "'w', 3))"),
]


def _json(spec):
  out = {}
  for key, value in sorted(spec.items()):
    if isinstance(value, tf.io.FixedLenFeature):
      out[key] = {"kind": "fixed", "shape": [int(d) for d in value.shape],
                  "dtype": value.dtype.name,
                  "default_value": value.default_value}
    else:
      out[key] = {"kind": "varlen", "dtype": value.dtype.name}
  return out


def main():
  namespace = {"fc": tf.feature_column, "dt": tf}
  cases = []
  for name, function, columns, kwargs in CASES:
    case = {"name": name, "function": function, "columns": columns,
            "kwargs": kwargs}
    try:
      case["spec"] = _json(getattr(tf.estimator, function)(
          eval(columns, namespace), **eval(kwargs, namespace)))  # pylint: disable=eval-used
    except (ValueError, TypeError) as e:
      case["error"] = type(e).__name__
    cases.append(case)
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "parse_example_spec_tf215.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump({"tensorflow": tf.__version__, "cases": cases}, f, indent=1)
    f.write("\n")


if __name__ == "__main__":
  main()
