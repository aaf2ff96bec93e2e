"""tf.estimator's session-run hooks at estlab's top level, in real training.

What TF 2.15 did on the same 12-step programs (the steps CheckpointSaverHook
saved at and its listeners' calls, the steps SummarySaverHook and
StepCounterHook wrote at and their tags, the structure of
``run_values.results`` per kind of fetches, FinalOpsHook's value,
SecondOrStepTimer's triggers) is in tests/tf_reference/tf_hooks_tf215.json,
made by tf_hooks_tf.py there.
"""
import itertools
import json
import logging
import os

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from estlab import (CheckpointSaverHook, FeedFnHook, FinalOpsHook,
                    GlobalStepWaiterHook, NanTensorHook, SecondOrStepTimer,
                    SessionRunArgs, StepCounterHook, SummarySaverHook)
from _models import linear_model_fn, quiet, regression_data

_TF = json.load(open(os.path.join(os.path.dirname(__file__), "tf_reference",
                                  "tf_hooks_tf215.json")))
X, Y = regression_data(64)
_BATCHES = [({"x": X[i:i + 16]}, Y[i:i + 16]) for i in range(0, 64, 16)]
_forever = lambda: itertools.cycle(_BATCHES)


def _estimator(model_dir, steps_per_loop=1, model_fn=linear_model_fn,
               **config):
  return estlab.Estimator(model_fn, model_dir, params={"learning_rate": 0.1},
                          config=quiet(steps_per_loop=steps_per_loop, **config))


def _with_spec_hooks(**make):
  """linear_model_fn whose TRAIN spec carries hooks made on each call."""
  def model_fn(features, labels, mode, params):
    spec = linear_model_fn(features, labels, mode, params)
    return spec._replace(**{k: v() for k, v in make.items()})
  return model_fn


def _steps(directory):
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


class Listener(estlab.CheckpointSaverListener):
  """Records its calls, and whether each saved step is on disk then."""

  def __init__(self, directory=None):
    self.log, self.directory, self.on_disk = [], directory, []

  def begin(self):
    self.log.append(["begin", None])

  def before_save(self, session, global_step_value):
    self.log.append(["before_save", global_step_value])

  def after_save(self, session, global_step_value):
    self.log.append(["after_save", global_step_value])
    if self.directory:
      self.on_disk.append(global_step_value in _steps(self.directory))

  def end(self, session, global_step_value):
    self.log.append(["end", global_step_value])


def _events(logdir):
  """{tag: [steps]} of the scalar events under ``logdir``."""
  return {tag: [step for step, _ in values] for tag, values in
          estlab.summary.read_scalars(logdir).items()}


# -- public names --------------------------------------------------------------


def test_each_hook_is_at_tf_estimators_name():
  for name in ("CheckpointSaverHook", "SummarySaverHook", "StepCounterHook",
               "NanTensorHook", "FinalOpsHook", "FeedFnHook",
               "GlobalStepWaiterHook", "SecondOrStepTimer", "SessionRunArgs"):
    assert name in estlab.__all__
    assert getattr(estlab, name).__name__ == name
  assert issubclass(CheckpointSaverHook, estlab.SessionRunHook)


# -- SecondOrStepTimer ---------------------------------------------------------


def test_second_or_step_timer_triggers_as_tfs():
  want = _TF["second_or_step_timer"]
  timer = SecondOrStepTimer(every_steps=5)
  fired = []
  for s in range(13):
    if timer.should_trigger_for_step(s):
      timer.update_last_triggered_step(s)
      fired.append(s)
  assert fired == want["fired"] == [0, 5, 10]
  assert timer.last_triggered_step() == want["last"]
  assert timer.should_trigger_for_step(10) is want["same_step_again"]


def test_second_or_step_timer_by_seconds_with_time_passed_in():
  timer = SecondOrStepTimer(every_secs=10)
  assert timer.should_trigger_for_step(0, now=100.0)
  assert timer.update_last_triggered_step(0, now=100.0) == (None, None)
  assert not timer.should_trigger_for_step(7, now=109.0)
  assert timer.should_trigger_for_step(8, now=110.0)
  assert timer.update_last_triggered_step(8, now=112.5) == (12.5, 8)


# -- SessionRunArgs ------------------------------------------------------------


class _Fetcher(estlab.SessionRunHook):
  def __init__(self, fetches):
    self.fetches, self.results = fetches, []

  def before_run(self, run_context):
    return SessionRunArgs(self.fetches)

  def after_run(self, run_context, run_values):
    self.results.append(run_values.results)


def test_session_run_args_fetches_come_back_in_their_structure(tmp_path):
  want = _TF["fetches"]
  hooks = {"dict": _Fetcher({"gs": "global_step"}),
           "dict2": _Fetcher({"gs": "global_step", "also": "loss"}),
           "list": _Fetcher(["global_step", "loss"]),
           "tuple": _Fetcher(("global_step",)),
           "single": _Fetcher("global_step")}
  _estimator(tmp_path).train(_forever, steps=3, hooks=list(hooks.values()))
  for kind, hook in hooks.items():
    first = hook.results[0]
    assert len(hook.results) == 3
    if kind.startswith("dict"):
      assert isinstance(first, dict) and sorted(first) == want[kind][1]
      steps = [r["gs"] for r in hook.results]
    elif kind == "single":
      assert isinstance(first, np.ndarray) and first.shape == ()
      steps = hook.results
    else:
      assert type(first).__name__ == want[kind][0]
      assert len(first) == want[kind][1]
      steps = [r[0] for r in hook.results]
    # TF read the global step in the run that increments it (0, 1, 2);
    # estlab's output is the step after the run, as run_context's (1, 2, 3).
    assert [int(s) for s in steps] == [s + 1 for s in want[kind][2]]
  loss = hooks["list"].results[0][1]
  assert isinstance(loss, np.ndarray) and np.isfinite(loss)


def test_fetches_with_steps_per_loop_are_the_loops_last_step(tmp_path):
  hook = _Fetcher({"step": "global_step", "pred_mean": "pred_mean"})
  _estimator(tmp_path, steps_per_loop=5).train(_forever, steps=12,
                                                hooks=[hook])
  assert [int(r["step"]) for r in hook.results] == [5, 10, 12]


def test_hooks_without_session_run_args_still_see_every_output(tmp_path):
  seen = []

  class All(estlab.SessionRunHook):
    def after_run(self, run_context, run_values):
      seen.append(sorted(run_values.results))
  _estimator(tmp_path).train(_forever, steps=1, hooks=[All(), _Fetcher("loss")])
  assert {"loss", "global_step", "pred_mean"} <= set(seen[0])


def test_an_unknown_fetch_names_the_outputs(tmp_path):
  with pytest.raises(ValueError, match=r"'lsos'.*'loss'"):
    _estimator(tmp_path).train(_forever, steps=1, hooks=[_Fetcher("lsos")])
  with pytest.raises(TypeError, match="name of a step output"):
    _estimator(tmp_path).train(_forever, steps=1,
                               hooks=[_Fetcher([np.zeros(1)])])


# -- CheckpointSaverHook -------------------------------------------------------


def test_checkpoint_saver_hook_saves_as_tfs_in_another_directory(tmp_path):
  want = _TF["checkpoint_saver_hook"]
  other = str(tmp_path / "other")
  listener = Listener(other)
  est = _estimator(str(tmp_path / "model"))
  est.train(_forever, steps=12, hooks=[CheckpointSaverHook(
      other, save_steps=5, listeners=[listener])])
  assert _steps(other) == want["other_dir_steps"] == [0, 5, 10, 12]
  assert listener.log == want["listener_calls"]
  assert all(listener.on_disk)
  # estlab still ends the call with a checkpoint in model_dir (TF wrote none).
  assert _steps(est.model_dir) == [12]
  # The checkpoints are estlab's: another estimator resumes from one.
  resumed = _estimator(other)
  assert resumed.latest_checkpoint().endswith(os.sep + "12")
  np.testing.assert_allclose(resumed.get_variable_value("linear/kernel"),
                             est.get_variable_value("linear/kernel"))
  assert resumed.evaluate(lambda: _BATCHES)["global_step"] == 12


def test_checkpoint_saver_hook_in_model_dir_replaces_the_config_cadence(
    tmp_path):
  want = _TF["checkpoint_saver_hook"]
  listener = Listener(str(tmp_path))
  est = _estimator(tmp_path, save_checkpoints_steps=3)
  est.train(_forever, steps=12, saving_listeners=[listener],
            hooks=[CheckpointSaverHook(tmp_path, save_steps=5)])
  # TF: a CheckpointSaverHook among the hooks replaces the Estimator's own
  # (no checkpoints at 3, 6, 9) and takes the saving_listeners.
  assert _steps(tmp_path) == want["model_dir_steps"] == [0, 5, 10, 12]
  assert listener.log == want["saving_listeners_calls"]
  assert all(listener.on_disk)
  assert est.latest_checkpoint().endswith(os.sep + "12")


def test_checkpoint_saver_hook_in_the_spec_with_steps_per_loop(tmp_path):
  model_dir = str(tmp_path)
  model_fn = _with_spec_hooks(training_chief_hooks=lambda: [
      CheckpointSaverHook(model_dir, save_steps=5)])
  est = _estimator(model_dir, steps_per_loop=5, model_fn=model_fn)
  est.train(_forever, steps=12)  # loops end at 5, 10, 12
  assert _steps(model_dir) == [0, 5, 10, 12]
  est.train(_forever, steps=6)  # resumes at 12: saved already, then 17, 18
  assert _steps(model_dir)[-2:] == [17, 18]


def test_checkpoint_saver_hook_in_train_spec_feeds_train_and_evaluate(
    tmp_path):
  est = _estimator(tmp_path)
  saves = Listener()
  result, _ = estlab.train_and_evaluate(
      est, estlab.TrainSpec(_forever, max_steps=10, hooks=[
          CheckpointSaverHook(tmp_path, save_steps=4, listeners=[saves])]),
      estlab.EvalSpec(lambda: _BATCHES, steps=None, throttle_secs=0))
  assert _steps(tmp_path) == [0, 4, 8, 10]
  # train_and_evaluate's evaluation listener joined the hook's saves.
  assert [s for call, s in saves.log if call == "after_save"] == [0, 4, 8, 10]
  assert result["global_step"] == 10
  evals = _events(est.eval_dir())
  assert evals["loss"] == [4, 8, 10]


def test_checkpoint_saver_hook_needs_one_cadence_and_training(tmp_path):
  with pytest.raises(ValueError, match="exactly one"):
    CheckpointSaverHook(tmp_path)
  with pytest.raises(ValueError, match="Scaffold"):
    CheckpointSaverHook(tmp_path, save_steps=1, scaffold=object())
  est = _estimator(tmp_path)
  est.train(_forever, steps=1)
  with pytest.raises(ValueError, match="train"):
    est.evaluate(lambda: _BATCHES, hooks=[CheckpointSaverHook(tmp_path,
                                                              save_steps=1)])


def test_a_listener_of_the_hook_can_stop_training(tmp_path):
  class StopAt(Listener):
    def after_save(self, session, global_step_value):
      super().after_save(session, global_step_value)
      return global_step_value >= 4

  est = _estimator(tmp_path)
  est.train(_forever, steps=20, hooks=[CheckpointSaverHook(
      tmp_path, save_steps=2, listeners=[StopAt()])])
  assert _steps(tmp_path) == [0, 2, 4]


# -- SummarySaverHook ----------------------------------------------------------


def test_summary_saver_hook_writes_the_steps_summaries_as_tfs(tmp_path):
  want = _TF["summary_saver_hook"]
  out = str(tmp_path / "summaries")
  _estimator(str(tmp_path / "m")).train(
      _forever, steps=12,
      hooks=[SummarySaverHook(save_steps=5, output_dir=out)])
  events = _events(out)
  assert events["loss"] == want["loss"] == [1, 6, 11]
  assert events["pred_mean"] == want["pred_mean"]
  assert events["learning_rate"] == [1, 6, 11]
  values = estlab.summary.read_scalars(out)
  assert all(np.isfinite(v) for _, v in values["loss"])


def test_summary_saver_hook_summary_op_and_loops(tmp_path):
  out = str(tmp_path / "summaries")
  model_fn = _with_spec_hooks(training_hooks=lambda: [
      SummarySaverHook(save_steps=5, output_dir=out, summary_op="loss")])
  _estimator(str(tmp_path / "m"), steps_per_loop=5,
             model_fn=model_fn).train(_forever, steps=12)
  assert _events(out) == {"loss": [5, 10]}


def test_summary_saver_hook_writes_to_a_given_writer(tmp_path):
  with estlab.summary.TensorBoardWriter(str(tmp_path / "w")) as writer:
    _estimator(str(tmp_path / "m")).train(_forever, steps=3, hooks=[
        SummarySaverHook(save_steps=2, summary_writer=writer,
                         summary_op=["pred_mean"])])
  assert _events(str(tmp_path / "w")) == {"pred_mean": [1, 3]}
  with pytest.raises(ValueError, match="exactly one"):
    SummarySaverHook(save_steps=2)


# -- StepCounterHook -----------------------------------------------------------


def test_step_counter_hook_writes_tfs_tag_at_tfs_steps(tmp_path):
  want = _TF["step_counter_hook"]
  out = str(tmp_path / "speed")
  _estimator(str(tmp_path / "m")).train(
      _forever, steps=12,
      hooks=[StepCounterHook(every_n_steps=5, output_dir=out)])
  assert _events(out) == want == {"global_step/sec": [6, 11]}
  rates = estlab.summary.read_scalars(out)["global_step/sec"]
  assert all(rate > 0 for _, rate in rates)


def test_step_counter_hook_in_training_hooks_with_loops(tmp_path):
  out = str(tmp_path / "speed")
  model_fn = _with_spec_hooks(training_hooks=lambda: [
      StepCounterHook(every_n_steps=5, output_dir=out)])
  _estimator(str(tmp_path / "m"), steps_per_loop=5,
             model_fn=model_fn).train(_forever, steps=12)
  # Loops end at 5 (timing starts), 10 (5 steps measured), 12 (too soon).
  assert _events(out) == {"global_step/sec": [10]}
  with pytest.raises(ValueError, match="exactly one"):
    StepCounterHook(every_n_secs=3)


# -- NanTensorHook -------------------------------------------------------------


def _nan_at_batch(k):
  """Batches whose feature 'w' is NaN from the k-th on (the loss is not)."""
  def input_fn():
    for i, (features, labels) in enumerate(_forever()):
      w = np.full((16,), np.nan if i + 1 >= k else 1.0, np.float32)
      yield {**features, "w": w}, labels
  return input_fn


def _watching_w(features, labels, mode, params):
  spec = linear_model_fn({"x": features["x"]}, labels, mode, params)
  return spec._replace(summaries={**spec.summaries,
                                  "w_mean": jnp.mean(features["w"])})


def test_nan_tensor_hook_requests_a_stop_with_a_warning(tmp_path, caplog):
  est = _estimator(tmp_path, model_fn=_watching_w)
  with caplog.at_level(logging.WARNING, logger="estlab"):
    est.train(_nan_at_batch(3), steps=10,
              hooks=[NanTensorHook("w_mean", fail_on_nan_loss=False)])
  assert "Model diverged with loss = NaN." in caplog.text
  assert est.latest_checkpoint().endswith(os.sep + "3")


def test_nan_tensor_hook_raises_tfs_error(tmp_path):
  est = _estimator(tmp_path, model_fn=_watching_w)
  with pytest.raises(estlab.NanLossDuringTrainingError) as raised:
    est.train(_nan_at_batch(3), steps=10, hooks=[NanTensorHook("w_mean")])
  assert raised.value.step == 3
  assert est.latest_checkpoint() is None  # TF saved nothing either


def test_nan_tensor_hook_on_the_loss_array_in_the_spec_with_loops(tmp_path,
                                                                  caplog):
  def model_fn(features, labels, mode, params):
    spec = linear_model_fn(features, labels, mode, params)
    loss = spec.loss * jnp.where(features["x"][0, 0] > 9, jnp.nan, 1.0)
    return spec._replace(loss=loss, training_hooks=[
        NanTensorHook(loss, fail_on_nan_loss=False)])
  batches = [({"x": X[:16]}, Y[:16])] * 6 + [({"x": X[:16] + 10}, Y[:16])]
  est = _estimator(tmp_path, steps_per_loop=5, model_fn=model_fn)
  # As in TF, a NaN loss raises even when the hook only asks to stop
  # (TF's own NanTensorHook, estlab's own check).
  assert _TF["nan_tensor_hook"].startswith(
      "raised NanLossDuringTrainingError")
  with caplog.at_level(logging.WARNING, logger="estlab"), pytest.raises(
      estlab.NanLossDuringTrainingError):
    est.train(lambda: batches)
  # The hook read the loss array it was given (the second loop's last step).
  assert "Model diverged with loss = NaN." in caplog.text


# -- FinalOpsHook --------------------------------------------------------------


def test_final_ops_hook_holds_the_last_values(tmp_path):
  est = _estimator(tmp_path)
  hook = FinalOpsHook({"gs": "global_step"})
  est.train(_forever, steps=7, hooks=[hook])
  assert {k: int(v) for k, v in hook.final_ops_values.items()} == (
      _TF["final_ops_hook"]) == {"gs": 7}
  last = FinalOpsHook(lambda outputs: int(outputs["global_step"]) * 10)
  est.train(_forever, steps=3, hooks=[last])
  assert last.final_ops_values == 100


def test_final_ops_hook_in_evaluation_and_prediction_hooks(tmp_path):
  box = {"loss": FinalOpsHook("loss"), "pred": FinalOpsHook("pred")}
  model_fn = _with_spec_hooks(evaluation_hooks=lambda: [box["loss"]],
                              prediction_hooks=lambda: [box["pred"]])
  est = _estimator(tmp_path, model_fn=model_fn)
  est.train(_forever, steps=5)
  result = est.evaluate(lambda: _BATCHES)
  np.testing.assert_allclose(box["loss"].final_ops_values, result["loss"],
                             rtol=1e-5)
  predictions = list(est.predict(lambda: _BATCHES,
                                 yield_single_examples=False))
  np.testing.assert_allclose(box["pred"].final_ops_values,
                             predictions[-1]["pred"])
  with pytest.raises(ValueError, match="nothing is fed"):
    FinalOpsHook("loss", final_ops_feed_dict={"x": 1})


# -- FeedFnHook ----------------------------------------------------------------


def _const_model_fn(features, labels, mode, params):
  """A bias only: it learns the mean label."""
  del params
  pred = nn.Dense(1, name="out")(features["x"])[:, 0]
  if mode == estlab.ModeKeys.PREDICT:
    return estlab.EstimatorSpec(mode, predictions={"pred": pred})
  loss = jnp.mean((pred - labels) ** 2)
  return estlab.EstimatorSpec(mode, loss=loss, train_op=optax.sgd(0.2),
                              predictions={"pred": pred})


@pytest.mark.parametrize("steps_per_loop", [1, 5])
def test_feed_fn_hook_edits_every_batch_on_the_host(tmp_path, steps_per_loop):
  seen = []

  def feed_fn(features, labels):
    seen.append((type(features["x"]), features["x"].shape))
    return {"x": np.zeros_like(features["x"])}, np.full_like(labels, 3.0)
  est = _estimator(tmp_path, steps_per_loop=steps_per_loop,
                   model_fn=_const_model_fn)
  est.train(_forever, steps=12, hooks=[FeedFnHook(feed_fn)])
  assert seen == [(np.ndarray, (16, 3))] * 12  # once per batch, loops too
  # Fed x = 0 and labels = 3: the model learnt the bias 3, not Y's fit.
  bias = est.get_variable_value("out/bias")
  np.testing.assert_allclose(bias, [3.0], atol=0.05)


def test_feed_fn_hook_in_prediction_and_evaluation(tmp_path):
  est = _estimator(tmp_path, model_fn=_const_model_fn)
  est.train(_forever, steps=3)
  zero_x = FeedFnHook(lambda f, l: ({"x": np.zeros_like(f["x"])}, l))
  rows = list(est.predict(lambda: _BATCHES, hooks=[zero_x]))
  assert len({float(r["pred"]) for r in rows}) == 1  # x fed as zeros
  fed = est.evaluate(lambda: _BATCHES, hooks=[FeedFnHook(
      lambda f, l: (f, np.asarray(l) + 100))])
  assert fed["loss"] > est.evaluate(lambda: _BATCHES)["loss"] + 1000


def test_session_run_args_feed_dict_replaces_features_by_name(tmp_path):
  class ZeroX(estlab.SessionRunHook):
    def before_run(self, run_context):
      return SessionRunArgs(None, feed_dict={"x": np.zeros((16, 3),
                                                           np.float32)})
  est = _estimator(str(tmp_path / "a"), model_fn=_const_model_fn)
  est.train(_forever, steps=5, hooks=[ZeroX()])
  once = _estimator(str(tmp_path / "b"), model_fn=_const_model_fn)
  once.train(_forever, steps=1, hooks=[ZeroX()])
  # x fed as zeros: the kernel gets no gradient and stays as initialised
  # (the same seed), while the bias trains on.
  np.testing.assert_array_equal(est.get_variable_value("out/kernel"),
                                once.get_variable_value("out/kernel"))
  assert not np.allclose(est.get_variable_value("out/bias"),
                         once.get_variable_value("out/bias"))

  class Wrong(estlab.SessionRunHook):
    def before_run(self, run_context):
      return SessionRunArgs(None, feed_dict={"z": 1})
  with pytest.raises(ValueError, match=r"\['z'\].*\['x'\]"):
    est.train(_forever, steps=1, hooks=[Wrong()])


# -- GlobalStepWaiterHook ------------------------------------------------------


def test_global_step_waiter_hook_waits_for_another_trainers_checkpoint(
    tmp_path):
  polls, waited = [], []
  chief = _estimator(tmp_path)

  def sleep(secs):  # instead of sleeping: the chief trains meanwhile
    polls.append((secs, chief.latest_checkpoint()))
    chief.train(_forever, steps=4)

  class FirstRun(estlab.SessionRunHook):
    def after_run(self, run_context, run_values):
      waited.append(_steps(tmp_path))
  worker = _estimator(tmp_path)
  worker.train(_forever, steps=2,
               hooks=[GlobalStepWaiterHook(10, sleep=sleep), FirstRun()])
  # Polled at 0 (no checkpoint), 4, 8; went on once step 12 was saved.
  assert [p[0] for p in polls] == [0.5] * 3
  assert polls[0][1] is None
  assert waited[0][-1] == 12
  assert len(waited) == 2


def test_global_step_waiter_hook_at_step_zero_does_not_wait(tmp_path):
  def sleep(secs):
    raise AssertionError("waited")
  _estimator(tmp_path).train(_forever, steps=2, hooks=[
      GlobalStepWaiterHook(0, sleep=sleep)])
