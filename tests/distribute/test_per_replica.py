"""Per-replica batches: a step of MirroredStrategy(N) takes N input batches.

As in tf.estimator, under ``train_distribute`` (and ``eval_distribute``) the
input_fn yields per-replica batches and one step joins N consecutive ones
into its global batch. TF's own check (tensorflow_estimator's
distribute tests): a model trained with MirroredStrategy(N) on batches of
``B // N`` ends with the same variables as one device on batches of ``B``,
after the same number of global steps on the same rows.

The optimizers are SGD: with it a wrong loss scale (a sum over replicas, a
per-replica mean) changes the variables, where Adagrad and FTRL, the
premade defaults, would normalise it away.
"""
import itertools
import os

import jax
import numpy as np
import optax
import pytest

import estlab
from _models import linear_model_fn, quiet, regression_data

B = 16  # the global batch


def _columns():
  return [estlab.feature_column.numeric_column("x", shape=(3,))]


def _linear(model_dir, config):
  return estlab.LinearRegressor(_columns(), model_dir=model_dir, config=config,
                                optimizer=optax.sgd(0.05))


def _dnn(model_dir, config):
  return estlab.DNNRegressor([8, 4], _columns(), model_dir=model_dir,
                             config=config, optimizer=optax.sgd(0.05))


def _combined(model_dir, config):
  return estlab.DNNLinearCombinedRegressor(
      model_dir=model_dir, config=config, linear_feature_columns=_columns(),
      linear_optimizer=optax.sgd(0.05), dnn_feature_columns=_columns(),
      dnn_optimizer=optax.sgd(0.05), dnn_hidden_units=[8, 4])


_PREMADE = {"linear": _linear, "dnn": _dnn, "combined": _combined}


def _mirrored(n):
  return estlab.distribute.MirroredStrategy(jax.devices()[:n])


def _numpy_fn(x, y, batch_size, **kw):
  kw.setdefault("shuffle", False)
  kw.setdefault("num_epochs", None)
  return estlab.inputs.numpy_input_fn({"x": x}, y, batch_size=batch_size, **kw)


def _generator_fn(x, y, batch_size, epochs=None):
  def input_fn():
    for _ in range(epochs) if epochs else itertools.count():
      for i in range(0, len(x), batch_size):
        yield {"x": x[i:i + batch_size]}, y[i:i + batch_size]
  return input_fn


def _step(est):
  return int(os.path.basename(est.latest_checkpoint()))


def _assert_same_variables(a, b):
  names = a.get_variable_names()
  assert names == b.get_variable_names()
  assert _step(a) == _step(b)
  for name in names:
    np.testing.assert_allclose(a.get_variable_value(name),
                               b.get_variable_value(name), rtol=2e-5,
                               atol=1e-6, err_msg=name)


@pytest.mark.parametrize("n", [2, 4])
@pytest.mark.parametrize("model", sorted(_PREMADE))
def test_n_replicas_on_batches_of_b_over_n_equal_one_device_on_b(
    tmp_path, model, n):
  x, y = regression_data(96)
  make = _PREMADE[model]
  single = make(tmp_path / "one", quiet())
  single.train(_numpy_fn(x, y, B), steps=9)
  mirrored = make(tmp_path / "mirrored", quiet(train_distribute=_mirrored(n)))
  mirrored.train(_numpy_fn(x, y, B // n), steps=9)  # 9 global steps
  assert _step(mirrored) == 9
  _assert_same_variables(mirrored, single)
  # Evaluation under eval_distribute: N per-replica batches a step, too.
  evaluator = make(tmp_path / "mirrored", quiet(eval_distribute=_mirrored(n)))
  eval_fn = lambda batch_size: _numpy_fn(x, y, batch_size, num_epochs=1)
  expected = single.evaluate(eval_fn(B))
  got = evaluator.evaluate(eval_fn(B // n))
  assert sorted(got) == sorted(expected)
  for key in expected:
    np.testing.assert_allclose(got[key], expected[key], rtol=2e-5, err_msg=key)


@pytest.mark.parametrize("n", [2, 4])
def test_a_generator_input_fn_takes_n_consecutive_batches_a_step(tmp_path, n):
  x, y = regression_data(96)
  single = _dnn(tmp_path / "one", quiet())
  single.train(_generator_fn(x, y, B), steps=8)
  mirrored = _dnn(tmp_path / "mirrored", quiet(train_distribute=_mirrored(n)))
  mirrored.train(_generator_fn(x, y, B // n), steps=5)
  mirrored.train(_generator_fn(x, y, B // n), steps=3)  # steps: global steps
  single_2 = _dnn(tmp_path / "one_2", quiet())
  single_2.train(_generator_fn(x, y, B), steps=5)
  single_2.train(_generator_fn(x, y, B), steps=3)
  _assert_same_variables(mirrored, single_2)
  assert _step(mirrored) == 8


def test_a_custom_model_fn_sees_the_global_batch_and_reads_n_batches_a_step(
    tmp_path):
  x, y = regression_data(64)
  batch_sizes = []

  def input_fn():
    for i in range(0, 64, 4):
      batch_sizes.append(4)
      yield {"x": x[i:i + 4]}, y[i:i + 4]
  mirrored = estlab.Estimator(linear_model_fn, tmp_path / "four",
                              config=quiet(train_distribute=_mirrored(4),
                                           prefetch_batches=0),
                              params={"learning_rate": 0.1})
  mirrored.train(input_fn, steps=3)
  assert _step(mirrored) == 3
  assert len(batch_sizes) == 12  # 3 steps of 4 per-replica batches
  single = estlab.Estimator(linear_model_fn, tmp_path / "one", config=quiet(),
                            params={"learning_rate": 0.1})
  single.train(lambda: ((({"x": x[i:i + 16]}, y[i:i + 16]))
                        for i in range(0, 48, 16)))
  _assert_same_variables(mirrored, single)


@pytest.mark.parametrize("rows", [72, 70])
@pytest.mark.parametrize("source", ["numpy", "generator"])
def test_a_finite_input_ending_mid_step_runs_its_last_global_batch(
    tmp_path, rows, source):
  # 72 rows: per-replica batches of 4 make 18, the last step takes 2 of
  # them (8 rows); 70 rows: 17 of 4 and one of 2, the last step 6 rows.
  x, y = regression_data(rows)
  make_fn = ((lambda b: _numpy_fn(x, y, b, num_epochs=1)) if source == "numpy"
             else (lambda b: _generator_fn(x, y, b, epochs=1)))
  single = _linear(tmp_path / "one", quiet())
  single.train(make_fn(B))
  mirrored = _linear(tmp_path / "four", quiet(train_distribute=_mirrored(4)))
  mirrored.train(make_fn(B // 4))
  assert _step(mirrored) == 5
  _assert_same_variables(mirrored, single)
  # Evaluation pads the short last global batch and counts its rows once.
  evaluator = _linear(tmp_path / "four", quiet(eval_distribute=_mirrored(4)))
  expected, got = single.evaluate(make_fn(B)), evaluator.evaluate(make_fn(4))
  for key in expected:
    np.testing.assert_allclose(got[key], expected[key], rtol=2e-5, err_msg=key)


@pytest.mark.parametrize("source", ["numpy", "generator"])
def test_steps_per_loop_stacks_global_batches(tmp_path, source):
  x, y = regression_data(72)  # 16, 16, 16, 16 and 8 rows a pass
  make_fn = ((lambda b: _numpy_fn(x, y, b, num_epochs=1)) if source == "numpy"
             else (lambda b: _generator_fn(x, y, b, epochs=1)))
  single = _dnn(tmp_path / "one", quiet())
  single.train(make_fn(B), steps=2)
  single.train(make_fn(B))
  looped = _dnn(tmp_path / "looped",
                quiet(train_distribute=_mirrored(4), steps_per_loop=3))
  looped.train(make_fn(B // 4), steps=2)  # one loop, 2 of its 3 steps
  looped.train(make_fn(B // 4))  # a loop of 3, then the short batch's
  assert _step(looped) == 7
  _assert_same_variables(looped, single)


def test_shuffled_numpy_input_gives_the_same_rows_to_a_step(tmp_path):
  # One row stream cut into batches of B // 4: 4 consecutive ones are the
  # rows one device's batch of B takes from the same (seeded) stream.
  x, y = regression_data(100)
  single = _linear(tmp_path / "one", quiet())
  single.train(_numpy_fn(x, y, B, shuffle=True, seed=3), steps=12)
  mirrored = _linear(tmp_path / "four", quiet(train_distribute=_mirrored(4)))
  mirrored.train(_numpy_fn(x, y, B // 4, shuffle=True, seed=3), steps=12)
  _assert_same_variables(mirrored, single)


def test_input_context_sizes_the_per_replica_batches(tmp_path):
  x, y = regression_data(64)
  contexts = []

  def input_fn(input_context):
    contexts.append(input_context)
    size = input_context.get_per_replica_batch_size(B)
    return _generator_fn(x, y, size)()
  mirrored = _linear(tmp_path / "four", quiet(train_distribute=_mirrored(4)))
  mirrored.train(input_fn, steps=6)
  assert contexts == [estlab.distribute.InputContext(1, 0, 4)]
  single = _linear(tmp_path / "one", quiet())
  single.train(_generator_fn(x, y, B), steps=6)
  _assert_same_variables(mirrored, single)


def test_evaluate_steps_count_global_steps_under_eval_distribute(tmp_path):
  x, y = regression_data(96)
  single = _linear(tmp_path / "one", quiet())
  single.train(_numpy_fn(x, y, B), steps=4)
  expected = single.evaluate(_generator_fn(x, y, B), steps=2)  # rows 0..31
  evaluator = _linear(tmp_path / "one", quiet(eval_distribute=_mirrored(4)))
  got = evaluator.evaluate(_generator_fn(x, y, B // 4), steps=2)
  for key in expected:
    np.testing.assert_allclose(got[key], expected[key], rtol=2e-5, err_msg=key)


def test_without_eval_distribute_evaluate_and_predict_take_one_batch_a_step(
    tmp_path):
  # tf.estimator evaluates on one device when only train_distribute is set
  # and never distributes predict: one input batch a step (split over the
  # devices here, which changes no result).
  x, y = regression_data(96)
  est = _linear(tmp_path, quiet(train_distribute=_mirrored(4)))
  est.train(_numpy_fn(x, y, B // 4), steps=4)
  single = _linear(tmp_path, quiet())
  expected = single.evaluate(_generator_fn(x, y, B), steps=2)
  got = est.evaluate(_generator_fn(x, y, B), steps=2)
  for key in expected:
    np.testing.assert_allclose(got[key], expected[key], rtol=2e-5, err_msg=key)
  batches = list(est.predict(_generator_fn(x, y, 8, epochs=1),
                             yield_single_examples=False))
  assert [len(b["predictions"]) for b in batches] == [8] * 12
  np.testing.assert_allclose(
      np.concatenate([b["predictions"] for b in batches]),
      np.concatenate([b["predictions"] for b in single.predict(
          _generator_fn(x, y, 8, epochs=1), yield_single_examples=False)]),
      rtol=2e-5)


def test_per_replica_batches_of_one_step_must_agree_on_feature_shapes(
    tmp_path):
  def input_fn():
    yield {"x": np.ones((2, 3), np.float32)}, np.ones(2, np.float32)
    yield {"x": np.ones((2, 4), np.float32)}, np.ones(2, np.float32)
  est = estlab.Estimator(linear_model_fn, tmp_path,
                         config=quiet(train_distribute=_mirrored(2)),
                         params={"learning_rate": 0.1})
  with pytest.raises(ValueError, match=r"Batches 0 and 1 of input_fn go to "
                     r"one step .*\(2, 3\) float32 vs \(2, 4\) float32"):
    est.train(input_fn)


def test_a_refilled_buffer_is_read_before_it_changes(tmp_path):
  # An input_fn may yield one buffer refilled for every batch.
  x, y = regression_data(64)

  def refilled():
    fx, fy = np.empty((4, 3), np.float32), np.empty(4, np.float32)
    for i in range(0, 64, 4):
      fx[:], fy[:] = x[i:i + 4], y[i:i + 4]
      yield {"x": fx}, fy
  mirrored = _linear(tmp_path / "four", quiet(train_distribute=_mirrored(4)))
  mirrored.train(refilled)
  single = _linear(tmp_path / "one", quiet())
  single.train(_generator_fn(x, y, B, epochs=1))
  _assert_same_variables(mirrored, single)


def test_batches_per_step_is_the_local_replica_count():
  assert estlab.distribute.MirroredStrategy().batches_per_step == 4
  assert _mirrored(2).batches_per_step == 2
  assert estlab.distribute.OneDeviceStrategy().batches_per_step == 1
  assert estlab.distribute.MultiWorkerMirroredStrategy().batches_per_step == 4


def test_row_selections_of_a_step_are_joined_in_order():
  # The table path for selections other than a numpy_input_fn's row stream
  # (e.g. a planned Dataset's): adjacent slices stay one slice (a view).
  from estlab.data._replicas import group_selections  # pylint: disable=g-import-not-at-top
  selections = [slice(0, 4), slice(4, 8), np.array([9, 8]), slice(10, 12),
                slice(None, 2)]
  grouped = list(group_selections(iter(selections), 2, num_rows=12))
  assert grouped[0] == slice(0, 8)
  assert grouped[1].tolist() == [9, 8, 10, 11]
  assert grouped[2] == slice(None, 2)  # the input's end: what is left
