"""Hooks in train / evaluate / predict, from hooks= and from the EstimatorSpec,
called as tf.estimator's MonitoredSession calls them.

The call sequences and stopping steps tf.estimator 2.15 produced for the same
programs are in tests/tf_reference/spec_hooks_tf215.json (made by
spec_hooks_tf.py there); a test with ``steps_per_loop=1`` asserts estlab's
sequence equals TF's, one with loops asserts the same calls once per loop.
"""
import itertools
import json
import logging
import os

import numpy as np
import pytest

import estlab
from _models import linear_model_fn, quiet, regression_data

_TF = json.load(open(os.path.join(os.path.dirname(__file__), "tf_reference",
                                  "spec_hooks_tf215.json")))
X, Y = regression_data(64)
_BATCHES = [({"x": X[i:i + 16]}, Y[i:i + 16]) for i in range(0, 64, 16)]
_forever = lambda: itertools.cycle(_BATCHES)
_finite = lambda: list(_BATCHES)  # 4 batches of 16


class Recorder(estlab.SessionRunHook):
  """Appends [tag, method, global step] to ``log`` (the TF script's twin);
  requests a stop after its ``stop_after``-th after_run."""

  def __init__(self, tag, log, stop_after=None):
    self.tag, self.log, self.stop_after, self.runs = tag, log, stop_after, 0

  def begin(self):
    self.runs = 0
    self.log.append([self.tag, "begin", None])

  def after_create_session(self, session, coord):
    self.log.append([self.tag, "after_create_session", session.global_step])

  def before_run(self, run_context):
    self.log.append([self.tag, "before_run", run_context.global_step])

  def after_run(self, run_context, run_values):
    assert run_context.session.global_step == run_context.global_step
    self.runs += 1
    self.log.append([self.tag, "after_run", run_context.global_step])
    if self.stop_after is not None and self.runs >= self.stop_after:
      run_context.request_stop()

  def end(self, session):
    self.log.append([self.tag, "end", session.global_step])


def _estimator(tmp_path, spec_hooks, steps_per_loop=1, **config):
  """linear_model_fn whose spec carries ``spec_hooks(mode)`` (called on each
  model_fn call, so hooks made in it are new per call, as in the TF script)."""
  def model_fn(features, labels, mode, params):
    spec = linear_model_fn(features, labels, mode, params)
    return spec._replace(**spec_hooks(mode))
  return estlab.Estimator(model_fn, tmp_path, params={"learning_rate": 0.1},
                          config=quiet(steps_per_loop=steps_per_loop, **config))


def _step(est):
  return int(est.latest_checkpoint().rsplit(os.sep, 1)[1])


def _session(tags, runs, stopped=False):
  """The calls tags see in one session of ``runs`` ((from, to) steps); the
  input ended (TF's before_run without a run) unless a limit or a hook
  ``stopped`` it."""
  calls = [[t, "begin", None] for t in tags]
  calls += [[t, "after_create_session", runs[0][0]] for t in tags]
  for start, end in runs:
    calls += [[t, "before_run", start] for t in tags]
    calls += [[t, "after_run", end] for t in tags]
  if not stopped:
    calls += [[t, "before_run", runs[-1][1]] for t in tags]
  return calls + [[t, "end", runs[-1][1]] for t in tags]


def _loops(start, steps, k):
  """(from, to) of the loops of ``k`` steps covering ``steps`` steps."""
  ends = list(range(start + k, start + steps, k)) + [start + steps]
  return list(zip([start] + ends[:-1], ends))


# -- train ---------------------------------------------------------------------


def test_the_session_helper_reproduces_tfs_sequences():
  # (So the loop expectations below, built with it, are TF's rule.)
  tags = ("chief", "user", "spec")
  want = _session(tags, _loops(0, 3, 1), stopped=True)
  want += [["-", "train returned", 3]]
  want += _session(tags, _loops(3, 2, 1), stopped=True)
  assert _TF["train_order"] == want + [["-", "train returned", 5]]
  assert _TF["evaluate_order"][:18] == _session(("user", "spec"),
                                                [(4, 4)] * 3, stopped=True)
  assert _TF["predict_order"][:24] == _session(("user", "spec"), [(4, 4)] * 4)


@pytest.mark.parametrize("steps_per_loop", [1, 2])
def test_chief_user_and_spec_hooks_run_in_tfs_order(tmp_path, steps_per_loop):
  log = []
  est = _estimator(tmp_path, lambda mode: {
      "training_chief_hooks": (Recorder("chief", log),),
      "training_hooks": (Recorder("spec", log),)}, steps_per_loop)
  est.train(_forever, steps=3, hooks=[Recorder("user", log)])
  log.append(["-", "train returned", _step(est)])
  est.train(_forever, steps=2, hooks=[Recorder("user", log)])
  log.append(["-", "train returned", _step(est)])
  if steps_per_loop == 1:
    assert log == _TF["train_order"]
  tags = ("chief", "user", "spec")
  assert log == (_session(tags, _loops(0, 3, steps_per_loop), stopped=True)
                 + [["-", "train returned", 3]]
                 + _session(tags, _loops(3, 2, steps_per_loop), stopped=True)
                 + [["-", "train returned", 5]])


@pytest.mark.parametrize("steps_per_loop", [1, 3])
def test_a_finite_input_ends_after_one_more_before_run(tmp_path, steps_per_loop):
  log = []
  est = _estimator(tmp_path, lambda mode: {
      "training_hooks": (Recorder("spec", log),)}, steps_per_loop)
  est.train(_finite, hooks=[Recorder("user", log)])
  assert log == _session(("user", "spec"), _loops(0, 4, steps_per_loop))


@pytest.mark.parametrize("steps_per_loop", [1, 2])
def test_a_spec_hook_stops_training_after_every_hooks_after_run(
    tmp_path, steps_per_loop):
  log = []
  est = _estimator(tmp_path, lambda mode: {
      "training_hooks": (Recorder("spec", log, stop_after=2),)},
                   steps_per_loop)
  est.train(_forever, hooks=[Recorder("user", log)])
  log.append(["-", "train returned", _step(est)])
  if steps_per_loop == 1:
    assert log == _TF["spec_hook_stops"]
  k = steps_per_loop
  assert log == _session(("user", "spec"), [(0, k), (k, 2 * k)], stopped=True
                         ) + [["-", "train returned", 2 * k]]


def test_a_hook_listed_twice_is_called_twice_as_in_tf(tmp_path):
  log = []
  both, chief_too = Recorder("both", log), Recorder("chief_too", log)
  est = _estimator(tmp_path, lambda mode: {
      "training_hooks": (both, chief_too),
      "training_chief_hooks": (chief_too,)})
  est.train(_forever, steps=2, hooks=[both])
  assert log == _TF["same_object_twice"]


# -- StopAtStepHook ------------------------------------------------------------


@pytest.mark.parametrize("steps_per_loop,want", [
    (1, _TF["stop_at_step_in_spec"]),  # [3, 6, 5, 6]
    (2, [4, 8, 6, 8])])                # the first loop reaching the step
@pytest.mark.parametrize("where", ["spec", "hooks"])
def test_stop_at_step_stops_at_start_plus_n_in_spec_and_in_hooks(
    tmp_path, where, steps_per_loop, want):
  def run(name, kwargs, calls):
    def spec(mode):
      del mode  # a new hook per model_fn call, as in the TF script
      if where == "spec":
        return {"training_hooks": (estlab.StopAtStepHook(**kwargs),)}
      return {}
    est = _estimator(tmp_path / name, spec, steps_per_loop)
    ends = []
    for _ in range(calls):
      est.train(_forever, hooks=[estlab.StopAtStepHook(**kwargs)]
                if where == "hooks" else None)
      ends.append(_step(est))
    return ends
  assert run("n", {"num_steps": 3}, 2) + run("last", {"last_step": 5}, 2) == want


@pytest.mark.parametrize("steps_per_loop,want", [(1, _TF["stop_at_step_reused"]),
                                                 (2, [4, 6])])
def test_one_stop_at_step_hook_passed_to_two_calls_keeps_its_last_step(
    tmp_path, steps_per_loop, want):
  # As in TF: the second call stops after its first step (or loop).
  est = _estimator(tmp_path, lambda mode: {}, steps_per_loop)
  hook = estlab.StopAtStepHook(num_steps=3)
  ends = []
  for _ in range(2):
    est.train(_forever, hooks=[hook])
    ends.append(_step(est))
  assert ends == want


def test_stop_at_step_in_spec_hooks_of_a_resumed_model_dir(tmp_path):
  spec = lambda mode: {"training_hooks": (estlab.StopAtStepHook(num_steps=4),)}
  _estimator(tmp_path, spec).train(_forever)
  again = _estimator(tmp_path, spec)  # a new Estimator: restores step 4
  again.train(_forever)
  assert _step(again) == 8


# -- LoggingTensorHook ---------------------------------------------------------


@pytest.mark.parametrize("steps_per_loop", [1, 2])
@pytest.mark.parametrize("where", ["spec", "hooks"])
def test_logging_tensor_hook_logs_tfs_runs(tmp_path, where, steps_per_loop):
  logged = []

  def make():
    return estlab.LoggingTensorHook(
        "global_step", every_n_iter=4, at_end=True,
        formatter=lambda v: logged.append(int(v["global_step"])) or "line")
  est = _estimator(tmp_path, lambda mode: (
      {"training_hooks": (make(),)} if where == "spec" else {}),
                   steps_per_loop)
  calls = []
  for steps in (10, 6):
    logged.clear()
    est.train(_forever, steps=steps,
              hooks=[make()] if where == "hooks" else None)
    calls.append(list(logged))
  if steps_per_loop == 1:
    assert calls == _TF["logging_tensor_hook"]  # [[1, 5, 9, 10], [11, 15, 16]]
  else:  # runs 0, 4, ... of loops of 2, and the end
    assert calls == [[2, 10, 10], [12, 16]]


def test_logging_tensor_hook_lines_end_with_the_seconds_since_the_last(
    tmp_path, caplog):
  est = _estimator(tmp_path, lambda mode: {})
  with caplog.at_level(logging.INFO, logger="estlab"):
    est.train(_forever, steps=3, hooks=[estlab.LoggingTensorHook(
        {"the loss": "loss"}, every_n_iter=1)])
  lines = [r.getMessage() for r in caplog.records
           if r.getMessage().startswith("the loss = ")]
  assert len(lines) == 3 and not lines[0].endswith(" sec)")  # as TF's
  assert all(line.endswith(" sec)") for line in lines[1:])


# -- early stopping ------------------------------------------------------------


@pytest.mark.parametrize("steps_per_loop,want", [(1, 5), (2, 6)])
@pytest.mark.parametrize("where", ["spec", "hooks"])
def test_early_stopping_hook_is_asked_on_tfs_cadence(tmp_path, where,
                                                     steps_per_loop, want):
  asked = []

  def make():
    # Asked after the runs starting at 0, 2, 4 (TF's SecondOrStepTimer on
    # the step before a run); stops when asked the third time.
    return estlab.experimental.make_early_stopping_hook(
        None, lambda: asked.append(1) or len(asked) >= 3, run_every_secs=None,
        run_every_steps=2)
  est = _estimator(tmp_path, lambda mode: (
      {"training_hooks": (make(),)} if where == "spec" else {}),
                   steps_per_loop)
  est.train(_forever, hooks=[make()] if where == "hooks" else None)
  assert _step(est) == want and len(asked) == 3


@pytest.mark.parametrize("where", ["spec", "hooks"])
def test_stop_if_lower_hook_in_train_and_evaluate(tmp_path, where):
  box = []

  def spec(mode):
    del mode
    return {"training_hooks": (box[0],)} if where == "spec" else {}
  est = _estimator(tmp_path, spec, save_checkpoints_steps=5)
  box.append(estlab.experimental.stop_if_lower_hook(
      est, "mse", 1e9, run_every_secs=None, run_every_steps=1))
  metrics, _ = estlab.train_and_evaluate(
      est, estlab.TrainSpec(_forever, max_steps=100,
                            hooks=box if where == "hooks" else ()),
      estlab.EvalSpec(_finite, steps=None, throttle_secs=0))
  assert metrics["global_step"] == _TF["early_stopping"]["stop_if_lower"]


# -- evaluate and predict ------------------------------------------------------


def test_evaluation_hooks_run_in_tfs_order(tmp_path):
  log = []
  est = _estimator(tmp_path, lambda mode: {
      "evaluation_hooks": (Recorder("spec", log),)})
  est.train(_forever, steps=4)
  result = est.evaluate(_forever, steps=3, hooks=[Recorder("user", log)])
  log.append(["-", "evaluate returned", int(result["global_step"])])
  result = est.evaluate(_finite, hooks=[Recorder("user", log, stop_after=2)])
  log.append(["-", "evaluate returned", int(result["global_step"])])
  assert log == _TF["evaluate_order"]
  # The input's end: one before_run more, as in TF.
  log.clear()
  est.evaluate(_finite, hooks=[Recorder("user", log)])
  assert log == _session(("user", "spec"), [(4, 4)] * 4)


def test_prediction_hooks_run_in_tfs_order(tmp_path):
  log, stop = [], []
  est = _estimator(tmp_path, lambda mode: {
      "prediction_hooks": (Recorder("spec", log, *stop),)})
  est.train(_forever, steps=4)
  rows = list(est.predict(_finite, hooks=[Recorder("user", log)]))
  log.append(["-", "predict yielded", len(rows)])
  stop.append(2)
  est = _estimator(tmp_path, lambda mode: {
      "prediction_hooks": (Recorder("spec", log, *stop),)})
  rows = list(est.predict(_finite, hooks=[Recorder("user", log)]))
  log.append(["-", "predict yielded", len(rows)])
  assert log == _TF["predict_order"]


def test_logging_hooks_in_evaluation_and_prediction_hooks(tmp_path):
  logged = []
  hook = lambda tag, name: estlab.LoggingTensorHook(
      name, every_n_iter=2, formatter=lambda v: logged.append(
          (tag, np.shape(v[name]))) or "line")
  est = _estimator(tmp_path, lambda mode: {
      "evaluation_hooks": (hook("spec eval", "loss"),),
      "prediction_hooks": (hook("spec predict", "pred"),)})
  est.train(_forever, steps=2)
  est.evaluate(_finite, hooks=[hook("eval", "batches")])
  list(est.predict(_finite, hooks=[hook("predict", "double")]))
  assert logged == [("eval", ()), ("spec eval", ())] * 2 + [
      ("predict", (16,)), ("spec predict", (16,))] * 2  # runs 0 and 2


# -- one trace, hooks begun on every call --------------------------------------


def test_spec_hooks_trace_nothing_more_and_begin_on_every_call(tmp_path):
  log, modes = [], []
  hooks = {"training_hooks": (Recorder("train", log),),
           "training_chief_hooks": (Recorder("chief", log),),
           "evaluation_hooks": (Recorder("eval", log),),
           "prediction_hooks": (Recorder("infer", log),)}

  def model_fn(features, labels, mode, params):
    modes.append(mode)
    spec = linear_model_fn(features, labels, mode, params)
    return spec._replace(**hooks)
  est = estlab.Estimator(model_fn, tmp_path, params={"learning_rate": 0.1},
                         config=quiet())
  for _ in range(2):
    est.train(_forever, steps=3)
    est.evaluate(_finite)
    list(est.predict(_finite))
  traces = est._run().steps.traces
  assert (traces["init"], traces["train_step"], traces["eval_step"],
          traces["predict_step"]) == (1, 1, 1, 1)
  calls = lambda tag, method: sum(1 for t, m, _ in log if (t, m) == (tag, method))
  for tag in ("train", "chief", "eval", "infer"):
    assert calls(tag, "begin") == calls(tag, "end") == 2, tag
    assert calls(tag, "after_create_session") == 2, tag
  assert calls("train", "after_run") == 6
  assert [s for t, m, s in log if (t, m) == ("train", "after_create_session")
          ] == [0, 3]
  traced = len(modes)
  est.train(_forever, steps=1)
  assert len(modes) == traced  # the hooks came without calling the model_fn


def test_a_model_fn_returning_no_hook_instance_is_a_type_error(tmp_path):
  est = _estimator(tmp_path, lambda mode: {"training_hooks": (print,)})
  with pytest.raises(TypeError, match="SessionRunHook"):
    est.train(_forever, steps=1)


@pytest.mark.parametrize("steps_per_loop", [1, 2])
def test_logging_tensor_hook_built_in_the_model_fn_logs_arrays(
    tmp_path, caplog, steps_per_loop):
  # guide/migrate/logging_stop_hook: LoggingTensorHook({'kernel': kernel})
  # and StopAtStepHook(num_steps=2) returned in training_hooks.
  import flax.linen as nn
  import jax.numpy as jnp
  import optax

  def model_fn(features, labels, mode):
    dense = nn.Dense(1)
    y = dense(features["x"])[:, 0]
    loss = jnp.mean((y - labels) ** 2)
    kernel = dense.variables["params"]["kernel"]
    hooks = [estlab.StopAtStepHook(num_steps=4),
             estlab.LoggingTensorHook({"kernel": kernel, "mse": loss},
                                      every_n_iter=1)]
    return estlab.EstimatorSpec(mode, loss=loss, train_op=optax.sgd(0.1),
                                predictions={"y": y}, training_hooks=hooks)
  est = estlab.Estimator(model_fn, str(tmp_path), config=quiet(
      steps_per_loop=steps_per_loop))
  with caplog.at_level(logging.INFO, logger="estlab"):
    est.train(_forever)
  lines = [r.getMessage() for r in caplog.records
           if r.getMessage().startswith("kernel = ")]
  assert len(lines) == 4 // steps_per_loop  # one per run, stopped at step 4
  assert int(est.latest_checkpoint().rsplit("/", 1)[1]) == 4
  # Each line holds the kernel the step read, a [features, 1] array, and
  # the loss it gave.
  assert lines[-1].split(", mse = ")[0].count("[") == X.shape[1] + 1
  assert float(lines[-1].split(", mse = ")[1].split(" (")[0]) > 0
  # Nothing a hook asked for is written as a summary.
  tags = estlab.summary.read_scalars(str(tmp_path))
  assert not any("hook" in tag for tag in tags)
