"""One process of a real multi-process run (``test_multiprocess.py``).

Usage: python _worker.py PROCESS_ID NUM_PROCESSES PORT MODEL_DIR OUT_JSON [per_replica]

Joins the ``jax.distributed`` run on 127.0.0.1:PORT (one CPU device per
process, gloo collectives), trains the shared linear model with
``MultiWorkerMirroredStrategy`` on its own rows of every global batch, then
evaluates and predicts, and writes what it saw to OUT_JSON. With
``per_replica`` (started with two CPU devices per process) it trains and
evaluates on per-replica batches instead: its rows of every global batch cut
into one batch per local device (``per_replica_main``).
"""
import json
import os
import sys

import jax
import numpy as np


def main(process_id, num_processes, port, model_dir, out):
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=num_processes,
                             process_id=process_id, initialization_timeout=60)
  import estlab  # pylint: disable=g-import-not-at-top
  from _models import (global_batches, linear_model_fn,  # pylint: disable=g-import-not-at-top
                       quiet)
  contexts = []

  def input_fn(input_context):
    contexts.append([input_context.num_input_pipelines,
                     input_context.input_pipeline_id,
                     input_context.num_replicas_in_sync])
    k, m = input_context.input_pipeline_id, input_context.num_input_pipelines
    return [({"x": x[k::m]}, y[k::m]) for x, y in global_batches()]

  try:  # one device's training in a multi-process run: a clear error first
    estlab.Estimator(linear_model_fn, model_dir, config=quiet()).train(input_fn)
    local_error = None
  except ValueError as e:
    local_error = str(e)
  contexts.clear()
  strategy = estlab.distribute.MultiWorkerMirroredStrategy()
  # A seconds cadence (due at every check, every 2 steps): the processes
  # must agree on when, or their checkpoint writes would wait on each other.
  config = quiet(train_distribute=strategy, save_checkpoints_secs=1e-6,
                 log_step_count_steps=2)
  est = estlab.Estimator(linear_model_fn, model_dir, config=config,
                         params={"learning_rate": 0.1})
  est.train(input_fn, steps=3)  # a time-based save at 2, the final one at 3
  est.train(input_fn)           # 4 more steps: saves at 4, 6 and the last, 7
  metrics = est.evaluate(input_fn)
  predictions = [p["pred"].tolist() for p in est.predict(input_fn)]
  # A premade estimator pads a short last eval batch on one process; here
  # every process runs its short batch (4 of the last 8 rows) as it is.
  own_rows = lambda rows: lambda input_context: [
      ({"x": x[input_context.input_pipeline_id::2]},
       y[input_context.input_pipeline_id::2]) for x, y in global_batches(rows)]
  premade = estlab.LinearRegressor(
      [estlab.feature_column.numeric_column("x", shape=(3,))],
      model_dir=model_dir + "_premade", config=quiet(train_distribute=strategy))
  premade.train(own_rows(64), steps=3)
  premade_metrics = premade.evaluate(own_rows(56))  # 16, 16, 16, 8 rows
  looped = estlab.Estimator(  # loops of 2 steps: stacked batches split too
      linear_model_fn, model_dir + "_looped", params={"learning_rate": 0.1},
      config=quiet(train_distribute=strategy, steps_per_loop=2))
  looped.train(own_rows(64), steps=4)
  # train_and_evaluate: evaluations after the checkpoints at 2 and 4.
  spec_est = estlab.Estimator(
      linear_model_fn, model_dir + "_train_and_evaluate", params={
          "learning_rate": 0.1}, config=quiet(
              train_distribute=strategy, save_checkpoints_steps=2))
  spec_metrics, _ = estlab.train_and_evaluate(
      spec_est, estlab.TrainSpec(own_rows(64), max_steps=4),
      estlab.EvalSpec(own_rows(64), steps=None, throttle_secs=0))
  # Early stopping: asked every step, process 0's answer counts: checkpoint
  # 2 is evaluated before the hooks see step 2, so all stop at 2 (as TF's
  # CheckpointSaverHook came first). A seconds cadence is refused.
  stop_est = estlab.Estimator(
      linear_model_fn, model_dir + "_early", params={"learning_rate": 0.1},
      config=quiet(train_distribute=strategy, save_checkpoints_steps=2))
  try:
    stop_est.train(own_rows(64), hooks=[
        estlab.experimental.stop_if_lower_hook(stop_est, "mse", 1e9)])
    secs_error = None
  except ValueError as e:
    secs_error = str(e)
  stop_hook = estlab.experimental.stop_if_lower_hook(
      stop_est, "mse", 1e9, run_every_secs=None, run_every_steps=1)
  stopped, _ = estlab.train_and_evaluate(
      stop_est, estlab.TrainSpec(own_rows(64), max_steps=4, hooks=[stop_hook]),
      estlab.EvalSpec(own_rows(64), steps=None, throttle_secs=0))
  try:  # exports are one process's work, after the run
    est.export_saved_model(
        model_dir + "_export", estlab.export.build_raw_serving_input_receiver_fn(
            {"x": np.zeros((1, 3), np.float32)}))
    export_error = None
  except ValueError as e:
    export_error = str(e)
  with open(out, "w") as f:
    json.dump({"contexts": contexts, "pid": os.getpid(),
               "local_error": local_error, "export_error": export_error,
               "process_index": jax.process_index(),
               "devices": len(jax.devices()),
               "metrics": {k: float(v) for k, v in metrics.items()},
               "spec_metrics": {k: float(v) for k, v in spec_metrics.items()},
               "stopped_at": int(stopped["global_step"]),
               "secs_error": secs_error,
               "premade_metrics": {k: float(v)
                                   for k, v in premade_metrics.items()},
               "predictions": predictions,
               "looped_kernel": np.asarray(
                   looped.get_variable_value("linear/kernel")).tolist(),
               "kernel": np.asarray(
                   est.get_variable_value("linear/kernel")).tolist()}, f)


def per_replica_main(process_id, num_processes, port, model_dir, out):
  """Each process's input_fn yields one batch per local device a step."""
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=num_processes,
                             process_id=process_id, initialization_timeout=60)
  import estlab  # pylint: disable=g-import-not-at-top
  from _models import (global_batches, linear_model_fn,  # pylint: disable=g-import-not-at-top
                       quiet)
  contexts = []

  def input_fn(input_context):
    contexts.append([input_context.num_input_pipelines,
                     input_context.input_pipeline_id,
                     input_context.num_replicas_in_sync])
    k, m = input_context.input_pipeline_id, input_context.num_input_pipelines
    local = jax.local_device_count()
    for x, y in global_batches():  # rows k, k + m, ... cut per local device
      x, y = x[k::m], y[k::m]
      size = len(x) // local
      for i in range(0, len(x), size):
        yield {"x": x[i:i + size]}, y[i:i + size]
  strategy = estlab.distribute.MultiWorkerMirroredStrategy()
  est = estlab.Estimator(linear_model_fn, model_dir, params={
      "learning_rate": 0.1}, config=quiet(train_distribute=strategy,
                                          eval_distribute=strategy))
  est.train(input_fn, steps=3)  # steps: global steps
  est.train(input_fn)           # 4 more: the input's 4 global batches
  metrics = est.evaluate(input_fn)
  with open(out, "w") as f:
    json.dump({"contexts": contexts, "local_devices": jax.local_device_count(),
               "batches_per_step": strategy.batches_per_step,
               "metrics": {k: float(v) for k, v in metrics.items()},
               "kernel": np.asarray(
                   est.get_variable_value("linear/kernel")).tolist()}, f)


if __name__ == "__main__":
  (per_replica_main if sys.argv[6:] == ["per_replica"] else main)(
      int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4],
      sys.argv[5])
