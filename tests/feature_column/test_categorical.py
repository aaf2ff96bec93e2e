"""Identity, hash-bucket and weighted columns; hash stability across processes."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from estlab import feature_column as fc


def _encoded(column, features):
  return fc.encode([column], features)[column.name]


# -- identity -------------------------------------------------------------------


def test_identity_passes_ids_through_and_drops_minus_one():
  col = fc.categorical_column_with_identity("video", 5)
  assert col.name == "video" and col.num_buckets == 5
  assert col.parse_example_spec == {"video": fc.VarLenFeature("int64")}
  out = _encoded(col, {"video": np.array([[0, 4], [3, -1]])})
  np.testing.assert_array_equal(out["ids"], [[0, 4], [3, -1]])
  assert "weights" not in out  # unweighted: 1 per id, left out


def test_identity_out_of_range_goes_to_default_value():
  col = fc.categorical_column_with_identity("v", 5, default_value=0)
  ids = _encoded(col, {"v": np.array([2, 5, 99, -7, -1])})["ids"].ravel()
  np.testing.assert_array_equal(ids, [2, 0, 0, 0, -1])


def test_identity_without_default_names_column_and_value():
  col = fc.categorical_column_with_identity("video", 5)
  with pytest.raises(ValueError, match=r"'video'.*\b7\b.*default_value"):
    _encoded(col, {"video": np.array([1, 7])})
  # TF 2.15 drops other negative values silently; estlab names them (#23).
  with pytest.raises(fc.FeatureValueError, match=r"'video' got -3 \(row 0"):
    _encoded(col, {"video": np.array([-3, 2])})
  ids = _encoded(col, {"video": np.array([-1, 2])})["ids"].ravel()
  np.testing.assert_array_equal(ids, [-1, 2])  # -1 is missing.


def test_identity_reads_pandas_float_ints_and_rejects_text_and_fractions():
  col = fc.categorical_column_with_identity("v", 5)
  ids = _encoded(col, {"v": np.array([1.0, np.nan, 4.0])})["ids"].ravel()
  np.testing.assert_array_equal(ids, [1, -1, 4])
  with pytest.raises(TypeError, match=r"'v'.*'three'"):
    _encoded(col, {"v": np.array(["three"], dtype=object)})
  with pytest.raises(TypeError, match=r"'v'.*1\.5"):
    _encoded(col, {"v": np.array([1.5])})


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(num_buckets=0), "num_buckets 0"),
    (dict(num_buckets=3, default_value=3), r"default_value 3 not in range"),
])
def test_identity_rejects_bad_arguments(kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    fc.categorical_column_with_identity("v", **kwargs)


# -- hash buckets ----------------------------------------------------------------


def test_hash_bucket_ids_are_in_range_roughly_uniform_and_drop_missing():
  col = fc.categorical_column_with_hash_bucket("w", 10)
  words = np.array([f"word{i}" for i in range(20000)] + [""], dtype=object)
  ids = _encoded(col, {"w": words})["ids"].ravel()
  assert ids[-1] == -1
  counts = np.bincount(ids[:-1], minlength=10)
  assert counts.min() > 1800 and counts.max() < 2200, counts


def test_integers_hash_as_their_decimal_strings():
  text = fc.categorical_column_with_hash_bucket("w", 1000)
  ints = fc.categorical_column_with_hash_bucket("w", 1000, dtype="int64")
  as_text = _encoded(text, {"w": np.array(["42", "7"], object)})["ids"]
  np.testing.assert_array_equal(_encoded(ints, {"w": np.array([42, 7])})["ids"],
                                as_text)
  np.testing.assert_array_equal(_encoded(text, {"w": np.array([42, 7])})["ids"],
                                as_text)
  with pytest.raises(TypeError, match=r"'w'.*'x'"):
    _encoded(ints, {"w": np.array(["x"], object)})
  with pytest.raises(TypeError, match=r"'w'.*0\.5"):
    _encoded(text, {"w": np.array([0.5])})


def test_hash_bucket_rejects_bad_arguments():
  with pytest.raises(ValueError, match=r"at least 1.*'w'|'w'.*at least 1"):
    fc.categorical_column_with_hash_bucket("w", 0)
  with pytest.raises(ValueError, match="string or integer"):
    fc.categorical_column_with_hash_bucket("w", 10, dtype="float32")


_STABILITY_SCRIPT = """
import json, numpy as np
from estlab import feature_column as fc
words = np.array(['hello', 'world', '42', ''], dtype=object)
cols = [fc.categorical_column_with_hash_bucket('w', 1000),
        fc.categorical_column_with_vocabulary_list('v', ['a'], num_oov_buckets=100),
        fc.crossed_column(['w', fc.categorical_column_with_identity('i', 9)], 1000)]
out = fc.encode(cols, {'w': words, 'v': words, 'i': np.array([1, 2, 3, 4])})
print(json.dumps({k: v['ids'].ravel().tolist() for k, v in out.items()
                  if isinstance(v, dict)}))
"""


def _ids_in_fresh_process(hash_seed):
  env = dict(os.environ, PYTHONHASHSEED=hash_seed)
  result = subprocess.run([sys.executable, "-c", _STABILITY_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_ids_are_the_same_in_fresh_processes_and_pinned():
  first, second = _ids_in_fresh_process("12345"), _ids_in_fresh_process("999")
  assert first == second
  # Pinned to TF 2.15's ids (FarmHash): a change of hash would silently
  # remap every trained id. TF crosses the dense '' too (the last row).
  assert first["w"] == [296, 598, 736, -1]
  assert first["v"] == [97, 99, 37, -1]
  assert first["i_X_w"] == [550, 507, 645, 346]


# -- weighted ---------------------------------------------------------------------


def test_weighted_column_pairs_ids_with_weights_and_drops_zero_weights():
  base = fc.categorical_column_with_vocabulary_list("terms", ["a", "b", "c"])
  col = fc.weighted_categorical_column(base, "freq")
  assert col.name == "terms_weighted_by_freq" and col.num_buckets == 3
  assert col.parents == [base, "freq"]
  assert col.parse_example_spec == {"terms": fc.VarLenFeature("string"),
                                    "freq": fc.VarLenFeature("float32")}
  features = {"terms": np.array([["a", "c"], ["b", ""], ["c", "a"]], object),
              "freq": np.array([[0.5, 2.0], [0.0, np.nan], [1.0, 3.0]])}
  out = _encoded(col, features)
  np.testing.assert_array_equal(out["ids"], [[0, 2], [-1, -1], [2, 0]])
  np.testing.assert_array_equal(out["weights"], [[0.5, 2.0], [0, 0], [1, 3]])


def test_weighted_column_errors_name_the_column():
  col = fc.weighted_categorical_column(
      fc.categorical_column_with_identity("ids", 5), "w")
  with pytest.raises(ValueError, match=r"'ids_weighted_by_w'.*row 1"):
    _encoded(col, {"ids": np.array([1, 2]), "w": np.array([1.0, np.nan])})
  with pytest.raises(ValueError, match=r"'ids_weighted_by_w'.*shape"):
    _encoded(col, {"ids": np.array([1, 2]), "w": np.ones((2, 3))})
  with pytest.raises(TypeError, match=r"'ids_weighted_by_w'.*'heavy'"):
    _encoded(col, {"ids": np.array([1]), "w": np.array(["heavy"], object)})
  with pytest.raises(ValueError, match="categorical column"):
    fc.weighted_categorical_column(fc.numeric_column("x"), "w")
  with pytest.raises(ValueError, match="convertible to float"):
    fc.weighted_categorical_column(col.categorical_column, "w", dtype="string")
