"""Records when tf.estimator (TF 2.15) writes checkpoints, for tests/test_loops.py.

Run with the TF reference venv (not at test time):
  /work/tf215/bin/python tests/tf_reference/checkpoint_start_tf.py
writes checkpoint_start_tf215.json next to this file. Per scenario: the
checkpoint steps kept after each ``train`` call (``get_checkpoint_state``'s
``all_model_checkpoint_paths``), and the listener calls ``[method, step]``
(step None in ``begin``) that a ``CheckpointSaverListener`` saw. TF's
CheckpointSaverHook saves the state at the starting global step in
``after_create_session`` (listeners called around it; their stop request is
ignored there) and at the end when the last step was not just saved.
"""
import json
import os
import re
import tempfile

import numpy as np
import tensorflow as tf

from _tf_data import X, Y, forever  # (this directory)

tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
v1 = tf.compat.v1


def empty():
  return tf.data.Dataset.from_tensor_slices(({"x": X}, Y)).take(0).batch(16)


def model_fn(features, labels, mode):
  w = v1.get_variable("w", [3, 1], initializer=v1.zeros_initializer())
  pred = tf.squeeze(tf.matmul(features["x"], w), 1)
  loss = tf.reduce_mean(tf.square(pred - labels))
  train_op = v1.train.GradientDescentOptimizer(0.1).minimize(
      loss, global_step=v1.train.get_global_step())
  return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op,
                                    predictions=pred)


class Listener(v1.train.CheckpointSaverListener):

  def __init__(self, log, stop_at=None):
    self.log, self.stop_at = log, stop_at

  def begin(self):
    self.log.append(["begin", None])

  def before_save(self, session, global_step_value):
    self.log.append(["before_save", int(global_step_value)])

  def after_save(self, session, global_step_value):
    self.log.append(["after_save", int(global_step_value)])
    return self.stop_at is not None and global_step_value == self.stop_at

  def end(self, session, global_step_value):
    self.log.append(["end", int(global_step_value)])


def kept(model_dir):
  state = tf.train.get_checkpoint_state(model_dir)
  if state is None:
    return []
  return [int(re.search(r"-(\d+)$", p).group(1))
          for p in state.all_model_checkpoint_paths]


def estimator(model_dir, **config):
  return tf.estimator.Estimator(
      model_fn, model_dir=model_dir,
      config=tf.estimator.RunConfig(tf_random_seed=0, **config))


def main():
  out = {"tensorflow": tf.__version__}
  root = tempfile.mkdtemp()

  def run(name, calls, stop_at=None, **config):
    """``calls``: (input_fn, steps) per train call."""
    model_dir = os.path.join(root, name)
    est = estimator(model_dir, **config)
    log, steps = [], []
    for input_fn, n in calls:
      est.train(input_fn, steps=n, saving_listeners=[Listener(log, stop_at)])
      steps.append(kept(model_dir))
    out[name] = {"kept": steps, "listener": log}
    return model_dir

  # Default RunConfig (every 600 s): a fresh model_dir, then resumed.
  run("fresh_then_resumed", [(forever, 20), (forever, 20)])
  # Every 10 steps: the start save, the cadence, the end (not twice).
  run("every_10_steps", [(forever, 25), (forever, 15)],
      save_checkpoints_steps=10)
  run("every_10_steps_from_20", [(forever, 20), (forever, 25)],
      save_checkpoints_steps=10)
  # keep_checkpoint_max counts the start save.
  run("keep_2", [(forever, 25), (forever, 25)], save_checkpoints_steps=10,
      keep_checkpoint_max=2)
  run("keep_2_from_20", [(forever, 20), (forever, 25)],
      save_checkpoints_steps=10, keep_checkpoint_max=2)
  # An input that ends at once: the start save only.
  run("empty_input", [(empty, None), (forever, 5), (empty, None)])
  # A listener asking to stop at the start save: ignored.
  run("stop_at_start", [(forever, 5)], stop_at=0, save_checkpoints_steps=2)

  # What a train(hooks=) hook sees: the start checkpoint is written after
  # every hook's begin, before their after_create_session.
  model_dir = os.path.join(root, "hook_sees")
  seen = []

  class Sees(v1.train.SessionRunHook):

    def begin(self):
      seen.append(["begin", tf.train.latest_checkpoint(model_dir) is not None])

    def after_create_session(self, session, coord):
      seen.append(["after_create_session",
                   tf.train.latest_checkpoint(model_dir) is not None])
  estimator(model_dir).train(forever, steps=3, hooks=[Sees()])
  out["hook_sees"] = seen

  # Neither cadence: no CheckpointSaverHook, no checkpoint at all (and
  # saving_listeners are an error).
  model_dir = os.path.join(root, "no_cadence")
  est = estimator(model_dir, save_checkpoints_steps=None,
                  save_checkpoints_secs=None)
  est.train(forever, steps=20)
  try:
    est.train(forever, steps=5, saving_listeners=[Listener([])])
    error = None
  except ValueError as e:
    error = str(e)
  out["no_cadence"] = {"kept": kept(model_dir),
                       "files": sorted(os.listdir(model_dir)),
                       "listeners_error": error}

  # warm_start_from: the start checkpoint (step 0) holds the warm-started
  # variables.
  source = run("warm_source", [(forever, 20)])
  model_dir = os.path.join(root, "warm")
  est = tf.estimator.Estimator(model_fn, model_dir=model_dir,
                               config=tf.estimator.RunConfig(tf_random_seed=0),
                               warm_start_from=source)
  est.train(forever, steps=5)
  reader = tf.train.load_checkpoint(os.path.join(model_dir, "model.ckpt-0"))
  out["warm_start"] = {
      "kept": kept(model_dir),
      "w_at_0_equals_source": bool(np.allclose(
          reader.get_tensor("w"),
          tf.train.load_variable(source, "w"))),
      "source_w_nonzero": bool(np.any(tf.train.load_variable(source, "w"))),
  }

  path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "checkpoint_start_tf215.json")
  with open(path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
