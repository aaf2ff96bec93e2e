"""Round trips: every premade kind and a custom model_fn, exported, then loaded
in a fresh process that never imports the model code (nor the estimator,
premade models, heads, Flax or optax) and never unpickles; its predictions
equal ``Estimator.predict`` on the same rows, for several batch sizes.
"""
import json
import os
import pathlib
import subprocess
import sys

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from estlab import feature_column as fc

_N = 12
_CITIES = ["paris", "rome", "oslo"]
_TAGS = ["a", "b", "c", "d"]
_BATCHES = (_N, 5, 1)  # also the first rows only: any batch size
_SOME_BATCHES = ("dnn_classifier", "custom_model_fn")  # others: _N only
_LOADER = pathlib.Path(__file__).with_name("_load_in_fresh_process.py")


def _rows(seed=0):
  """Raw rows: JSON-like lists, strings, missing values, ragged tags."""
  rng = np.random.default_rng(seed)
  x = np.round(rng.normal(size=_N), 3)
  city = [_CITIES[i] for i in rng.integers(0, 3, _N)]
  city[3] = "lisbon"                        # out of vocabulary
  tags = [[_TAGS[j] for j in rng.integers(0, 4, i % 4)] for i in range(_N)]
  return {"x": x.tolist(), "age": rng.uniform(18, 80, _N).round(1).tolist(),
          "city": city, "code": [f"c{i}" for i in rng.integers(0, 9, _N)],
          "tags": tags}


def _labels(features):
  x = np.asarray(features["x"])
  return {"binary": np.where(x > 0, "yes", "no"),
          "multi": np.digitize(x, [-0.5, 0.5]),
          "regression": (2 * x + 1).astype(np.float32),
          "flags": np.stack([x > 0, x < 0, np.abs(x) < .5], 1).astype(np.int64)}


def _numpy_features(features):
  out = {}
  for k, v in features.items():
    if k == "tags":
      out[k] = np.empty(len(v), dtype=object)
      out[k][:] = [list(t) for t in v]
    else:
      out[k] = np.asarray(v, dtype=object if isinstance(v[0], str) else None)
  return out


def _columns():
  city = fc.categorical_column_with_vocabulary_list("city", _CITIES,
                                                    num_oov_buckets=1)
  code = fc.categorical_column_with_hash_bucket("code", 7)
  tags = fc.categorical_column_with_vocabulary_list("tags", _TAGS)
  age = fc.numeric_column("age", normalizer_fn=lambda a: (a - 50.0) / 20.0)
  x = fc.numeric_column("x")
  return {"x": x, "age": age, "city": city, "code": code, "tags": tags,
          "age_buckets": fc.bucketized_column(fc.numeric_column("age"),
                                              [30., 50., 70.]),
          "cross": fc.crossed_column(["city", "code"], 11)}


def _premade(model_dir):
  c = _columns()
  config = estlab.RunConfig(progress_bar=False, tf_random_seed=1)
  head = estlab.heads.MultiHead([
      estlab.heads.MultiLabelHead(3, label_vocabulary=["pos", "neg", "small"],
                                  name="flags"),
      estlab.heads.RegressionHead(name="size")])
  return {
      "baseline_regressor": (estlab.BaselineRegressor(
          model_dir=f"{model_dir}/b", config=config), [c["x"]], "regression"),
      "linear_classifier": (estlab.LinearClassifier(
          [c["x"], c["city"], c["code"], c["age_buckets"], c["cross"]],
          model_dir=f"{model_dir}/l", label_vocabulary=["no", "yes"],
          config=config), None, "binary"),
      "dnn_classifier": (estlab.DNNClassifier(
          [8], [c["age"], fc.indicator_column(c["city"]),
                fc.embedding_column(c["code"], 3),
                fc.embedding_column(c["tags"], 2, combiner="sqrtn")],
          model_dir=f"{model_dir}/d", n_classes=3, config=config,
          optimizer=optax.adam(0.05)), None, "multi"),
      "dnn_linear_combined_regressor": (estlab.DNNLinearCombinedRegressor(
          model_dir=f"{model_dir}/c",
          linear_feature_columns=[c["city"], c["age_buckets"]],
          dnn_feature_columns=[c["x"], fc.embedding_column(c["code"], 2)],
          dnn_hidden_units=[4], config=config), None, "regression"),
      "linear_multi_head": (estlab.LinearEstimator(
          head, [c["x"], c["tags"]], model_dir=f"{model_dir}/h",
          config=config), None, ("flags", "regression")),
  }


class _Net(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(2)(jnp.tanh(nn.Dense(4)(x)))


def _custom_model_fn(features, labels, mode):
  out = _Net()(features["x"])
  predictions = {"score": out[:, 0], "pair": out}
  loss = None if labels is None else jnp.mean((out[:, 0] - labels) ** 2)
  return estlab.EstimatorSpec(mode, predictions=predictions, loss=loss,
                              train_op=optax.sgd(0.1))


def _input_fn(features, labels, epochs):
  return estlab.inputs.numpy_input_fn(features, labels, batch_size=_N,
                                      num_epochs=epochs, shuffle=False)


def _predict(est, features):
  out = list(est.predict(_input_fn(features, None, 1),
                         yield_single_examples=False))
  assert len(out) == 1
  # MultiHead keys predictions (head name, key), as TF; its signatures name
  # them '<head name>/<key>', as TF's.
  return {"/".join(k) if isinstance(k, tuple) else k: np.asarray(v).tolist()
          for k, v in out[0].items()}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
  """``{name: (export dir, request, expected predictions)}``."""
  root = tmp_path_factory.mktemp("roundtrip")
  request = _rows()
  features = _numpy_features(request)
  labels = _labels(request)
  cases = {}
  for name, (est, spec_columns, label_key) in _premade(root).items():
    if isinstance(label_key, tuple):
      y = {"flags": labels["flags"], "size": labels["regression"]}
    else:
      y = labels[label_key]
    est.train(_input_fn(features, y, None), steps=3)
    spec = fc.make_parse_example_spec(spec_columns or est.feature_columns)
    path = est.export_saved_model(
        root / "export" / name,
        estlab.export.build_parsing_serving_input_receiver_fn(spec))
    wanted = {k: v for k, v in request.items() if k in spec}
    cases[name] = (path, wanted, _predict(est, features))
  # A custom model_fn, served from already-encoded arrays (a raw receiver).
  est = estlab.Estimator(_custom_model_fn, str(root / "custom"),
                         config=estlab.RunConfig(progress_bar=False))
  x = np.random.default_rng(2).normal(size=(_N, 3)).astype(np.float32)
  est.train(_input_fn({"x": x}, x[:, 0], None), steps=3)
  path = est.export_saved_model(
      root / "export" / "custom",
      estlab.export.build_raw_serving_input_receiver_fn({"x": x[:1]}))
  cases["custom_model_fn"] = (path, {"x": x.tolist()}, _predict(est, {"x": x}))
  return cases


@pytest.fixture(scope="module")
def loaded(cases, tmp_path_factory):
  """What a fresh process, loading every export, returned."""
  job = tmp_path_factory.mktemp("fresh") / "job.json"
  job.write_text(json.dumps({
      name: {"path": path, "request": request,
             "batches": list(_BATCHES) if name in _SOME_BATCHES else [_N]}
      for name, (path, request, _) in cases.items()}))
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  done = subprocess.run([sys.executable, str(_LOADER), str(job)],
                        capture_output=True, text=True, timeout=120, env=env,
                        cwd=str(job.parent), check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


def test_fresh_process_loads_without_model_code_or_pickle(loaded):
  assert loaded["forbidden_modules"] == []
  assert loaded["unpickled"] is False


_KINDS = ["baseline_regressor", "linear_classifier", "dnn_classifier",
          "dnn_linear_combined_regressor", "linear_multi_head",
          "custom_model_fn"]


@pytest.mark.parametrize("name", _KINDS)
def test_loaded_predictions_equal_estimator_predict(cases, loaded, name):
  expected = cases[name][2]
  for batch in _BATCHES if name in _SOME_BATCHES else [_N]:
    got = loaded["results"][name][str(batch)]
    assert list(got) == list(expected), batch  # same keys, same order
    for key, want in expected.items():
      want = want[:batch]
      if isinstance(np.ravel(want)[0], str):
        assert got[key] == want, (key, batch)
      else:
        np.testing.assert_allclose(got[key], want, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{name}/{key} batch {batch}")


def test_signatures_follow_the_heads(loaded):
  signatures = loaded["signatures"]
  classify = "tensorflow/serving/classify"
  regress = "tensorflow/serving/regress"
  predict = "tensorflow/serving/predict"
  assert signatures["linear_classifier"] == {
      "serving_default": classify, "classification": classify,
      "regression": regress, "predict": predict}
  assert signatures["dnn_classifier"] == {
      "serving_default": classify, "classification": classify,
      "predict": predict}
  for name in ("baseline_regressor", "dnn_linear_combined_regressor"):
    assert signatures[name] == {"serving_default": regress,
                                "regression": regress, "predict": predict}
  assert signatures["custom_model_fn"] == {"serving_default": predict,
                                           "predict": predict}
  assert signatures["linear_multi_head"] == {
      "serving_default": predict, "predict": predict, "flags": classify,
      "flags/classification": classify, "flags/predict": predict,
      "size": regress, "size/regression": regress, "size/predict": predict}


def test_classification_serves_class_names_and_probabilities(cases, loaded):
  expected = cases["linear_classifier"][2]
  got = loaded["classification"]
  assert got["classes"] == [["no", "yes"]] * _N
  np.testing.assert_allclose(got["scores"], expected["probabilities"],
                             rtol=1e-5, atol=1e-6)


def test_json_describes_the_host_transforms(cases):
  with open(os.path.join(cases["linear_classifier"][0],
                         "estlab_export.json")) as f:
    info = json.load(f)
  columns = {c["config"].get("key", c["class_name"]): c
             for c in info["transform"]["feature_columns"]}
  assert columns["city"]["config"]["vocabulary_list"] == _CITIES
  assert columns["city"]["config"]["num_oov_buckets"] == 1
  assert columns["code"]["config"]["hash_bucket_size"] == 7
  assert columns["BucketizedColumn"]["config"]["boundaries"] == [30., 50., 70.]
  assert columns["CrossedColumn"]["config"]["hash_bucket_size"] == 11
  assert info["receiver"]["inputs"]["city"] == {
      "kind": "varlen", "dtype": "string", "shape": [None, None]}
  assert info["model_inputs"]["city/ids"] == {"dtype": "int32",
                                              "shape": ["b", "k1"]}
  predict = info["signatures"]["predict"]
  assert predict["host_outputs"]["classes"] == {
      "op": "lookup", "source": "class_ids", "names": ["no", "yes"]}
