"""SIGKILLed training resumes from the newest committed checkpoint, ends bit
for bit where an uninterrupted run ends, and TensorBoard shows every step
once, in order.

A real child process (``_kill_worker.py``) trains; it is killed by PID at
startup, inside a step's computation and while a checkpoint is committed,
and restarted each time. Marked slow: a child process takes ~10 s to start
and train (JAX, Orbax, compile).
"""
import os
import queue
import subprocess
import sys
import threading

import numpy as np
import orbax.checkpoint as ocp
import pytest
from tensorboard.backend.event_processing import event_accumulator

import estlab

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "_kill_worker.py")
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
_MAX_STEPS = 24
_TIMEOUT = 120  # seconds for one line of a child (startup included)


class _Child:
  """A worker process whose stdout lines are read by a thread."""

  def __init__(self, model_dir, pause, log):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [_ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    self.proc = subprocess.Popen(
        [sys.executable, _WORKER, str(model_dir), str(_MAX_STEPS), pause],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
        text=True, env=env)
    self.lines = queue.Queue()
    threading.Thread(target=self._read, daemon=True).start()

  def _read(self):
    for line in self.proc.stdout:
      self.lines.put(line.strip())
    self.lines.put(None)

  def expect(self, prefix):
    """The next line, which must start with ``prefix``."""
    try:
      line = self.lines.get(timeout=_TIMEOUT)
    except queue.Empty:
      pytest.fail(f"worker printed nothing in {_TIMEOUT}s; expected {prefix!r}")
    assert line is not None and line.startswith(prefix), (
        f"worker printed {line!r} (None: it exited with "
        f"{self.proc.poll()!r}); expected {prefix!r}")
    return line

  def kill(self):
    if self.proc.poll() is None:
      self.proc.kill()  # SIGKILL, by PID
    self.proc.wait(timeout=_TIMEOUT)
    self.proc.stdout.close()


def _committed(model_dir):
  """The steps committed in ``model_dir``, ascending (as estlab lists them)."""
  if not os.path.isdir(model_dir):
    return []
  return [r["step"] for r in estlab.inspect.list_checkpoints(str(model_dir))]


def _train(model_dir, pauses, log_path, after_kill=lambda pause: None):
  """Runs the worker once per pause (killed there, then ``after_kill(pause)``
  is called), then to the end.

  Returns ``[(newest committed before the start, step it started from,
  pause), ...]``.
  """
  starts = []
  with open(log_path, "a") as log:
    for pause in [*pauses, "none"]:
      newest = (_committed(model_dir) or [0])[-1]
      child = _Child(model_dir, pause, log)
      try:
        if pause != "startup":
          started = int(child.expect("start ").split()[1])
          starts.append((newest, started, pause))
        if pause == "none":
          child.expect("done")
          assert child.proc.wait(timeout=_TIMEOUT) == 0
        else:
          child.expect(f"paused {pause.replace(':', ' ')}")
      finally:
        child.kill()
      if pause != "none":
        after_kill(pause)
  return starts


def _final_state(model_dir):
  mngr = ocp.CheckpointManager(os.path.abspath(model_dir))
  try:
    assert mngr.latest_step() == _MAX_STEPS
    got = mngr.restore(_MAX_STEPS, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(),
        opt_state=ocp.args.StandardRestore(),
        metadata=ocp.args.JsonRestore()))
    # step, rng and bad_step: the metadata's train_state (no model_state).
    return {"params": got["params"], "opt_state": got["opt_state"],
            "train_state": got["metadata"]["train_state"]}
  finally:
    mngr.close()


def _assert_bitwise_equal(got, want):
  import jax  # pylint: disable=g-import-not-at-top
  got_leaves, got_tree = jax.tree_util.tree_flatten_with_path(got)
  want_leaves, want_tree = jax.tree_util.tree_flatten_with_path(want)
  assert got_tree == want_tree
  for (path, a), (_, b) in zip(got_leaves, want_leaves):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, path
    assert a.tobytes() == b.tobytes(), f"{jax.tree_util.keystr(path)} differs"


def _loss_steps(model_dir, purge):
  acc = event_accumulator.EventAccumulator(
      str(model_dir), size_guidance={event_accumulator.SCALARS: 0},
      purge_orphaned_data=purge)
  acc.Reload()
  return [e.step for e in acc.Scalars("loss")]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("uninterrupted")
  starts = _train(model_dir, [], model_dir.parent / "uninterrupted.log")
  assert starts == [(0, 0, "none")]
  return model_dir


@pytest.mark.slow
def test_killed_at_startup_mid_step_and_mid_commit_resumes_bit_for_bit(
    uninterrupted, tmp_path):
  model_dir = tmp_path / "model"
  # step:6 of a fresh run: the 6th execution (init, then steps 1-5) is step
  # 5's; commit:16 blocks the save of 16 while training goes on; step:3
  # after a restart from 12 is step 15's.
  pauses = ["startup", "step:6", "commit:16", "step:3"]
  on_disk = {}
  starts = _train(model_dir, pauses, tmp_path / "workers.log",
                  lambda pause: pause.startswith("commit") and on_disk.update(
                      {pause: _loss_steps(model_dir, purge=True)}))
  # Every restart resumed from the newest committed checkpoint...
  assert [(newest, started) for newest, started, _ in starts] == [
      (newest, newest) for newest, _, _ in starts]
  # ... which the killed commit of step 16 never became.
  by_pause = {pause: started for _, started, pause in starts}
  assert by_pause["step:3"] == 12
  assert 16 in _committed(model_dir)  # (saved again by the restarted run)
  _assert_bitwise_equal(_final_state(model_dir), _final_state(uninterrupted))

  # TensorBoard. When the commit of 16 was killed, the summaries of every
  # step to 16 were on disk (each save flushes them first), none missing,
  # none twice (training may have gone on past 16 meanwhile).
  assert on_disk["commit:16"][:16] == list(range(1, 17))
  assert on_disk["commit:16"] == sorted(set(on_disk["commit:16"]))
  # The run killed while committing 16 had written the
  # summaries of steps 13-16 (flushed before the save of 16 began), which
  # the restart from 12 wrote again: without TF's SessionLog.START, steps go
  # back; with it (TensorBoard's default) every step shows once, in order.
  raw = _loss_steps(model_dir, purge=False)
  assert raw != sorted(set(raw))
  assert _loss_steps(model_dir, purge=True) == list(range(1, _MAX_STEPS + 1))
  assert [s for s, _ in estlab.summary.read_scalars(model_dir)["loss"]] == (
      list(range(1, _MAX_STEPS + 1)))
  assert _loss_steps(uninterrupted, purge=True) == list(
      range(1, _MAX_STEPS + 1))
