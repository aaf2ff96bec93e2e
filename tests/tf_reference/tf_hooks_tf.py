"""Records what TF 2.15's session-run hooks do, for tests/test_hooks_tf.py.

Run with the TF reference venv (not at test time):
  /work/tf215/bin/python tests/tf_reference/tf_hooks_tf.py
writes tf_hooks_tf215.json next to this file: for each hook, the steps it
saved / wrote / triggered at on the same 12-step (or 13-step) program the
estlab test trains, the event tags it wrote, and the structure
``run_values.results`` takes for each kind of ``SessionRunArgs`` fetches.
"""
import glob
import json
import os
import tempfile

import numpy as np
import tensorflow as tf

from _tf_data import X, Y, forever  # (this directory)

tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
v1 = tf.compat.v1


def model_fn(features, labels, mode):
  pred = v1.layers.dense(features["x"], 1)[:, 0]
  loss = tf.reduce_mean((pred - labels) ** 2)
  v1.summary.scalar("pred_mean", tf.reduce_mean(pred))
  train_op = v1.train.GradientDescentOptimizer(0.1).minimize(
      loss, global_step=v1.train.get_global_step())
  return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)


def estimator(model_dir=None, **config):
  config.setdefault("save_checkpoints_steps", None)
  config.setdefault("save_checkpoints_secs", None)
  return tf.estimator.Estimator(
      model_fn, model_dir or tempfile.mkdtemp(),
      config=tf.estimator.RunConfig(tf_random_seed=0, **config))


class Listener(tf.estimator.CheckpointSaverListener):
  def __init__(self, log):
    self.log = log

  def begin(self):
    self.log.append(["begin", None])

  def before_save(self, session, global_step_value):
    self.log.append(["before_save", int(global_step_value)])

  def after_save(self, session, global_step_value):
    self.log.append(["after_save", int(global_step_value)])

  def end(self, session, global_step_value):
    self.log.append(["end", int(global_step_value)])


def checkpoint_steps(directory):
  state = tf.train.get_checkpoint_state(directory)
  return sorted(int(p.rsplit("-", 1)[1])
                for p in state.all_model_checkpoint_paths)


def checkpoint_saver_hook():
  """CheckpointSaverHook(save_steps=5) over 12 steps: in another directory
  (listeners given to the hook), then in the model_dir with a config cadence
  of 3 (which the hook replaces) and saving_listeners given to train."""
  other, log = tempfile.mkdtemp(), []
  est = estimator()
  est.train(forever, steps=12, hooks=[tf.estimator.CheckpointSaverHook(
      other, save_steps=5, listeners=[Listener(log)])])
  model_dir, log2 = tempfile.mkdtemp(), []
  est = estimator(model_dir, save_checkpoints_steps=3)
  est.train(forever, steps=12, saving_listeners=[Listener(log2)],
            hooks=[tf.estimator.CheckpointSaverHook(model_dir, save_steps=5)])
  return {"other_dir_steps": checkpoint_steps(other), "listener_calls": log,
          "model_dir_steps": checkpoint_steps(model_dir),
          "saving_listeners_calls": log2}


def events(directory):
  """{tag: [steps]} of the scalar events under ``directory``."""
  found = {}
  v1.summary.FileWriterCache.clear()  # flushes and closes the hooks' writers
  for path in sorted(glob.glob(os.path.join(directory, "events.*"))):
    for event in v1.train.summary_iterator(path):
      for value in event.summary.value:
        found.setdefault(value.tag, []).append(int(event.step))
  return found


def summary_saver_hook():
  """SummarySaverHook(save_steps=5, summary_op=merge_all) over 12 steps."""
  out = tempfile.mkdtemp()
  est = estimator(save_summary_steps=None)

  class Lazy(tf.estimator.SessionRunHook):  # merge_all needs the graph
    def __init__(self):
      self.hook = None

    def begin(self):
      self.hook = tf.estimator.SummarySaverHook(
          save_steps=5, output_dir=out,
          summary_op=v1.summary.merge_all())
      self.hook.begin()

    def before_run(self, run_context):
      return self.hook.before_run(run_context)

    def after_run(self, run_context, run_values):
      self.hook.after_run(run_context, run_values)

    def end(self, session):
      self.hook.end(session)
  est.train(forever, steps=12, hooks=[Lazy()])
  return events(out)


def step_counter_hook():
  out = tempfile.mkdtemp()
  est = estimator()
  est.train(forever, steps=12,
            hooks=[tf.estimator.StepCounterHook(every_n_steps=5,
                                                output_dir=out)])
  return events(out)


def fetches():
  """The type and keys of run_values.results per kind of fetches."""
  seen = {}

  class Fetcher(tf.estimator.SessionRunHook):
    def __init__(self, name, make):
      self.name, self.make = name, make

    def before_run(self, run_context):
      gs = v1.train.get_global_step()
      return tf.estimator.SessionRunArgs(self.make(gs))

    def after_run(self, run_context, run_values):
      r = run_values.results
      seen.setdefault(self.name, [type(r).__name__,
                                  sorted(r) if isinstance(r, dict) else
                                  (len(r) if isinstance(r, (list, tuple))
                                   else None), []])
      seen[self.name][2].append(
          int(r["gs"] if isinstance(r, dict) else
              r[0] if isinstance(r, (list, tuple)) else r))

  est = estimator()
  est.train(forever, steps=3, hooks=[
      Fetcher("dict", lambda gs: {"gs": gs}),
      Fetcher("list", lambda gs: [gs, gs]),
      Fetcher("tuple", lambda gs: (gs,)),
      Fetcher("single", lambda gs: gs),
      Fetcher("dict2", lambda gs: {"gs": gs, "also": gs})])
  return seen


def final_ops_hook():
  """FinalOpsHook({'gs': global_step}) after 7 steps (made in begin: the
  global step tensor exists only in the Estimator's graph)."""
  class Lazy(tf.estimator.SessionRunHook):
    def begin(self):
      self.hook = tf.estimator.FinalOpsHook(
          {"gs": v1.train.get_global_step()})
      self.hook.begin()

    def end(self, session):
      self.hook.end(session)
  lazy = Lazy()
  estimator().train(forever, steps=7, hooks=[lazy])
  return {k: int(v) for k, v in lazy.hook.final_ops_values.items()}


def nan_tensor_hook():
  """NanTensorHook(loss, fail_on_nan_loss=False) on a NaN loss: the
  Estimator's own NanTensorHook still raises."""
  def nan_fn(features, labels, mode):
    spec = model_fn(features, labels, mode)
    loss = spec.loss * np.float32("nan")
    return spec._replace(loss=loss, training_hooks=[
        tf.estimator.NanTensorHook(loss, fail_on_nan_loss=False)])
  est = tf.estimator.Estimator(nan_fn, tempfile.mkdtemp())
  try:
    est.train(forever, steps=3)
    return "returned"
  except tf.estimator.NanLossDuringTrainingError as e:
    return f"raised {type(e).__name__}: {e}"


def second_or_step_timer():
  """should_trigger_for_step(s) for s in 0..12, updating when it fires."""
  timer = v1.train.SecondOrStepTimer(every_steps=5)
  fired = []
  for s in range(13):
    if timer.should_trigger_for_step(s):
      timer.update_last_triggered_step(s)
      fired.append(s)
  return {"fired": fired, "last": timer.last_triggered_step(),
          "same_step_again": timer.should_trigger_for_step(fired[-1])}


def main():
  out = {
      "checkpoint_saver_hook": checkpoint_saver_hook(),
      "summary_saver_hook": summary_saver_hook(),
      "step_counter_hook": step_counter_hook(),
      "fetches": fetches(),
      "final_ops_hook": final_ops_hook(),
      "nan_tensor_hook": nan_tensor_hook(),
      "second_or_step_timer": second_or_step_timer(),
  }
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "tf_hooks_tf215.json")
  with open(path, "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write("\n")
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
