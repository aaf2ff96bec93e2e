"""The heads' sigmoid cross entropy: optax's values, the exact gradient."""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from estlab.heads._losses import sigmoid_cross_entropy


def _inputs():
  x = np.concatenate([np.linspace(-60, 60, 241), [0.0, -1e-8, 1e-8]])
  z = np.random.default_rng(0).random(x.shape)  # soft labels too
  z[:3] = [0.0, 1.0, 0.5]
  return x.astype(np.float32), z.astype(np.float32)


def test_values_equal_optax_and_the_exact_value():
  x, z = _inputs()
  got = sigmoid_cross_entropy(x, z)
  # Within float32 rounding of logits up to 60 (an ulp there is 4e-6).
  np.testing.assert_allclose(got, optax.sigmoid_binary_cross_entropy(x, z),
                             rtol=1e-6, atol=1e-5)
  x64, z64 = x.astype(np.float64), z.astype(np.float64)
  exact = np.logaddexp(0.0, x64) - x64 * z64
  np.testing.assert_allclose(got, exact, rtol=1e-6, atol=1e-5)


def test_gradients_are_sigmoid_minus_label_and_minus_logit_even_at_zero():
  x, z = _inputs()
  gx, gz = jax.grad(lambda x, z: jnp.sum(sigmoid_cross_entropy(x, z)),
                    argnums=(0, 1))(x, z)
  np.testing.assert_allclose(gx, jax.nn.sigmoid(x) - z, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(gz, -x)
  # A zero-initialised linear model starts at logits == 0: the slope there
  # is 0.5 - z, not a one-sided subgradient of max/abs.
  at_zero = jax.grad(lambda x: sigmoid_cross_entropy(x, jnp.float32(0.25)))(
      jnp.float32(0.0))
  assert float(at_zero) == 0.25


def test_second_order_and_vmap_work():
  x, z = _inputs()
  hess = jax.vmap(jax.grad(jax.grad(sigmoid_cross_entropy)))(x, z)
  s = jax.nn.sigmoid(x)
  np.testing.assert_allclose(hess, s * (1 - s), rtol=1e-4, atol=1e-7)
