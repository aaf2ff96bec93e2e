"""Vocabulary list and file columns: ids, OOV buckets, defaults, errors."""
import json

import numpy as np
import pytest

from estlab import feature_column as fc


def _ids(column, values):
  return fc.encode([column], {column.key: values})[column.name]["ids"]


def test_values_get_their_index_and_unknown_or_missing_are_dropped():
  col = fc.categorical_column_with_vocabulary_list("color", ("R", "G", "B"))
  assert col.name == "color" and col.num_buckets == 3 and col.dtype == "string"
  values = np.array(["B", "R", "purple", "", None, np.nan], dtype=object)
  np.testing.assert_array_equal(_ids(col, values).ravel(), [2, 0, -1, -1, -1, -1])


def test_default_value_takes_unknown_values_but_not_missing_ones():
  col = fc.categorical_column_with_vocabulary_list(
      "color", ("X", "R", "G"), default_value=0)
  ids = _ids(col, np.array(["G", "purple", ""], dtype=object)).ravel()
  np.testing.assert_array_equal(ids, [2, 0, -1])


def test_oov_buckets_hash_unknown_values_after_the_vocabulary():
  col = fc.categorical_column_with_vocabulary_list(
      "color", ("R", "G"), num_oov_buckets=3)
  assert col.num_buckets == 5
  unknown = np.array([f"c{i}" for i in range(300)], dtype=object)
  ids = _ids(col, unknown).ravel()
  assert set(ids.tolist()) == {2, 3, 4}
  np.testing.assert_array_equal(ids, _ids(col, unknown).ravel())  # stable
  np.testing.assert_array_equal(_ids(col, np.array(["G", ""], object)).ravel(),
                                [1, -1])


def test_integer_vocabulary_drops_minus_one_and_hashes_oov_as_decimal():
  col = fc.categorical_column_with_vocabulary_list("code", [10, 20, 30],
                                                   num_oov_buckets=50)
  assert col.dtype == "int64"
  ids = _ids(col, np.array([30, -1, 10, 77])).ravel()
  assert ids[:3].tolist() == [2, -1, 0] and 3 <= ids[3] < 53
  same = fc.categorical_column_with_vocabulary_list("s", ["10"],
                                                    num_oov_buckets=50)
  assert _ids(same, np.array(["77"], object))[0, 0] == ids[3] - 2


def test_multi_valued_cells_keep_each_value():
  col = fc.categorical_column_with_vocabulary_list("tags", ["a", "b", "c"])
  cells = np.empty(3, dtype=object)
  cells[:] = [["a", "c"], [], ("b", "zz", "a")]
  out = fc.encode([col], {"tags": cells})["tags"]
  # 'zz' is dropped, so two values per row at most: K == 2.
  np.testing.assert_array_equal(out["ids"], [[0, 2], [-1, -1], [1, 0]])
  assert "weights" not in out  # unweighted: 1 per id >= 0


def test_both_default_value_and_oov_buckets_is_an_error_at_construction():
  with pytest.raises(ValueError, match=r"num_oov_buckets.*default_value.*'c'"):
    fc.categorical_column_with_vocabulary_list("c", ["a"], default_value=0,
                                               num_oov_buckets=2)


@pytest.mark.parametrize("vocab,kwargs,pattern", [
    ([], {}, "non-empty"),
    (["a", "b", "a"], {}, r"Duplicate.*'a'"),
    (["a", 1], {}, "all strings or all integers"),
    ([0.5, 1.5], {}, "strings or all integers"),
    (["a"], {"dtype": "int64"}, "do not match"),
    (["a"], {"default_value": 5}, "default_value 5"),
])
def test_bad_vocabularies_are_rejected(vocab, kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    fc.categorical_column_with_vocabulary_list("c", vocab, **kwargs)


def test_wrong_feature_types_name_column_and_value():
  text = fc.categorical_column_with_vocabulary_list("color", ["R"])
  with pytest.raises(TypeError, match=r"'color'.*2\.5"):
    _ids(text, np.array([2.5, 1.0]))
  ints = fc.categorical_column_with_vocabulary_list("code", [1, 2])
  with pytest.raises(TypeError, match=r"'code'.*'two'"):
    _ids(ints, np.array(["two"], dtype=object))


def test_vocabulary_file_reads_lines_and_truncates(tmp_path):
  path = tmp_path / "states.txt"
  path.write_text("CA\nNY\nTX\n")
  col = fc.categorical_column_with_vocabulary_file("state", path, 2)
  assert col.vocabulary == ("CA", "NY") and col.num_buckets == 2
  np.testing.assert_array_equal(
      _ids(col, np.array(["NY", "TX", "CA"], object)).ravel(), [1, -1, 0])
  full = fc.categorical_column_with_vocabulary_file("state", str(path),
                                                    num_oov_buckets=4)
  assert full.vocabulary_size == 3 and full.num_buckets == 7
  assert fc.make_parse_example_spec([full]) == {
      "state": fc.VarLenFeature("string")}


def test_integer_vocabulary_file(tmp_path):
  path = tmp_path / "ids.txt"
  path.write_text("7\n3\n")
  col = fc.categorical_column_with_vocabulary_file("id", path, dtype=np.int64,
                                                   default_value=0)
  np.testing.assert_array_equal(_ids(col, np.array([3, 99, -1])).ravel(),
                                [1, 0, -1])


def test_missing_vocabulary_file_names_the_path(tmp_path):
  missing = tmp_path / "nope.txt"
  with pytest.raises(fc.VocabularyFileNotFoundError, match="nope.txt") as info:
    fc.categorical_column_with_vocabulary_file("state", missing)
  assert isinstance(info.value, FileNotFoundError)
  assert isinstance(info.value, ValueError)


def test_vocabulary_file_errors(tmp_path):
  path = tmp_path / "v.txt"
  path.write_text("a\nb\n")
  with pytest.raises(ValueError, match="vocabulary_size 5"):
    fc.categorical_column_with_vocabulary_file("k", path, 5)
  with pytest.raises(ValueError, match="Can't specify both"):
    fc.categorical_column_with_vocabulary_file("k", path, default_value=0,
                                               num_oov_buckets=1)
  with pytest.raises(ValueError, match=r"integer dtype.*'a'"):
    fc.categorical_column_with_vocabulary_file("k", path, dtype="int64")


def test_spec_rebuilds_a_file_column_without_the_file(tmp_path):
  path = tmp_path / "v.txt"
  path.write_text("a\nb\n")
  col = fc.categorical_column_with_vocabulary_file("k", path, num_oov_buckets=2)
  spec = json.loads(json.dumps(col.spec()))
  path.unlink()
  rebuilt = fc.from_spec(spec)
  assert rebuilt == col
  np.testing.assert_array_equal(_ids(rebuilt, np.array(["b"], object)), [[1]])
