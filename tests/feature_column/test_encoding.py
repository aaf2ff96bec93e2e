"""encode: the host->device format, dedup, missing features, pandas text; specs."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from estlab import feature_column as fc
from estlab.inputs import pandas_input_fn


def _all_columns():
  age = fc.numeric_column("age", default_value=0.0)
  city = fc.categorical_column_with_vocabulary_list("city", ["Oslo", "Rome"],
                                                    num_oov_buckets=1)
  words = fc.categorical_column_with_hash_bucket("words", 50)
  video = fc.categorical_column_with_identity("video", 10, default_value=0)
  return [
      age, fc.bucketized_column(age, [18.0, 65.0]),
      fc.embedding_column(city, 3), fc.indicator_column(city),
      fc.indicator_column(fc.weighted_categorical_column(words, "counts")),
      fc.embedding_column(fc.crossed_column([city, "words"], 100), 2),
      *fc.shared_embeddings([video, fc.categorical_column_with_identity(
          "liked", 10)], 2),
  ]


def _batch():
  return {"age": np.array([30.0, np.nan, 70.0]),
          "city": np.array(["Rome", "", "Paris"], dtype=object),
          "words": np.array([["a", "b"], ["c", ""], ["", ""]], dtype=object),
          "counts": np.array([[1.0, 2.0], [3.0, 0.0], [0.0, 0.0]]),
          "video": np.array([1, 12, -1]), "liked": np.array([2, 3, 4]),
          "unused": np.array(["x", "y", "z"], dtype=object)}


def test_encode_returns_numbers_keyed_by_name_in_the_documented_format():
  out = fc.encode(_all_columns(), _batch())
  assert sorted(out) == ["age", "age_bucketized", "city", "city_X_words",
                         "liked", "video", "words_weighted_by_counts"]
  assert out["age"].dtype == np.float32 and out["age"].shape == (3, 1)
  for name, value in out.items():
    if name == "age":
      continue
    assert value["ids"].dtype == np.int32 and value["ids"].shape[0] == 3
    if name != "words_weighted_by_counts":  # unweighted: all 1, left out
      assert sorted(value) == ["ids"]
      continue
    assert value["weights"].dtype == np.float32
    assert value["ids"].shape == value["weights"].shape
    np.testing.assert_array_equal(value["weights"] == 0, value["ids"] == -1)
  np.testing.assert_array_equal(out["city"]["ids"].ravel(), [1, -1, 2])
  np.testing.assert_array_equal(out["video"]["ids"].ravel(), [1, 0, -1])
  np.testing.assert_array_equal(out["words_weighted_by_counts"]["weights"],
                                [[1, 2], [3, 0], [0, 0]])


def test_each_column_is_computed_once_per_batch(monkeypatch):
  calls = []
  original = fc.VocabularyListCategoricalColumn._host_ids

  def counting(self, features, cache):
    calls.append(self.name)
    return original(self, features, cache)
  monkeypatch.setattr(fc.VocabularyListCategoricalColumn, "_host_ids", counting)
  fc.encode(_all_columns(), _batch())
  assert calls == ["city"]


def test_rows_are_compacted_to_a_power_of_two_width():
  col = fc.categorical_column_with_identity("ids", 100)
  wide = -np.ones((4, 8), dtype=np.int64)
  wide[0, [1, 5, 7]] = [10, 50, 70]
  wide[2, 3] = 30
  out = fc.encode([col], {"ids": wide})["ids"]
  np.testing.assert_array_equal(out["ids"], [[10, 50, 70, -1], [-1] * 4,
                                             [30, -1, -1, -1], [-1] * 4])


def test_missing_feature_is_a_key_and_value_error_naming_keys():
  with pytest.raises(fc.MissingFeatureError, match=r"'city'.*\['age'\]") as info:
    fc.encode(_all_columns()[2:3], {"age": np.ones(2)})
  assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_numeric_columns_differing_only_on_the_device_share_one_encoding():
  plain = fc.numeric_column("age")
  scaled = fc.numeric_column("age", normalizer_fn=lambda x: x / 100.0)
  linear = [plain, fc.bucketized_column(plain, [30.0])]
  dnn = [scaled]  # a combined model encodes both lists at once
  out = fc.encode(linear + dnn, {"age": np.array([20.0, 40.0])})
  np.testing.assert_array_equal(out["age"].ravel(), [20.0, 40.0])
  with pytest.raises(ValueError, match="'age'"):
    fc.encode([plain, fc.bucketized_column(
        fc.numeric_column("age", default_value=0.0), [1.0])],
              {"age": np.array([1.0])})


def test_colliding_names_are_an_error():
  with pytest.raises(ValueError, match="'x'"):
    fc.encode([fc.numeric_column("x"), fc.indicator_column(
        fc.categorical_column_with_identity("x", 3))], {"x": np.array([1])})


def test_pandas_text_with_missing_values_encodes():
  frame = pd.DataFrame({
      "city": pd.Series(["Rome", None, "Oslo", "Nice"], dtype="string"),
      "age": pd.array([30, None, 50, 60], dtype="Int64"),
  })
  columns = [fc.indicator_column(fc.categorical_column_with_vocabulary_list(
      "city", ["Oslo", "Rome"])), fc.numeric_column("age", default_value=-1.0)]
  (batch,) = list(pandas_input_fn(frame, batch_size=4, shuffle=False)())
  out = fc.encode(columns, batch)
  np.testing.assert_array_equal(out["city"]["ids"].ravel(), [1, -1, 0, -1])
  np.testing.assert_array_equal(out["age"].ravel(), [30, -1, 50, 60])
  raw = {"city": frame["city"].to_numpy(), "age": frame["age"].to_numpy()}
  direct = fc.encode(columns, raw)  # StringDtype with pd.NA, straight from pandas
  np.testing.assert_array_equal(direct["city"]["ids"], out["city"]["ids"])


def test_make_parse_example_spec_merges_columns_as_tf():
  spec = fc.make_parse_example_spec(_all_columns())
  assert spec == {
      "age": fc.FixedLenFeature((1,), "float32", (0.0,)),
      "city": fc.VarLenFeature("string"), "words": fc.VarLenFeature("string"),
      "counts": fc.VarLenFeature("float32"), "video": fc.VarLenFeature("int64"),
      "liked": fc.VarLenFeature("int64")}
  with pytest.raises(ValueError, match="different parse_spec.*'x'"):
    fc.make_parse_example_spec([fc.numeric_column("x"),
                                fc.categorical_column_with_identity("x", 2)])
  with pytest.raises(ValueError, match="feature columns"):
    fc.make_parse_example_spec(["age"])


def test_spec_is_json_and_rebuilds_every_column():
  columns = _all_columns() + [fc.numeric_column(
      "n", shape=2, normalizer_fn=np.log1p)]
  specs = json.loads(json.dumps([c.spec() for c in columns]))
  rebuilt = [fc.from_spec(s) for s in specs]
  assert rebuilt[:-1] == columns[:-1]
  assert rebuilt[-1].normalizer_fn is None  # device code is not in the JSON
  assert rebuilt[-1].shape == (2,)
  assert "normalizer_fn" not in specs[-1]["config"]
  with pytest.raises(ValueError, match="not a feature column spec"):
    fc.from_spec({"class_name": "Nope", "config": {}})


def test_host_encoding_does_not_load_jax():
  script = ("import sys, numpy as np\n"
            "from estlab import feature_column as fc\n"
            "col = fc.embedding_column(fc.categorical_column_with_hash_bucket("
            "'w', 9), 2)\n"
            "fc.encode([col], {'w': np.array(['a'], object)})\n"
            "print(sorted({'jax', 'flax'} & set(sys.modules)))")
  result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=60, check=True)
  assert result.stdout.strip().splitlines()[-1] == "[]"
