"""A tf.estimator program after the import change, launched by TF_CONFIG.

Usage: TF_CONFIG=... python _tf_config_program.py MODEL_DIR OUT_JSON

Written as for tf.estimator (``tf.estimator`` -> ``estlab``,
``tf.feature_column`` -> ``estlab.feature_column``), with no estlab-specific
set-up: every task (chief, worker, evaluator) runs it unchanged, and only
``TF_CONFIG`` tells it its role. Each writes its role to OUT_JSON, the
training tasks the trained parameters too.
"""
import json
import os
import sys

import numpy as np

import estlab

BATCH_SIZE = 8   # each training task's batch, every step
MAX_STEPS = 6


def make_data(rows=64):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(rows, 3)).astype(np.float32)
  y = (x @ np.array([1.0, -2.0, 0.5], np.float32) + 0.3).astype(np.float32)
  return x, y[:, None]


def train_input_fn(input_context=None):
  """Each training task reads its own shard, batches of BATCH_SIZE, forever."""
  x, y = make_data()
  if input_context is not None:
    x = x[input_context.input_pipeline_id::input_context.num_input_pipelines]
    y = y[input_context.input_pipeline_id::input_context.num_input_pipelines]
  while True:
    for i in range(0, len(x), BATCH_SIZE):
      yield {"x": x[i:i + BATCH_SIZE]}, y[i:i + BATCH_SIZE]


def eval_input_fn():
  x, y = make_data(32)
  for i in range(0, len(x), 16):
    yield {"x": x[i:i + 16]}, y[i:i + 16]


def main(model_dir, out):
  strategy = estlab.distribute.MultiWorkerMirroredStrategy()
  config = estlab.RunConfig(train_distribute=strategy, tf_random_seed=0,
                            save_checkpoints_steps=2)
  feature_columns = [estlab.feature_column.numeric_column("x", shape=(3,))]
  estimator = estlab.LinearRegressor(
      feature_columns=feature_columns, model_dir=model_dir, config=config,
      optimizer="SGD")
  train_spec = estlab.TrainSpec(train_input_fn, max_steps=MAX_STEPS)
  eval_spec = estlab.EvalSpec(
      eval_input_fn, steps=None, start_delay_secs=0, throttle_secs=0,
      exporters=[estlab.export.FinalExporter(
          "final", estlab.export.build_parsing_serving_input_receiver_fn(
              estlab.feature_column.make_parse_example_spec(
                  feature_columns)))])
  estlab.train_and_evaluate(estimator, train_spec, eval_spec)
  result = {"task_type": config.task_type, "task_id": config.task_id,
            "is_chief": config.is_chief, "pid": os.getpid(),
            "num_worker_replicas": config.num_worker_replicas,
            "replicas": strategy.num_replicas_in_sync}
  if config.task_type != "evaluator":
    result["variables"] = {
        name: np.asarray(estimator.get_variable_value(name)).tolist()
        for name in estimator.get_variable_names()}
  with open(out, "w") as f:
    json.dump(result, f)


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2])
