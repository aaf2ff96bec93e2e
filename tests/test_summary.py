"""Tests for estlab.summary: event files hold what was written, read back live.

The TensorBoard tests start the real `tensorboard` (a test dependency) through
`_tensorboard` (tests/_tensorboard.py) and read it over its HTTP API.
"""
import logging
import socket
import time

import jax.numpy as jnp
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

import estlab
from estlab import summary

import _tensorboard  # tests/_tensorboard.py; tests/ is on sys.path (see there).


def f32(x) -> float:
  """`x` as event files store it: a float32."""
  return float(np.float32(x))


def _wait_for(condition, timeout=10.0, poll=0.05):
  """Polls `condition()` until truthy (returned) or `timeout` s (None)."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if result := condition():
      return result
    time.sleep(poll)
  return None


class _Recorder(summary.MetricWriter):
  """Remembers every call, to check fan-out."""

  def __init__(self):
    self.calls = []

  def write_scalars(self, step, scalars):
    self.calls.append(("scalars", step, dict(scalars)))

  def write_histograms(self, step, arrays):
    self.calls.append(("histograms", step, list(arrays)))

  def write_text(self, step, texts):
    self.calls.append(("text", step, dict(texts)))

  def write_hparams(self, hparams):
    self.calls.append(("hparams", dict(hparams)))

  def flush(self):
    self.calls.append(("flush",))

  def close(self):
    self.calls.append(("close",))


# TensorBoardWriter and read_scalars.


def test_tensorboard_writer_round_trips_through_read_scalars(tmp_path):
  with summary.TensorBoardWriter(tmp_path) as w:
    for step in (300, 100, 200):  # Out of order: read back sorted.
      w.write_scalars(step, {
          "loss": 1.0 / step, "accuracy": np.float32(step / 400),
          "global_step/sec": jnp.asarray(step * 0.5), "examples": step * 32})

  assert summary.read_scalars(tmp_path) == {
      "accuracy": [(s, f32(s / 400)) for s in (100, 200, 300)],
      "examples": [(s, float(s * 32)) for s in (100, 200, 300)],
      "global_step/sec": [(s, f32(s * 0.5)) for s in (100, 200, 300)],
      "loss": [(s, f32(1.0 / s)) for s in (100, 200, 300)],
  }


def test_flush_puts_every_event_on_disk_while_open(tmp_path):
  # More events than tensorboardX queues (10): its own flush() misses some.
  w = summary.TensorBoardWriter(tmp_path, flush_secs=60)
  for step in range(200):
    w.write_scalars(step, {"loss": step, "lr": 0.5})
  w.flush()

  scalars = summary.read_scalars(tmp_path)
  assert scalars["loss"] == [(s, float(s)) for s in range(200)]
  assert len(scalars["lr"]) == 200
  w.write_scalars(200, {"loss": 200})  # Still writes after a flush.
  w.flush()
  assert summary.read_scalars(tmp_path)["loss"][-1] == (200, 200.0)
  w.close()


def test_events_reach_disk_within_seconds_without_flush(tmp_path):
  w = summary.TensorBoardWriter(tmp_path, flush_secs=1)
  try:
    w.write_scalars(1, {"loss": 0.5})
    w.write_scalars(2, {"loss": 0.25})
    seen = _wait_for(lambda: summary.read_scalars(tmp_path).get("loss") == [
        (1, 0.5), (2, 0.25)], timeout=15)
    assert seen, summary.read_scalars(tmp_path)
  finally:
    w.close()


def test_read_scalars_merges_files_and_last_write_wins(tmp_path):
  # Two writers in one second: tensorboardX alone would give both one name.
  with summary.TensorBoardWriter(tmp_path) as first:
    first.write_scalars(1, {"loss": 4.0})
    first.write_scalars(2, {"loss": 2.0})
  with summary.TensorBoardWriter(tmp_path) as resumed:  # From step 2 again.
    resumed.write_scalars(2, {"loss": 1.5})
    resumed.write_scalars(3, {"loss": 1.0})
  (tmp_path / "eval").mkdir()  # Subdirectories are other runs: not read.

  assert len(list(tmp_path.glob("*tfevents*"))) == 2
  assert summary.read_scalars(tmp_path) == {
      "loss": [(1, 4.0), (2, 1.5), (3, 1.0)]}


def test_read_scalars_skips_a_record_still_being_written(tmp_path):
  with summary.TensorBoardWriter(tmp_path) as w:
    w.write_scalars(1, {"loss": 0.5})
    w.write_scalars(2, {"loss": 0.25})
  (path,) = tmp_path.glob("*tfevents*")
  data = path.read_bytes()
  path.write_bytes(data[:-3])  # Cut inside the last record.
  assert summary.read_scalars(tmp_path) == {"loss": [(1, 0.5)]}


def test_read_scalars_of_a_missing_dir_names_it(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope"):
    summary.read_scalars(tmp_path / "nope")


def test_histograms_text_and_hparams_reach_tensorboard_files(tmp_path):
  with summary.TensorBoardWriter(tmp_path) as w:
    w.write_histograms(3, {"dense/kernel": jnp.arange(12.0).reshape(3, 4)})
    w.write_text(3, {"note": "loss *falls*"})
    w.write_hparams({"lr": np.float32(0.5), "optimizer": {"name": "adam"},
                     "hidden_units": (64, 32)})

  acc = event_accumulator.EventAccumulator(str(tmp_path), {"tensors": 0})
  acc.Reload()
  (histogram,) = acc.Histograms("dense/kernel")
  assert (histogram.step, histogram.histogram_value.num) == (3, 12)
  (text,) = acc.Tensors("note/text_summary")
  assert text.tensor_proto.string_val == [b"loss *falls*"]
  content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
  hparams = plugin_data_pb2.HParamsPluginData.FromString(
      content).session_start_info.hparams
  assert hparams["lr"].number_value == 0.5
  assert hparams["optimizer.name"].string_value == "adam"
  assert hparams["hidden_units"].string_value == "(64, 32)"
  assert summary.read_scalars(tmp_path) == {}  # None of them is a scalar.


def test_a_scalar_must_have_one_element(tmp_path):
  with summary.TensorBoardWriter(tmp_path) as w:
    with pytest.raises(ValueError, match=r"'loss' has shape \(2,\).*mean"):
      w.write_scalars(1, {"loss": np.array([0.5, 0.25])})


def test_writing_after_close_says_so(tmp_path):
  w = summary.TensorBoardWriter(tmp_path)
  w.close()
  with pytest.raises(ValueError, match="is closed"):
    w.write_scalars(1, {"loss": 0.5})
  w.flush()
  w.close()  # Both harmless after close.


# LoggingWriter, MultiWriter, NullWriter.


def test_logging_writer_logs_one_line_per_call(caplog):
  caplog.set_level(logging.INFO, logger="estlab")
  w = summary.LoggingWriter()
  w.write_scalars(200, {"loss": 0.123, "global_step/sec": jnp.asarray(45.6)})
  w.write_text(200, {"note": "hi"})
  w.write_hparams({"lr": 0.1, "model": {"units": 8}})

  assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
      ("estlab", logging.INFO,
       "step 200: loss = 0.123, global_step/sec = 45.6"),
      ("estlab", logging.INFO, "step 200: note = 'hi'"),
      ("estlab", logging.INFO, "hparams: lr = 0.1, model.units = 8"),
  ]


def test_logging_writer_takes_a_logger(caplog):
  caplog.set_level(logging.INFO, logger="my.train")
  w = summary.LoggingWriter(logging.getLogger("my.train"))
  w.write_histograms(5, {"w": np.array([1.0, 3.0])})
  assert [(r.name, r.getMessage()) for r in caplog.records] == [
      ("my.train", "step 5: w = histogram(size 2, min 1, max 3)")]


def test_multi_writer_fans_out_every_call(tmp_path, caplog):
  caplog.set_level(logging.INFO, logger="estlab")
  a, b = _Recorder(), _Recorder()
  with summary.MultiWriter([a, b, summary.TensorBoardWriter(tmp_path),
                            summary.LoggingWriter()]) as w:
    w.write_scalars(7, {"loss": 0.5})
    w.write_histograms(7, {"w": np.ones(3)})
    w.write_text(7, {"note": "x"})
    w.write_hparams({"lr": 0.1})
    w.flush()

  expected = [("scalars", 7, {"loss": 0.5}), ("histograms", 7, ["w"]),
              ("text", 7, {"note": "x"}), ("hparams", {"lr": 0.1}),
              ("flush",), ("close",)]
  assert a.calls == b.calls == expected
  assert summary.read_scalars(tmp_path) == {"loss": [(7, 0.5)]}
  assert "step 7: loss = 0.5" in caplog.messages


def test_multi_writer_rejects_what_is_not_a_writer():
  with pytest.raises(TypeError, match=r"got 'logs/'.*TensorBoardWriter"):
    summary.MultiWriter(["logs/"])


def test_null_writer_takes_everything():
  with summary.NullWriter() as w:
    w.write_scalars(1, {"loss": 0.5})
    w.write_histograms(1, {"w": np.ones(2)})
    w.write_text(1, {"t": "x"})
    w.write_hparams({"lr": 0.1})
    w.flush()


# The real TensorBoard, over HTTP.


@pytest.fixture(scope="module")
def served(tmp_path_factory):
  """A training writer still open on `logdir`, eval events, and TensorBoard."""
  logdir = tmp_path_factory.mktemp("model_dir")
  train = summary.TensorBoardWriter(logdir, flush_secs=1)
  for step, loss in [(100, 1.5), (200, 0.75), (300, 0.375)]:
    train.write_scalars(step, {"loss": loss})
  train.flush()
  with summary.TensorBoardWriter(logdir / "eval") as evaluation:
    evaluation.write_scalars(300, {"accuracy": 0.625, "loss": 0.5})
  server = _tensorboard.start_tensorboard(logdir, timeout=60)
  try:
    yield server, train
  finally:
    server.close()
    train.close()


def test_tensorboard_shows_train_and_eval_runs(served):
  server, _ = served
  loss = server.wait_for_scalar(".", "loss", timeout=30)
  accuracy = server.wait_for_scalar("eval", "accuracy", timeout=30)

  assert [p for p in loss if p[0] <= 300] == [
      (100, 1.5), (200, 0.75), (300, 0.375)]
  assert accuracy == [(300, 0.625)]
  runs = server.runs_and_tags()
  assert runs["eval"] == ["accuracy", "loss"]
  assert "loss" in runs["."]


def test_tensorboard_updates_live_while_training_writes(served):
  server, train = served
  server.wait_for_scalar(".", "loss", timeout=30)
  train.write_scalars(400, {"loss": 0.25})  # No flush: flush_secs does it.

  loss = server.wait_for_scalar(".", "loss", timeout=30, step=400)
  assert loss[-1] == (400, 0.25)


def test_start_tensorboard_retries_a_taken_port(tmp_path, monkeypatch):
  with socket.socket() as taken:  # Bound, not listening: binding it fails.
    taken.bind(("127.0.0.1", 0))
    ports = [taken.getsockname()[1]]
    free_port = _tensorboard._free_port
    monkeypatch.setattr(_tensorboard, "_free_port",
                        lambda: ports.pop() if ports else free_port())
    with _tensorboard.start_tensorboard(tmp_path, timeout=60) as server:
      assert server.port != taken.getsockname()[1]
      assert server.runs_and_tags() == {}
    assert server.process.poll() is not None  # Stopped by close().


def test_start_tensorboard_failure_shows_its_log():
  with pytest.raises(RuntimeError, match="(?s)exited with code.*logdir"):
    _tensorboard.start_tensorboard("", timeout=60)  # No logdir: it quits.


def test_the_chief_writer_of_a_single_process_writes_events(tmp_path):
  # Process 0 is the chief; tests/distribute/test_multiprocess.py checks that
  # the other processes of a multi-process run write nothing.
  with summary.chief_writer(tmp_path) as w:
    assert isinstance(w, summary.TensorBoardWriter)
    w.write_scalars(3, {"loss": 0.5})
  assert summary.read_scalars(tmp_path)["loss"] == [(3, 0.5)]


def test_a_non_scalar_summary_is_written_as_a_histogram(tmp_path):
  # tf.summary.histogram('kernel', kernel) in a model_fn ->
  # EstimatorSpec(summaries={'kernel': kernel}).
  import flax.linen as nn
  import jax.numpy as jnp
  import optax
  from tensorboard.backend.event_processing import event_accumulator

  def model_fn(features, labels, mode):
    dense = nn.Dense(1)
    y = dense(features["x"])[:, 0]
    loss = jnp.mean((y - labels) ** 2)
    return estlab.EstimatorSpec(
        mode, loss=loss, train_op=optax.sgd(0.1), predictions={"y": y},
        summaries={"kernel": dense.variables["params"]["kernel"], "mse": loss})
  x = np.arange(24, dtype=np.float32).reshape(8, 3) / 24
  est = estlab.Estimator(model_fn, str(tmp_path), config=estlab.RunConfig(
      progress_bar=False, save_summary_steps=2))
  est.train(lambda: [({"x": x}, x[:, 0])] * 4)
  events = event_accumulator.EventAccumulator(
      str(tmp_path), size_guidance={"histograms": 0, "scalars": 0})
  events.Reload()
  assert "kernel" in events.Tags()["histograms"]
  histograms = events.Histograms("kernel")
  assert [h.step for h in histograms] == [2, 4]
  assert histograms[0].histogram_value.num == 3  # the kernel's 3 values
  assert [s.step for s in events.Scalars("mse")] == [2, 4]
