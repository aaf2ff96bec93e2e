"""model_to_estimator on a model with named inputs and outputs: features and
labels by name, per-output loss and metrics, metric_names_map,
export_outputs and TF's sample weights."""
import keras
import numpy as np
import pytest

import _models
import estlab
from estlab.keras import model_to_estimator


def _model():
  keras.utils.set_random_seed(0)
  a = keras.Input((3,), name="a")
  b = keras.Input((2,), name="b")
  h = keras.layers.Concatenate()([a, b])
  outputs = {"score": keras.layers.Dense(1, name="score")(h),
             "flag": keras.layers.Dense(1, activation="sigmoid", name="flag")(h)}
  model = keras.Model({"a": a, "b": b}, outputs)
  model.compile(optimizer=keras.optimizers.SGD(0.1),
                loss={"score": "mse", "flag": "binary_crossentropy"},
                metrics={"flag": ["accuracy"], "score": ["mae"]})
  return model


def _data(n=64):
  rng = np.random.default_rng(0)
  a = rng.normal(size=(n, 3)).astype(np.float32)
  b = rng.normal(size=(n, 2)).astype(np.float32)
  score = (a.sum(1, keepdims=True) - b[:, :1]).astype(np.float32)
  flag = (b[:, 1:] > 0).astype(np.float32)
  return {"a": a, "b": b}, {"score": score, "flag": flag}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  model = _model()
  est = model_to_estimator(
      model, model_dir=str(tmp_path_factory.mktemp("multi")),
      config=_models.quiet(),
      metric_names_map={"flag_accuracy": "flag/accuracy",
                        "score_mae": "score/mae"},
      export_outputs={"score": estlab.export.RegressionOutput})
  features, labels = _data()
  est.train(lambda: iter([(features, labels)] * 60), steps=60)
  return model, est, features, labels


def test_named_outputs_train_evaluate_and_rename_metrics(converted):
  model, est, features, labels = converted
  result = est.evaluate(lambda: iter([(features, labels)]))
  assert set(result) == {"loss", "flag/accuracy", "score/mae", "global_step"}
  assert result["flag/accuracy"] > 0.8
  assert result["score/mae"] < 0.5
  # The metrics are Keras' own on these rows, with the trained weights.
  for v in model.variables:
    v.assign(est.get_variable_value(v.path))
  keras_result = model.evaluate(features, labels, batch_size=64,
                                return_dict=True, verbose=0)
  assert result["loss"] == pytest.approx(keras_result["loss"], rel=1e-4)
  assert result["flag/accuracy"] == pytest.approx(
      keras_result["flag_accuracy"], rel=1e-5)
  assert result["score/mae"] == pytest.approx(keras_result["score_mae"],
                                              rel=1e-4)


def test_predictions_and_export_signatures_by_output_name(converted, tmp_path):
  _, est, features, _ = converted
  rows = {k: v[:5] for k, v in features.items()}
  out = list(est.predict(lambda: rows, yield_single_examples=False))[0]
  assert sorted(out) == ["flag", "score"]
  path = est.export_saved_model(
      str(tmp_path), estlab.export.build_raw_serving_input_receiver_fn(rows))
  signatures = estlab.export.load(path).signatures
  assert {"serving_default", "score"} <= set(signatures)
  served = signatures["serving_default"](rows)
  np.testing.assert_allclose(np.asarray(served["flag"]), out["flag"],
                             rtol=1e-5, atol=1e-6)
  regression = signatures["score"](rows)
  np.testing.assert_allclose(np.asarray(regression["outputs"]).ravel(),
                             out["score"].ravel(), rtol=1e-5, atol=1e-6)


def test_sample_weights_weigh_the_loss_as_tfs(tmp_path):
  # TF's convention: features {'features': ..., 'sample_weights': ...}
  # (estlab's input path takes flat dicts: a one-input model's array).
  model = keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(1)])
  model.compile(optimizer="sgd", loss="mse")
  est = model_to_estimator(model, model_dir=str(tmp_path),
                           config=_models.quiet())
  features, labels = _data()
  x, y = features["a"], labels["score"]
  est.train(lambda: iter([(x, y)]), steps=1)
  weighted = lambda w: lambda: iter([({"features": x, "sample_weights": w}, y)])
  plain = est.evaluate(lambda: iter([(x, y)]))
  ones = est.evaluate(weighted(np.ones(64, np.float32)))
  zeros = est.evaluate(weighted(np.zeros(64, np.float32)))
  half = est.evaluate(weighted(np.r_[np.ones(32), np.zeros(32)].astype(
      np.float32)))
  first = est.evaluate(lambda: iter([(x[:32], y[:32])]))
  assert ones["loss"] == pytest.approx(plain["loss"], rel=1e-6)
  assert zeros["loss"] == 0.0
  # Keras' sum_over_batch_size: the weighted sum over all 64 rows.
  assert half["loss"] == pytest.approx(first["loss"] / 2, rel=1e-5)


def test_labels_must_cover_the_output_names(tmp_path):
  est = model_to_estimator(_model(), model_dir=str(tmp_path),
                           config=_models.quiet())
  features, labels = _data(8)
  with pytest.raises(KeyError, match=r"missing \['flag'\]"):
    est.train(lambda: iter([(features, {"score": labels["score"]})]), steps=1)


def test_metric_names_map_must_cover_every_metric(tmp_path):
  est = model_to_estimator(_model(), model_dir=str(tmp_path),
                           config=_models.quiet(),
                           metric_names_map={"flag_accuracy": "acc"})
  features, labels = _data(8)
  est.train(lambda: iter([(features, labels)]), steps=1)
  with pytest.raises(ValueError, match=r"missing \['score_mae'\]"):
    est.evaluate(lambda: iter([(features, labels)]))
