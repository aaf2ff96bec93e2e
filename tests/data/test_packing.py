"""Packing host batches into one buffer per word size (estlab.data._packing)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from estlab.data import _packing
from estlab.data._packing import take_rows


def _batch(rows=5):
  rng = np.random.default_rng(0)
  features = {"x": rng.normal(size=(rows, 3)).astype(np.float32),
              "ids": {"ids": rng.integers(0, 9, (rows, 2)).astype(np.int32),
                      "weights": np.ones((rows, 2), np.float32)},
              "flag": rng.random(rows) > 0.5,
              "grid": rng.normal(size=(rows, 2, 2)).astype(np.float32)}
  labels = rng.integers(0, 2, rows).astype(np.int64)
  return features, labels


def test_pack_makes_one_buffer_per_word_size_with_the_batch_axis_first():
  packed = _packing.pack(_batch())
  shapes = {str(b.dtype): b.shape for b in packed.buffers}
  # 32-bit words: x (3), ids (2), weights (2), grid (4) and the labels (1),
  # int64 labels becoming int32 as JAX would make them; bool: flag (1).
  assert shapes == {"uint32": (5, 12), "bool": (5, 1)}
  # One dtype alone keeps it: no bit-casts to undo.
  alone = _packing.pack({"x": np.ones((5, 2), np.float32)})
  assert [str(b.dtype) for b in alone.buffers] == ["float32"]


def test_values_of_any_bit_pattern_survive_the_shared_word_buffer():
  features = {"f": np.array([[np.nan, -0.0], [np.inf, 1e-45]], np.float32),
              "i": np.array([[-1, 2**31 - 1], [-2**31, 0]], np.int32)}
  packed = _packing.pack(features)
  for got, want in ((packed.unpack(), features),
                    (jax.jit(lambda p: p.unpack())(packed), features)):
    for key in want:
      assert np.asarray(got[key]).dtype == want[key].dtype
      assert np.asarray(got[key]).tobytes() == want[key].tobytes()


def test_unpack_restores_every_leaf_exactly():
  features, labels = _batch()
  got_features, got_labels = _packing.pack((features, labels)).unpack()
  assert jax.tree.structure(got_features) == jax.tree.structure(features)
  for want, got in zip(jax.tree.leaves(features), jax.tree.leaves(got_features)):
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
  assert got_labels.dtype == np.int32
  np.testing.assert_array_equal(got_labels, labels)


def test_unpack_inside_jit_equals_unpack_on_the_host():
  packed = _packing.pack(_batch())

  @jax.jit
  def total(p):
    features, labels = p.unpack()
    return (jnp.sum(features["x"]) + jnp.sum(features["grid"]) +
            jnp.sum(features["ids"]["ids"]) + jnp.sum(labels))
  features, labels = packed.unpack()
  want = (features["x"].sum() + features["grid"].sum() +
          features["ids"]["ids"].sum() + labels.sum())
  np.testing.assert_allclose(total(packed), want, rtol=1e-5)


def test_the_layout_is_static_so_jit_compiles_once_per_layout():
  traces = []

  @jax.jit
  def f(p):
    traces.append(1)
    return p.unpack()[0]["x"].sum()
  f(_packing.pack(_batch()))
  f(_packing.pack(_batch()))                 # same layout and shapes
  assert len(traces) == 1
  features, labels = _batch()
  f(_packing.pack((features, None)))         # no labels: another layout
  assert len(traces) == 2


def test_stacked_batches_unpack_with_both_leading_axes():
  one = _packing.pack(_batch())
  stacked = jax.tree.map(lambda *xs: np.stack(xs), one, one, one)
  features, labels = stacked.unpack()
  assert features["grid"].shape == (3, 5, 2, 2) and labels.shape == (3, 5)


def test_take_rows_gathers_rows_of_every_buffer_of_a_packed_batch():
  features, labels = _batch()
  packed = take_rows(_packing.pack((features, labels)), np.array([4, 0]))
  got_features, got_labels = packed.unpack()
  np.testing.assert_array_equal(got_features["x"], features["x"][[4, 0]])
  np.testing.assert_array_equal(got_labels, labels[[4, 0]])
  sliced = take_rows(_packing.pack((features, labels)), slice(1, 3))
  np.testing.assert_array_equal(sliced.unpack()[1], labels[1:3])


@pytest.mark.parametrize("tree", [
    ({"x": jnp.ones((2, 1))}, None),             # already on the device
    ({"x": np.ones((2, 1))}, np.float32(1.0)),   # a leaf without the batch axis
    ({"x": np.ones((2, 1)), "y": np.ones((3, 1))}, None),  # sizes disagree
    ({}, None),                                  # nothing to pack
])
def test_pack_declines_trees_it_cannot_pack(tree):
  assert _packing.pack(tree) is None


def test_equal_layouts_are_one_object_and_compare_as_values():
  import pickle  # pylint: disable=g-import-not-at-top
  first, second = _packing.pack(_batch()), _packing.pack(_batch())
  assert first.layout is second.layout  # interned: jit compares by identity
  other = _packing.Layout(first.layout.treedef, first.layout.slots)
  assert other == first.layout and hash(other) == hash(first.layout)
  assert other != _packing.Layout(first.layout.treedef, first.layout.slots[:-1])
  copy = pickle.loads(pickle.dumps(first.layout))
  assert copy == first.layout and hash(copy) == hash(first.layout)
