"""TF_CONFIG: parsed as TF does, joined by MultiWorkerMirroredStrategy, and
the evaluator task of train_and_evaluate.

The parser and RunConfig's cluster properties are checked against what TF
2.15 made of the same TF_CONFIGs (``tf_config_fixture.json``, written by
``make_tf_config_fixture.py``). The evaluator's loop runs in this process
with time passed in (the trainer trains when the evaluator sleeps). Last, the
real thing: a chief, a worker and an evaluator, three processes launched with
nothing but TF_CONFIG, run one plain tf.estimator program
(``_tf_config_program.py``).
"""
import itertools
import json
import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

import estlab
from estlab import training
from estlab.distribute import _tf_config
from estlab.distribute._cluster import join_tf_config_cluster
from estlab.distribute._tf_config import TFConfig, TFConfigError
from _models import linear_model_fn, quiet, regression_data
from _tensorboard import _free_port

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))
with open(os.path.join(_HERE, "tf_config_fixture.json")) as _f:
  _FIXTURE = json.load(_f)

_CLUSTER = {"chief": ["h0:2222"], "worker": ["h1:2222", "h2:2222"],
            "evaluator": ["h3:2222"]}


def _env(monkeypatch, value):
  monkeypatch.setenv("TF_CONFIG",
                     value if isinstance(value, str) else json.dumps(value))


def _ids(cases):
  return [json.dumps(c["tf_config"])[:70] for c in cases]


# -- the parser and RunConfig, against TF ------------------------------------

_WITH_CHIEF = [c for c in _FIXTURE["valid"] if "task_type" in c["tf"]]
_WORKERS_ONLY = [c for c in _FIXTURE["valid"] if "task_type" not in c["tf"]]


@pytest.mark.parametrize("case", _WITH_CHIEF, ids=_ids(_WITH_CHIEF))
def test_run_config_cluster_properties_are_tfs(case, monkeypatch):
  _env(monkeypatch, case["tf_config"])
  config = estlab.RunConfig()
  got = {name: getattr(config, name) for name in case["tf"]}
  got["cluster_spec"] = config.cluster_spec.as_dict()
  assert got == case["tf"]


@pytest.mark.parametrize("case", _WORKERS_ONLY, ids=_ids(_WORKERS_ONLY))
def test_a_cluster_of_workers_makes_worker_0_chief_as_tfs_strategy(
    case, monkeypatch):
  _env(monkeypatch, case["tf_config"])
  config = estlab.RunConfig()
  for name, value in case["tf"].items():
    assert getattr(config, name) == value, name


@pytest.mark.parametrize("case", _FIXTURE["invalid"],
                         ids=[c["tf_config"][:70] for c in _FIXTURE["invalid"]])
def test_what_tf_rejects_is_one_clear_error(case, monkeypatch):
  with pytest.raises(TFConfigError) as info:
    TFConfig.parse(case["tf_config"])
  assert isinstance(info.value, ValueError)  # old `except ValueError` works
  _env(monkeypatch, case["tf_config"])
  with pytest.raises(TFConfigError, match="TF_CONFIG"):
    estlab.RunConfig()
  with pytest.raises(TFConfigError, match="TF_CONFIG"):
    estlab.distribute.MultiWorkerMirroredStrategy()


@pytest.mark.parametrize("value, shown, fix", [
    ("{not json", "'{not json'", "JSON object such as"),
    ('["a"]', "'[\"a\"]'", "JSON object with 'cluster' and 'task'"),
    ({"cluster": _CLUSTER, "task": {"type": "trainer", "index": 0}},
     "'trainer'", "task types are ['chief', 'worker', 'evaluator']"),
    ({"cluster": _CLUSTER, "task": {"type": "worker", "index": 2}},
     "index 2", "use an index in 0..1"),
    ({"cluster": _CLUSTER, "task": {"type": "worker", "index": -1}},
     "index -1", "int >= 0"),
    ({"cluster": _CLUSTER, "task": {"type": "worker", "index": True}},
     "index True", "int >= 0"),
    ({"cluster": _CLUSTER, "task": {"index": 0}},
     "task={'index': 0}", '"type": "chief" | "worker" | "evaluator"'),
    ({"cluster": _CLUSTER, "task": ["worker", 0]}, "['worker', 0]",
     '{"type": "worker", "index": 0}'),
    ({"cluster": ["h0:1"], "task": {"type": "chief", "index": 0}}, "['h0:1']",
     "mapping job names to lists"),
    ({"cluster": {"evaluator": ["h3:1"]},
      "task": {"type": "evaluator", "index": 0}},
     "{'evaluator': ['h3:1']}", "add a 'chief' job"),
    ({"cluster": {"worker": ["h1:1"]}, "task": {"type": "chief", "index": 0}},
     "'chief'", "add this task's address to cluster['chief']"),
    ({"cluster": {**_CLUSTER, "chief": ["a:1", "b:1"]},
      "task": {"type": "chief", "index": 0}}, "['a:1', 'b:1']",
     "make the others workers"),
    ({"cluster": {**_CLUSTER, "evaluator": ["a:1", "b:1"]},
      "task": {"type": "chief", "index": 0}}, "['a:1', 'b:1']", "keep one"),
    ({"cluster": _CLUSTER, "task": {"type": "evaluator", "index": 1}},
     "'index': 1", 'set "index": 0'),
    ({"cluster": {**_CLUSTER, "ps": ["p:1"]},
      "task": {"type": "worker", "index": 0}}, "['p:1']",
     "remove the 'ps' job"),
    ({"cluster": {"master": ["m:1"]}, "task": {"type": "master", "index": 0}},
     "['m:1']", "name it 'chief'"),
    ({"cluster": {**_CLUSTER, "trainer": ["t:1"]},
      "task": {"type": "worker", "index": 0}}, "'trainer'", "Rename or remove"),
    ({"cluster": {"chief": "h0:1"}, "task": {"type": "chief", "index": 0}},
     "'h0:1'", 'e.g. ["10.0.0.1:2222"]'),
    ({"cluster": {"chief": ["h0"]}, "task": {"type": "chief", "index": 0}},
     "'h0'", "'host:port'"),
    ({"cluster": {"chief": ["h0:99999"]},
      "task": {"type": "chief", "index": 0}}, "'h0:99999'", "1..65535"),
    ({"task": {"type": "chief", "index": 0}}, "'chief'",
     "Add the 'cluster' of every task"),
    ({"cluster": _CLUSTER, "task": {"type": "chief", "index": 0},
      "model_dir": ""}, "''", "non-empty path"),
])
def test_each_malformed_value_is_shown_with_its_fix(value, shown, fix):
  with pytest.raises(TFConfigError) as info:
    TFConfig.parse(value if isinstance(value, str) else json.dumps(value))
  assert shown in str(info.value) and fix in str(info.value), str(info.value)


def test_process_ids_are_chief_first_then_workers_in_order():
  parse = lambda cluster, kind, index: TFConfig.parse(
      {"cluster": cluster, "task": {"type": kind, "index": index}})
  ids = [(parse(_CLUSTER, kind, i).process_id,
          parse(_CLUSTER, kind, i).coordinator_address)
         for kind, i in [("chief", 0), ("worker", 0), ("worker", 1)]]
  assert ids == [(0, "h0:2222"), (1, "h0:2222"), (2, "h0:2222")]
  evaluator = parse(_CLUSTER, "evaluator", 0)
  assert (evaluator.process_id, evaluator.num_processes) == (None, 3)
  workers = {"worker": ["w0:1", "w1:1"]}  # no chief: worker 0 coordinates
  assert [(parse(workers, "worker", i).process_id,
           parse(workers, "worker", i).coordinator_address,
           parse(workers, "worker", i).num_processes) for i in (0, 1)] == [
               (0, "w0:1", 2), (1, "w0:1", 2)]
  # The evaluator may be left out of the cluster (as TF allows).
  assert parse({"chief": ["c:1"]}, "evaluator", 0).is_evaluator


def test_no_tf_config_is_one_local_process():
  for value in (None, "", "{}", '{"task": {"type": "worker", "index": 0}}'):
    config = TFConfig.parse(value)
    assert not config.is_distributed
    assert (config.task_type, config.process_id, config.num_processes) == (
        "worker", 0, 1)
  assert TFConfig.from_environment({}) == TFConfig.parse(None)


def test_cluster_spec_reads_as_a_dict_and_as_tfs_cluster_spec(monkeypatch):
  _env(monkeypatch, {"cluster": _CLUSTER, "task": {"type": "worker",
                                                   "index": 1}})
  spec = estlab.RunConfig().cluster_spec
  assert spec == _CLUSTER and dict(spec) == {k: tuple(v) for k, v in
                                             _CLUSTER.items()}
  assert spec.jobs == ["chief", "evaluator", "worker"]
  assert (spec.num_tasks("worker"), spec.job_tasks("worker"),
          spec.task_address("worker", 1)) == (2, _CLUSTER["worker"], "h2:2222")
  with pytest.raises(ValueError, match="'ps'"):
    spec.num_tasks("ps")
  assert not estlab.distribute.ClusterSpec()


def test_model_dir_comes_from_tf_config_as_in_tf(monkeypatch, tmp_path):
  _env(monkeypatch, {"cluster": _CLUSTER, "task": {"type": "chief", "index": 0},
                     "model_dir": str(tmp_path)})
  assert estlab.RunConfig().model_dir == str(tmp_path)
  assert estlab.RunConfig(model_dir=tmp_path).model_dir == str(tmp_path)
  with pytest.raises(TFConfigError, match="differs from TF_CONFIG"):
    estlab.RunConfig(model_dir=tmp_path / "other")


def test_a_run_config_under_tf_config_pickles_and_replaces(monkeypatch):
  _env(monkeypatch, {"cluster": _CLUSTER, "task": {"type": "worker",
                                                   "index": 1}})
  config = pickle.loads(pickle.dumps(estlab.RunConfig().replace(
      save_summary_steps=3)))
  assert (config.task_type, config.task_id, config.save_summary_steps) == (
      "worker", 1, 3)


def test_the_evaluator_joins_no_cluster(monkeypatch):
  _env(monkeypatch, {"cluster": _CLUSTER, "task": {"type": "evaluator",
                                                   "index": 0}})
  strategy = estlab.distribute.MultiWorkerMirroredStrategy()
  assert not jax.distributed.is_initialized()
  assert not strategy.multiprocess
  assert strategy.num_replicas_in_sync == jax.local_device_count()


def test_a_local_tf_config_joins_nothing(monkeypatch):
  _env(monkeypatch, "{}")
  assert join_tf_config_cluster() is False
  assert not jax.distributed.is_initialized()


def test_a_training_task_after_jax_ran_is_told_to_build_the_strategy_first(
    monkeypatch):
  jax.devices()  # JAX has run in this process: too late to join a cluster
  _env(monkeypatch, {"cluster": {"chief": [f"127.0.0.1:{_free_port()}"],
                                 "worker": ["127.0.0.1:1"]},
                     "task": {"type": "worker", "index": 0}})
  with pytest.raises(RuntimeError, match="worker:0 of a 2-process") as info:
    estlab.distribute.MultiWorkerMirroredStrategy()
  assert "before anything runs JAX" in str(info.value)
  assert not jax.distributed.is_initialized()


# -- train_and_evaluate's roles in a cluster ----------------------------------

X, Y = regression_data(64)
_BATCHES = [({"x": X[i:i + 16]}, Y[i:i + 16]) for i in range(0, 64, 16)]


def _forever():
  return itertools.cycle(_BATCHES)


def _eval_input():
  return list(_BATCHES)


def _trainer(model_dir, **kw):
  """The training side, made before TF_CONFIG is set (a one-process run)."""
  return estlab.Estimator(linear_model_fn, model_dir, params={
      "learning_rate": 0.1}, config=quiet(save_checkpoints_steps=2, **kw))


def _evaluator(model_dir, monkeypatch):
  _env(monkeypatch, {"cluster": _CLUSTER, "task": {"type": "evaluator",
                                                   "index": 0}})
  return estlab.Estimator(linear_model_fn, model_dir, params={
      "learning_rate": 0.1}, config=quiet())


def _evaluated_steps(est):
  scalars = estlab.summary.read_scalars(est.eval_dir())
  return [step for step, _ in scalars.get("mse", [])]


class _Time:
  """A clock that moves only when slept on; each sleep lets the trainer
  train two more steps (one checkpoint), up to ``max_steps``."""

  def __init__(self, trainer=None, max_steps=None, on_sleep=None):
    self.now, self.sleeps = 0.0, []
    self._trainer, self._max_steps, self._on_sleep = (trainer, max_steps,
                                                      on_sleep)

  def clock(self):
    return self.now

  def sleep(self, secs):
    self.sleeps.append(secs)
    self.now += secs
    if self._on_sleep is not None:
      self._on_sleep()
    if self._trainer is not None:
      path = self._trainer.latest_checkpoint()
      step = int(os.path.basename(path)) if path else 0
      if step < self._max_steps:
        self._trainer.train(_forever, steps=2)


class _Recorder:
  name = "recorder"

  def __init__(self):
    self.calls = []

  def export(self, estimator, export_path, checkpoint_path, eval_result,
             is_the_final_export):
    self.calls.append((os.path.basename(checkpoint_path),
                       int(eval_result["global_step"]), is_the_final_export))
    return export_path


def test_the_evaluator_evaluates_each_new_checkpoint_until_max_steps(
    tmp_path, monkeypatch):
  trainer = _trainer(tmp_path / "m")
  evaluator = _evaluator(tmp_path / "m", monkeypatch)
  time_ = _Time(trainer, max_steps=6)
  recorder = _Recorder()
  metrics, exports = training._evaluate_continuously(  # pylint: disable=protected-access
      evaluator, estlab.TrainSpec(_forever, max_steps=6),
      estlab.EvalSpec(_eval_input, steps=None, start_delay_secs=0,
                      throttle_secs=0, exporters=[recorder]),
      clock=time_.clock, sleep=time_.sleep, poll_secs=0.5)
  assert _evaluated_steps(evaluator) == [2, 4, 6]
  assert recorder.calls == [("2", 2, False), ("4", 4, False), ("6", 6, True)]
  assert metrics["global_step"] == 6 and exports == [
      os.path.join(evaluator.model_dir, "export", "recorder")]
  np.testing.assert_allclose(metrics["mse"],
                             trainer.evaluate(_eval_input)["mse"], rtol=1e-6)
  # Without a new checkpoint it looks again poll_secs later, never sooner.
  assert time_.sleeps == [0.5, 0.5, 0.5]


def test_the_evaluator_waits_start_delay_then_throttle_secs(tmp_path,
                                                             monkeypatch):
  trainer = _trainer(tmp_path / "m")
  evaluator = _evaluator(tmp_path / "m", monkeypatch)
  time_ = _Time(trainer, max_steps=4)
  training._evaluate_continuously(  # pylint: disable=protected-access
      evaluator, estlab.TrainSpec(_forever, max_steps=4),
      estlab.EvalSpec(_eval_input, start_delay_secs=7, throttle_secs=10),
      clock=time_.clock, sleep=time_.sleep, poll_secs=0.5)
  # 7 s start delay (checkpoint 2 appears), evaluation at t=7; the next pass
  # 10 s later (checkpoint 4 appears meanwhile), the final one.
  assert time_.sleeps == [7, 10]
  assert _evaluated_steps(evaluator) == [2, 4]


def test_a_checkpoint_still_being_written_is_never_evaluated(tmp_path,
                                                             monkeypatch):
  model_dir = tmp_path / "m"
  trainer = _trainer(model_dir).train(_forever, max_steps=2)
  # Orbax writes step 4 under a temporary name, renamed once complete.
  shutil.copytree(model_dir / "2", model_dir / "4.orbax-checkpoint-tmp-1234")
  evaluator = _evaluator(model_dir, monkeypatch)
  time_ = _Time(trainer, max_steps=4, on_sleep=lambda: shutil.rmtree(
      model_dir / "4.orbax-checkpoint-tmp-1234", ignore_errors=True))
  metrics, _ = training._evaluate_continuously(  # pylint: disable=protected-access
      evaluator, estlab.TrainSpec(_forever, max_steps=4),
      estlab.EvalSpec(_eval_input, start_delay_secs=0, throttle_secs=0),
      clock=time_.clock, sleep=time_.sleep)
  assert _evaluated_steps(evaluator) == [2, 4] and metrics["global_step"] == 4


def test_a_checkpoint_garbage_collected_while_read_is_skipped(
    tmp_path, monkeypatch, caplog):
  model_dir = tmp_path / "m"
  trainer = _trainer(model_dir, keep_checkpoint_max=1).train(_forever,
                                                             max_steps=2)
  evaluator = _evaluator(model_dir, monkeypatch)
  calls = []

  def eval_input():  # read before the checkpoint's variables are restored
    if not calls:  # meanwhile the trainer saves step 4 and deletes step 2
      trainer.train(_forever, max_steps=4)
    calls.append(len(calls))
    return list(_BATCHES)

  time_ = _Time()
  with caplog.at_level(logging.WARNING, logger="estlab"):
    metrics, _ = training._evaluate_continuously(  # pylint: disable=protected-access
        evaluator, estlab.TrainSpec(_forever, max_steps=4),
        estlab.EvalSpec(eval_input, start_delay_secs=0, throttle_secs=0),
        clock=time_.clock, sleep=time_.sleep)
  assert [d for d in os.listdir(model_dir) if d.isdigit()] == ["4"]
  assert metrics["global_step"] == 4 and _evaluated_steps(evaluator) == [4]
  assert "was deleted while being evaluated" in caplog.text
  assert time_.sleeps == []  # straight on to the newer checkpoint


def test_an_evaluation_error_on_an_existing_checkpoint_is_raised(
    tmp_path, monkeypatch):
  _trainer(tmp_path / "m").train(_forever, max_steps=2)
  evaluator = _evaluator(tmp_path / "m", monkeypatch)

  def broken_input():
    raise KeyError("no such column")

  with pytest.raises(KeyError, match="no such column"):
    training._evaluate_continuously(  # pylint: disable=protected-access
        evaluator, estlab.TrainSpec(_forever, max_steps=4),
        estlab.EvalSpec(broken_input, start_delay_secs=0),
        sleep=lambda s: None)


def test_the_evaluator_gives_up_after_its_timeout_without_checkpoints(
    tmp_path, monkeypatch):
  evaluator = _evaluator(tmp_path / "m", monkeypatch)
  time_ = _Time()
  with pytest.raises(TimeoutError, match="no new checkpoint") as info:
    training._evaluate_continuously(  # pylint: disable=protected-access
        evaluator, estlab.TrainSpec(_forever, max_steps=4),
        estlab.EvalSpec(_eval_input, start_delay_secs=0, throttle_secs=0),
        clock=time_.clock, sleep=time_.sleep, poll_secs=1, timeout_secs=3)
  assert str(tmp_path / "m") in str(info.value)
  assert time_.sleeps == [1, 1, 1, 1]


def test_train_and_evaluate_on_the_evaluator_returns_after_the_last_checkpoint(
    tmp_path, monkeypatch):
  trainer = _trainer(tmp_path / "m").train(_forever, max_steps=4)
  evaluator = _evaluator(tmp_path / "m", monkeypatch)
  assert evaluator.config.task_type == "evaluator"
  metrics, exports = estlab.train_and_evaluate(
      evaluator, estlab.TrainSpec(_forever, max_steps=4),
      estlab.EvalSpec(_eval_input, start_delay_secs=0, throttle_secs=0))
  assert metrics["global_step"] == 4 and exports == []
  assert _evaluated_steps(evaluator) == [4]
  assert trainer.latest_checkpoint().endswith(os.sep + "4")  # trained nothing


def test_the_chief_of_a_cluster_with_an_evaluator_only_trains(tmp_path,
                                                              monkeypatch):
  _env(monkeypatch, {"cluster": {"chief": ["127.0.0.1:1"],
                                 "evaluator": ["127.0.0.1:2"]},
                     "task": {"type": "chief", "index": 0}})
  est = _trainer(tmp_path / "m")
  result = estlab.train_and_evaluate(
      est, estlab.TrainSpec(_forever, max_steps=4),
      estlab.EvalSpec(_eval_input, throttle_secs=0))
  assert result == (None, None)
  assert est.latest_checkpoint().endswith(os.sep + "4")
  assert not os.path.exists(est.eval_dir())  # the evaluator's job


def test_training_tasks_of_a_cluster_need_the_multi_worker_strategy(
    tmp_path, monkeypatch):
  _env(monkeypatch, {"cluster": _CLUSTER, "task": {"type": "worker",
                                                   "index": 0}})
  est = _trainer(tmp_path / "m")
  with pytest.raises(ValueError, match="MultiWorkerMirroredStrategy()"):
    estlab.train_and_evaluate(est, estlab.TrainSpec(_forever, max_steps=4),
                              estlab.EvalSpec(_eval_input))
  assert est.latest_checkpoint() is None
  # Estimator.train directly, as a TF program may call it, too.
  with pytest.raises(ValueError, match="worker:0 one of 3 training tasks"):
    est.train(_forever, steps=2)
  assert est.latest_checkpoint() is None


# -- three real processes, launched by TF_CONFIG alone -----------------------

_PROGRAM = os.path.join(_HERE, "_tf_config_program.py")
_TASKS = (("chief", 0), ("worker", 0), ("evaluator", 0))
_TIMEOUT_SECS = 240


def _launch(root):
  """Runs the program as each task; waits (bounded), kills leftovers by PID."""
  cluster = {"chief": [f"127.0.0.1:{_free_port()}"],
             "worker": [f"127.0.0.1:{_free_port()}"],
             "evaluator": [f"127.0.0.1:{_free_port()}"]}
  procs, logs = [], []
  try:
    for kind, index in _TASKS:
      env = dict(os.environ, JAX_PLATFORMS="cpu",
                 XLA_FLAGS="--xla_force_host_platform_device_count=1",
                 PYTHONPATH=os.pathsep.join(
                     [_ROOT, os.environ.get("PYTHONPATH", "")]),
                 TF_CONFIG=json.dumps({"cluster": cluster, "task": {
                     "type": kind, "index": index}}))
      log = open(root / f"{kind}.log", "wb")
      logs.append(log)
      procs.append(subprocess.Popen(
          [sys.executable, _PROGRAM, str(root / "model"),
           str(root / f"{kind}.json")], env=env, stdout=log,
          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
          start_new_session=True))
    deadline = time.monotonic() + _TIMEOUT_SECS
    for proc in procs:
      proc.wait(timeout=max(1, deadline - time.monotonic()))
  finally:
    for proc in procs:
      if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    for log in logs:
      log.close()
  results = {}
  for (kind, _), proc in zip(_TASKS, procs):
    tail = (root / f"{kind}.log").read_text(errors="replace")[-3000:]
    assert proc.returncode == 0, f"{kind} exited {proc.returncode}:\n{tail}"
    results[kind] = json.loads((root / f"{kind}.json").read_text())
  return results


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("tf_config")
  return root / "model", _launch(root)


def test_tasks_know_their_roles_from_tf_config(cluster_run):
  _, tasks = cluster_run
  assert [(t["task_type"], t["is_chief"], t["num_worker_replicas"],
           t["replicas"]) for t in tasks.values()] == [
               ("chief", True, 2, 2), ("worker", False, 2, 2),
               ("evaluator", False, 0, 1)]  # the evaluator trained nowhere


def _program():
  sys.path.insert(0, _HERE)
  try:
    import _tf_config_program  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.remove(_HERE)
  return _tf_config_program


def test_chief_and_worker_trained_together_on_both_shards(cluster_run,
                                                          tmp_path):
  _, tasks = cluster_run
  assert tasks["chief"]["variables"] == tasks["worker"]["variables"]
  # One process on the global batches: the two shards' batches side by side.
  program = _program()
  shards = [program.train_input_fn(estlab.distribute.InputContext(2, k, 2))
            for k in range(2)]

  def global_batches():
    for (f0, y0), (f1, y1) in zip(*shards):
      yield {"x": np.concatenate([f0["x"], f1["x"]])}, np.concatenate([y0, y1])

  columns = [estlab.feature_column.numeric_column("x", shape=(3,))]
  single = estlab.LinearRegressor(
      feature_columns=columns, model_dir=tmp_path, optimizer="SGD",
      config=estlab.RunConfig(tf_random_seed=0, progress_bar=False))
  single.train(global_batches, max_steps=program.MAX_STEPS)
  for name, value in tasks["chief"]["variables"].items():
    np.testing.assert_allclose(value, single.get_variable_value(name),
                               rtol=1e-5, err_msg=name)


def test_checkpoints_were_written_every_two_steps(cluster_run):
  model_dir, _ = cluster_run
  assert sorted(int(d) for d in os.listdir(model_dir) if d.isdigit()) == [
      0, 2, 4, 6]  # (0: train's start checkpoint, as TF's)


def test_the_evaluator_wrote_eval_events_up_to_the_last_checkpoint(cluster_run):
  model_dir, tasks = cluster_run
  events = sorted(os.listdir(model_dir / "eval"))
  assert events and all(f".{tasks['evaluator']['pid']}." in e for e in events)
  # (each evaluation's own file; two made in one second sort by their
  # random suffix: in the order written by wall time, all kept)
  acc = event_accumulator.EventAccumulator(str(model_dir / "eval"),
                                           purge_orphaned_data=False)
  acc.Reload()
  losses = sorted(acc.Scalars("loss"), key=lambda event: event.wall_time)
  steps = [event.step for event in losses]
  # TF's evaluator takes the newest checkpoint at each look: some may be
  # passed over while it evaluates, never the last; none twice.
  assert steps == sorted(set(steps)) and set(steps) <= {0, 2, 4, 6}
  assert steps[-1] == 6
  program = _program()
  restored = estlab.LinearRegressor(
      feature_columns=[estlab.feature_column.numeric_column("x", shape=(3,))],
      model_dir=model_dir, config=estlab.RunConfig(progress_bar=False))
  expected = restored.evaluate(program.eval_input_fn)
  np.testing.assert_allclose(losses[-1].value, expected["loss"],
                             rtol=1e-5)


def test_the_evaluator_ran_the_final_export(cluster_run):
  model_dir, _ = cluster_run
  exports = os.listdir(model_dir / "export" / "final")
  assert len(exports) == 1 and exports[0].isdigit()
