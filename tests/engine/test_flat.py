"""Small params as one vector (``estlab._engine.flat``)."""
import jax
import jax.numpy as jnp
import numpy as np

from estlab._engine import flat as _flat
from estlab._engine.flat import FlatParams

PARAMS = {"a": jnp.arange(6.0).reshape(2, 3), "b": {"c": jnp.arange(4.0) + 10}}


def test_layout_of_small_float_params_of_one_dtype(monkeypatch):
  flat = FlatParams.of(PARAMS)
  assert flat.size == 10 and flat.shapes == [(2, 3), (4,)]
  shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), PARAMS)
  assert FlatParams.of(shapes).size == 10  # from shapes alone (compile ahead)
  assert FlatParams.of({"a": jnp.ones(3)}) is None  # one leaf: nothing to gain
  assert FlatParams.of({"a": jnp.ones(3), "b": jnp.ones(3, jnp.bfloat16)}) is None
  assert FlatParams.of({"a": jnp.ones(3, jnp.int32), "b": jnp.ones(2, jnp.int32)}) is None
  monkeypatch.setattr(_flat, "MAX_BYTES", 39)  # 10 float32 = 40 bytes
  assert FlatParams.of(PARAMS) is None


def test_ravel_and_unravel_round_trip_in_flatten_order():
  flat = FlatParams.of(PARAMS)
  vector = flat.ravel(PARAMS)
  np.testing.assert_array_equal(vector, [0, 1, 2, 3, 4, 5, 10, 11, 12, 13])
  back = jax.jit(flat.unravel)(vector)
  assert jax.tree.structure(back) == jax.tree.structure(PARAMS)
  for got, want in zip(jax.tree.leaves(back), jax.tree.leaves(PARAMS)):
    np.testing.assert_array_equal(got, want)
  assert flat.is_raveled(vector) and flat.is_raveled(flat.abstract())
  assert not flat.is_raveled(PARAMS)
  assert not flat.is_raveled(jnp.zeros(9))


def test_unravel_gradient_is_one_concatenation_not_a_pad_per_leaf():
  # A slice per leaf would transpose to a zero-padded full vector per leaf,
  # summed: it made a DNN step twice as slow.
  flat = FlatParams.of(PARAMS)
  grad = jax.grad(lambda v: sum(jnp.sum(x ** 2) for x in
                                jax.tree.leaves(flat.unravel(v))))
  vector = flat.ravel(PARAMS)
  np.testing.assert_allclose(grad(vector), 2 * vector)
  primitives = {e.primitive.name for e in jax.make_jaxpr(grad)(vector).eqns}
  assert "pad" not in primitives and "concatenate" in primitives
