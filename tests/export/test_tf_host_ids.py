"""``_tf_host.TFHostStep``, the SavedModel's host step in TF ops, gives the ids
estlab's own export gives (``fc.encode`` on the parsed request) for every
column it converts: hash buckets (strings and integers), vocabulary lists and
files with OOV buckets (strings and integers), crosses of raw VarLen and
fixed-length features, bucketized, vocabulary and nested crossed columns
(with and without ``hash_key``, one above 2**63 included), and weighted
columns; on ragged rows, missing features, ``''`` and -1, and unknown values.
"""
import numpy as np
import pytest
import tensorflow as tf

import estlab
from estlab import feature_column as fc
from estlab.export import _example_proto, _parsing, _receivers, _tf_host


def _examples(rows):
  out = []
  for row in rows:
    example = _example_proto.Example()
    for name, values in row.items():
      feature = example.features.feature[name]
      if all(isinstance(v, str) for v in values):
        feature.bytes_list.value.extend(v.encode() for v in values)
      elif all(isinstance(v, int) for v in values):
        feature.int64_list.value.extend(values)
      else:
        feature.float_list.value.extend(values)
    out.append(example.SerializeToString())
  return out


_ROWS = [
    {"a": [-1.0], "c": ["red"], "d": [0], "f": ["x"], "h": ["foo"], "hi": [3],
     "i": [1], "s": ["p"], "n": [4], "w": [1.5]},
    {"a": [0.2], "c": ["green", "purple"], "d": [7, 1], "f": ["q", "z"],
     "h": ["a", "b"], "hi": [-1, 12345678901], "i": [4, 0], "s": [""],
     "n": [-1], "w": [0.5, 2.0]},
    {"a": [0.7], "s": ["q"], "n": [0]},  # every VarLen feature missing
    {"a": [3.0], "c": ["purple", "", "blue"], "d": [-1, 2, 99],
     "f": ["", "w"], "h": ["", "zz", "a"], "hi": [0, 5, 5], "i": [3, 3, 2],
     "s": ["r"], "n": [7], "w": [0.0, 1.0, -2.0]},
    {"a": [-0.2], "c": [""], "h": [""], "hi": [-1], "s": ["t"], "n": [1],
     "w": [3.0]}]


def _columns(vocabulary_file):
  a = fc.numeric_column("a")
  b = fc.bucketized_column(a, [-0.5, 0.0, 0.5])
  colors = fc.categorical_column_with_vocabulary_list(
      "c", ["red", "green", "blue"], num_oov_buckets=3)
  plain = fc.categorical_column_with_vocabulary_list("c", ["red", "green", "blue"])
  digits = fc.categorical_column_with_vocabulary_list("d", [0, 1, 2],
                                                      num_oov_buckets=2)
  words = fc.categorical_column_with_hash_bucket("h", 17)
  ident = fc.categorical_column_with_identity("i", 5)
  return {
      "vocabulary_oov": colors, "int_vocabulary_oov": digits,
      "file_oov": fc.categorical_column_with_vocabulary_file(
          "f", vocabulary_file, num_oov_buckets=4),
      "hashed": words,
      "int_hashed": fc.categorical_column_with_hash_bucket("hi", 13, "int64"),
      "cross_bucketized": fc.crossed_column(["h", b], 1000, hash_key=12345),
      "cross_fixed_int": fc.crossed_column(["h", "n"], 777),
      "cross_varlen_int": fc.crossed_column(["hi", "h", "s"], 777),
      "cross_vocabulary": fc.crossed_column([plain, "h"], 501),
      "cross_oov_identity": fc.crossed_column([colors, ident], 501),
      "cross_fixed": fc.crossed_column(["s", "n", b], 999, hash_key=2**64 - 5),
      "nested": fc.crossed_column([fc.crossed_column(["h", b], 50), digits], 333),
      "weighted_hashed": fc.weighted_categorical_column(words, "w"),
      "weighted_oov": fc.weighted_categorical_column(colors, "w")}


_FIXED = {"s": fc.FixedLenFeature([1], "string"),
          "n": fc.FixedLenFeature([1], "int64")}


@pytest.mark.parametrize("name", [
    "vocabulary_oov", "int_vocabulary_oov", "file_oov", "hashed", "int_hashed",
    "cross_bucketized", "cross_fixed_int", "cross_varlen_int",
    "cross_vocabulary", "cross_oov_identity", "cross_fixed", "nested",
    "weighted_hashed", "weighted_oov"])
def test_tf_host_step_gives_estlabs_ids(name, tmp_path):
  vocabulary = tmp_path / "vocabulary.txt"
  vocabulary.write_text("x\ny\nz\n")
  column = _columns(str(vocabulary))[name]
  spec = fc.make_parse_example_spec([column])
  spec.update({k: v for k, v in _FIXED.items() if k in spec})
  if name == "cross_varlen_int":
    spec["hi"] = fc.VarLenFeature("int64")
  inputs = _receivers.describe_features(
      estlab.export.build_parsing_serving_input_receiver_fn(spec)())
  examples = _examples([{k: v for k, v in row.items() if k in inputs}
                        for row in _ROWS])
  own = fc.encode([column], _parsing.parse(inputs, {"examples": examples})[0])
  host = _tf_host.TFHostStep(tf, inputs, {"kind": "feature_columns",
                                          "feature_columns": [column.spec()]})
  got = host(_tf_host.parse_examples(tf, inputs, tf.constant(examples)))
  own, got = own[column.name], got[column.name]
  assert sorted(got) == sorted(own)
  for row in range(len(_ROWS)):
    # The model sums over a row's ids (-1: none), in any order.
    expected = sorted(zip(own["ids"][row].tolist(), (
        own["weights"][row] if "weights" in own else own["ids"][row] * 0 + 1
    ).tolist()))
    given = sorted(zip(got["ids"].numpy()[row].tolist(), (
        got["weights"].numpy()[row] if "weights" in got else
        got["ids"].numpy()[row] * 0 + 1).tolist()))
    assert [p for p in given if p[0] >= 0] == [p for p in expected if p[0] >= 0]
  assert (own["ids"] >= 0).sum() >= 4  # values were hashed, crossed, found


def test_sequence_columns_are_refused_naming_the_column():
  column = fc.indicator_column(
      fc.sequence_categorical_column_with_identity("tok", 4))
  with pytest.raises(_tf_host.UnconvertibleColumnError,
                     match=r"'tok' \(SequenceCategoricalColumn\).*format='estlab'"):
    _tf_host.TFHostStep(tf, {}, {"kind": "feature_columns",
                                 "feature_columns": [column.spec()]})
