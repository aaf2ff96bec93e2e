"""Real multi-process training: two processes joined by ``jax.distributed``.

Each worker (``_worker.py``) has one CPU device and gloo collectives; they
train with ``MultiWorkerMirroredStrategy`` on their own rows of every global
batch. The result must equal one process training on the whole batches.
"""
import glob
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import estlab
from _models import global_batches, linear_model_fn, quiet
from _tensorboard import _free_port

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_WORKER = os.path.join(_TESTS, "distribute", "_worker.py")
_PROCESSES = 2
_TIMEOUT_SECS = 300


def _run_workers(model_dir, out_dir, devices=1, mode=()):
  """Starts the workers, waits (bounded) and kills any left by process group."""
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             PYTHONPATH=os.pathsep.join(
                 [os.path.dirname(_TESTS), _TESTS,
                  os.environ.get("PYTHONPATH", "")]))
  port = _free_port()
  procs, logs = [], []
  try:
    for i in range(_PROCESSES):
      log = open(os.path.join(out_dir, f"worker{i}.log"), "wb")
      logs.append(log)
      procs.append(subprocess.Popen(
          [sys.executable, _WORKER, str(i), str(_PROCESSES), str(port),
           str(model_dir), os.path.join(out_dir, f"worker{i}.json"), *mode],
          env=env, stdout=log, stderr=subprocess.STDOUT,
          stdin=subprocess.DEVNULL, start_new_session=True))
    for proc in procs:
      proc.wait(timeout=_TIMEOUT_SECS)
  finally:
    for proc in procs:
      if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    for log in logs:
      log.close()
  for i, proc in enumerate(procs):
    with open(os.path.join(out_dir, f"worker{i}.log"), errors="replace") as f:
      tail = f.read()[-3000:]
    assert proc.returncode == 0, f"worker {i} exited {proc.returncode}:\n{tail}"
  results = []
  for i in range(_PROCESSES):
    with open(os.path.join(out_dir, f"worker{i}.json")) as f:
      results.append(json.load(f))
  return results


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  root = tmp_path_factory.mktemp("multiprocess")
  workers = _run_workers(root / "model", root)
  # The same training in this one process, on the whole batches.
  batches = lambda: [({"x": x}, y) for x, y in global_batches()]
  single = estlab.Estimator(linear_model_fn, root / "single", params={
      "learning_rate": 0.1}, config=quiet())
  single.train(batches, steps=3)
  single.train(batches)
  return root / "model", workers, single, batches


def test_each_process_reads_its_own_input_pipeline(run):
  _, workers, _, _ = run
  for i, worker in enumerate(workers):
    assert worker["process_index"] == i and worker["devices"] == _PROCESSES
    # train, train, evaluate, predict: pipeline i of 2, 2 replicas in sync
    assert worker["contexts"] == [[_PROCESSES, i, _PROCESSES]] * 4


def test_one_process_training_or_an_export_in_the_run_is_a_clear_error(run):
  _, workers, _, _ = run
  for i, worker in enumerate(workers):
    assert f"process {i} of a 2-process" in worker["local_error"]
    assert "MultiWorkerMirroredStrategy()" in worker["local_error"]
    assert f"process {i} of a 2-process" in worker["export_error"]
    assert "from one process" in worker["export_error"]


def test_training_equals_one_process_on_the_whole_batches(run):
  model_dir, workers, single, _ = run
  expected = single.get_variable_value("linear/kernel")
  for worker in workers:
    np.testing.assert_allclose(worker["kernel"], expected, rtol=1e-5)
  # Read back in this (single) process from the checkpoints they wrote.
  restored = estlab.Estimator(linear_model_fn, model_dir, config=quiet())
  assert restored.latest_checkpoint().endswith(os.sep + "7")
  for name in single.get_variable_names():
    np.testing.assert_allclose(restored.get_variable_value(name),
                               single.get_variable_value(name), rtol=1e-5)


def test_steps_per_loop_splits_stacked_batches_across_processes(run):
  _, workers, _, batches = run
  single = estlab.Estimator(linear_model_fn, os.fspath(run[0]) + "_single_4",
                            params={"learning_rate": 0.1}, config=quiet())
  single.train(batches, steps=4)
  for worker in workers:
    np.testing.assert_allclose(worker["looped_kernel"],
                               single.get_variable_value("linear/kernel"),
                               rtol=1e-5)


def test_a_seconds_cadence_saves_the_same_steps_in_every_process(run):
  # Due at every check (every 2 steps) on the chief's clock; the final save
  # of each train call too. Unagreed, the processes' saves would hang.
  model_dir, _, _, _ = run
  steps = sorted(int(d) for d in os.listdir(model_dir) if d.isdigit())
  assert steps == [2, 3, 4, 6, 7]


def test_evaluate_reduces_over_every_process_and_predict_gives_local_rows(run):
  _, workers, single, batches = run
  expected = single.evaluate(batches)
  expected_rows = [p["pred"] for p in single.predict(batches)]
  for i, worker in enumerate(workers):
    assert worker["metrics"]["global_step"] == 7
    np.testing.assert_allclose(worker["metrics"]["mse"], expected["mse"],
                               rtol=1e-5)
    # Worker i fed rows i, i + 2, ... of every batch of 16.
    mine = [row for start in range(0, 64, 16)
            for row in expected_rows[start + i:start + 16:_PROCESSES]]
    np.testing.assert_allclose(worker["predictions"], mine, rtol=1e-5, atol=1e-6)


def test_a_premade_estimators_short_last_eval_batch_counts_every_row(run):
  _, workers, _, _ = run
  model_dir = os.fspath(run[0]) + "_single_premade"
  premade = estlab.LinearRegressor(
      [estlab.feature_column.numeric_column("x", shape=(3,))],
      model_dir=model_dir, config=quiet())
  premade.train(lambda: [({"x": x}, y) for x, y in global_batches(64)], steps=3)
  expected = premade.evaluate(  # pads the last 8 rows to 16 and masks them
      lambda: [({"x": x}, y) for x, y in global_batches(56)])
  for worker in workers:
    for key in ("average_loss", "loss"):
      np.testing.assert_allclose(worker["premade_metrics"][key],
                                 expected[key], rtol=1e-5, err_msg=key)


def test_train_and_evaluate_runs_together_in_every_process(run):
  _, workers, _, batches = run
  single = estlab.Estimator(linear_model_fn, os.fspath(run[0]) + "_single_tae",
                            params={"learning_rate": 0.1},
                            config=quiet(save_checkpoints_steps=2))
  expected, _ = estlab.train_and_evaluate(
      single, estlab.TrainSpec(batches, max_steps=4),
      estlab.EvalSpec(batches, steps=None, throttle_secs=0))
  for worker in workers:
    assert worker["spec_metrics"]["global_step"] == 4
    np.testing.assert_allclose(worker["spec_metrics"]["mse"], expected["mse"],
                               rtol=1e-5)


def test_early_stopping_stops_every_process_at_one_step(run):
  _, workers, _, _ = run
  for worker in workers:
    assert worker["stopped_at"] == 2  # evaluated at 2 before the hook asks
    assert "run_every_steps=N" in worker["secs_error"]


def test_only_the_chief_writes_summaries(run):
  model_dir, workers, _, _ = run
  for logdir in (model_dir, model_dir / "eval"):
    events = glob.glob(os.path.join(logdir, "events.out.tfevents.*"))
    assert events and all(f".{workers[0]['pid']}." in e for e in events), events


def test_each_process_takes_one_batch_per_local_device_a_step(tmp_path):
  # Two processes of two devices: each input_fn yields per-replica batches
  # (its 8 rows of every global batch of 16, as 2 batches of 4) and a step
  # takes 2 of them in each process, MirroredStrategy's rule per process.
  workers = _run_workers(tmp_path / "model", tmp_path, devices=2,
                         mode=("per_replica",))
  batches = lambda: [({"x": x}, y) for x, y in global_batches()]
  single = estlab.Estimator(linear_model_fn, tmp_path / "single", params={
      "learning_rate": 0.1}, config=quiet())
  single.train(batches, steps=3)
  single.train(batches)
  expected = single.evaluate(batches)
  for i, worker in enumerate(workers):
    assert worker["local_devices"] == 2 and worker["batches_per_step"] == 2
    assert worker["contexts"] == [[_PROCESSES, i, 4]] * 3
    np.testing.assert_allclose(worker["kernel"],
                               single.get_variable_value("linear/kernel"),
                               rtol=1e-5)
    assert worker["metrics"]["global_step"] == 7
    np.testing.assert_allclose(worker["metrics"]["mse"], expected["mse"],
                               rtol=1e-5)
