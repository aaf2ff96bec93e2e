"""Checkpoints written with estlab's names before TF 2.x's keep restoring.

``legacy_names/model_dir`` was written by estlab before the premade DNN took
TF's names (``legacy_names/make_fixture.py``): its variables are
``dnn/input_from_feature_columns/c_embedding/embedding_weights``,
``dnn/batchnorm_0/scale``... Today's DNNClassifier predicts from it exactly
as the old one did, lists TF's names, and keeps training in it.
"""
import json
import os
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from estlab._engine.state import TrainState
from estlab.checkpoint import _checkpointer as ckpt_lib
from estlab.checkpoint import _legacy_names

_HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                     "legacy_names")
sys.path.insert(0, _HERE)
import make_fixture  # pylint: disable=g-import-not-at-top,wrong-import-position


def _expected():
  with open(os.path.join(_HERE, "expected.json")) as f:
    return json.load(f)


def _old_model_dir(tmp_path):
  model_dir = str(tmp_path / "model")
  shutil.copytree(os.path.join(_HERE, "model_dir"), model_dir)
  return model_dir


def test_old_model_dir_predicts_as_it_did(tmp_path):
  est = make_fixture.estimator(_old_model_dir(tmp_path))
  got = [p["probabilities"] for p in est.predict(make_fixture.features)]
  # The moving statistics (batch_stats) are restored too: eval-mode batch
  # normalization reads them.
  np.testing.assert_allclose(got, _expected()["probabilities"], rtol=1e-6)


def test_old_model_dir_lists_tf_names_with_the_old_values(tmp_path):
  est = make_fixture.estimator(_old_model_dir(tmp_path))
  old = _expected()["variables"]
  assert "dnn/batchnorm_0/scale" in old
  names = est.get_variable_names()
  assert "dnn/hiddenlayer_0/batchnorm_0/gamma" in names
  assert "dnn/hiddenlayer_1/batchnorm_1/moving_variance" in names
  for name, value in old.items():
    new = _legacy_names.to_new(name)
    assert new in names
    np.testing.assert_array_equal(est.get_variable_value(new), value)


def test_training_continues_from_an_old_model_dir(tmp_path):
  model_dir = _old_model_dir(tmp_path)
  est = make_fixture.estimator(model_dir)
  est.train(make_fixture.input_fn, steps=2)
  assert est.get_variable_value("global_step") == 5
  # The new checkpoint carries TF's names; the old one is still readable.
  saved = ckpt_lib.Checkpointer(model_dir).read_metadata()["variables"]
  assert ("dnn/input_from_feature_columns/input_layer/c_embedding/"
          "embedding_weights") in saved
  assert not any(_legacy_names.to_old(n) != n and _legacy_names.to_old(n)
                 in saved for n in saved)
  kernel = est.get_variable_value("dnn/hiddenlayer_0/kernel")
  assert not np.allclose(kernel, _expected()["variables"][
      "dnn/hiddenlayer_0/kernel"])  # it trained from the old values


def test_optimizer_slots_and_batch_stats_are_renamed_too(tmp_path):
  """A large model's Adam slots mirror its params by name (small params ride
  the state as one vector, as in the fixture): they are mapped as well."""
  old_params = {"dnn": {
      "batchnorm_0": {"scale": jnp.array([3.0, 4.0]),
                      "bias": jnp.array([5.0, 6.0])},
      "input_from_feature_columns": {"c_embedding": {
          "embedding_weights": jnp.array([[7.0, 8.0]])}},
      "hiddenlayer_0": {"kernel": jnp.array([[9.0]])},
  }}
  old_stats = {"batch_stats": {"dnn": {"batchnorm_0": {
      "mean": jnp.array([0.5, 0.25]), "var": jnp.array([2.0, 3.0])}}}}
  tx = optax.adam(0.1)
  adam, rest = tx.init(old_params)
  old_opt = (adam._replace(mu=jax.tree.map(lambda p: 10 * p, old_params),
                           nu=jax.tree.map(lambda p: 100 * p, old_params)),
             rest)

  def state(params, model_state, opt_state):
    return TrainState(step=jnp.asarray(4, jnp.int32), params=params,
                      model_state=model_state, opt_state=opt_state,
                      rng=jnp.zeros(2, jnp.uint32),
                      bad_step=jnp.asarray(-1, jnp.int32))

  with ckpt_lib.Checkpointer(tmp_path, async_save=False) as ckpt:
    ckpt.save(state(old_params, old_stats, old_opt))
  new_params = {"dnn": {
      "hiddenlayer_0": {"kernel": jnp.zeros((1, 1)), "batchnorm_0": {
          "gamma": jnp.zeros(2), "beta": jnp.zeros(2)}},
      "input_from_feature_columns": {"input_layer": {"c_embedding": {
          "embedding_weights": jnp.zeros((1, 2))}}},
  }}
  new_stats = {"batch_stats": {"dnn": {"hiddenlayer_0": {"batchnorm_0": {
      "moving_mean": jnp.zeros(2), "moving_variance": jnp.zeros(2)}}}}}
  target = state(new_params, new_stats, tx.init(new_params))
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    got = ckpt.restore(jax.eval_shape(lambda: target))
    variables = ckpt.restore_variables(jax.eval_shape(
        lambda: {"params": new_params, **new_stats}))
  assert jax.tree.structure(got) == jax.tree.structure(target)
  bn = got.params["dnn"]["hiddenlayer_0"]["batchnorm_0"]
  np.testing.assert_array_equal(bn["gamma"], [3.0, 4.0])
  np.testing.assert_array_equal(bn["beta"], [5.0, 6.0])
  np.testing.assert_array_equal(
      got.opt_state[0].mu["dnn"]["hiddenlayer_0"]["batchnorm_0"]["gamma"],
      [30.0, 40.0])  # Adam's first moment of the old 'scale'
  np.testing.assert_array_equal(
      got.opt_state[0].nu["dnn"]["input_from_feature_columns"]["input_layer"][
          "c_embedding"]["embedding_weights"], [[700.0, 800.0]])
  stats = got.model_state["batch_stats"]["dnn"]["hiddenlayer_0"]["batchnorm_0"]
  np.testing.assert_array_equal(stats["moving_variance"], [2.0, 3.0])
  np.testing.assert_array_equal(
      variables["batch_stats"]["dnn"]["hiddenlayer_0"]["batchnorm_0"][
          "moving_mean"], [0.5, 0.25])


def test_a_checkpoint_that_fits_no_naming_still_says_so(tmp_path):
  params = {"dnn": {"batchnorm_0": {"scale": jnp.ones(2)}}}
  with ckpt_lib.Checkpointer(tmp_path, async_save=False) as ckpt:
    ckpt.save(TrainState(step=jnp.asarray(1), params=params, model_state={},
                         opt_state=(), rng=jnp.zeros(2, jnp.uint32),
                         bad_step=jnp.asarray(-1)))
  other = {"dnn": {"hiddenlayer_0": {"batchnorm_0": {"beta": jnp.ones(2)}}}}
  with ckpt_lib.Checkpointer(tmp_path) as ckpt:
    try:
      ckpt.restore_variables({"params": other})
    except ckpt_lib.CheckpointMismatchError as e:
      assert "dnn/hiddenlayer_0/batchnorm_0/beta" in str(e)
    else:
      raise AssertionError("restored a checkpoint with other variables")
