"""Strategies: data parallel training over virtual CPU devices equals one device.

Under a strategy the input_fn yields per-replica batches and a step takes one
per device (tests/distribute/test_per_replica.py has the premade models).
"""
import itertools

import jax
import numpy as np
import pytest

import estlab
from _models import batches_input_fn, linear_model_fn, quiet, regression_data


def _train(model_dir, batch_size=16, **config):
  x, y = regression_data(64)
  est = estlab.Estimator(linear_model_fn, model_dir, config=quiet(**config),
                         params={"learning_rate": 0.1})
  # Steps of 16, 16, 16, 16 rows (one batch of 16, or 4 per-replica batches
  # of 4), then a last batch of 6 rows that does not split over 4.
  batches = [({"x": x[i:i + batch_size]}, y[i:i + batch_size])
             for i in range(0, 64, batch_size)]
  batches.append(({"x": x[:6]}, y[:6]))
  return est.train(lambda: batches), (x, y)


def test_mirrored_training_matches_one_device(tmp_path):
  assert len(jax.devices()) == 4  # conftest's virtual devices
  strategy = estlab.distribute.MirroredStrategy()
  assert strategy.num_replicas_in_sync == 4
  single, (x, y) = _train(tmp_path / "one")
  mirrored, _ = _train(tmp_path / "four", batch_size=4,
                       train_distribute=strategy)
  kernel = mirrored._session.state.params["linear"]["kernel"]
  assert kernel.sharding.device_set == set(jax.devices())
  for name in single.get_variable_names():
    np.testing.assert_allclose(mirrored.get_variable_value(name),
                               single.get_variable_value(name), rtol=1e-5)
  a = single.evaluate(batches_input_fn(x, y, batch_size=16))
  b = mirrored.evaluate(batches_input_fn(x, y, batch_size=16))
  np.testing.assert_allclose(a["mse"], b["mse"], rtol=1e-5)


def test_restore_places_state_on_the_mesh_and_input_context(tmp_path):
  strategy = estlab.distribute.MirroredStrategy()
  _train(tmp_path, batch_size=4, train_distribute=strategy)
  contexts = []
  x, y = regression_data(16)

  def input_fn(input_context):  # 3 steps of 4 per-replica batches
    contexts.append(input_context)
    size = input_context.get_per_replica_batch_size(16)
    return itertools.islice(itertools.repeat(({"x": x[:size]}, y[:size])), 12)
  est = estlab.Estimator(linear_model_fn, tmp_path,
                         config=quiet(train_distribute=strategy, steps_per_loop=2),
                         params={"learning_rate": 0.1})
  est.train(input_fn)
  assert contexts[0].num_replicas_in_sync == 4
  assert contexts[0].get_per_replica_batch_size(16) == 4
  assert est._session.state.params["linear"]["kernel"].sharding.device_set == set(jax.devices())
  assert est.latest_checkpoint().endswith("8")
  preds = list(est.predict(batches_input_fn(x, y, batch_size=8)))
  assert len(preds) == 16


def test_one_device_strategy_and_errors():
  device = jax.devices()[2]
  assert estlab.distribute.OneDeviceStrategy(device).mesh.devices.size == 1
  assert estlab.distribute.OneDeviceStrategy("cpu:1").mesh.devices.flat[0] == jax.devices()[1]
  with pytest.raises(ValueError, match="only 4 such devices"):
    estlab.distribute.OneDeviceStrategy("cpu:9")
  with pytest.raises(ValueError, match="not divisible"):
    estlab.distribute.InputContext(1, 0, 4).get_per_replica_batch_size(10)


def test_multi_worker_strategy_in_one_process_is_mirrored(tmp_path):
  strategy = estlab.distribute.MultiWorkerMirroredStrategy()
  assert not strategy.multiprocess and strategy.num_replicas_in_sync == 4
  assert strategy.input_context() == estlab.distribute.InputContext(1, 0, 4)
  single, _ = _train(tmp_path / "one")
  workers, _ = _train(tmp_path / "workers", batch_size=4,
                      train_distribute=strategy)
  for name in single.get_variable_names():
    np.testing.assert_allclose(workers.get_variable_value(name),
                               single.get_variable_value(name), rtol=1e-5)


def test_chief_decides_is_the_flag_itself_in_one_process():
  # (Across processes: tests/distribute/test_multiprocess.py's saves and
  # evaluations, which would hang if the processes disagreed.)
  from estlab.distribute._strategies import chief_decides  # pylint: disable=g-import-not-at-top
  assert chief_decides(True) is True and chief_decides(0) is False
