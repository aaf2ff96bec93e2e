"""crossed_column: names, cartesian products, determinism, hash_key, errors."""
import numpy as np
import pytest

from estlab import feature_column as fc
from estlab.feature_column import _fingerprint


def _ids(column, features):
  return fc.encode([column], features)[column.name]["ids"]


def test_name_is_sorted_leaf_names_and_nested_crosses_flatten():
  b = fc.bucketized_column(fc.numeric_column("price"), [10.0])
  inner = fc.crossed_column(["b", "a"], 10)
  outer = fc.crossed_column([inner, b], 100)
  assert inner.name == "a_X_b"
  assert outer.name == "a_X_b_X_price_bucketized" and outer.num_buckets == 100
  assert outer.parse_example_spec == {
      "a": fc.VarLenFeature("string"), "b": fc.VarLenFeature("string"),
      "price": fc.FixedLenFeature((1,), "float32")}


def test_ids_follow_the_documented_fingerprint_formula():
  col = fc.crossed_column(["a", "b"], 1000, hash_key=5)
  got = _ids(col, {"a": np.array(["x"], object), "b": np.array(["y"], object)})
  prints = [_fingerprint.fingerprint64(np.array([v], object)) for v in "xy"]
  expected = _fingerprint.fingerprint_cat64(
      _fingerprint.fingerprint_cat64(np.array([5], np.uint64), prints[0]),
      prints[1])
  assert got[0, 0] == int(expected[0] % np.uint64(1000))


def test_crosses_are_deterministic_and_hash_key_changes_them():
  features = {"a": np.array([f"a{i}" for i in range(50)], object),
              "b": np.array([f"b{i % 7}" for i in range(50)], object)}
  default = fc.crossed_column(["a", "b"], 10_000)
  np.testing.assert_array_equal(_ids(default, features), _ids(default, features))
  keyed = fc.crossed_column(["a", "b"], 10_000, hash_key=123)
  assert (_ids(keyed, features) != _ids(default, features)).mean() > 0.9
  swapped = {"a": features["b"], "b": features["a"]}
  assert (_ids(default, swapped) != _ids(default, features)).mean() > 0.9


def test_multi_valued_rows_get_the_cartesian_product_and_missing_gives_none():
  col = fc.crossed_column(["a", "b"], 1_000_000)
  a = np.empty(3, dtype=object)
  a[:] = [["x", "y"], ["x"], ["x"]]
  b = np.empty(3, dtype=object)
  b[:] = [["u", "v"], ["u"], []]
  ids = _ids(col, {"a": a, "b": b})
  assert ids.shape == (3, 4)
  assert len(set(ids[0].tolist())) == 4
  assert ids[1, 0] == ids[0, 0] and (ids[1, 1:] == -1).all()  # x-u again
  assert (ids[2] == -1).all()


def test_categorical_keys_cross_their_ids():
  color = fc.categorical_column_with_vocabulary_list("color", ["R", "G"])
  price = fc.bucketized_column(fc.numeric_column("price"), [10.0])
  col = fc.crossed_column([color, price], 100)
  features = {"color": np.array(["R", "R", "G", "B"], object),
              "price": np.array([5.0, 6.0, 50.0, 5.0])}
  ids = _ids(col, features).ravel()
  # TF's ids; the unknown 'B' (vocabulary id -1) is crossed too, as in TF.
  assert ids.tolist() == [4, 4, 41, 58]
  out = fc.encode([fc.indicator_column(col)], features)
  assert sorted(out) == ["color_X_price_bucketized"]  # sources stay host-side


@pytest.mark.parametrize("keys,pattern", [
    (["a"], "two or more"),
    ("ab", "two or more"),
    ([fc.categorical_column_with_hash_bucket("h", 10), "a"], "hash_bucket"),
    ([fc.numeric_column("n"), "a"], "Unsupported key"),
    ([fc.weighted_categorical_column(
        fc.categorical_column_with_identity("i", 3), "w"), "a"], "weighted"),
])
def test_bad_keys_are_rejected(keys, pattern):
  with pytest.raises(ValueError, match=pattern):
    fc.crossed_column(keys, 10)


def test_bad_hash_bucket_size_is_rejected():
  with pytest.raises(ValueError, match="hash_bucket_size"):
    fc.crossed_column(["a", "b"], 0)


def test_a_float_key_is_truncated_to_an_int_as_tf_crosses_it():
  # tutorials/estimator/linear: crossed_column(['age', 'sex'], 100) on
  # Titanic's ages (28.5, 0.83, ...). TF 2.15 puts 22.0, 22.5 and 22.9 in
  # int 22's bucket and 23.0 elsewhere.
  column = fc.crossed_column(["age", "sex"], hash_bucket_size=1000)
  sex = np.array(["male"] * 5, object)
  floats = fc.encode([column], {"age": np.array([22.0, 22.5, 22.9, 23.0, np.nan]),
                                "sex": sex})[column.name]["ids"]
  ints = fc.encode([column], {"age": np.array([22, 22, 22, 23, 0]),
                              "sex": sex})[column.name]["ids"]
  np.testing.assert_array_equal(floats[:4], ints[:4])
  assert floats[0] != floats[3]
  assert (floats[4] < 0).all()  # NaN is missing: no cross
  # An identity column still refuses a fraction (TF needs integer ids there).
  with pytest.raises(TypeError, match=r"expects integers, got np.float64\(22.5\)"):
    fc.encode([fc.categorical_column_with_identity("age", 100)],
              {"age": np.array([22.5])})
