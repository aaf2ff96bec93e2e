"""EVAL exports: ``experimental_export_all_saved_models({PREDICT: ..., EVAL:
...})`` writes one directory whose ``eval`` signature, loaded in a fresh
process without the model code, gives the loss and every ``eval_metric_ops``
metric of a batch equal to ``Estimator.evaluate`` on that one batch.
"""
import json
import os
import pathlib
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from estlab import feature_column as fc
from estlab import metrics

_N = 10
_LOADER = pathlib.Path(__file__).with_name("_load_in_fresh_process.py")
_CONFIG = estlab.RunConfig(progress_bar=False, tf_random_seed=3)


def _data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(_N, 2)).astype(np.float32)
  return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)


def _model_fn(features, labels, mode):
  logits = nn.Dense(1)(features["x"])[:, 0]
  probability = jax.nn.sigmoid(logits)
  if mode == estlab.ModeKeys.PREDICT:
    return estlab.EstimatorSpec(mode, predictions={"probability": probability})
  loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))
  return estlab.EstimatorSpec(
      mode, loss=loss, train_op=optax.sgd(0.5), eval_metric_ops={
          "accuracy": metrics.accuracy(labels, probability > 0.5),
          "auc": metrics.auc(labels, probability),
          "probability/mean": metrics.mean(probability)})


def _one_batch(features, labels):
  return estlab.inputs.numpy_input_fn(features, labels, batch_size=_N,
                                      num_epochs=1, shuffle=False)


def _train(est, features, labels):
  return est.train(estlab.inputs.numpy_input_fn(
      features, labels, batch_size=_N, num_epochs=None, shuffle=False),
                   steps=15)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
  """``{name: (export path, eval request, Estimator.evaluate on it)}``."""
  root = tmp_path_factory.mktemp("eval_export")
  x, y = _data()
  out = {}

  custom = _train(estlab.Estimator(_model_fn, model_dir=str(root / "custom"),
                                   config=_CONFIG), {"x": x}, y)
  features = {"x": np.zeros((1, 2), np.float32)}
  out["custom_model_fn"] = (custom.experimental_export_all_saved_models(
      root / "custom_export", {
          estlab.ModeKeys.PREDICT:
              estlab.export.build_raw_serving_input_receiver_fn(features),
          estlab.ModeKeys.EVAL:
              estlab.export.build_raw_supervised_input_receiver_fn(
                  features, np.zeros((1,), np.float32))}),
                            {"x": x.tolist(), "labels": y.tolist()},
                            custom.evaluate(_one_batch({"x": x}, y)))

  columns = [fc.numeric_column("a"), fc.numeric_column("b")]
  spec = fc.make_parse_example_spec(columns)
  raw = {"a": x[:, 0], "b": x[:, 1]}
  target = 2 * x[:, 0] - x[:, 1] + 1
  regressor = _train(estlab.LinearRegressor(
      columns, model_dir=str(root / "linear"), config=_CONFIG), raw, target)
  out["linear_regressor"] = (regressor.experimental_export_all_saved_models(
      root / "linear_export", {
          estlab.ModeKeys.PREDICT:
              estlab.export.build_parsing_serving_input_receiver_fn(spec),
          estlab.ModeKeys.EVAL:
              estlab.export.build_raw_supervised_input_receiver_fn(
                  spec, np.zeros((1,), np.float32))}),
                             {"a": raw["a"].tolist(), "b": raw["b"].tolist(),
                              "labels": target.tolist()},
                             regressor.evaluate(_one_batch(raw, target)))

  names = np.where(y > 0, "yes", "no")
  classifier = _train(estlab.LinearClassifier(
      columns, label_vocabulary=["no", "yes"], model_dir=str(root / "vocab"),
      config=_CONFIG), raw, names)
  out["vocabulary_classifier"] = (classifier.export_saved_model(
      root / "vocab_export", lambda: estlab.export.SupervisedInputReceiver(
          spec, np.array(["no"])), experimental_mode=estlab.ModeKeys.EVAL),
                                  {"a": raw["a"].tolist(),
                                   "b": raw["b"].tolist(),
                                   "labels": names.tolist()},
                                  classifier.evaluate(_one_batch(raw, names)))
  return out


@pytest.fixture(scope="module")
def loaded(cases, tmp_path_factory):
  """What a fresh process, evaluating every export's batch, returned."""
  job = tmp_path_factory.mktemp("fresh_eval") / "job.json"
  job.write_text(json.dumps({
      name: {"path": path, "request": {}, "batches": [],
             "eval_request": request}
      for name, (path, request, _) in cases.items()}))
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  done = subprocess.run([sys.executable, str(_LOADER), str(job)],
                        capture_output=True, text=True, timeout=120, env=env,
                        cwd=str(job.parent), check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


def test_fresh_process_evaluates_without_model_code_or_pickle(loaded):
  assert loaded["forbidden_modules"] == []
  assert loaded["unpickled"] is False


@pytest.mark.parametrize("name", ["custom_model_fn", "linear_regressor",
                                  "vocabulary_classifier"])
def test_eval_signature_equals_estimator_evaluate_on_the_batch(
    cases, loaded, name):
  expected = {k: v for k, v in cases[name][2].items() if k != "global_step"}
  got = loaded["eval"][name]
  assert sorted(got) == sorted(expected)
  for key, want in expected.items():
    np.testing.assert_allclose(got[key], want, rtol=1e-5, atol=1e-6,
                               err_msg=f"{name}/{key}")


def test_one_directory_holds_both_signatures(cases, loaded):
  path = cases["custom_model_fn"][0]
  assert {"model.jaxexport", "eval.jaxexport", "variables",
          "estlab_export.json"} <= set(os.listdir(path))
  assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]
  assert loaded["signatures"]["custom_model_fn"] == {
      "serving_default": "tensorflow/serving/predict",
      "predict": "tensorflow/serving/predict",
      "eval": "tensorflow/supervised/eval"}
  assert loaded["signatures"]["vocabulary_classifier"] == {
      "eval": "tensorflow/supervised/eval"}  # EVAL only: no model.jaxexport
  with open(os.path.join(path, "estlab_export.json"), encoding="utf-8") as f:
    info = json.load(f)
  assert info["format_version"] == 2
  assert info["eval"]["module"] == "eval.jaxexport"
  assert info["signatures"]["eval"]["outputs"]["loss"] == {
      "dtype": "float32", "shape": []}


def test_label_vocabulary_is_saved_and_applied_by_the_loader(cases):
  path, request, _ = cases["vocabulary_classifier"]
  with open(os.path.join(path, "estlab_export.json"), encoding="utf-8") as f:
    labels = json.load(f)["eval"]["labels"]["labels"]
  assert labels["kind"] == "head" and labels["vocabulary"] == ["no", "yes"]
  sig = estlab.export.load(path).signatures["eval"]
  with pytest.raises(estlab.export.ServingInputError, match="'maybe'"):
    sig(dict(request, labels=["maybe"] * _N))
  with pytest.raises(estlab.export.ServingInputError, match="needs 'labels'"):
    sig({k: v for k, v in request.items() if k != "labels"})


def test_train_mode_and_unlabelled_receivers_are_clear_errors(cases, tmp_path):
  est = estlab.Estimator(_model_fn, model_dir=str(tmp_path / "m"))
  features = {"x": np.zeros((1, 2), np.float32)}
  serving = estlab.export.build_raw_serving_input_receiver_fn(features)
  with pytest.raises(ValueError, match=r"'train'.*\['infer', 'eval'\]"):
    est.export_saved_model(tmp_path, serving,
                           experimental_mode=estlab.ModeKeys.TRAIN)
  with pytest.raises(ValueError, match=r"'train'.*\['infer', 'eval'\]"):
    est.experimental_export_all_saved_models(
        tmp_path, {estlab.ModeKeys.TRAIN: serving})
  with pytest.raises(ValueError, match="build_raw_supervised_input_receiver_fn"):
    est.export_saved_model(tmp_path, serving,
                           experimental_mode=estlab.ModeKeys.EVAL)


def test_heads_whose_labels_cannot_be_described_are_refused(tmp_path):
  est = estlab.LinearClassifier(
      [fc.numeric_column("a")], n_classes=2, weight_column="w",
      model_dir=str(tmp_path / "m"))
  receiver = estlab.export.build_raw_supervised_input_receiver_fn(
      fc.make_parse_example_spec([fc.numeric_column("a")]), np.zeros((1,)))
  with pytest.raises(ValueError, match="weight_column='w'"):
    est.export_saved_model(tmp_path, receiver,
                           experimental_mode=estlab.ModeKeys.EVAL)
