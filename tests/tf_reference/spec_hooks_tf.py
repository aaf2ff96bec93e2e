"""Records tf.estimator's (TF 2.15) hook calls, for tests/test_spec_hooks.py.

Run with the TF reference venv (not at test time):
  /work/tf215/bin/python tests/tf_reference/spec_hooks_tf.py
writes spec_hooks_tf215.json next to this file: per scenario, the calls
``[tag, method, global_step]`` every recording hook saw, in order (the global
step as the hook reads it: ``session.run(global_step)`` in
after_create_session, before_run, after_run and end; None in begin), and the
global step each ``train`` call ended at.
"""
import json
import os
import tempfile

import tensorflow as tf

from _tf_data import X, Y, forever  # (this directory)

tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
v1 = tf.compat.v1


def finite():  # 4 batches of 16
  return tf.data.Dataset.from_tensor_slices(({"x": X}, Y)).batch(16)


class Recorder(v1.train.SessionRunHook):
  """Appends [tag, method, global_step] to ``log``; requests a stop after
  its ``stop_after``-th after_run."""

  def __init__(self, tag, log, stop_after=None):
    self.tag, self.log, self.stop_after, self.runs = tag, log, stop_after, 0

  def begin(self):
    self.runs = 0
    self._gs = v1.train.get_global_step()
    self.log.append([self.tag, "begin", None])

  def after_create_session(self, session, coord):
    self.log.append([self.tag, "after_create_session",
                     int(session.run(self._gs))])

  def before_run(self, run_context):
    self.log.append([self.tag, "before_run",
                     int(run_context.session.run(self._gs))])

  def after_run(self, run_context, run_values):
    self.runs += 1
    self.log.append([self.tag, "after_run",
                     int(run_context.session.run(self._gs))])
    if self.stop_after is not None and self.runs >= self.stop_after:
      run_context.request_stop()

  def end(self, session):
    self.log.append([self.tag, "end", int(session.run(self._gs))])


def make_model_fn(spec_hooks):
  """A linear regression whose spec carries ``spec_hooks(mode)``, called
  anew on every model_fn call (hooks made inside the model_fn)."""
  def model_fn(features, labels, mode):
    pred = v1.layers.dense(features["x"], 1)[:, 0]
    hooks = spec_hooks(mode)
    if mode == tf.estimator.ModeKeys.PREDICT:
      return tf.estimator.EstimatorSpec(
          mode, predictions={"pred": pred},
          prediction_hooks=hooks.get("prediction_hooks", ()))
    loss = tf.reduce_mean((pred - labels) ** 2)
    train_op = v1.train.GradientDescentOptimizer(0.1).minimize(
        loss, global_step=v1.train.get_global_step())
    return tf.estimator.EstimatorSpec(
        mode, loss=loss, train_op=train_op,
        training_hooks=hooks.get("training_hooks", ()),
        training_chief_hooks=hooks.get("training_chief_hooks", ()),
        evaluation_hooks=hooks.get("evaluation_hooks", ()),
        eval_metric_ops={"mse": v1.metrics.mean_squared_error(labels, pred)})
  return model_fn


def estimator(spec_hooks, **config):
  config.setdefault("save_checkpoints_steps", 1000)
  return tf.estimator.Estimator(
      make_model_fn(spec_hooks), tempfile.mkdtemp(),
      config=tf.estimator.RunConfig(tf_random_seed=0, **config))


def step(est):
  return int(est.get_variable_value("global_step"))


def train_order():
  """Chief, user and spec hooks over two train calls (fresh spec hooks)."""
  log = []
  est = estimator(lambda mode: {
      "training_chief_hooks": [Recorder("chief", log)],
      "training_hooks": [Recorder("spec", log)]})
  est.train(forever, steps=3, hooks=[Recorder("user", log)])
  log.append(["-", "train returned", step(est)])
  est.train(forever, steps=2, hooks=[Recorder("user", log)])
  log.append(["-", "train returned", step(est)])
  return log


def spec_hook_stops():
  """A spec hook requests a stop in its second after_run."""
  log = []
  est = estimator(lambda mode: {
      "training_hooks": [Recorder("spec", log, stop_after=2)]})
  est.train(forever, hooks=[Recorder("user", log)])
  log.append(["-", "train returned", step(est)])
  return log


def stop_at_step_in_spec():
  """StopAtStepHook made in the model_fn, two train calls; then last_step."""
  ends = []
  est = estimator(lambda mode: {
      "training_hooks": [tf.estimator.StopAtStepHook(num_steps=3)]})
  for _ in range(2):
    est.train(forever)
    ends.append(step(est))
  est = estimator(lambda mode: {
      "training_hooks": [tf.estimator.StopAtStepHook(last_step=5)]})
  est.train(forever)
  ends.append(step(est))
  est.train(forever)   # already past last_step: one step
  ends.append(step(est))
  return ends


def stop_at_step_reused():
  """One StopAtStepHook(num_steps=3) object passed to two train calls."""
  ends = []
  est = estimator(lambda mode: {})
  hook = tf.estimator.StopAtStepHook(num_steps=3)
  for _ in range(2):
    est.train(forever, hooks=[hook])
    ends.append(step(est))
  return ends


def same_object_twice():
  """One hook object in train(hooks=) and in training_hooks; another in
  training_chief_hooks and training_hooks."""
  log = []
  both = Recorder("both", log)
  chief_too = Recorder("chief_too", log)
  est = estimator(lambda mode: {"training_hooks": [both, chief_too],
                                "training_chief_hooks": [chief_too]})
  est.train(forever, steps=2, hooks=[both])
  return log


def evaluate_order():
  """evaluate(steps=3) with a user hook and evaluation_hooks; then a user
  hook that stops after 2 batches of a finite input."""
  log = []
  est = estimator(lambda mode: {
      "evaluation_hooks": [Recorder("spec", log)]})
  est.train(forever, steps=4)
  result = est.evaluate(forever, steps=3, hooks=[Recorder("user", log)])
  log.append(["-", "evaluate returned", int(result["global_step"])])
  result = est.evaluate(finite, hooks=[Recorder("user", log, stop_after=2)])
  log.append(["-", "evaluate returned", int(result["global_step"])])
  return log


def predict_order():
  """predict with a user hook and prediction_hooks over 4 batches; then a
  spec hook that stops after 2 batches."""
  log = []
  stop = []
  est = estimator(lambda mode: {
      "prediction_hooks": [Recorder("spec", log, *stop)]})
  est.train(forever, steps=4)
  rows = list(est.predict(finite, hooks=[Recorder("user", log)]))
  log.append(["-", "predict yielded", len(rows)])
  stop.append(2)
  rows = list(est.predict(finite, hooks=[Recorder("user", log)]))
  log.append(["-", "predict yielded", len(rows)])
  return log


def logging_tensor_hook():
  """LoggingTensorHook(every_n_iter=4, at_end=True) in training_hooks over
  10 steps, then 6 more: the global step of each line it logs."""
  log, seen = [], []

  class Step(Recorder):  # notes the step each after_run / end saw
    def after_run(self, run_context, run_values):
      super().after_run(run_context, run_values)
      seen.append(self.log[-1][2])

    def end(self, session):
      super().end(session)
      seen.append(self.log[-1][2])

  def spec_hooks(mode):
    del mode
    return {"training_hooks": [Step("step", []), v1.train.LoggingTensorHook(
        {"step": v1.train.get_global_step()}, every_n_iter=4, at_end=True,
        formatter=lambda values: log.append(seen[-1]) or "")]}
  est = estimator(spec_hooks)
  est.train(forever, steps=10)
  first = list(log)
  est.train(forever, steps=6)
  return [first, log[len(first):]]


def early_stopping():
  """tests/test_experimental.py's runs: train_and_evaluate, a checkpoint
  every 5 steps, the hook asked every step; the step training ended at."""
  out = {}
  for name, lr, make in [
      ("stop_if_lower", 0.1, lambda e: tf.estimator.experimental
       .stop_if_lower_hook(e, "mse", 1e9, run_every_secs=None,
                           run_every_steps=1)),
      ("stop_if_no_decrease", 0.0, lambda e: tf.estimator.experimental
       .stop_if_no_decrease_hook(e, "loss", 10, run_every_secs=None,
                                 run_every_steps=1)),
      ("stop_if_lower_every_3", 0.1, lambda e: tf.estimator.experimental
       .stop_if_lower_hook(e, "mse", 1e9, run_every_secs=None,
                           run_every_steps=3))]:
    def model_fn(features, labels, mode, params):
      pred = v1.layers.dense(features["x"], 1)[:, 0]
      loss = tf.reduce_mean((pred - labels) ** 2)
      train_op = v1.train.GradientDescentOptimizer(
          params["lr"]).minimize(loss, global_step=v1.train.get_global_step())
      return tf.estimator.EstimatorSpec(
          mode, loss=loss, train_op=train_op,
          eval_metric_ops={"mse": v1.metrics.mean_squared_error(labels, pred)})
    est = tf.estimator.Estimator(model_fn, tempfile.mkdtemp(), params={
        "lr": lr}, config=(
        tf.estimator.RunConfig(tf_random_seed=0, save_checkpoints_steps=5)))
    metrics, _ = tf.estimator.train_and_evaluate(
        est, tf.estimator.TrainSpec(forever, max_steps=100, hooks=[make(est)]),
        tf.estimator.EvalSpec(finite, steps=None, throttle_secs=0))
    out[name] = int(metrics["global_step"])
  return out


def main():
  results = {name: fn() for name, fn in [
      ("train_order", train_order), ("spec_hook_stops", spec_hook_stops),
      ("stop_at_step_in_spec", stop_at_step_in_spec),
      ("stop_at_step_reused", stop_at_step_reused),
      ("same_object_twice", same_object_twice),
      ("evaluate_order", evaluate_order), ("predict_order", predict_order),
      ("logging_tensor_hook", logging_tensor_hook),
      ("early_stopping", early_stopping)]}
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "spec_hooks_tf215.json")
  with open(path, "w") as f:
    json.dump({"tensorflow": tf.__version__, **results}, f, indent=1)
  print(json.dumps(results))


if __name__ == "__main__":
  main()
