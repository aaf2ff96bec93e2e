"""Hashed, crossed and OOV-bucket ids are TF's, bit for bit.

``tf_reference/fingerprint_tf215.json`` (``tf_reference/fingerprint_tf.py``,
TF 2.15) holds TF's ``Fingerprint64`` of strings of every length 0..130 and
2000 random unicode strings, and the ids of TF's hash-bucket, crossed and
vocabulary (``num_oov_buckets``) columns; ``tf_reference/hashed_checkpoint``
is a LinearClassifier over such columns that TF trained, and estlab,
warm-started from it, predicts what TF predicted.
"""
import json
import os

import numpy as np
import pytest

import estlab
from estlab.feature_column import _base, _fingerprint

fc = estlab.feature_column
_REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                    "tf_reference")
with open(os.path.join(_REF, "fingerprint_tf215.json"), encoding="utf-8") as _f:
  _TF = json.load(_f)


def _array(feature):
  if feature["ragged"]:
    out = np.empty(len(feature["values"]), dtype=object)
    out[:] = [list(v) for v in feature["values"]]
    return out
  dtype = object if feature["dtype"] == "string" else feature["dtype"]
  return np.array(feature["values"], dtype=dtype)


def _rows(column, features):
  """estlab's ids per row, dropped values left out (as the fixture's).

  Ids past int32 (bucket sizes of 2**31 and more) are read before ``encode``
  narrows ids to int32 for the device.
  """
  batch = {k: _array(v) for k, v in features.items()}
  if column.num_buckets < 2**31:
    ids = fc.encode([column], batch)[column.name]["ids"]
  else:
    ids, _ = _base.cached_ids(column, batch, {})
  return [[int(i) for i in row if i >= 0] for row in ids]


def _build(spec):
  if isinstance(spec, str):
    return spec
  if "bucketized" in spec:
    return fc.bucketized_column(fc.numeric_column(spec["bucketized"]),
                                spec["boundaries"])
  if "vocab" in spec:
    return fc.categorical_column_with_vocabulary_list(spec["vocab"],
                                                      spec["list"])
  if "identity" in spec:
    return fc.categorical_column_with_identity(spec["identity"],
                                               spec["buckets"])
  return fc.crossed_column([_build(k) for k in spec["cross"]], spec["size"],
                           hash_key=spec.get("hash_key"))


def test_fingerprint64_is_tensorflows_for_every_length_and_unicode():
  strings = _TF["strings"]
  want = [int(v) for v in _TF["fingerprint64"]]
  assert {len(s.encode()) for s in strings} >= set(range(131))
  assert fc_values(_fingerprint.fingerprint64(np.array(strings, object))) == want
  # bytes hash as their bytes; a second call (the cache) gives the same.
  as_bytes = np.array([s.encode() for s in strings], object)
  assert fc_values(_fingerprint.fingerprint64(as_bytes)) == want
  assert fc_values(_fingerprint.fingerprint64(np.array(strings, object))) == want


def fc_values(array):
  return [int(v) for v in array.tolist()]


@pytest.mark.parametrize("case", _TF["hashed"]["cases"],
                         ids=lambda c: c["name"])
def test_hash_bucket_ids_are_tensorflows(case):
  if case["dtype"] == "string":
    values = [s for s in _TF["strings"] if s]
    column = fc.categorical_column_with_hash_bucket("s", case["size"])
    got = _rows(column, {"s": {"values": [[v] for v in values],
                               "dtype": "string", "ragged": False}})
    assert [r[0] for r in got] == case["ids"]
  else:
    column = fc.categorical_column_with_hash_bucket("i", case["size"],
                                                    dtype="int64")
    got = _rows(column, {"i": {"values": [[v] for v in _TF["hashed"]["ints"]],
                               "dtype": "int64", "ragged": False}})
    assert got == case["ids"]
    assert got[-1] == []  # -1 is a missing value, dropped as in TF


@pytest.mark.parametrize("case", _TF["crossed"], ids=lambda c: c["name"])
def test_crossed_ids_are_tensorflows(case):
  assert _rows(_build(case["column"]), case["features"]) == case["ids"]


@pytest.mark.parametrize("case", _TF["vocabulary"]["cases"],
                         ids=lambda c: c["name"])
def test_oov_bucket_ids_are_tensorflows(case, tmp_path):
  (key, feature), = case["features"].items()
  name = case["name"]
  if name.startswith("file_"):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(_TF["vocabulary"]["file_lines"]) + "\n")
    column = fc.categorical_column_with_vocabulary_file(
        key, str(path), num_oov_buckets=int(name.rsplit("oov", 1)[1]))
  elif feature["dtype"] == "string":
    column = fc.categorical_column_with_vocabulary_list(
        key, ["R", "G", "B"], num_oov_buckets=int(name.rsplit("oov", 1)[1]))
  else:
    column = fc.categorical_column_with_vocabulary_list(
        key, [1, 2, 3], dtype="int64", num_oov_buckets=5)
  assert _rows(column, case["features"]) == case["ids"]


def test_hash_key_zero_or_none_is_tfs_default_key():
  features = {"a": np.array(["x", "y"], object), "b": np.array([3, 4])}
  ids = [fc.encode([c], features)[c.name]["ids"].tolist() for c in (
      fc.crossed_column(["a", "b"], 10**6),
      fc.crossed_column(["a", "b"], 10**6, hash_key=0),
      fc.crossed_column(["a", "b"], 10**6,
                        hash_key=estlab.feature_column.crossed.DEFAULT_HASH_KEY))]
  assert ids[0] == ids[1] == ids[2]


def test_fingerprint_cat64_folds_from_the_hash_key():
  col = fc.crossed_column(["a", "b"], 1000, hash_key=5)
  got = fc.encode([col], {"a": np.array(["x"], object),
                          "b": np.array([9])})[col.name]["ids"]
  want = _fingerprint.fingerprint_cat64(
      _fingerprint.fingerprint_cat64(np.uint64(5), _fingerprint.fingerprint64(
          ["x"])), np.array([9], np.uint64))
  assert got[0, 0] == int(want[0] % np.uint64(1000))


def _config(model_dir):
  return estlab.RunConfig(model_dir=str(model_dir), save_checkpoints_steps=100,
                          save_summary_steps=None, log_step_count_steps=None)


def test_linear_classifier_warm_started_from_tf_predicts_tfs_probabilities(
    tmp_path):
  ref = _TF["linear"]
  rows = {k: np.array(v, dtype=object if isinstance(v[0][0], str) else None)
          for k, v in ref["rows"].items()}
  rows["age"] = rows["age"].astype(np.float32)
  labels = np.array(ref["labels"])
  age = fc.bucketized_column(fc.numeric_column("age"), [30.0, 40.0, 50.0])
  columns = [
      fc.categorical_column_with_hash_bucket("zip", 50),
      fc.categorical_column_with_hash_bucket("code", 20, dtype="int64"),
      fc.crossed_column(["edu", "occ"], 100),
      fc.crossed_column([age, "edu"], 60, hash_key=7),
      fc.categorical_column_with_vocabulary_list(
          "color", ["red", "green", "blue"], num_oov_buckets=4),
  ]
  est = estlab.LinearClassifier(
      columns, config=_config(tmp_path),
      warm_start_from=os.path.join(_REF, "hashed_checkpoint", "linear"))
  est.train(lambda: (dict(rows), labels), steps=1)
  preds = list(est.predict(lambda: dict(rows),
                           checkpoint_path=os.path.join(tmp_path, "0")))
  np.testing.assert_allclose([p["logits"] for p in preds], ref["logits"],
                             atol=1e-5)
  np.testing.assert_allclose([p["probabilities"] for p in preds],
                             ref["probabilities"], atol=1e-5)
  # The hashed buckets matter: TF trained only the buckets its ids hit.
  assert np.ptp(np.array(ref["logits"])) > 1e-3


def test_docstring_examples_run():
  import doctest  # pylint: disable=g-import-not-at-top
  result = doctest.testmod(_fingerprint, extraglobs={"np": np})
  assert result.attempted >= 5 and result.failed == 0


def test_ragged_integer_cells_keep_int64_past_2_pow_53():
  """Per-example lists of ints (a VarLen int64 feature) hash exactly as an
  int64 array: no float64 detour rounds ids past 2**53."""
  column = fc.categorical_column_with_hash_bucket("i", 1000, dtype="int64")
  big = [2**53 + 1, 2**62 + 7, -5]
  rectangular = fc.encode([column], {"i": np.array(big, np.int64)})["i"]
  ragged = np.empty(3, dtype=object)
  ragged[:] = [[v] for v in big]
  with_none = np.empty(4, dtype=object)
  with_none[:] = [[v] for v in big] + [[None]]
  np.testing.assert_array_equal(
      fc.encode([column], {"i": ragged})["i"]["ids"], rectangular["ids"])
  assert fc.encode([column], {"i": with_none})["i"]["ids"][:3].tolist() == (
      rectangular["ids"].tolist())
