"""estlab.keras.model_to_estimator: a compiled Keras CNN trained as an
estimator, from the model's own weights, exported and compared with Keras."""
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import _keras_data
import _models
import estlab
from estlab.keras import model_to_estimator

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A CNN converted, then trained 48 steps (checkpoints at 0 and 48)."""
  model = _keras_data.cnn()
  x, y = _keras_data.images(384)
  x_eval, y_eval = _keras_data.images(96, seed=1)
  before = _keras_data.weights(model)
  keras_before = model.predict(x_eval, verbose=0)
  model_dir = str(tmp_path_factory.mktemp("cnn"))
  est = model_to_estimator(
      model, model_dir=model_dir,
      config=_models.quiet(save_checkpoints_steps=1000, save_summary_steps=8))
  est.train(_keras_data.batches(x, y, epochs=4), steps=48)
  return dict(model=model, est=est, before=before, keras_before=keras_before,
              x_eval=x_eval, y_eval=y_eval, model_dir=model_dir)


def _variable(model, path):
  variable, = [v for v in model.variables if v.path == path]
  return variable


def _first_checkpoint(model_dir):
  return estlab.inspect.list_checkpoints(model_dir)[0]


def test_starts_from_the_keras_models_weights(trained):
  first = _first_checkpoint(trained["model_dir"])
  assert first["step"] == 0
  params = estlab.inspect.variable_values(trained["model_dir"], step=0)
  model = trained["model"]
  assert sorted(params) == sorted(v.path for v in model.trainable_variables)
  for name, value in params.items():
    np.testing.assert_array_equal(value, trained["before"][name])
  # The non-trainable start (BatchNorm statistics) too: predictions from
  # the step-0 checkpoint are Keras' own before conversion.
  start = list(trained["est"].predict(
      lambda: {"image": trained["x_eval"]}, checkpoint_path=first["path"],
      yield_single_examples=False))
  np.testing.assert_allclose(np.concatenate([p["label"] for p in start]),
                             trained["keras_before"], rtol=1e-5, atol=1e-6)


def test_learns_loss_falls_and_accuracy_beats_chance(trained):
  est, x, y = trained["est"], trained["x_eval"], trained["y_eval"]
  start = est.evaluate(_keras_data.batches(x, y),
                       checkpoint_path=_first_checkpoint(
                           trained["model_dir"])["path"])
  end = est.evaluate(_keras_data.batches(x, y))
  assert end["global_step"] == 48
  assert end["loss"] < 0.7 * start["loss"]
  assert end["accuracy"] > 0.6  # chance: 1/3
  assert set(end) == {"loss", "accuracy", "global_step"}


def test_variables_and_tensorboard_are_named_as_keras(trained):
  est = trained["est"]
  assert est.get_variable_names() == sorted(
      [*trained["before"], "global_step"])
  assert "conv1/kernel" in trained["before"]
  assert not any("seed_generator" in n for n in est.get_variable_names())
  moving = "bn/moving_mean"
  assert not np.array_equal(est.get_variable_value(moving),
                            trained["before"][moving])  # updated in TRAIN
  scalars = estlab.summary.read_scalars(trained["model_dir"])
  assert [step for step, _ in scalars["loss"]][-1] == 48


def test_export_predicts_as_keras_with_the_trained_weights(trained, tmp_path):
  est, model, x = trained["est"], trained["model"], trained["x_eval"]
  # Training the estimator leaves the Keras model as it was.
  for name, value in _keras_data.weights(model).items():
    np.testing.assert_array_equal(value, trained["before"][name])
  path = est.export_saved_model(
      str(tmp_path), estlab.export.build_raw_serving_input_receiver_fn(
          {"image": x[:1]}))
  served = estlab.export.load(path).signatures["serving_default"](
      {"image": x[:40]})
  for path in trained["before"]:  # Dropout's seed state plays no part here
    _variable(model, path).assign(est.get_variable_value(path))
  expected = model.predict(x[:40], verbose=0)
  np.testing.assert_allclose(np.asarray(served["label"]), expected,
                             rtol=1e-4, atol=1e-5)
  predicted = np.stack([p["label"] for p in est.predict(
      lambda: {"image": x[:40]})])
  np.testing.assert_allclose(predicted, expected, rtol=1e-4, atol=1e-5)
  assert not np.allclose(expected, trained["keras_before"][:40], atol=1e-3)


def test_converting_onto_a_trained_model_dir_resumes_its_checkpoint(trained):
  # As TF's: the Keras weights start a fresh model_dir; a checkpoint wins.
  fresh = _keras_data.cnn(seed=5)
  again = model_to_estimator(fresh, model_dir=trained["model_dir"],
                             config=_models.quiet())
  x, y = trained["x_eval"], trained["y_eval"]
  assert again.evaluate(_keras_data.batches(x, y)) == pytest.approx(
      trained["est"].evaluate(_keras_data.batches(x, y)))


def test_a_saved_keras_file_converts_from_its_weights(tmp_path):
  model = _keras_data.cnn(seed=3)
  model.save(tmp_path / "cnn.keras")
  est = model_to_estimator(keras_model_path=str(tmp_path / "cnn.keras"),
                           model_dir=str(tmp_path / "est"),
                           config=_models.quiet(save_checkpoints_steps=100),
                           checkpoint_format="saver")
  x, y = _keras_data.images(16)
  est.train(_keras_data.batches(x, y, batch_size=8), steps=1)
  params = estlab.inspect.variable_values(str(tmp_path / "est"), step=0)
  saved = _keras_data.weights(model)
  assert params and all(np.array_equal(v, saved[k]) for k, v in params.items())


def test_a_single_array_feeds_a_one_input_model(tmp_path):
  model = _keras_data.cnn()
  est = model_to_estimator(model, model_dir=str(tmp_path),
                           config=_models.quiet())
  x, y = _keras_data.images(8)
  est.train(lambda: iter([(x, y)]), steps=1)
  out = list(est.predict(lambda: x, yield_single_examples=False))
  assert out[0]["label"].shape == (8, _keras_data.CLASSES)


# -- clear errors ---------------------------------------------------------------


def test_an_uncompiled_model_is_a_clear_error():
  model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(1)])
  with pytest.raises(ValueError, match=r"not been compiled.*model\.compile"):
    model_to_estimator(model)


def test_exactly_one_model_source_and_a_known_checkpoint_format(tmp_path):
  model = _keras_data.cnn()
  with pytest.raises(ValueError, match="exactly one of keras_model"):
    model_to_estimator()
  with pytest.raises(ValueError, match="exactly one of keras_model"):
    model_to_estimator(model, keras_model_path=str(tmp_path / "m.keras"))
  with pytest.raises(ValueError, match="checkpoint_format='h5'"):
    model_to_estimator(model, checkpoint_format="h5")
  with pytest.raises(KeyError, match=r"\['label'\]"):
    model_to_estimator(model, export_outputs={
        "probabilities": estlab.export.PredictOutput})


def test_a_missing_input_key_lists_the_models_input_names(tmp_path):
  est = model_to_estimator(_keras_data.cnn(), model_dir=str(tmp_path),
                           config=_models.quiet())
  x, y = _keras_data.images(8)
  with pytest.raises(KeyError) as info:
    est.train(_keras_data.batches(x, y, key="pixels"), steps=1)
  message = str(info.value)
  assert "['image']" in message and "['pixels']" in message
  assert isinstance(info.value, ValueError)


def test_another_backend_is_a_clear_error_naming_keras_backend():
  script = ("import keras, estlab.keras\n"
            "model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])\n"
            "model.compile('sgd', 'mse')\n"
            "estlab.keras.model_to_estimator(model)\n")
  env = {**os.environ, "KERAS_BACKEND": "tensorflow",
         "PYTHONPATH": os.pathsep.join(
             p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)}
  result = subprocess.run([sys.executable, "-c", script], cwd=_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert "ValueError: estlab.keras runs Keras models on JAX" in result.stderr
  assert "backend is 'tensorflow'" in result.stderr
  assert "Set KERAS_BACKEND=jax before keras is first imported" in result.stderr
