"""Bad input: one clear error each, naming the value and the fix; nothing lost."""
import itertools

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

import estlab
from _models import (batches_input_fn, linear_model_fn, quiet, regression_data,
                     seed_model_fn, toy_dataset)


def _spec_fn(**spec_kwargs):
  def model_fn(features, labels, mode):
    out = nn.Dense(1)(features["x"])[:, 0]
    kwargs = dict(loss=jnp.mean(out), train_op=optax.sgd(0.1), predictions=out)
    kwargs.update(spec_kwargs)
    kwargs = {k: (out if v == "OUT" else v) for k, v in kwargs.items()}
    return estlab.EstimatorSpec(mode, **kwargs)
  return model_fn


def _xy(n=8):
  return batches_input_fn(*regression_data(n))


def test_model_fn_with_unknown_argument(tmp_path):
  def model_fn(features, labels, mode, hparams):
    return seed_model_fn(features, labels, mode)
  with pytest.raises(TypeError, match="'hparams'.*subset of"):
    estlab.Estimator(model_fn, tmp_path)


def test_model_fn_without_features(tmp_path):
  with pytest.raises(TypeError, match="must take a `features` argument"):
    estlab.Estimator(lambda mode, labels=None: None, tmp_path)


def test_spec_missing_train_op(tmp_path):
  est = estlab.Estimator(_spec_fn(train_op=None), tmp_path, config=quiet())
  with pytest.raises(ValueError, match=r"TRAIN mode is missing \['train_op'\]"):
    est.train(_xy(), steps=1)


def test_spec_missing_predictions(tmp_path):
  est = estlab.Estimator(_spec_fn(predictions=None), tmp_path, config=quiet())
  est.train(_xy(), steps=1)
  with pytest.raises(ValueError, match="PREDICT mode needs predictions"):
    list(est.predict(_xy()))


def test_non_scalar_loss(tmp_path):
  est = estlab.Estimator(_spec_fn(loss="OUT"), tmp_path, config=quiet())
  with pytest.raises(ValueError, match=r"must be a scalar, got shape \(8,\)"):
    est.train(_xy(), steps=1)


def test_train_op_not_optax(tmp_path):
  est = estlab.Estimator(_spec_fn(train_op="adam"), tmp_path, config=quiet())
  with pytest.raises(TypeError, match="train_op='adam'.*optax"):
    est.train(_xy(), steps=1)


def test_labels_required_but_absent(tmp_path):
  x, _ = regression_data(8)
  est = estlab.Estimator(linear_model_fn, tmp_path, config=quiet())
  with pytest.raises(ValueError, match="labels were None.*yield \\(features, labels\\)"):
    est.train(lambda: [{"x": x}], steps=1)


def test_labels_given_but_model_fn_takes_none(tmp_path):
  def model_fn(features, mode):
    return seed_model_fn(features, None, mode)
  est = estlab.Estimator(model_fn, tmp_path, config=quiet())
  with pytest.raises(ValueError, match="takes no `labels` argument"):
    est.train(lambda: [({"x": np.ones((2, 1)), "y": np.ones((2, 5))}, np.ones(2))])


def test_features_neither_a_dict_nor_an_array(tmp_path):
  est = estlab.Estimator(seed_model_fn, tmp_path, config=quiet())
  with pytest.raises(TypeError, match="features must be a dict of arrays or "
                     "one array, got list"):
    est.train(lambda: [([[1.0], [2.0]], np.ones(2))])


def test_batch_sizes_differ(tmp_path):
  est = estlab.Estimator(seed_model_fn, tmp_path, config=quiet())
  batch = {"x": np.ones((2, 1), np.float32), "y": np.ones((3, 5), np.float32)}
  with pytest.raises(ValueError, match=r"\"features\['x'\]\": 2.*\"features\['y'\]\": 3"):
    est.train(lambda: [batch])


def test_input_fn_yields_nothing(tmp_path):
  est = estlab.Estimator(seed_model_fn, tmp_path, config=quiet())
  with pytest.raises(ValueError, match="yielded no batches"):
    est.train(lambda: iter([]))


def test_input_fn_returns_neither_a_batch_nor_batches(tmp_path):
  est = estlab.Estimator(seed_model_fn, tmp_path, config=quiet())
  with pytest.raises(TypeError, match="returned float 2.5, which is not one "
                     "batch and not iterable; return one \\(features, "):
    est.train(lambda: 2.5, steps=1)


def test_string_feature_in_custom_model_fn(tmp_path):
  est = estlab.Estimator(seed_model_fn, tmp_path, config=quiet())
  batch = {"x": np.array(["a", "b"], object), "y": np.ones((2, 5), np.float32)}
  with pytest.raises(TypeError, match="Feature 'x' holds strings.*feature_column"):
    est.train(lambda: [batch])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  def model_fn(features, labels, mode):
    out = nn.Dense(1)(features["x"])[:, 0]
    loss = jnp.mean((out - labels) ** 2) + jnp.log(features["ok"][0])
    return estlab.EstimatorSpec(mode, loss=loss, train_op=optax.sgd(0.01),
                                predictions=out)
  x, y = regression_data(8)

  def poisoned():
    for step in itertools.count(1):
      ok = np.full((8,), 0.0 if step == 7 else 1.0, np.float32)
      yield {"x": x, "ok": ok}, y
  est = estlab.Estimator(model_fn, tmp_path, config=quiet(save_checkpoints_steps=5))
  with pytest.raises(estlab.NanLossDuringTrainingError, match="global step 7"):
    est.train(poisoned, steps=20)
  manager = ocp.CheckpointManager(tmp_path)
  assert manager.all_steps() == [0, 5]  # (0: the start, as TF's)
  restored = manager.restore(5, args=ocp.args.Composite(
      params=ocp.args.StandardRestore()))
  assert np.all(np.isfinite(restored["params"]["Dense_0"]["kernel"]))
  # The next call resumes from the good checkpoint.
  est.train(lambda: itertools.repeat(({"x": x, "ok": np.ones(8, np.float32)}, y)),
            steps=2)
  assert ocp.CheckpointManager(tmp_path).latest_step() == 7


def test_model_dir_of_a_different_model(tmp_path):
  est = estlab.Estimator(seed_model_fn, tmp_path, config=quiet())
  est.train(toy_dataset, steps=1)

  def other_fn(features, labels, mode):
    del labels
    out = nn.Dense(3, name="head")(nn.Dense(7)(features["x"]))
    loss = jnp.mean(out)
    return estlab.EstimatorSpec(mode, loss=loss, train_op=optax.sgd(0.1),
                                predictions=out)
  other = estlab.Estimator(other_fn, tmp_path, config=quiet())
  with pytest.raises(estlab.CheckpointMismatchError) as info:
    other.train(toy_dataset, steps=1)
  message = str(info.value)
  assert "Net_0/Dense_0/kernel" in message and "head/kernel" in message
  assert isinstance(info.value, ValueError)


def test_run_config_errors():
  with pytest.raises(ValueError, match="save_checkpoints_steps=10, "
                     "save_checkpoints_secs=5"):
    estlab.RunConfig(save_checkpoints_steps=10, save_checkpoints_secs=5)
  with pytest.raises(ValueError, match="steps_per_loop=0"):
    estlab.RunConfig(steps_per_loop=0)
  with pytest.raises(ValueError, match="unknown field.*'nope'"):
    estlab.RunConfig().replace(nope=1)
