"""A training process that tests/checkpoint/test_kills.py SIGKILLs.

``python _kill_worker.py MODEL_DIR MAX_STEPS PAUSE`` trains a small Estimator
(two Dense layers with dropout, adam, ``tf_random_seed`` set, a checkpoint
every 4 steps saved asynchronously, a summary every step) on 4 fixed batches
in order, repeated, to ``max_steps=MAX_STEPS``. A checkpoint step is a whole
number of passes over the batches, so a run resumed from any checkpoint sees
the batches an uninterrupted run saw at the same steps.

It prints ``start S`` once the state is restored (or initialised) at step S,
and ``done`` when training returns. ``PAUSE`` names a moment at which it
prints ``paused ...`` and then blocks until killed:

* ``none``: no pause.
* ``startup``: in the hooks' ``begin``: the model_dir is locked and the
  model traced; nothing is restored or saved yet.
* ``step:K``: inside the K-th execution of the compiled model in this process
  (the first is the state's initialisation, if any): a ``jax.debug.callback``
  in the model blocks, so the step's computation has begun and not ended.
* ``commit:N``: in the background thread saving step N, when every array
  file of the step is written and its checksums are about to be (the last
  thing before Orbax renames the step into place). The training thread goes
  on meanwhile.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import estlab  # noqa: E402
from estlab.checkpoint import _integrity  # noqa: E402
from _models import regression_data  # noqa: E402

EVERY = 4  # checkpoint cadence = batches per pass
_PAUSE = ("none", 0)
_executions = 0


def _block(what):
  print(f"paused {what}", flush=True)
  threading.Event().wait(300)  # the test kills this process meanwhile
  os._exit(3)  # never resume: a test that did not kill sees rc 3


def _probe():
  global _executions
  _executions += 1
  if _PAUSE == ("step", _executions):
    _block(f"step {_executions}")


def model_fn(features, labels, mode):
  train = mode == estlab.ModeKeys.TRAIN
  if train:
    jax.debug.callback(_probe)
  hidden = nn.relu(nn.Dense(8)(features["x"]))
  hidden = nn.Dropout(0.25, deterministic=not train)(hidden)
  pred = nn.Dense(1)(hidden)[:, 0]
  if mode == estlab.ModeKeys.PREDICT:
    return estlab.EstimatorSpec(mode, predictions=pred)
  loss = jnp.mean((pred - labels) ** 2)
  return estlab.EstimatorSpec(mode, loss=loss, train_op=optax.adam(0.05),
                              predictions=pred)


def input_fn():
  x, y = regression_data(16 * EVERY)
  while True:
    for i in range(0, len(x), 16):
      yield {"x": x[i:i + 16]}, y[i:i + 16]


class _Announce(estlab.SessionRunHook):
  def begin(self):
    if _PAUSE[0] == "startup":
      _block("startup")

  def after_create_session(self, session=None, coord=None):
    print(f"start {session.global_step}", flush=True)


def _pause_commits(step):
  write_manifest = _integrity.write_manifest

  def paused(directory, final=None):
    if os.path.basename(os.fspath(final or directory)) == str(step):
      _block(f"commit {step}")
    return write_manifest(directory, final)
  _integrity.write_manifest = paused


def main(model_dir, max_steps, pause):
  global _PAUSE
  kind, _, at = pause.partition(":")
  _PAUSE = (kind, int(at or 0))
  if kind == "commit":
    _pause_commits(int(at))
  config = estlab.RunConfig(
      tf_random_seed=7, save_checkpoints_steps=EVERY, save_summary_steps=1,
      keep_checkpoint_max=None, log_step_count_steps=None, progress_bar=False,
      async_checkpoints=True)
  est = estlab.Estimator(model_fn, model_dir, config=config)
  est.train(input_fn, max_steps=int(max_steps), hooks=[_Announce()])
  print("done", flush=True)


if __name__ == "__main__":
  main(*sys.argv[1:])
