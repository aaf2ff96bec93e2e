"""TensorBoard across restarts: TF's SessionLog.START at a train call's first
step (TensorBoard then drops the points a killed run left past its last
checkpoint), and summaries on disk before each checkpoint is saved.

The SIGKILL tests are in tests/checkpoint/test_kills.py; these train in
process. TF's own events are in tests/tf_reference/session_log_tf215.json.
"""
import itertools
import json
import os

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboardX.proto import event_pb2

import estlab
from _models import batches_input_fn, linear_model_fn, quiet, regression_data

_TF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "tf_reference", "session_log_tf215.json")


def _events(logdir):
  """``["session_log", "START", step]`` / ``["loss", step]`` in the order
  written (files by name, as TensorBoard reads them)."""
  out = []
  for name in sorted(os.listdir(logdir)):
    if "tfevents" not in name:
      continue
    for record in estlab.summary._records(os.path.join(logdir, name)):  # pylint: disable=protected-access
      event = event_pb2.Event.FromString(record)
      if event.session_log.status == event_pb2.SessionLog.START:
        out.append(["session_log", "START", event.step])
      elif any(v.tag == "loss" for v in event.summary.value):
        out.append(["loss", event.step])
  return out


def _tensorboard_steps(logdir, tag="loss"):
  """The steps TensorBoard shows (its reader, orphans purged as by default)."""
  acc = event_accumulator.EventAccumulator(
      str(logdir), size_guidance={event_accumulator.SCALARS: 0})
  acc.Reload()
  return [e.step for e in acc.Scalars(tag)]


def test_each_train_call_starts_its_events_as_tf_did(tmp_path):
  with open(_TF) as f:
    tf_events = json.load(f)["two_train_calls_of_5_steps"]
  x, y = regression_data()
  est = estlab.Estimator(linear_model_fn, tmp_path, params={},
                         config=quiet(save_summary_steps=1,
                                      save_checkpoints_steps=3))
  for _ in range(2):
    est.train(batches_input_fn(x, y, batch_size=8, epochs=100), steps=5)
  assert _events(tmp_path) == [e for e in tf_events
                               if e[:2] != ["session_log", "CHECKPOINT"]]
  assert _tensorboard_steps(tmp_path) == list(range(1, 11))


def test_points_past_the_last_good_checkpoint_are_dropped_on_resume(tmp_path):
  # A NaN at step 7 stops training; steps 6 and 7 were never checkpointed
  # (the last good one is 5), but step 6's summary was written. The next
  # call resumes from 5: TensorBoard shows 1..9 once each, in order.
  x, y = regression_data(8)
  bad = np.full_like(y, np.nan)

  def poisoned():
    for step in itertools.count(1):
      yield {"x": x}, (bad if step == 7 else y)
  est = estlab.Estimator(linear_model_fn, tmp_path, params={},
                         config=quiet(save_summary_steps=1,
                                      save_checkpoints_steps=5))
  with pytest.raises(estlab.NanLossDuringTrainingError, match="step 7"):
    est.train(poisoned, steps=20)
  assert [s for s, _ in estlab.summary.read_scalars(tmp_path)["loss"]] == [
      1, 2, 3, 4, 5, 6]
  est.train(lambda: itertools.repeat(({"x": x}, y)), steps=4)
  assert estlab.checkpoint.latest_checkpoint(tmp_path).endswith("9")
  acc = event_accumulator.EventAccumulator(
      str(tmp_path), size_guidance={event_accumulator.SCALARS: 0},
      purge_orphaned_data=False)
  acc.Reload()
  assert [e.step for e in acc.Scalars("loss")] == [1, 2, 3, 4, 5, 6,
                                                   6, 7, 8, 9]
  assert _tensorboard_steps(tmp_path) == list(range(1, 10))
  assert [s for s, _ in estlab.summary.read_scalars(tmp_path)["loss"]] == (
      list(range(1, 10)))


class _SeesSummaries(estlab.CheckpointSaverListener):
  """Reads the model_dir's events as each checkpoint is written."""

  def __init__(self, model_dir):
    self.model_dir, self.seen = model_dir, {}

  def after_save(self, session, global_step_value):
    del session
    self.seen[global_step_value] = [
        s for s, _ in estlab.summary.read_scalars(self.model_dir).get(
            "loss", [])]


def test_summaries_are_on_disk_before_their_checkpoint(tmp_path):
  # tensorboardX flushes every 2 s by itself: sooner, a kill right after a
  # checkpoint lost the points before it. Each save now flushes first.
  x, y = regression_data()
  listener = _SeesSummaries(str(tmp_path))
  est = estlab.Estimator(linear_model_fn, tmp_path, params={},
                         config=quiet(save_summary_steps=1,
                                      save_checkpoints_steps=4))
  est.train(batches_input_fn(x, y, batch_size=8, epochs=100), steps=12,
            saving_listeners=[listener])
  assert listener.seen == {0: [], 4: [1, 2, 3, 4], 8: list(range(1, 9)),
                           12: list(range(1, 13))}


def test_writer_session_start_drops_later_points_for_every_reader(tmp_path):
  with estlab.summary.TensorBoardWriter(tmp_path / "a") as w:
    for step in range(1, 6):
      w.write_scalars(step, {"loss": float(step), "acc": 0.5})
  with estlab.summary.TensorBoardWriter(tmp_path / "a") as w:
    w.write_session_start(4)
    w.write_scalars(4, {"loss": 40.0})
  assert estlab.summary.read_scalars(tmp_path / "a") == {
      "acc": [(1, 0.5), (2, 0.5), (3, 0.5)],
      "loss": [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]}
  assert _tensorboard_steps(tmp_path / "a") == [1, 2, 3, 4]
  assert _tensorboard_steps(tmp_path / "a", "acc") == [1, 2, 3]
  # A MultiWriter passes it on; other writers ignore it.
  multi = estlab.summary.MultiWriter([
      estlab.summary.TensorBoardWriter(tmp_path / "b"),
      estlab.summary.LoggingWriter(), estlab.summary.NullWriter()])
  with multi:
    multi.write_scalars(3, {"loss": 1.0})
    multi.write_session_start(2)
  assert estlab.summary.read_scalars(tmp_path / "b") == {}


def test_summary_saver_hook_writes_start_at_its_first_step(tmp_path):
  x, y = regression_data()
  est = estlab.Estimator(linear_model_fn, tmp_path / "m", params={},
                         config=quiet())
  out = tmp_path / "hook"
  for _ in range(2):
    est.train(batches_input_fn(x, y, batch_size=8, epochs=100), steps=3,
              hooks=[estlab.SummarySaverHook(save_steps=2,
                                             output_dir=str(out))])
  assert _events(out) == [["session_log", "START", 1], ["loss", 1],
                          ["loss", 3], ["session_log", "START", 4],
                          ["loss", 4], ["loss", 6]]
