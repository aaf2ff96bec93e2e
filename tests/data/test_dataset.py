"""estlab.data.Dataset: sources, transformations, shuffling and errors.

What tf.data does deterministically is checked against TF's own output in
test_tf_semantics.py; here: what TF leaves random (shuffle), pandas inputs,
properties over many sizes, and the errors a user meets.
"""
import collections
import itertools
import os
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import estlab
from estlab.data import AUTOTUNE, Dataset, TensorSpec


def _values(ds, planned=True):
  return [np.asarray(e).tolist() for e in ds._iterable(planned=planned)]


# -- sources -------------------------------------------------------------------


def test_dict_of_a_dataframe_gives_rows_with_str_text():
  df = pd.DataFrame({"age": [31, 42, 25], "city": ["paris", "oslo", "rome"],
                     "score": [0.5, 1.5, 2.5]})
  ds = Dataset.from_tensor_slices((dict(df), df["age"] > 30))
  first, label = next(iter(ds))
  assert first == {"age": 31, "city": "paris", "score": 0.5}
  assert isinstance(first["city"], str) and label == True  # noqa: E712
  features, labels = next(iter(ds.batch(3)))
  assert features["city"].dtype == object
  assert features["city"].tolist() == ["paris", "oslo", "rome"]
  assert labels.tolist() == [True, True, False]
  assert ds.element_spec == ({"age": TensorSpec((), np.int64),
                              "city": TensorSpec((), object),
                              "score": TensorSpec((), np.float64)},
                             TensorSpec((), bool))


def test_bytes_are_read_as_str():
  ds = Dataset.from_tensor_slices(np.array([b"a", b"bc"]))
  assert list(ds) == ["a", "bc"]


def test_namedtuple_elements_keep_their_type():
  Point = collections.namedtuple("Point", "x y")
  ds = Dataset.from_tensor_slices(Point(np.arange(3), np.arange(3) * 2))
  batch = next(iter(ds.batch(3)))
  assert isinstance(batch, Point) and batch.y.tolist() == [0, 2, 4]
  assert list(ds.map(lambda x, y: x + y)) == [0, 3, 6]  # unpacked as a tuple


def test_mismatched_lengths_name_each_array_and_the_fix():
  with pytest.raises(ValueError, match=r"same first dimension.*"
                     r"\[0\]\['x'\]: 3, \[1\]: 2\. .*equal length"):
    Dataset.from_tensor_slices(({"x": np.arange(3)}, np.arange(2)))


def test_a_scalar_cannot_be_sliced():
  with pytest.raises(ValueError, match=r"\['y'\] is a scalar, .*3.*from_tensors"):
    Dataset.from_tensor_slices({"x": [1, 2], "y": 3})


def test_dataset_constructor_points_to_the_factories():
  with pytest.raises(TypeError, match="from_tensor_slices"):
    Dataset([1, 2, 3])


def test_from_generator_converts_to_the_signature_and_is_called_per_pass():
  calls = []

  def gen():
    calls.append(1)
    yield from ([1, 2], [3, 4], [5, 6])

  ds = Dataset.from_generator(
      gen, output_signature=TensorSpec((None,), np.float32))
  assert [b.tolist() for b in ds.batch(2)] == [[[1, 2], [3, 4]], [[5, 6]]]
  assert next(iter(ds)).dtype == np.float32
  list(ds)
  assert len(calls) == 3


def test_from_generator_needs_a_signature_and_a_callable():
  with pytest.raises(TypeError, match="output_signature="):
    Dataset.from_generator(lambda: iter([1]))
  with pytest.raises(TypeError, match="callable.*not its result"):
    Dataset.from_generator(iter([1]), output_types=np.int64)


def test_from_generator_names_a_bad_element():
  ds = Dataset.from_generator(lambda: iter([1, "a"]),
                              output_signature=TensorSpec((), np.int32))
  with pytest.raises(TypeError, match=r"expected type was int32.*'a'"):
    list(ds)
  ds = Dataset.from_generator(lambda: iter([[1, 2]]),
                              output_signature=TensorSpec((), np.int32))
  with pytest.raises(TypeError, match=r"shape \(2,\) where an element of "
                     r"shape \(\) was expected"):
    list(ds)
  ds = Dataset.from_generator(lambda: iter([{"a": 1}]),
                              output_types={"b": np.int32})
  with pytest.raises(TypeError, match="structure does not match"):
    list(ds)


def test_from_generator_with_dict_signature():
  ds = Dataset.from_generator(
      lambda: ({"x": [i, i], "n": f"r{i}"} for i in range(3)),
      output_types={"x": np.float32, "n": str},
      output_shapes={"x": (2,), "n": ()})
  batch = next(iter(ds.batch(3)))
  assert batch["x"].dtype == np.float32 and batch["x"].shape == (3, 2)
  assert batch["n"].tolist() == ["r0", "r1", "r2"]
  assert ds.element_spec == {"x": TensorSpec((2,), np.float32),
                             "n": TensorSpec((), str)}


def test_range_rejects_floats():
  with pytest.raises(TypeError, match="integers.*0.25"):
    Dataset.range(0, 1, 0.25)


# -- shuffle -------------------------------------------------------------------


def test_shuffle_draws_from_a_buffer_not_the_whole_dataset():
  """Output t is one of the first buffer_size + t inputs (tf.data's buffer);
  a global shuffle would break this."""
  for seed in range(5):
    out = _values(Dataset.range(200).shuffle(10, seed=seed))
    assert sorted(out) == list(range(200))
    assert all(value < 10 + t for t, value in enumerate(out))
    assert out != list(range(200))


def test_shuffle_reshuffles_each_iteration_reproducibly():
  ds = Dataset.range(50).shuffle(50, seed=3)
  first, second = _values(ds), _values(ds)
  assert first != second and sorted(first) == sorted(second)
  again = Dataset.range(50).shuffle(50, seed=3)
  assert [_values(again), _values(again)] == [first, second]
  epochs = _values(Dataset.range(50).shuffle(50, seed=3).repeat(2))
  assert epochs == first + second  # each epoch of repeat is an iteration


def test_shuffle_without_reshuffle_repeats_its_order():
  ds = Dataset.range(30).shuffle(30, seed=1, reshuffle_each_iteration=False)
  epochs = _values(ds.repeat(3))
  assert epochs[:30] == epochs[30:60] == epochs[60:] == _values(ds)
  assert epochs[:30] != list(range(30))


def test_shuffle_without_seed_differs_between_datasets():
  orders = {tuple(_values(Dataset.range(40).shuffle(40))) for _ in range(3)}
  assert len(orders) > 1


def test_shuffle_of_one_keeps_the_order():
  assert _values(Dataset.range(9).shuffle(1)) == list(range(9))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 60), buffer_size=st.integers(1, 80),
       seed=st.integers(0, 2**31))
def test_shuffle_is_a_permutation(n, buffer_size, seed):
  out = _values(Dataset.range(n).shuffle(buffer_size, seed=seed))
  assert sorted(out) == list(range(n))


# -- batch, unbatch, take, skip ------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 40), batch_size=st.integers(1, 12),
       drop=st.booleans(), planned=st.booleans())
def test_batch_then_unbatch_gives_the_elements_back(n, batch_size, drop,
                                                    planned):
  ds = Dataset.from_tensor_slices({"x": np.arange(n * 2).reshape(n, 2)})
  batches = list(ds.batch(batch_size, drop_remainder=drop)._iterable(planned))
  kept = n - n % batch_size if drop else n
  assert [len(b["x"]) for b in batches[:-1]] == [batch_size] * (
      len(batches) - 1)
  rows = list(ds.batch(batch_size, drop)
              .unbatch()._iterable(planned))
  assert [r["x"].tolist() for r in rows] == [[2 * i, 2 * i + 1]
                                              for i in range(kept)]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 30), k=st.integers(-1, 35))
def test_take_and_skip_split_the_elements(n, k):
  ds = Dataset.range(n)
  taken, skipped = _values(ds.take(k)), _values(ds.skip(k))
  if k == -1:
    assert taken == list(range(n)) and skipped == []
  else:
    assert taken + skipped == list(range(n)) and len(taken) == min(k, n)


def test_unbatch_of_scalars_is_an_error():
  with pytest.raises(ValueError, match="scalar components"):
    Dataset.range(3).unbatch().element_spec  # pylint: disable=expression-not-assigned
  with pytest.raises(ValueError, match="Cannot unbatch element 0"):
    list(Dataset.from_generator(lambda: iter([1]), output_types=np.int64)
         .unbatch())


def test_batch_of_ragged_elements_names_the_shapes():
  ds = Dataset.from_generator(lambda: iter([[1, 2], [3]]),
                              output_types=np.int64)
  with pytest.raises(ValueError, match=r"element 0 has shape \(2,\) and "
                     r"element 1 has shape \(1,\)"):
    list(ds.batch(2))


# -- map and filter -------------------------------------------------------------------


def test_map_after_batch_sees_whole_batches():
  sizes = []

  def double(features, label):
    sizes.append(len(label))
    return {"x": features["x"] * 2}, label

  ds = Dataset.from_tensor_slices(({"x": np.arange(5.0)}, np.arange(5)))
  out = list(ds.batch(2).map(double))
  assert sizes == [2, 2, 1]
  assert out[0][0]["x"].tolist() == [0.0, 2.0]
  spec = ds.batch(2).map(double).element_spec
  assert spec == ({"x": TensorSpec((None,), np.float64)},
                  TensorSpec((None,), np.int64))


def test_map_returning_none_or_another_structure_is_named():
  with pytest.raises(TypeError, match=r"returned None.*Return the new"):
    list(Dataset.range(2).map(lambda x: None))

  def sometimes_dict(x):
    return {"a": x} if x < 2 else (x, x)

  with pytest.raises(TypeError, match=r"map\(sometimes_dict\) returned "
                     r"\(.*differs from its first output, \{'a'"):
    list(Dataset.range(4).map(sometimes_dict))


def test_filter_needs_a_scalar_bool():
  ds = Dataset.range(6).batch(3).filter(lambda x: x > 2)
  with pytest.raises(TypeError, match="scalar bool.*filter before batch"):
    list(ds)


def test_map_and_filter_accept_tf_arguments():
  ds = (Dataset.range(6)
        .map(lambda x: x + 1, num_parallel_calls=AUTOTUNE, deterministic=True)
        .filter(lambda x: x % 2 == 0))
  assert _values(ds) == [2, 4, 6]


# -- repeat, shard, zip, concatenate ------------------------------------------


def test_repeat_forever_and_of_an_empty_dataset():
  assert _values(Dataset.range(3).repeat().take(7)) == [0, 1, 2, 0, 1, 2, 0]
  assert _values(Dataset.range(3).repeat(-1).take(4)) == [0, 1, 2, 0]
  assert _values(Dataset.range(0).repeat()) == []
  gen = Dataset.from_generator(lambda: iter([]), output_types=np.int64)
  assert _values(gen.repeat()) == []


def test_shard_splits_for_workers_and_checks_its_index():
  parts = [_values(Dataset.range(10).shard(3, i)) for i in range(3)]
  assert sorted(sum(parts, [])) == list(range(10))
  assert parts[1] == [1, 4, 7]
  gen = Dataset.from_generator(lambda: iter(range(10)), output_types=np.int64)
  assert _values(gen.shard(3, 1)) == [1, 4, 7]
  with pytest.raises(ValueError, match=r"between 0 and 2.*index = 3"):
    Dataset.range(10).shard(3, 3)


def test_zip_and_concatenate_of_generators():
  gen = Dataset.from_generator(lambda: iter(range(4)), output_types=np.int64)
  assert list(Dataset.zip({"a": gen, "b": Dataset.range(10, 13)})) == [
      {"a": 0, "b": 10}, {"a": 1, "b": 11}, {"a": 2, "b": 12}]
  assert _values(gen.concatenate(Dataset.range(2))) == [0, 1, 2, 3, 0, 1]
  assert gen.concatenate(Dataset.range(2)).cardinality() == -2


def test_concatenate_of_different_elements_is_an_error():
  with pytest.raises(TypeError, match="Incompatible dataset elements"):
    Dataset.range(2).concatenate(Dataset.from_tensor_slices([1.0, 2.0]))


# -- cache, prefetch, reading --------------------------------------------------------


def test_cache_reads_its_input_once_in_memory():
  calls = []

  def gen():
    calls.append(1)
    yield from range(4)

  ds = Dataset.from_generator(gen, output_types=np.int64).cache()
  assert _values(ds.repeat(3)) == [0, 1, 2, 3] * 3
  assert _values(ds) == [0, 1, 2, 3]
  assert len(calls) == 1


def test_cache_of_a_shuffle_freezes_its_first_order():
  ds = Dataset.range(20).shuffle(20, seed=0).cache()
  first = _values(ds)
  assert _values(ds) == first and first != list(range(20))


def test_cache_to_a_file_is_read_by_a_later_dataset(tmp_path):
  path = str(tmp_path / "cache")
  calls = []

  def gen():
    calls.append(1)
    yield from ({"x": np.full(2, i)} for i in range(3))

  spec = {"x": TensorSpec((2,), np.int64)}
  first = Dataset.from_generator(gen, output_signature=spec).cache(path)
  assert [e["x"].tolist() for e in first] == [[0, 0], [1, 1], [2, 2]]
  assert os.path.exists(path)
  later = Dataset.from_generator(gen, output_signature=spec).cache(path)
  assert [e["x"].tolist() for e in later] == [[0, 0], [1, 1], [2, 2]]
  assert len(calls) == 1
  with open(path, "rb") as f:
    assert len(pickle.load(f)) == 3


def test_prefetch_keeps_the_elements():
  ds = Dataset.range(20).map(lambda x: x * 3).prefetch(AUTOTUNE)
  assert _values(ds) == [3 * i for i in range(20)]
  assert _values(Dataset.range(5).prefetch(0)) == list(range(5))
  with pytest.raises(ValueError, match="AUTOTUNE"):
    Dataset.range(5).prefetch(-5)


def test_as_numpy_iterator_is_a_fresh_pass_each_time():
  ds = Dataset.range(3)
  it = ds.as_numpy_iterator()
  assert next(it) == 0
  assert list(ds.as_numpy_iterator()) == [0, 1, 2]
  assert list(it) == [1, 2]


def test_len_and_cardinality_constants():
  assert len(Dataset.range(5).batch(2)) == 3
  with pytest.raises(TypeError, match="infinite"):
    len(Dataset.range(5).repeat())
  with pytest.raises(TypeError, match="unknown"):
    len(Dataset.range(5).filter(lambda x: x > 1))
  assert Dataset.range(5).repeat().cardinality() == (
      estlab.data.INFINITE_CARDINALITY)
  assert estlab.data.experimental.cardinality(
      Dataset.range(5).filter(lambda x: x > 1)) == (
          estlab.data.experimental.UNKNOWN_CARDINALITY)


def test_missing_tf_names_say_what_exists():
  with pytest.raises(AttributeError, match="padded_batch.*not provided.*"
                     "from_tensor_slices"):
    Dataset.range(3).padded_batch(2)  # pylint: disable=expression-not-assigned


def test_repr_names_the_steps():
  ds = Dataset.from_tensor_slices({"x": [1, 2]}).shuffle(4).repeat().batch(2)
  assert repr(ds) == ("<Dataset from_tensor_slices -> shuffle(4) -> repeat() "
                      "-> batch(2)>")


def test_public_names():
  assert estlab.data.Dataset is Dataset
  assert estlab.data.AUTOTUNE == estlab.data.experimental.AUTOTUNE == -1
  assert estlab.data.experimental.make_csv_dataset is (
      estlab.inputs.make_csv_dataset)
  assert "data" in dir(estlab)


def test_take_of_an_infinite_generator_stops():
  ds = Dataset.from_generator(itertools.count, output_types=np.int64)
  assert _values(ds.take(3)) == [0, 1, 2]
  assert _values(ds.skip(2).take(2)) == [2, 3]


def test_len_of_an_infinite_or_unknown_dataset_says_what_to_do():
  ds = Dataset.range(3)
  assert len(ds) == 3
  with pytest.raises(TypeError, match=r"infinite.*\.take\(n\)"):
    len(ds.repeat())
  with pytest.raises(TypeError, match=r"unknown.*cardinality"):
    len(ds.filter(lambda x: x > 0))
  with pytest.raises(ValueError, match=r"Dataset\.zip\(\(features, labels\)\)"):
    Dataset.zip(())
