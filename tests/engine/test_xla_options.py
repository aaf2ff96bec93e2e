"""XLA compile options for estlab's steps: which model gets which, and that
XLA honours them (or that an XLA refusing one still compiles)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from estlab._engine import xla_options as _xla_options

YNN = "xla_cpu_experimental_ynn_fusion_type"


def _kernels(*shapes):
  return {f"Dense_{i}": {"kernel": jax.ShapeDtypeStruct(s, jnp.float32),
                         "bias": jax.ShapeDtypeStruct(s[-1:], jnp.float32)}
          for i, s in enumerate(shapes)}


def test_small_dense_kernels_on_cpu_take_xla_dots_where_this_xla_can():
  want = _xla_options.supported(_xla_options._SMALL_DOTS_CPU)
  assert want in ({YNN: ""}, {})  # {} only where this XLA lacks the option
  assert _xla_options.dot_options(_kernels((50, 128), (128, 64), (64, 1)),
                                  "cpu") == want
  assert _xla_options.dot_options(_kernels((512, 511)), "cpu") == want


@pytest.mark.parametrize("params,backend", [
    (_kernels((50, 128)), "gpu"),                  # accelerators: XLA's own
    (_kernels((50, 128)), "tpu"),
    (_kernels((50, 128), (1024, 256)), "cpu"),     # 2^18 elements: YNNPACK
    ({"Conv_0": {"kernel": jax.ShapeDtypeStruct((3, 3, 8, 8), jnp.float32)},
      **_kernels((50, 8))}, "cpu"),                # convolutions: untouched
    ({"embedding": jax.ShapeDtypeStruct((1000, 8), jnp.float32)}, "cpu"),
    ({}, "cpu"),                                   # no dense kernel at all
], ids=["gpu", "tpu", "large", "conv", "no-kernel", "empty"])
def test_other_models_and_backends_keep_xla_defaults(params, backend):
  assert _xla_options.dot_options(params, backend) == {}


def test_an_option_the_user_set_in_xla_flags_is_left_to_them(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", f"--{YNN}=+LIBRARY_FUSION_TYPE_DOT")
  assert _xla_options.dot_options(_kernels((50, 128)), "cpu") == {}
  assert _xla_options.supported({YNN: "", "xla_backend_optimization_level": 0}
                                ) == {"xla_backend_optimization_level": 0}


def test_options_this_xla_refuses_are_dropped_and_asked_once(monkeypatch):
  monkeypatch.setattr(_xla_options, "_ACCEPTED", {})
  bogus = {"xla_cpu_no_such_option_for_estlab": True}
  assert _xla_options.supported(bogus) == {}
  assert _xla_options._ACCEPTED == {"xla_cpu_no_such_option_for_estlab": False}
  calls = []
  monkeypatch.setattr(jax, "jit", lambda *a, **k: calls.append(a))
  assert _xla_options.supported(bogus) == {}  # memoised: no second compile
  assert calls == []


def test_the_options_reach_xla():
  options = _xla_options.dot_options(_kernels((50, 128), (128, 64)), "cpu")

  def f(x, w1, w2):
    return jnp.maximum(x @ w1, 0) @ w2
  args = (jnp.ones((256, 50)), jnp.ones((50, 128)), jnp.ones((128, 64)))
  plain = jax.jit(f).lower(*args).compile().as_text()
  tuned = jax.jit(f, **_xla_options.jit_kwargs(options)).lower(*args)
  text = tuned.compile().as_text()
  if options == {YNN: ""}:
    assert "ynn_fusion" not in text and "dot" in text
  else:  # this XLA has no such option: XLA's defaults
    assert text == plain
  np.testing.assert_allclose(jax.jit(f, **_xla_options.jit_kwargs(options))(
      *args), jax.jit(f)(*args), rtol=1e-6)


class _Net(nn.Module):
  width: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(1)(nn.relu(nn.Dense(self.width)(x)))[:, 0]


def _train(model_dir, width, steps_per_loop=1):
  def model_fn(features, labels, mode):
    logits = _Net(width)(features["x"])
    if mode == estlab.ModeKeys.PREDICT:
      return estlab.EstimatorSpec(mode, predictions=logits)
    loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))
    return estlab.EstimatorSpec(mode, loss=loss, predictions=logits,
                                train_op=optax.adagrad(0.1))
  rng = np.random.default_rng(0)
  x = rng.normal(size=(256, 6)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.float32)
  est = estlab.Estimator(model_fn, model_dir=model_dir, config=estlab.RunConfig(
      progress_bar=False, tf_random_seed=0, steps_per_loop=steps_per_loop))
  est.train(estlab.inputs.numpy_input_fn({"x": x}, y, batch_size=32,
                                         num_epochs=None, shuffle=False),
            steps=8)
  preds = list(est.predict(estlab.inputs.numpy_input_fn(
      {"x": x[:64]}, batch_size=32, shuffle=False)))
  return est, np.array(preds)


@pytest.mark.parametrize("steps_per_loop", [1, 4])
def test_an_estimator_compiles_its_steps_once_with_the_options(
    tmp_path, monkeypatch, steps_per_loop):
  est, preds = _train(tmp_path / "tuned", 16, steps_per_loop)
  steps = est._run().steps
  assert steps.compiler_options == _xla_options.dot_options(
      {"Dense_0": {"kernel": np.zeros((6, 16))}}, jax.default_backend())
  # Compiled ahead and then called: each step compiled once, with them.
  assert steps.traces["predict_step"] == 1
  assert steps.traces["train_loop" if steps_per_loop > 1 else "train_step"] == 1
  # Without options (as where XLA refuses them): the same model, to float
  # rounding (another dot emitter).
  monkeypatch.setattr(_xla_options, "_SMALL_DOTS_CPU", {})
  plain, want = _train(tmp_path / "plain", 16, steps_per_loop)
  assert plain._run().steps.compiler_options == {}
  np.testing.assert_allclose(preds, want, rtol=1e-4, atol=1e-5)


def test_probe_ahead_asks_about_all_options_once_in_the_background(
    monkeypatch):
  monkeypatch.setattr(_xla_options, "_ACCEPTED", {})
  monkeypatch.setattr(_xla_options, "_AHEAD", [])
  # One option this XLA refuses among them: each is then asked alone.
  monkeypatch.setattr(_xla_options, "_SMALL_DOTS_CPU",
                      {"xla_cpu_no_such_option_for_estlab": ""})
  monkeypatch.setattr(_xla_options, "_RUN_ONCE_CPU",
                      {"xla_backend_optimization_level": 1})
  _xla_options.probe_ahead()
  _xla_options.probe_ahead()  # once per process
  assert [t.name for t in _xla_options._AHEAD] == ["estlab-xla-probe"]
  _xla_options._AHEAD[0].join(60)
  assert _xla_options._ACCEPTED == {"xla_cpu_no_such_option_for_estlab": False,
                                    "xla_backend_optimization_level": True}
  calls = []
  monkeypatch.setattr(jax, "jit", lambda *a, **k: calls.append(a))
  assert _xla_options.run_once_options() == {
      "xla_backend_optimization_level": 1}  # _RUN_ONCE's, then _RUN_ONCE_CPU's
  assert _xla_options.dot_options(_kernels((50, 128)), "cpu") == {}
  assert calls == []  # nothing compiled on the caller's thread
