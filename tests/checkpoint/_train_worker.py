"""A training process for tests/checkpoint/test_model_dir_hygiene.py.

``python _train_worker.py MODEL_DIR MODE``:

* ``hold``: trains 6 steps into MODEL_DIR, printing ``training`` after the
  first step and then waiting for a line on stdin (the test holds it there,
  or kills it), then prints ``done``.
* ``readonly``: MODEL_DIR is read-only: tries train, evaluate, predict and
  ``estlab.inspect.list_checkpoints``, printing one JSON line of outcomes.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import estlab  # noqa: E402
from _models import (batches_input_fn, linear_model_fn, quiet,  # noqa: E402
                     regression_data)


class _Wait(estlab.SessionRunHook):
  def after_run(self, run_context, run_values):
    if not getattr(self, "waited", False):
      self.waited = True
      print("training", flush=True)
      sys.stdin.readline()


def main(model_dir, mode):
  x, y = regression_data()
  est = estlab.Estimator(linear_model_fn, model_dir,
                         config=quiet(save_checkpoints_steps=2),
                         params={"learning_rate": 0.1})
  if mode == "hold":
    est.train(batches_input_fn(x, y, epochs=10), steps=6, hooks=[_Wait()])
    print("done", flush=True)
    return
  outcome = {}
  for name, call in (
      ("train", lambda: est.train(batches_input_fn(x, y), steps=1)),
      ("evaluate", lambda: est.evaluate(batches_input_fn(x, y))),
      ("predict", lambda: len(list(est.predict(batches_input_fn(x, y))))),
      ("inspect", lambda: [r["step"] for r in
                           estlab.inspect.list_checkpoints(model_dir)])):
    try:
      outcome[name] = ["ok", repr(call())]
    except Exception as e:  # pylint: disable=broad-except
      outcome[name] = [type(e).__name__, str(e)]
  print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
  main(*sys.argv[1:])
