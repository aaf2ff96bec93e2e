"""estlab.experimental's InMemoryEvaluatorHook, make_stop_at_checkpoint_step_hook
and call_logit_fn, as tf.estimator.experimental's."""
import itertools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estlab
from _models import linear_model_fn, quiet, regression_data

X, Y = regression_data(64)
_BATCHES = [({"x": X[i:i + 16]}, Y[i:i + 16]) for i in range(0, 64, 16)]
_forever = lambda: itertools.cycle(_BATCHES)
_eval = lambda: list(_BATCHES)
_TF = json.load(open(os.path.join(os.path.dirname(__file__), "tf_reference",
                                  "experimental_hooks_tf215.json")))
read = estlab.experimental.read_eval_metrics


def _estimator(model_dir, **config):
  return estlab.Estimator(linear_model_fn, model_dir, config=quiet(**config),
                          params={"learning_rate": 0.1})


# -- InMemoryEvaluatorHook ------------------------------------------------------


def test_evaluates_when_tf_does_what_evaluate_gives_on_that_checkpoint(tmp_path):
  est = _estimator(tmp_path / "m", save_checkpoints_steps=4)
  hook = estlab.experimental.InMemoryEvaluatorHook(est, _eval, every_n_iter=4)
  est.train(_forever, hooks=[hook], steps=10)
  in_memory = read(est.eval_dir())
  # At the start, every 4 runs and at the end, as TF 2.15.
  assert list(in_memory) == _TF["in_memory_every_4_train_10"] == [0, 4, 8, 10]
  for step, metrics in in_memory.items():
    from_disk = est.evaluate(_eval, name="disk", checkpoint_path=os.path.join(
        est.model_dir, str(step)))
    assert from_disk["global_step"] == step
    assert set(metrics) == {"loss", "mse", "mean_pred"}
    for key, value in metrics.items():
      assert value == pytest.approx(float(from_disk[key]), rel=1e-6), (step, key)
  assert in_memory[10]["loss"] < in_memory[0]["loss"]


def test_reads_no_checkpoint(tmp_path):
  # The same training (same seed, same input) without checkpoints until the
  # end: the evaluations at steps 0, 4 and 8 had no checkpoint to read, and
  # equal those of the run above that had them.
  with_ckpts = _estimator(tmp_path / "a", save_checkpoints_steps=4)
  with_ckpts.train(_forever, steps=10)
  est = _estimator(tmp_path / "b")
  hook = estlab.experimental.InMemoryEvaluatorHook(est, _eval, every_n_iter=4,
                                                   name="mem")
  est.train(_forever, hooks=[hook], steps=10)
  assert [d for d in os.listdir(est.model_dir) if d.isdigit()] == ["10"]
  in_memory = read(est.eval_dir("mem"))
  assert list(in_memory) == [0, 4, 8, 10]
  for step in (0, 4, 8):
    from_disk = with_ckpts.evaluate(
        _eval, checkpoint_path=os.path.join(with_ckpts.model_dir, str(step)))
    assert in_memory[step]["mse"] == pytest.approx(float(from_disk["mse"]),
                                                   rel=1e-6)


def test_steps_per_loop_runs_and_eval_steps_and_hooks(tmp_path):
  est = _estimator(tmp_path / "m", steps_per_loop=2)

  class Count(estlab.SessionRunHook):
    def __init__(self):
      self.batches = 0

    def after_run(self, run_context, run_values):
      self.batches += 1
  counter = Count()
  hook = estlab.experimental.InMemoryEvaluatorHook(
      est, _eval, steps=2, hooks=[counter], every_n_iter=2)
  est.train(_forever, hooks=[hook], steps=10)
  # A run is a loop of 2 steps: every 2 runs is every 4 steps.
  assert list(read(est.eval_dir())) == [0, 4, 8, 10]
  assert counter.batches == 4 * 2  # 4 evaluations of steps=2 batches


def test_in_train_spec_of_train_and_evaluate(tmp_path):
  est = _estimator(tmp_path / "m", save_checkpoints_steps=5)
  hook = estlab.experimental.InMemoryEvaluatorHook(est, _eval, every_n_iter=3,
                                                   name="mem")
  estlab.train_and_evaluate(
      est, estlab.TrainSpec(_forever, max_steps=7, hooks=[hook]),
      estlab.EvalSpec(_eval, steps=None, throttle_secs=0))
  assert list(read(est.eval_dir("mem"))) == [0, 3, 6, 7]


def test_errors_as_tf(tmp_path):
  est = _estimator(tmp_path / "m")
  make = estlab.experimental.InMemoryEvaluatorHook
  for bad in (0, None):
    with pytest.raises(ValueError, match=f"invalid every_n_iter={bad}"):
      make(est, _eval, every_n_iter=bad)
    assert _TF[f"in_memory_every_n_iter_{bad}"] == f"invalid every_n_iter={bad}."
  with pytest.raises(ValueError, match="steps=0"):
    make(est, _eval, steps=0)
  with pytest.raises(TypeError, match="SessionRunHook instances.*'nope'"):
    make(est, _eval, hooks=["nope"])
  # Outside a training loop there is no train state to evaluate.
  est.train(_forever, steps=1)
  with pytest.raises(ValueError, match="train\\(hooks=...\\)"):
    est.evaluate(_eval, hooks=[make(est, _eval)])


def test_another_models_state_is_refused(tmp_path):
  def wider(features, labels, mode, params):
    del params
    pred = nn.Dense(2, name="linear")(features["x"])[:, 0]
    loss = jnp.mean((pred - labels) ** 2)
    import optax
    return estlab.EstimatorSpec(mode, predictions={"pred": pred}, loss=loss,
                                train_op=optax.sgd(0.1))
  other = estlab.Estimator(wider, tmp_path / "w", config=quiet())
  est = _estimator(tmp_path / "m")
  hook = estlab.experimental.InMemoryEvaluatorHook(est, _eval)
  with pytest.raises(ValueError, match="float32\\[3, 2\\].*float32\\[3, 1\\]"):
    other.train(_forever, hooks=[hook], steps=2)


# -- make_stop_at_checkpoint_step_hook ----------------------------------------


def test_the_chief_stops_at_the_step(tmp_path):
  est = _estimator(tmp_path / "m")
  hook = estlab.experimental.make_stop_at_checkpoint_step_hook(est, 6)
  assert isinstance(hook, estlab.StopAtStepHook)
  est.train(_forever, hooks=[hook])
  assert est.evaluate(_eval)["global_step"] == 6


def test_a_worker_stops_once_the_checkpoint_reaches_the_step(tmp_path,
                                                              monkeypatch):
  # The chief trains into model_dir; this task (the evaluator of TF_CONFIG:
  # not the chief) trains its own model and stops once the chief's latest
  # checkpoint reaches step 8. Each wait lets the chief train 3 steps.
  chief = _estimator(tmp_path / "chief", save_checkpoints_steps=100)
  chief.train(_forever, steps=3)
  monkeypatch.setenv("TF_CONFIG", json.dumps({
      "cluster": {"chief": ["localhost:1"]},
      "task": {"type": "evaluator", "index": 0}}))
  worker_view = _estimator(tmp_path / "chief")
  assert not worker_view.config.is_chief
  waits = []

  def sleep(secs):
    waits.append(secs)
    chief.train(_forever, steps=3)
  hook = estlab.experimental.make_stop_at_checkpoint_step_hook(
      worker_view, last_step=8, wait_after_file_check_secs=7, sleep=sleep)
  assert not isinstance(hook, estlab.StopAtStepHook)
  monkeypatch.delenv("TF_CONFIG")
  worker = _estimator(tmp_path / "worker")
  worker.train(_forever, hooks=[hook], steps=50)
  # Steps 8 and 9 found checkpoints 3, then 6 (waits); step 10 found 9.
  assert waits == [7, 7]
  assert chief.latest_checkpoint().endswith("9")
  assert worker.evaluate(_eval)["global_step"] == 10


def test_stop_at_checkpoint_errors(tmp_path):
  with pytest.raises(ValueError, match="last_step must be specified"):
    estlab.experimental.make_stop_at_checkpoint_step_hook(
        _estimator(tmp_path), None)


# -- call_logit_fn ---------------------------------------------------------------


def test_call_logit_fn_passes_only_the_arguments_it_takes():
  features = {"x": jnp.ones((2, 3))}
  seen = {}

  def features_only(features):
    return features["x"] * 2

  def with_mode_and_params(features, mode, params):
    seen.update(mode=mode, params=params)
    return {"a": features["x"], "b": features["x"] + 1}

  call = estlab.experimental.call_logit_fn
  config = estlab.RunConfig()
  np.testing.assert_allclose(
      call(features_only, features, "train", {"p": 1}, config), 2.0)
  out = call(with_mode_and_params, features, estlab.ModeKeys.EVAL,
             {"p": 1}, config)
  assert sorted(out) == ["a", "b"]
  assert seen == {"mode": estlab.ModeKeys.EVAL, "params": {"p": 1}}
  # Inside a compiled step the logits are traced arrays: accepted.
  logits = jax.jit(lambda x: call(features_only, {"x": x}, "infer", {},
                                  config))(jnp.ones((2, 3)))
  assert logits.shape == (2, 3)


def test_call_logit_fn_checks_what_it_returns():
  call = estlab.experimental.call_logit_fn
  for bad in (3.0, [jnp.ones(2)], {1: jnp.ones(2)}, {"a": "b"}):
    with pytest.raises(ValueError, match="logit_fn should return a Tensor or "
                       "a dictionary mapping strings to Tensors"):
      call(lambda features, bad=bad: bad, {}, "train", {}, None)


def test_under_mirrored_strategy(tmp_path):
  est = _estimator(tmp_path / "m", save_checkpoints_steps=3,
                   train_distribute=estlab.distribute.MirroredStrategy())
  hook = estlab.experimental.InMemoryEvaluatorHook(est, _eval, every_n_iter=3)
  est.train(_forever, hooks=[hook], steps=6)
  in_memory = read(est.eval_dir())
  assert list(in_memory) == [0, 3, 6]
  for step in (3, 6):
    from_disk = est.evaluate(_eval, name="disk", checkpoint_path=os.path.join(
        est.model_dir, str(step)))
    assert in_memory[step]["mse"] == pytest.approx(float(from_disk["mse"]),
                                                   rel=1e-5)
