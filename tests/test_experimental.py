"""Early stopping (estlab.experimental): hooks that stop on the evaluations."""
import itertools
import json
import os

import pytest

import estlab
from _models import linear_model_fn, quiet, regression_data

X, Y = regression_data(64)
_BATCHES = [({"x": X[i:i + 16]}, Y[i:i + 16]) for i in range(0, 64, 16)]
_forever = lambda: itertools.cycle(_BATCHES)
_eval = lambda: list(_BATCHES)
# Where tf.estimator 2.15 stopped the same runs (tests/tf_reference/).
_TF = json.load(open(os.path.join(os.path.dirname(__file__), "tf_reference",
                                  "spec_hooks_tf215.json")))["early_stopping"]


def _run(tmp_path, make_hook, learning_rate=0.1, max_steps=100):
  est = estlab.Estimator(linear_model_fn, tmp_path / "m", params={
      "learning_rate": learning_rate}, config=quiet(save_checkpoints_steps=5))
  hook = make_hook(est)
  metrics, _ = estlab.train_and_evaluate(
      est, estlab.TrainSpec(_forever, max_steps=max_steps, hooks=[hook]),
      estlab.EvalSpec(_eval, steps=None, throttle_secs=0))
  return est, metrics


def test_read_eval_metrics_by_step(tmp_path):
  est, _ = _run(tmp_path, lambda e: estlab.StopAtStepHook(last_step=10))
  metrics = estlab.experimental.read_eval_metrics(est.eval_dir())
  assert list(metrics) == [5, 10] and set(metrics[5]) >= {"loss", "mse"}
  assert estlab.experimental.read_eval_metrics(tmp_path / "none") == {}


def test_stop_if_lower_stops_at_the_first_evaluation_below(tmp_path):
  # Checkpoint 5 is evaluated before the hook sees step 5: it stops there.
  _, metrics = _run(tmp_path, lambda e: estlab.experimental.stop_if_lower_hook(
      e, "mse", threshold=1e9, run_every_secs=None, run_every_steps=1))
  assert metrics["global_step"] == _TF["stop_if_lower"] == 5


def test_early_stopping_is_asked_as_tf_asks_it(tmp_path):
  # Asked after the runs starting at steps 0, 3, 6 (steps 1, 4, 7): the
  # evaluation of checkpoint 5 is first read after step 7.
  _, metrics = _run(tmp_path, lambda e: estlab.experimental.stop_if_lower_hook(
      e, "mse", threshold=1e9, run_every_secs=None, run_every_steps=3))
  assert metrics["global_step"] == _TF["stop_if_lower_every_3"] == 7


def test_stop_if_no_decrease_stops_a_model_that_learns_nothing(tmp_path):
  # learning rate 0: the loss never falls below step 5's; once checkpoint 15
  # is evaluated, 10 steps passed without a decrease.
  _, metrics = _run(
      tmp_path, lambda e: estlab.experimental.stop_if_no_decrease_hook(
          e, "loss", max_steps_without_decrease=10, run_every_secs=None,
          run_every_steps=1), learning_rate=0.0)
  assert metrics["global_step"] == _TF["stop_if_no_decrease"] == 15


def test_a_model_that_learns_is_not_stopped(tmp_path):
  _, metrics = _run(
      tmp_path, lambda e: estlab.experimental.stop_if_no_decrease_hook(
          e, "loss", max_steps_without_decrease=10, run_every_secs=None,
          run_every_steps=1), max_steps=30)
  assert metrics["global_step"] == 30
  _, metrics = _run(tmp_path / "b", lambda e: estlab.experimental.stop_if_higher_hook(
      e, "mse", threshold=1e9, min_steps=0, run_every_secs=None,
      run_every_steps=1), max_steps=12)
  assert metrics["global_step"] == 12


def test_errors_name_the_values(tmp_path):
  est = estlab.Estimator(linear_model_fn, tmp_path, config=quiet())
  experimental = estlab.experimental
  with pytest.raises(ValueError, match="exactly one of run_every_secs=None"):
    experimental.stop_if_lower_hook(est, "mse", 1.0, run_every_secs=None)
  with pytest.raises(ValueError, match="run_every_steps=0"):
    experimental.stop_if_lower_hook(est, "mse", 1.0, run_every_secs=None,
                                    run_every_steps=0)
  with pytest.raises(TypeError, match="should_stop_fn=3"):
    experimental.make_early_stopping_hook(est, 3)
  with pytest.raises(ValueError, match="has only"):
    _run(tmp_path / "typo", lambda e: experimental.stop_if_lower_hook(
        e, "accuracy", 0.5, run_every_secs=None, run_every_steps=1))
