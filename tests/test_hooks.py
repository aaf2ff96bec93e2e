"""Tests for estlab.hooks: periodic triggers, StopAtStepHook, LoggingTensorHook, lazy run values."""
import itertools
import logging

import pytest

import estlab
from _models import linear_model_fn, quiet, regression_data
from estlab.hooks import (HookRunner, HookSession, PeriodicTrigger,
                          SecondOrStepTimer, SessionRunContext, SessionRunHook,
                          SessionRunValues, StopAtStepHook, renewed)


def _fired_steps(trigger, steps, now=0.0):
  return [s for s in steps if trigger(s, now)]


# -- PeriodicTrigger -----------------------------------------------------------


def test_every_steps_fires_on_each_multiple_when_steps_advance_by_one():
  trigger = PeriodicTrigger(every_steps=10, start_time=0.0)
  assert _fired_steps(trigger, range(1, 36)) == [10, 20, 30]


def test_every_steps_fires_when_a_loop_crosses_a_multiple():
  trigger = PeriodicTrigger(every_steps=10, start_time=0.0)
  # steps_per_loop=4: the global step goes 4, 8, 12, ...
  assert _fired_steps(trigger, range(4, 44, 4)) == [12, 20, 32, 40]


def test_every_steps_fires_once_per_loop_longer_than_the_period():
  trigger = PeriodicTrigger(every_steps=10, start_time=0.0)
  assert _fired_steps(trigger, [25, 50, 75]) == [25, 50, 75]


def test_every_steps_counts_from_the_start_step_of_a_resumed_run():
  trigger = PeriodicTrigger(every_steps=10, start_step=95, start_time=0.0)
  assert _fired_steps(trigger, range(96, 112)) == [100, 110]


def test_every_secs_fires_when_the_passed_in_time_has_elapsed():
  trigger = PeriodicTrigger(every_secs=60, start_time=0.0)
  calls = [(1, 10.0), (2, 59.9), (3, 60.0), (4, 100.0), (5, 119.0), (6, 120.0)]
  assert [s for s, now in calls if trigger(s, now)] == [3, 6]


def test_every_secs_does_not_fire_twice_for_the_same_step():
  trigger = PeriodicTrigger(every_secs=60, start_step=7, start_time=0.0)
  assert not trigger(7, 100.0)  # no step since the start
  assert trigger(8, 100.0)
  assert not trigger(8, 500.0)


def test_steps_and_secs_together_fire_on_either_and_both_restart():
  trigger = PeriodicTrigger(every_steps=100, every_secs=60, start_time=0.0)
  calls = [(30, 60.0),    # time
           (100, 70.0),   # a multiple of 100
           (150, 125.0),  # 55 s since the last firing: no
           (160, 130.0),  # 60 s: time
           (190, 140.0),
           (200, 150.0)]  # a multiple of 100
  assert [s for s, now in calls if trigger(s, now)] == [30, 100, 160, 200]


@pytest.mark.parametrize("kwargs", [{}, {"every_steps": None, "every_secs": None},
                                    {"every_steps": 0}])
def test_trigger_without_a_cadence_is_disabled_and_never_fires(kwargs):
  trigger = PeriodicTrigger(**kwargs, start_time=0.0)
  assert not trigger.enabled
  assert not any(trigger(s, float(s) * 1e6) for s in range(1, 1000, 7))


def test_trigger_with_a_cadence_is_enabled():
  assert PeriodicTrigger(every_steps=5).enabled
  assert PeriodicTrigger(every_secs=5.0).enabled


# -- StopAtStepHook ------------------------------------------------------------


def _train(hook, start, steps_per_call=1, max_calls=100):
  """Drives ``hook`` as the train loop does; returns the step it stopped at."""
  hook.begin()
  hook.after_create_session(HookSession(start, "train"), None)
  step = start
  for _ in range(max_calls):
    context = SessionRunContext(step, "train")
    hook.before_run(context)
    step += steps_per_call
    context.global_step = step
    hook.after_run(context, SessionRunValues(lambda: {}))
    if context.stop_requested:
      return step
  raise AssertionError(f"{hook!r} never requested a stop")


def test_stop_at_step_num_steps_counts_from_the_first_run():
  assert _train(StopAtStepHook(num_steps=5), start=0) == 5
  assert _train(StopAtStepHook(num_steps=5), start=120) == 125


def test_stop_at_step_num_steps_with_loops_stops_once_reached():
  assert _train(StopAtStepHook(num_steps=10), start=3, steps_per_call=4) == 15


def test_stop_at_step_last_step_is_absolute():
  assert _train(StopAtStepHook(last_step=12), start=0) == 12
  assert _train(StopAtStepHook(last_step=12), start=10) == 12


def test_stop_at_step_last_step_already_passed_stops_after_one_step():
  assert _train(StopAtStepHook(last_step=12), start=20) == 21


def test_stop_at_step_keeps_its_last_step_for_a_second_session_unless_renewed():
  hook = StopAtStepHook(num_steps=5)
  assert _train(hook, start=0) == 5
  assert _train(hook, start=5) == 6   # as TF: last step 5 already passed
  assert _train(renewed([hook])[0], start=6) == 11  # as a model_fn's new one
  assert _train(renewed([StopAtStepHook(last_step=12)])[0], start=3) == 12


def test_stop_at_step_driven_without_a_session_counts_from_the_first_run():
  hook = StopAtStepHook(num_steps=2)
  hook.after_create_session(None, None)
  context = SessionRunContext(7, "train")
  hook.before_run(context)
  context.global_step = 9
  hook.after_run(context, SessionRunValues(lambda: {}))
  assert context.stop_requested


@pytest.mark.parametrize("kwargs", [{}, {"num_steps": 3, "last_step": 10}])
def test_stop_at_step_needs_exactly_one_of_num_steps_and_last_step(kwargs):
  with pytest.raises(ValueError, match="exactly one") as info:
    StopAtStepHook(**kwargs)
  assert "num_steps=" in str(info.value) and "last_step=" in str(info.value)


def test_stop_at_step_is_a_session_run_hook():
  assert isinstance(StopAtStepHook(num_steps=1), SessionRunHook)


def test_request_stop_is_visible_on_the_context():
  context = SessionRunContext(3, "eval")
  assert not context.stop_requested
  context.request_stop()
  assert context.stop_requested
  assert (context.global_step, context.mode) == (3, "eval")


# -- SecondOrStepTimer ---------------------------------------------------------


def test_second_or_step_timer_steps_as_tf():
  timer = SecondOrStepTimer(every_steps=3)
  fired = []
  for step in range(0, 12):
    if timer.should_trigger_for_step(step):
      fired.append(step)
      timer.update_last_triggered_step(step)
  assert fired == [0, 3, 6, 9]  # the first call, then 3 past the last
  assert timer.last_triggered_step() == 9
  assert not timer.should_trigger_for_step(9)
  timer.reset()
  assert timer.should_trigger_for_step(9)


def test_second_or_step_timer_secs_with_time_passed_in():
  timer = SecondOrStepTimer(every_secs=10)
  assert timer.should_trigger_for_step(1, now=0.0)
  assert timer.update_last_triggered_step(1, now=0.0) == (None, None)
  assert not timer.should_trigger_for_step(2, now=9.9)
  assert timer.should_trigger_for_step(2, now=10.0)
  assert timer.update_last_triggered_step(4, now=12.5) == (12.5, 3)
  assert not timer.should_trigger_for_step(4, now=100.0)  # same step


@pytest.mark.parametrize("kwargs", [{}, {"every_secs": 1, "every_steps": 1}])
def test_second_or_step_timer_needs_exactly_one_cadence(kwargs):
  with pytest.raises(ValueError, match="give exactly one"):
    SecondOrStepTimer(**kwargs)


# -- HookRunner ----------------------------------------------------------------


class _Log(SessionRunHook):
  def __init__(self, tag, calls, stop_at=None):
    self.tag, self.calls, self.stop_at = tag, calls, stop_at

  def begin(self):
    self.calls.append((self.tag, "begin"))

  def after_create_session(self, session, coord):
    self.calls.append((self.tag, "after_create_session", session.global_step))

  def before_run(self, run_context):
    self.calls.append((self.tag, "before_run", run_context.global_step))

  def after_run(self, run_context, run_values):
    self.calls.append((self.tag, "after_run", run_context.global_step))
    if run_context.global_step == self.stop_at:
      run_context.request_stop()

  def end(self, session):
    self.calls.append((self.tag, "end", session.global_step))


def test_hook_runner_calls_every_hook_as_monitored_session():
  calls = []
  a, b = _Log("a", calls, stop_at=12), _Log("b", calls)
  runner = HookRunner([a, b, a], "train", 10)  # a listed twice: called twice
  assert runner.session.global_step == 10
  for step in (10, 11):
    context = runner.before_run(step)
    context.global_step = step + 1
    stop = runner.after_run(context, lambda: {})
  assert stop  # a asked at 12; b and the second a still ran after_run
  runner.end()
  assert calls == (
      [("a", "begin"), ("b", "begin"), ("a", "begin")] +
      [(t, "after_create_session", 10) for t in "aba"] +
      [(t, "before_run", 10) for t in "aba"] +
      [(t, "after_run", 11) for t in "aba"] +
      [(t, "before_run", 11) for t in "aba"] +
      [(t, "after_run", 12) for t in "aba"] + [(t, "end", 12) for t in "aba"])


def test_hook_runner_refuses_what_is_no_hook():
  with pytest.raises(TypeError, match="got <built-in function print>"):
    HookRunner([print], "train", 0)


# -- SessionRunValues ----------------------------------------------------------


def test_run_values_fetch_lazily_and_only_once():
  calls = []

  def fetch():
    calls.append(1)
    return {"loss": 0.5}

  values = SessionRunValues(fetch)
  assert calls == []  # nothing fetched until a hook reads results
  assert values.results == {"loss": 0.5}
  assert values.results["loss"] == 0.5
  assert len(calls) == 1


def test_base_hook_methods_are_no_ops():
  hook = SessionRunHook()
  context = SessionRunContext(0, "train")
  hook.begin()
  hook.after_create_session(None, None)
  assert hook.before_run(context) is None
  hook.after_run(context, SessionRunValues(lambda: {}))
  hook.end(None)
  assert not context.stop_requested


def test_logging_tensor_hook_logs_named_outputs_on_its_cadence(tmp_path, caplog):
  x, y = regression_data(64)
  batches = lambda: itertools.cycle([({"x": x[i:i + 16]}, y[i:i + 16])
                                     for i in range(0, 64, 16)])
  est = estlab.Estimator(linear_model_fn, tmp_path, config=quiet(
      log_step_count_steps=None), params={"learning_rate": 0.1})
  hook = estlab.LoggingTensorHook({"the loss": "loss", "pred": "pred_mean"},
                                  every_n_iter=4, at_end=True)
  with caplog.at_level(logging.INFO, logger="estlab"):
    est.train(batches, steps=10, hooks=[hook])
  lines = [r.getMessage() for r in caplog.records
           if r.getMessage().startswith("the loss = ")]
  assert len(lines) == 4  # runs 0, 4, 8 (steps 1, 5, 9) and the end (10)
  assert all(", pred = " in line for line in lines)
  caplog.clear()
  with caplog.at_level(logging.INFO, logger="estlab"):
    est.train(batches, steps=2, hooks=[estlab.LoggingTensorHook(
        "loss", at_end=True, formatter=lambda v: f"final loss {v['loss']:.3f}")])
  finals = [r.getMessage() for r in caplog.records
            if r.getMessage().startswith("final loss ")]
  assert len(finals) == 1  # only at the end
  with pytest.raises(ValueError, match=r"\['accuracy'\] are not among"):
    est.train(batches, steps=1, hooks=[estlab.LoggingTensorHook(
        "accuracy", every_n_iter=1)])


@pytest.mark.parametrize("kwargs,match", [
    ({}, "exactly one cadence"),
    ({"every_n_iter": 2, "every_n_secs": 1.0}, "exactly one cadence"),
    ({"every_n_iter": 0}, "every_n_iter=0"),
])
def test_logging_tensor_hook_checks_its_cadence(kwargs, match):
  with pytest.raises(ValueError, match=match):
    estlab.LoggingTensorHook("loss", **kwargs)
