"""Compiled steps: training carries small params as one vector."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from estlab._engine import flat as _flat, startup as _startup, xla_options as _xla_options

CONFIG = dict(progress_bar=False, tf_random_seed=0, save_checkpoints_steps=None)


class _TwoLayers(nn.Module):
  dtype: type = jnp.float32

  @nn.compact
  def __call__(self, x):
    h = nn.tanh(nn.Dense(4, param_dtype=self.dtype, dtype=jnp.float32)(x))
    return nn.Dense(1)(h)[:, 0]


def _model_fn(optimizer, dtype=jnp.float32):
  def model_fn(features, labels, mode):
    out = _TwoLayers(dtype)(features["x"])
    loss = jnp.mean((out - labels) ** 2)
    return estlab.EstimatorSpec(mode, loss=loss, train_op=optimizer,
                                predictions=out)
  return model_fn


def _input():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 3)).astype(np.float32)
  y = (x @ np.array([1.0, -2.0, 0.5], np.float32)).astype(np.float32)
  return estlab.inputs.numpy_input_fn({"x": x}, y, batch_size=8,
                                      num_epochs=None, shuffle=True, seed=1)


def _train(tmp_path, optimizer, steps_per_loop, dtype=jnp.float32):
  est = estlab.Estimator(
      _model_fn(optimizer, dtype), model_dir=tmp_path / f"spl{steps_per_loop}",
      config=estlab.RunConfig(**CONFIG, steps_per_loop=steps_per_loop))
  est.train(_input(), steps=12)
  return est, {n: est.get_variable_value(n) for n in est.get_variable_names()}


@pytest.mark.parametrize("optimizer", [
    # Per-leaf rules: LAMB's trust ratio is per parameter array, global-norm
    # clipping sees all of them; on a raveled vector both would differ.
    optax.lamb(0.05), optax.chain(optax.clip_by_global_norm(0.1), optax.adam(0.05)),
    optax.flatten(optax.adagrad(0.1)),
], ids=["lamb", "clip_adam", "flat_adagrad"])
def test_a_loop_trains_as_single_steps_with_any_optimizer(tmp_path, optimizer):
  single, want = _train(tmp_path, optimizer, 1)
  looped, got = _train(tmp_path, optimizer, 5)  # 5 + 5 in loops, then 1 + 1
  assert looped._run().steps.traces["train_loop"] == 1
  assert single._run().steps.traces["train_loop"] == 0
  assert want.keys() == got.keys() and len(want) == 5  # 4 + global_step
  for name, value in want.items():
    np.testing.assert_allclose(got[name], value, rtol=2e-5, atol=1e-6,
                               err_msg=name)


@pytest.mark.parametrize("optimizer", [
    optax.lamb(0.05), optax.chain(optax.clip_by_global_norm(0.1), optax.adam(0.05)),
], ids=["lamb", "clip_adam"])
def test_single_steps_on_raveled_params_train_as_on_the_tree(
    tmp_path, optimizer, monkeypatch):
  raveled, got = _train(tmp_path / "raveled", optimizer, 1)
  assert raveled._run().steps.flat.size == 3 * 4 + 4 + 4 + 1
  monkeypatch.setattr(_flat, "MAX_BYTES", 0)  # nothing is raveled
  tree, want = _train(tmp_path / "tree", optimizer, 1)
  assert tree._run().steps.flat is None
  assert want.keys() == got.keys() and len(want) == 5  # 4 + global_step
  for name, value in want.items():
    np.testing.assert_allclose(got[name], value, rtol=2e-5, atol=1e-6,
                               err_msg=name)


def test_steps_carry_the_vector_and_train_keeps_the_tree(tmp_path):
  est, _ = _train(tmp_path, optax.adam(0.05), 1)
  compiled = est._run().steps
  kernel = "_TwoLayers_0/Dense_0/kernel"
  assert est._session.state.params["_TwoLayers_0"]["Dense_0"]["kernel"].shape == (3, 4)
  est.train(_input(), steps=3)  # from memory: raveled again, same step
  assert compiled.traces["train_step"] == 1
  assert est.train_step_cache_size() == 1
  in_memory = np.asarray(est._session.state.params["_TwoLayers_0"]["Dense_0"]["kernel"])
  np.testing.assert_array_equal(est.get_variable_value(kernel), in_memory)
  # A fresh Estimator restores the tree and goes on from it.
  again = estlab.Estimator(_model_fn(optax.adam(0.05)), model_dir=est.model_dir,
                           config=est.config)
  again.train(_input(), steps=2)
  assert again.latest_checkpoint().endswith("/17")


def test_a_loop_over_mixed_dtype_params_keeps_each_dtype(tmp_path):
  _, want = _train(tmp_path, optax.adam(0.05), 1, dtype=jnp.bfloat16)
  _, got = _train(tmp_path, optax.adam(0.05), 4, dtype=jnp.bfloat16)
  assert got["_TwoLayers_0/Dense_0/kernel"].dtype == jnp.bfloat16
  for name, value in want.items():
    np.testing.assert_allclose(np.asarray(got[name], np.float32),
                               np.asarray(value, np.float32), rtol=1e-2,
                               atol=1e-3, err_msg=name)


def test_init_compiles_once_with_its_cpu_options_and_without_where_refused(
    tmp_path, monkeypatch):
  # This XLA knows the option: one trace, one compile, same state as without.
  est, want = _train(tmp_path / "known", optax.sgd(0.1), 1)
  assert est._run().steps.traces["init"] == 1
  # An XLA that refuses an option ("No such compile option"): init compiles
  # without it, from the same trace, and trains to the same variables.
  monkeypatch.setattr(_xla_options, "_RUN_ONCE_CPU",
                      {"xla_cpu_no_such_option_for_estlab": True})
  monkeypatch.setattr(_xla_options, "_ACCEPTED", {})
  est, got = _train(tmp_path / "refused", optax.sgd(0.1), 1)
  assert est._run().steps.traces["init"] == 1
  # Asked once per process: later inits compile without it straight away.
  assert _xla_options._ACCEPTED["xla_cpu_no_such_option_for_estlab"] is False
  assert want.keys() == got.keys()
  for name, value in want.items():
    np.testing.assert_allclose(got[name], value, rtol=1e-6, err_msg=name)


def test_a_model_fn_error_at_init_surfaces_unchanged(tmp_path):
  def model_fn(features, labels, mode):
    raise ValueError("bad model_fn, value 3")
  est = estlab.Estimator(model_fn, model_dir=tmp_path, config=estlab.RunConfig(**CONFIG))
  with pytest.raises(ValueError, match="bad model_fn, value 3"):
    est.train(estlab.inputs.numpy_input_fn(
        {"x": np.ones((8, 3), np.float32)}, np.ones(8, np.float32), batch_size=8,
        shuffle=False), steps=1)


@pytest.mark.parametrize("backend,size,distributed,want", [
    ("cpu", 1000, False, False),       # the host is the device already
    ("gpu", 1000, False, True),
    ("tpu", 64 << 20, False, True),
    ("gpu", (64 << 20) + 1, False, False),  # large: the device draws faster
    ("gpu", 1000, True, False),        # a strategy: replicas must agree
])
def test_init_on_host_for_small_states_on_accelerators(backend, size,
                                                       distributed, want):
  assert _startup.init_on_host(backend, size, distributed) is want


def test_init_on_another_device_gives_the_same_state_on_the_default(tmp_path):
  est, _ = _train(tmp_path, optax.adam(0.1), 1)
  steps = est._run().steps
  args = (jax.random.PRNGKey(3), {"x": np.ones((8, 3), np.float32)},
          np.ones(8, np.float32))
  want = steps.init(*args)
  # The host CPU on an accelerator; here, another (virtual) CPU device.
  other = (jax.devices()[1] if jax.default_backend() == "cpu"
           else jax.devices("cpu")[0])
  got = steps.init(*args, on=other)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert a.devices() == {jax.devices()[0]}
    # Uncommitted, as a default-device init: else the steps compiled ahead
    # for uncommitted arguments would compile again (seen on a GPU).
    assert a._committed == b._committed  # pylint: disable=protected-access
    # Same bits from threefry; an accelerator's float transforms may differ
    # from the host's in the last ulp (seen on an H100: 1.2e-7).
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
  host = _startup.host_for_init(jax.eval_shape(lambda: want), False)
  if jax.default_backend() == "cpu":
    assert host is None  # the host is the device: nothing to move
  else:
    assert host == jax.devices("cpu")[0]
