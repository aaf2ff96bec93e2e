"""numeric_column and bucketized_column: names, NaN defaults, bucket edges."""
import numpy as np
import pytest

from estlab import feature_column as fc


def test_numeric_column_names_shape_and_spec():
  col = fc.numeric_column("age", shape=(2, 3), default_value=1.5)
  assert col.name == "age" and col.parents == ["age"]
  assert col.variable_shape == (2, 3)
  assert col.default_value == ((1.5,) * 3,) * 2  # TF fills the shape
  assert fc.numeric_column("x", shape=4).shape == (4,)


def test_encode_gives_float32_rows_and_fills_nan_with_default():
  col = fc.numeric_column("x", shape=(2,), default_value=(7.0, 8.0))
  out = fc.encode([col], {"x": np.array([[1, np.nan], [np.nan, 4]])})
  assert out["x"].dtype == np.float32
  np.testing.assert_array_equal(out["x"], [[1, 8], [7, 4]])
  ints = fc.encode([fc.numeric_column("n")], {"n": np.array([3, 4])})["n"]
  np.testing.assert_array_equal(ints, [[3.0], [4.0]])


def test_nan_without_default_names_column_row_and_fix():
  with pytest.raises(ValueError, match=r"'age'.*row 1.*default_value="):
    fc.encode([fc.numeric_column("age")], {"age": np.array([30.0, np.nan])})


def test_text_given_to_numeric_column_is_a_type_error_naming_value():
  with pytest.raises(TypeError, match=r"'age'.*'thirty'"):
    fc.encode([fc.numeric_column("age")],
              {"age": np.array([30.0, "thirty"], dtype=object)})


def test_wrong_width_names_the_shapes():
  with pytest.raises(ValueError, match=r"'x'.*\(3,\).*\(2, 2\)"):
    fc.encode([fc.numeric_column("x", shape=3)], {"x": np.zeros((2, 2))})


@pytest.mark.parametrize("kwargs,error,pattern", [
    (dict(shape=(0,)), ValueError, "greater than 0|> 0"),
    (dict(shape=(1.5,)), TypeError, "integers"),
    (dict(dtype="string"), ValueError, "convertible to float"),
    (dict(normalizer_fn=3), TypeError, "callable"),
    (dict(shape=(2,), default_value=(1.0, 2.0, 3.0)), ValueError, "shape"),
    (dict(dtype="int32", default_value=0.5), TypeError, "dtype"),
])
def test_numeric_column_rejects_bad_arguments(kwargs, error, pattern):
  with pytest.raises(error, match=pattern):
    fc.numeric_column("x", **kwargs)


def test_bucket_boundaries_belong_to_the_bucket_on_their_right():
  col = fc.bucketized_column(fc.numeric_column("x"), [0.0, 1.0, 2.0])
  assert col.name == "x_bucketized" and col.num_buckets == 4
  assert col.variable_shape == (1, 4)
  x = np.array([-5.0, -1e-6, 0.0, 0.5, 1.0, 1.999, 2.0, 1e9])
  out = fc.encode([col], {"x": x})
  np.testing.assert_array_equal(out["x_bucketized"]["ids"].ravel(),
                                [0, 0, 1, 1, 2, 2, 3, 3])
  np.testing.assert_array_equal(out["x"].ravel(), x.astype(np.float32))


def test_bucketized_vector_offsets_ids_per_element():
  col = fc.bucketized_column(fc.numeric_column("p", shape=2), [0, 10, 100])
  assert col.num_buckets == 8
  out = fc.encode([col], {"p": np.array([[-5, 10000], [150, 10], [5, 100]])})
  # TF's docstring example, with element 1 offset by len(boundaries) + 1.
  np.testing.assert_array_equal(out["p_bucketized"]["ids"],
                                [[0, 7], [3, 6], [1, 7]])
  assert sorted(out["p_bucketized"]) == ["ids"]  # unweighted


def test_bucketized_uses_the_normalized_source_as_tf_does():
  source = fc.numeric_column("x", normalizer_fn=lambda v: v / 10.0)
  col = fc.bucketized_column(source, [1.0])
  ids = fc.encode([col], {"x": np.array([5.0, 15.0])})["x_bucketized"]["ids"]
  np.testing.assert_array_equal(ids.ravel(), [0, 1])


@pytest.mark.parametrize("boundaries", [[1.0, 0.0], [0.0, 0.0], []])
def test_unsorted_boundaries_are_named(boundaries):
  with pytest.raises(ValueError, match=r"'x'.*boundaries|boundaries.*'x'"):
    fc.bucketized_column(fc.numeric_column("x"), boundaries)


def test_bucketized_needs_a_one_dimensional_numeric_source():
  with pytest.raises(ValueError, match="one-dimensional"):
    fc.bucketized_column(fc.numeric_column("x", shape=(2, 2)), [0.0])
  with pytest.raises(ValueError, match="numeric_column"):
    fc.bucketized_column(fc.categorical_column_with_identity("x", 3), [0.0])
