"""estlab.premade.optimizers: FTRL against the published rule; TF names -> optax.

References are plain numpy (float64), written from the formulas in Keras'
legacy optimizers and TF's training kernels, one coordinate at a time.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from estlab.premade import optimizers
from estlab.premade.optimizers import FtrlState, ftrl, get_optimizer


# ----------------------------------------------------------------------------
# FTRL
# ----------------------------------------------------------------------------


def _ftrl_reference(w0, grads, lr=0.001, lr_power=-0.5, init_acc=0.1, l1=0.0,
                    l2=0.0, shrinkage=0.0, beta=0.0):
  """McMahan et al. (2013) Algorithm 1 per coordinate, with Keras' extensions.

  Keras' L2 is ``l2 * w**2`` in the loss (the paper's lambda_2 is ``2 * l2``);
  the shrinkage L2 adds ``2 * shrinkage * w`` to the gradient used for z but
  not to n (TF's ApplyFtrlV2). Beta enters as in the paper, not folded.
  """
  w = np.array(w0, np.float64).ravel().copy()
  n = np.full_like(w, init_acc)
  z = np.zeros_like(w)
  for g in grads:
    g = np.asarray(g, np.float64).ravel()
    for i in range(w.size):
      g_shrunk = g[i] + 2 * shrinkage * w[i]
      n_new = n[i] + g[i] ** 2
      sigma = (n_new ** -lr_power - n[i] ** -lr_power) / lr
      z[i] += g_shrunk - sigma * w[i]
      n[i] = n_new
      if abs(z[i]) <= l1:
        w[i] = 0.0
      else:
        w[i] = -(z[i] - np.sign(z[i]) * l1) / (
            (beta + n_new ** -lr_power) / lr + 2 * l2)
  return w.reshape(np.shape(w0))


def _run(opt, params, grads):
  state = opt.init(params)
  for g in grads:
    updates, state = opt.update(g, state, params)
    params = optax.apply_updates(params, updates)
  return params, state


_CASES = {
    "plain": dict(),
    "l1": dict(l1_regularization_strength=0.05),
    "l2": dict(l2_regularization_strength=0.3),
    "l2_shrinkage": dict(l2_shrinkage_regularization_strength=0.2),
    "beta": dict(beta=0.5),
    "lr_power_-0.3": dict(learning_rate_power=-0.3),
    "fixed_rate": dict(learning_rate_power=0.0),
    "initial_accumulator_0": dict(initial_accumulator_value=0.0),
    "initial_accumulator_1": dict(initial_accumulator_value=1.0),
    "everything": dict(learning_rate_power=-0.3, initial_accumulator_value=0.5,
                       l1_regularization_strength=0.02,
                       l2_regularization_strength=0.1,
                       l2_shrinkage_regularization_strength=0.05, beta=0.2),
}

_REFERENCE_NAMES = dict(
    learning_rate="lr", learning_rate_power="lr_power",
    initial_accumulator_value="init_acc", l1_regularization_strength="l1",
    l2_regularization_strength="l2",
    l2_shrinkage_regularization_strength="shrinkage", beta="beta")


@pytest.mark.parametrize("case", sorted(_CASES))
def test_ftrl_matches_the_per_coordinate_rule_over_several_steps(case):
  kwargs = dict(learning_rate=0.1, **_CASES[case])
  rng = np.random.default_rng(0)
  w0 = rng.normal(size=(6,)).astype(np.float32)
  grads = [rng.normal(size=(6,)).astype(np.float32) for _ in range(6)]
  got, state = _run(ftrl(**kwargs), jnp.asarray(w0), [jnp.asarray(g) for g in grads])
  want = _ftrl_reference(
      w0, grads, **{_REFERENCE_NAMES[k]: v for k, v in kwargs.items()})
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), want, rtol=2e-5, atol=1e-6)
  init_acc = kwargs.get("initial_accumulator_value", 0.1)
  np.testing.assert_allclose(
      np.asarray(state.accumulators),
      init_acc + sum(np.asarray(g, np.float64) ** 2 for g in grads), rtol=1e-6)


def test_ftrl_first_step_by_hand():
  # w = 0.5, g = 0.2, lr = 0.1, n = 0.1, l1 = 0.01, l2 = 0.1:
  #   n'    = 0.1 + 0.04                              = 0.14
  #   sigma = (sqrt(0.14) - sqrt(0.1)) / 0.1          = 0.579379727
  #   z     = 0 + 0.2 - 0.579379727 * 0.5             = -0.089689863
  #   w'    = (0.01 * sign(z) - z) / (sqrt(0.14) / 0.1 + 2 * 0.1)
  #         = 0.079689863 / 3.941657387               = 0.020217349
  opt = ftrl(learning_rate=0.1, l1_regularization_strength=0.01,
             l2_regularization_strength=0.1)
  params = jnp.array([0.5])
  updates, state = opt.update(jnp.array([0.2]), opt.init(params), params)
  np.testing.assert_allclose(optax.apply_updates(params, updates), [0.020217349],
                             rtol=1e-6)
  np.testing.assert_allclose(state.linears, [-0.089689863], rtol=1e-6)
  np.testing.assert_allclose(state.accumulators, [0.14], rtol=1e-6)
  # From w = 0 with g = 1 and no regularisation: w' = -lr / sqrt(1.1).
  opt = ftrl(learning_rate=0.1)
  updates, _ = opt.update(jnp.array([1.0]), opt.init(jnp.zeros(1)), jnp.zeros(1))
  np.testing.assert_allclose(updates, [-0.1 / math.sqrt(1.1)], rtol=1e-6)


def test_ftrl_strong_l1_keeps_weights_exactly_zero():
  opt = ftrl(learning_rate=0.5, l1_regularization_strength=1.0)
  rng = np.random.default_rng(1)
  params = jnp.zeros(50)
  grads = [jnp.asarray(rng.uniform(-0.02, 0.02, size=50), jnp.float32)
           for _ in range(20)]
  params, state = _run(opt, params, grads)
  assert np.all(np.asarray(params) == 0.0)
  assert np.any(np.asarray(state.linears) != 0.0)  # z moved; w stayed 0
  # A coordinate whose accumulated gradient passes l1 leaves zero; one that
  # falls back under it returns to exactly zero.
  push = jnp.zeros(50).at[0].set(3.0)
  updates, state = opt.update(push, state, params)
  params = optax.apply_updates(params, updates)
  assert params[0] != 0.0 and np.all(np.asarray(params[1:]) == 0.0)
  back = jnp.zeros(50).at[0].set(-3.0)
  updates, state = opt.update(back, state, params)
  params = optax.apply_updates(params, updates)
  assert abs(float(state.linears[0])) <= 1.0 and float(params[0]) == 0.0


def test_ftrl_under_jit_matches_eager_and_fits_a_quadratic():
  opt = ftrl(learning_rate=0.5, l2_regularization_strength=0.01)
  target = jnp.array([1.0, -2.0, 0.5])

  def loss(w):
    return 0.5 * jnp.sum((w - target) ** 2)

  @jax.jit
  def step(w, state):
    updates, state = opt.update(jax.grad(loss)(w), state, w)
    return optax.apply_updates(w, updates), state

  w, state = jnp.zeros(3), opt.init(jnp.zeros(3))
  w_eager, state_eager = w, state
  start = float(loss(w))
  for _ in range(200):
    w, state = step(w, state)
  for _ in range(3):
    updates, state_eager = opt.update(jax.grad(loss)(w_eager), state_eager, w_eager)
    w_eager = optax.apply_updates(w_eager, updates)
  assert float(loss(w)) < 1e-3 * start
  # Same three steps, jitted and eager.
  w3, s3 = jnp.zeros(3), opt.init(jnp.zeros(3))
  for _ in range(3):
    w3, s3 = step(w3, s3)
  np.testing.assert_allclose(w3, w_eager, rtol=1e-6, atol=1e-7)
  assert step._cache_size() == 1  # compiled once for all 203 steps


def test_ftrl_on_a_nested_pytree():
  rng = np.random.default_rng(2)
  params = {"dense": {"kernel": rng.normal(size=(3, 2)).astype(np.float32)},
            "bias": [rng.normal(size=(2,)).astype(np.float32), np.float32(0.3)]}
  params = jax.tree.map(jnp.asarray, params)
  grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=np.shape(p)),
                                              jnp.float32), params)
           for _ in range(4)]
  kwargs = dict(learning_rate=0.2, l1_regularization_strength=0.01,
                l2_shrinkage_regularization_strength=0.1)
  got, state = jax.jit(lambda p, gs: _run(ftrl(**kwargs), p, gs))(params, grads)
  assert isinstance(state, FtrlState)
  assert jax.tree.structure(state.accumulators) == jax.tree.structure(params)
  assert jax.tree.structure(state.linears) == jax.tree.structure(params)
  leaves_p, treedef = jax.tree.flatten(params)
  leaves_g = [treedef.flatten_up_to(g) for g in grads]
  for i, (w0, w) in enumerate(zip(leaves_p, jax.tree.leaves(got))):
    want = _ftrl_reference(np.asarray(w0), [np.asarray(g[i]) for g in leaves_g],
                           lr=0.2, l1=0.01, shrinkage=0.1)
    np.testing.assert_allclose(np.asarray(w), want, rtol=2e-5, atol=1e-6)


def test_ftrl_update_needs_params():
  opt = ftrl()
  state = opt.init(jnp.zeros(2))
  with pytest.raises(ValueError, match=r"params=None.*opt\.update\(grads, state, params\)"):
    opt.update(jnp.ones(2), state)


@pytest.mark.parametrize("name, value", [
    ("learning_rate", 0.0),
    ("learning_rate_power", 0.5),
    ("initial_accumulator_value", -0.1),
    ("l1_regularization_strength", -1.0),
    ("l2_regularization_strength", -1.0),
    ("l2_shrinkage_regularization_strength", -1.0),
    ("beta", -1.0),
])
def test_ftrl_rejects_out_of_range_arguments_showing_the_value(name, value):
  with pytest.raises(ValueError, match=rf"ftrl\({name}={value!r}\): {name} must be"):
    ftrl(**{name: value})


def test_ftrl_takes_a_schedule_as_keras_ftrl_does():
  # The migration guide's Ftrl(learning_rate=ExponentialDecay(...), l1=...).
  schedule = optax.exponential_decay(0.1, transition_steps=1, decay_rate=0.5)
  opt = ftrl(learning_rate=schedule, l1_regularization_strength=0.001)
  fixed = [ftrl(learning_rate=r, l1_regularization_strength=0.001)
           for r in (0.1, 0.05, 0.025)]
  w = w_fixed = jnp.array([0.5, -1.0])
  state = opt.init(w)
  grads = [jnp.array([0.3, -0.2]), jnp.array([0.1, 0.4]), jnp.array([-0.5, 0.2])]
  fixed_states = [f.init(w) for f in fixed]
  for i, g in enumerate(grads):
    updates, state = jax.jit(opt.update)(g, state, w)
    w = optax.apply_updates(w, updates)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(
        0.1 * 0.5 ** i)
  # Each step equals FTRL at that step's rate, the accumulators carried over.
  n, z = fixed_states[0].accumulators, fixed_states[0].linears
  for f, g in zip(fixed, grads):
    updates, s = f.update(g, FtrlState(accumulators=n, linears=z), w_fixed)
    w_fixed, n, z = optax.apply_updates(w_fixed, updates), s.accumulators, s.linears
  np.testing.assert_allclose(w, w_fixed, rtol=1e-6)


# ----------------------------------------------------------------------------
# get_optimizer
# ----------------------------------------------------------------------------

_A = np.array([1.0, 2.0, 0.5])
_C = np.array([1.0, -2.0, 3.0])


def _quadratic_grad(w):
  """Gradient of 0.5 * sum(a * (w - c)**2)."""
  return _A * (w - _C)


def _keras_reference(name, lr, steps):
  """tf.keras.optimizers.legacy.<name>() at its defaults, in numpy."""
  w = np.zeros(3)
  if name == "Ftrl":
    # One step at a time so each gradient is taken at the current weights.
    n, z = np.full(3, 0.1), np.zeros(3)
    out = []
    for _ in range(steps):
      g = _quadratic_grad(w)
      n_new = n + g * g
      z = z + g - (np.sqrt(n_new) - np.sqrt(n)) / lr * w
      n = n_new
      w = np.where(np.abs(z) > 0, -z / (np.sqrt(n) / lr), 0.0)
      out.append(w.copy())
    return out
  acc, m, v = np.full(3, 0.1), np.zeros(3), np.zeros(3)
  out = []
  for t in range(1, steps + 1):
    g = _quadratic_grad(w)
    if name == "Adagrad":  # ResourceApplyAdagradV2
      acc = acc + g * g
      w = w - lr * g / (np.sqrt(acc) + 1e-7)
    elif name == "Adam":  # ResourceApplyAdam; epsilon is "epsilon hat"
      m = 0.9 * m + 0.1 * g
      v = 0.999 * v + 0.001 * g * g
      lr_t = lr * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
      w = w - lr_t * m / (np.sqrt(v) + 1e-7)
    elif name == "RMSProp":  # legacy RMSprop, momentum=0, not centered
      v = 0.9 * v + 0.1 * g * g
      w = w - lr * g / (np.sqrt(v) + 1e-7)
    elif name == "SGD":
      w = w - lr * g
    out.append(w.copy())
  return out


@pytest.mark.parametrize("name", optimizers.OPTIMIZER_NAMES)
def test_each_name_matches_keras_first_steps(name):
  lr = 0.05
  opt = get_optimizer(name, learning_rate=lr)
  w = jnp.zeros(3)
  state = opt.init(w)
  want = _keras_reference(name, lr, steps=5)
  for step in range(5):
    g = jnp.asarray(_quadratic_grad(np.asarray(w, np.float64)), jnp.float32)
    updates, state = opt.update(g, state, w)
    w = optax.apply_updates(w, updates)
    np.testing.assert_allclose(np.asarray(w), want[step], rtol=1e-5, atol=1e-7,
                               err_msg=f"{name}, step {step + 1}")


@pytest.mark.parametrize("name", optimizers.OPTIMIZER_NAMES)
def test_learning_rate_is_exposed_in_the_state(name):
  state = get_optimizer(name, learning_rate=0.03).init({"w": jnp.zeros(2)})
  assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.03)
  default = get_optimizer(name).init({"w": jnp.zeros(2)})
  assert float(default.hyperparams["learning_rate"]) == pytest.approx(
      optimizers.KERAS_DEFAULT_LEARNING_RATES[name])


def test_injected_ftrl_works_under_jit_and_follows_a_schedule():
  opt = get_optimizer("Ftrl", optax.linear_schedule(0.2, 0.1, transition_steps=2))
  w = jnp.ones(2)
  state = opt.init(w)
  step = jax.jit(opt.update)
  rates = []
  for _ in range(3):
    updates, state = step(jnp.ones(2), state, w)
    w = optax.apply_updates(w, updates)
    rates.append(float(state.hyperparams["learning_rate"]))
  # The state records the rate each step used: 0.2, then 0.15, then 0.1.
  assert rates == pytest.approx([0.2, 0.15, 0.1])
  assert step._cache_size() == 1  # one compilation for all steps


def test_unknown_name_lists_the_valid_names():
  with pytest.raises(ValueError) as err:
    get_optimizer("Adadelta")
  for name in ("Adagrad", "Adam", "Ftrl", "RMSProp", "SGD"):
    assert name in str(err.value)
  assert "'Adadelta'" in str(err.value)
  with pytest.raises(ValueError, match="Did you mean 'RMSProp'"):
    get_optimizer("RMSprop")


def test_optax_and_callables_pass_through():
  tx = optax.adam(1e-3)
  assert get_optimizer(tx) is tx
  assert get_optimizer(tx, learning_rate=0.5) is tx  # as TF: rate unused
  assert get_optimizer(lambda: tx) is tx
  with pytest.raises(ValueError, match="returned 3"):
    get_optimizer(lambda: 3)
  with pytest.raises(ValueError, match="optimizer=3 is not an optimizer"):
    get_optimizer(3)
  with pytest.raises(ValueError, match=r"learning_rate=-0\.1.*must be > 0"):
    get_optimizer("SGD", learning_rate=-0.1)


# ----------------------------------------------------------------------------
# The canned estimators' defaults
# ----------------------------------------------------------------------------


def _rate(opt):
  return float(opt.init(jnp.zeros(1)).hyperparams["learning_rate"])


def test_tf_default_learning_rates():
  assert optimizers.LINEAR_LEARNING_RATE == 0.2
  assert optimizers.DNN_LEARNING_RATE == 0.05
  assert optimizers.BASELINE_LEARNING_RATE == 0.3
  assert optimizers.DNN_LINEAR_COMBINED_DNN_LEARNING_RATE == 0.001
  assert optimizers.DNN_LINEAR_COMBINED_LINEAR_LEARNING_RATE == 0.005
  assert optimizers.linear_learning_rate(4) == 0.2  # 1/sqrt(4) = 0.5 > 0.2
  assert optimizers.linear_learning_rate(100) == pytest.approx(0.1)
  assert _rate(optimizers.default_linear_optimizer(100)) == pytest.approx(0.1)
  assert _rate(optimizers.default_dnn_optimizer()) == pytest.approx(0.001)
  assert _rate(optimizers.default_baseline_optimizer()) == pytest.approx(0.3)
  linear, dnn = optimizers.default_dnn_linear_combined_optimizers(1)
  assert _rate(linear) == pytest.approx(0.005)
  assert _rate(dnn) == pytest.approx(0.001)
  with pytest.raises(ValueError, match=r"num_feature_columns=0.*int > 0"):
    optimizers.linear_learning_rate(0)


@pytest.mark.parametrize("name", optimizers.OPTIMIZER_NAMES)
def test_each_name_runs_on_one_raveled_vector_with_per_leaf_numbers(name):
  params = {"w": jnp.array([[0.5, -1.0], [2.0, 0.0]]), "b": jnp.array([0.1])}
  grads = [jax.tree.map(lambda p, s=s: jnp.sin(p + s) + 0.3, params)
           for s in range(4)]
  flat, leafwise = (get_optimizer(name, 0.05),
                    optimizers._per_leaf(name, 0.05))  # pylint: disable=protected-access
  states = [flat.init(params), leafwise.init(params)]
  assert all(np.ndim(a) <= 1 for a in jax.tree.leaves(states[0]))
  got, want = params, params
  for g in grads:
    update, states[0] = flat.update(g, states[0], got)
    got = optax.apply_updates(got, update)
    update, states[1] = leafwise.update(g, states[1], want)
    want = optax.apply_updates(want, update)
  for key in params:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-7,
                               err_msg=f"{name}/{key}")
