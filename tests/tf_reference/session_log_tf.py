"""Records where TF 2.15's Estimator writes SessionLog events, for
tests/engine/test_restart_events.py.

Run with the TF reference venv (not at test time):
  /work/tf215/bin/python tests/tf_reference/session_log_tf.py
writes session_log_tf215.json next to this file: two train(steps=5) calls of
a LinearRegressor into one model_dir (save_summary_steps=1,
save_checkpoints_steps=3), and the events of its model_dir in the order
written: ``["session_log", STATUS, step]`` or ``["loss", step]``. TF wrote
``START`` at each call's first step (its SummarySaverHook, after the first
run: the restored step + 1), ``CHECKPOINT`` at each save.
"""
import glob
import json
import os
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow.core.util import event_pb2

tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)


def input_fn():
  x = np.arange(32, dtype=np.float32).reshape(-1, 1) / 32
  return tf.data.Dataset.from_tensor_slices(({"x": x}, 2 * x)).repeat().batch(8)


def main():
  model_dir = tempfile.mkdtemp()
  config = tf.estimator.RunConfig(save_summary_steps=1,
                                  save_checkpoints_steps=3, tf_random_seed=1,
                                  log_step_count_steps=100)
  for _ in range(2):
    est = tf.estimator.LinearRegressor(
        [tf.feature_column.numeric_column("x")], model_dir=model_dir,
        config=config)
    est.train(input_fn, steps=5)
  events = []
  for path in sorted(glob.glob(os.path.join(model_dir, "events.out.*"))):
    for record in tf.compat.v1.io.tf_record_iterator(path):
      event = event_pb2.Event.FromString(record)
      if event.HasField("session_log"):
        events.append(["session_log", event_pb2.SessionLog.SessionStatus.Name(
            event.session_log.status), event.step])
      elif any(v.tag == "loss" for v in event.summary.value):
        events.append(["loss", event.step])
  out = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                     "session_log_tf215.json")
  with open(out, "w") as f:
    json.dump({"two_train_calls_of_5_steps": events}, f, indent=1)


if __name__ == "__main__":
  main()
