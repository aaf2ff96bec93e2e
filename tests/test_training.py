"""train_and_evaluate, TrainSpec, EvalSpec and checkpoint saver listeners."""
import itertools
import os

import numpy as np
import pytest

import estlab
from _models import linear_model_fn, quiet, regression_data

X, Y = regression_data(64)
_BATCHES = [({"x": X[i:i + 16]}, Y[i:i + 16]) for i in range(0, 64, 16)]


def _forever():
  return itertools.cycle(_BATCHES)


def _eval_input():
  return list(_BATCHES)


def _estimator(tmp_path, every=5):
  return estlab.Estimator(linear_model_fn, tmp_path / "m", params={
      "learning_rate": 0.1}, config=quiet(save_checkpoints_steps=every))


def _evaluated_steps(est):
  return [step for step, _ in
          estlab.summary.read_scalars(est.eval_dir())["mse"]]


def test_evaluates_after_every_checkpoint_and_the_last(tmp_path):
  est = _estimator(tmp_path)
  metrics, exports = estlab.train_and_evaluate(
      est, estlab.TrainSpec(_forever, max_steps=12),
      estlab.EvalSpec(_eval_input, steps=None, throttle_secs=0))
  assert _evaluated_steps(est) == [5, 10, 12]
  assert metrics["global_step"] == 12 and exports == []
  again = est.evaluate(_eval_input)
  np.testing.assert_allclose(metrics["mse"], again["mse"], rtol=1e-6)


def test_throttle_secs_skips_evaluations_but_not_the_last(tmp_path):
  est = _estimator(tmp_path)
  estlab.train_and_evaluate(
      est, estlab.TrainSpec(_forever, max_steps=12),
      estlab.EvalSpec(_eval_input, steps=2, throttle_secs=3600))
  assert _evaluated_steps(est) == [5, 12]  # the first, then the final one


def test_a_finite_input_ends_training_and_its_checkpoint_is_evaluated(tmp_path):
  est = _estimator(tmp_path)
  seven = lambda: itertools.islice(_forever(), 7)
  metrics, _ = estlab.train_and_evaluate(
      est, estlab.TrainSpec(seven), estlab.EvalSpec(_eval_input, throttle_secs=0))
  assert _evaluated_steps(est) == [5, 7] and metrics["global_step"] == 7


def test_when_max_steps_was_reached_the_latest_checkpoint_is_evaluated(tmp_path):
  est = _estimator(tmp_path).train(_forever, max_steps=6)
  metrics, _ = estlab.train_and_evaluate(
      est, estlab.TrainSpec(_forever, max_steps=6),
      estlab.EvalSpec(_eval_input, name="again"))
  assert metrics["global_step"] == 6
  assert os.path.isdir(est.eval_dir("again"))


class _Recorder:
  """An exporter by the protocol alone (a name and export())."""

  name = "recorder"

  def __init__(self):
    self.calls = []

  def export(self, estimator, export_path, checkpoint_path, eval_result,
             is_the_final_export):
    self.calls.append((os.path.relpath(export_path, estimator.model_dir),
                       os.path.basename(checkpoint_path),
                       int(eval_result["global_step"]), is_the_final_export))
    return f"export of {os.path.basename(checkpoint_path)}"


def test_exporters_run_after_each_evaluation_the_final_one_flagged(tmp_path):
  est = _estimator(tmp_path)
  recorder = _Recorder()
  _, exports = estlab.train_and_evaluate(
      est, estlab.TrainSpec(_forever, max_steps=12),
      estlab.EvalSpec(_eval_input, throttle_secs=0, exporters=recorder))
  where = os.path.join("export", "recorder")
  assert recorder.calls == [(where, "5", 5, False), (where, "10", 10, False),
                            (where, "12", 12, True)]
  assert exports == ["export of 12"]


class _Listener(estlab.CheckpointSaverListener):

  def __init__(self, stop_at=None):
    self.events, self.stop_at = [], stop_at

  def begin(self):
    self.events.append("begin")

  def before_save(self, session, global_step_value):
    assert session is None
    self.events.append(("before", global_step_value))

  def after_save(self, session, global_step_value):
    self.events.append(("after", global_step_value,
                        os.path.basename(self.estimator.latest_checkpoint())))
    return global_step_value == self.stop_at

  def end(self, session, global_step_value):
    self.events.append(("end", global_step_value))


def test_saving_listeners_see_each_checkpoint_on_disk_and_may_stop(tmp_path):
  est = _estimator(tmp_path)
  listener = _Listener()
  listener.estimator = est
  est.train(_forever, steps=12, saving_listeners=[listener])
  assert listener.events == [  # (step 0: the start save, as TF's)
      "begin", ("before", 0), ("after", 0, "0"), ("before", 5),
      ("after", 5, "5"), ("before", 10),
      ("after", 10, "10"), ("before", 12), ("after", 12, "12"), ("end", 12)]
  stopper = _Listener(stop_at=15)
  stopper.estimator = est
  est.train(_forever, steps=100, saving_listeners=[stopper])
  assert est.latest_checkpoint().endswith(os.sep + "15")
  assert stopper.events[-1] == ("end", 15)


def test_a_saving_listener_must_be_one(tmp_path):
  with pytest.raises(TypeError, match="is no CheckpointSaverListener"):
    _estimator(tmp_path).train(_forever, steps=2, saving_listeners=[print])


@pytest.mark.parametrize("make,error,match", [
    (lambda: estlab.TrainSpec(_forever, max_steps=0), ValueError, "max_steps=0"),
    (lambda: estlab.TrainSpec("data.csv"), TypeError, "'data.csv'"),
    (lambda: estlab.TrainSpec(_forever, hooks=[print]), TypeError, "SessionRunHook"),
    (lambda: estlab.EvalSpec(_eval_input, steps=-1), ValueError, "steps=-1"),
    (lambda: estlab.EvalSpec(_eval_input, throttle_secs=-5), ValueError,
     "throttle_secs=-5"),
    (lambda: estlab.EvalSpec(_eval_input, exporters=[object()]), TypeError,
     "needs a str .name"),
    (lambda: estlab.EvalSpec(_eval_input, exporters=[_Recorder(), _Recorder()]),
     ValueError, "'recorder', 'recorder'"),
])
def test_specs_check_their_arguments(make, error, match):
  with pytest.raises(error, match=match):
    make()


def test_train_and_evaluate_checks_what_it_is_given(tmp_path):
  est = _estimator(tmp_path)
  train, evaluate = estlab.TrainSpec(_forever, 2), estlab.EvalSpec(_eval_input)
  with pytest.raises(TypeError, match="estlab.Estimator"):
    estlab.train_and_evaluate("model", train, evaluate)
  with pytest.raises(TypeError, match="estlab.TrainSpec"):
    estlab.train_and_evaluate(est, evaluate, evaluate)
  with pytest.raises(TypeError, match="estlab.EvalSpec"):
    estlab.train_and_evaluate(est, train, train)
