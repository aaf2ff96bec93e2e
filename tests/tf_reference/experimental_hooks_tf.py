"""Where tf.estimator's (TF 2.15) ProfilerHook and InMemoryEvaluatorHook act,
for tests/test_profiler_hook.py and tests/test_experimental_hooks.py.

Run with the TF reference venv (not at test time):
  /work/tf215/bin/python tests/tf_reference/experimental_hooks_tf.py
writes experimental_hooks_tf215.json next to this file: the global steps
ProfilerHook(save_steps=3) wrote timelines for in 10 steps, the steps of the
evaluations InMemoryEvaluatorHook(every_n_iter=4) wrote in 10 steps, and
its errors for every_n_iter 0 and None.
"""
import glob
import json
import os
import tempfile
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf

def model_fn(features, labels, mode):
  pred = tf.compat.v1.layers.dense(features["x"], 1)[:, 0]
  loss = tf.reduce_mean((pred - labels) ** 2)
  opt = tf.compat.v1.train.GradientDescentOptimizer(0.1)
  return tf.estimator.EstimatorSpec(
      mode, loss=loss, predictions={"p": pred},
      train_op=opt.minimize(loss, tf.compat.v1.train.get_global_step()))

x = np.random.RandomState(0).normal(size=(64, 3)).astype(np.float32)
y = x.sum(1)
input_fn = lambda: tf.data.Dataset.from_tensor_slices(({"x": x}, y)).batch(16).repeat()
eval_fn = lambda: tf.data.Dataset.from_tensor_slices(({"x": x}, y)).batch(16)
out = {}
d = tempfile.mkdtemp()
est = tf.estimator.Estimator(model_fn, os.path.join(d, "m"))
prof = os.path.join(d, "prof")
with tf.Graph().as_default():  # (its FileWriter needs a graph)
  profiler = tf.estimator.ProfilerHook(save_steps=3, output_dir=prof)
est.train(input_fn, hooks=[profiler], steps=10)
out["profiler_save_steps_3_train_10"] = sorted(
    int(os.path.basename(f)[len("timeline-"):-len(".json")])
    for f in glob.glob(os.path.join(prof, "timeline-*.json")))
est2 = tf.estimator.Estimator(model_fn, os.path.join(d, "m2"))
hook = tf.estimator.experimental.InMemoryEvaluatorHook(est2, eval_fn, every_n_iter=4)
est2.train(input_fn, hooks=[hook], steps=10)
steps = []
for f in sorted(glob.glob(os.path.join(d, "m2", "eval", "events*"))):
  for e in tf.compat.v1.train.summary_iterator(f):
    if any(v.tag == "loss" for v in e.summary.value):
      steps.append(int(e.step))
out["in_memory_every_4_train_10"] = steps
for bad in (0, None):
  try:
    tf.estimator.experimental.InMemoryEvaluatorHook(est2, eval_fn, every_n_iter=bad)
  except ValueError as e:
    out[f"in_memory_every_n_iter_{bad}"] = str(e)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "experimental_hooks_tf215.json"), "w") as f:
  json.dump(out, f, indent=1)
