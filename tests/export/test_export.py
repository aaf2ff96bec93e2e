"""export_saved_model and load, in process: the seed example, the directory
layout, atomic writes, signatures, batch sizes, threads and clear errors."""
import concurrent.futures
import json
import os
import shutil
import types

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import estlab
from estlab.export import _exporter, _integrity

_X = np.array([1., 2., 3., 4.], np.float32)


def _seed_input_fn():
  """The seed's Dataset(...).repeat(200).shuffle(64).batch(16), as numpy."""
  rng = np.random.default_rng(0)
  x, y = np.tile(_X, 200), np.tile([1, 1, 0, 0], 200)
  order = rng.permutation(len(x))
  return [({"x": x[order[i:i + 16]]}, y[order[i:i + 16]])
          for i in range(0, len(x), 16)]


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
  """The seed's export example; only the imports changed (tf -> estlab)."""
  root = tmp_path_factory.mktemp("seed")
  input_column = estlab.feature_column.numeric_column("x")
  estimator = estlab.LinearClassifier(
      feature_columns=[input_column], model_dir=str(root / "model"),
      config=estlab.RunConfig(progress_bar=False))
  estimator.train(_seed_input_fn)
  serving_input_fn = estlab.export.build_parsing_serving_input_receiver_fn(
      estlab.feature_column.make_parse_example_spec([input_column]))
  export_path = estimator.export_saved_model(str(root / "from_estimator"),
                                             serving_input_fn)
  imported = estlab.export.load(export_path)
  return types.SimpleNamespace(
      estimator=estimator, column=input_column, receiver=serving_input_fn,
      path=export_path, base=str(root / "from_estimator"), root=root,
      imported=imported)


def test_seed_example_predicts_each_class_near_its_examples(seed):
  def predict(x):
    return seed.imported.signatures["predict"]({"x": [x]})

  assert predict(1.5)["class_ids"].tolist() == [[1]]
  assert predict(3.5)["class_ids"].tolist() == [[0]]
  assert predict(1.5)["classes"].tolist() == [["1"]]


def test_export_dir_is_a_timestamp_holding_the_documented_layout(seed):
  assert os.path.dirname(seed.path) == seed.base
  assert os.path.basename(seed.path).isdigit()
  assert sorted(os.listdir(seed.base)) == [os.path.basename(seed.path)]
  assert {"model.jaxexport", "variables", "estlab_export.json"} <= set(
      os.listdir(seed.path))
  with open(os.path.join(seed.path, "estlab_export.json")) as f:
    info = json.load(f)
  assert info["format"] == "estlab.export" and info["format_version"] == 1
  assert info["platforms"] == ["cpu", "cuda", "tpu"]
  assert info["global_step"] == 50 and info["model"] == "LinearClassifier"
  assert info["receiver"] == {"kind": "parsing", "default_batch_size": None,
                              "inputs": {"x": {
                                  "kind": "fixed", "dtype": "float32",
                                  "shape": [None, 1], "default_value": None}}}
  assert info["transform"] == {"kind": "feature_columns",
                               "feature_columns": [seed.column.spec()]}
  assert info["model_inputs"] == {"x": {"dtype": "float32", "shape": ["b", 1]}}
  assert {k: s["method_name"] for k, s in info["signatures"].items()} == {
      "serving_default": "tensorflow/serving/classify",
      "classification": "tensorflow/serving/classify",
      "regression": "tensorflow/serving/regress",
      "predict": "tensorflow/serving/predict"}
  assert list(info["signatures"]["classification"]["outputs"]) == [
      "classes", "scores"]


def test_module_is_multi_platform_with_a_symbolic_batch(seed):
  with open(os.path.join(seed.path, "model.jaxexport"), "rb") as f:
    exported = jax.export.deserialize(bytearray(f.read()))
  assert exported.platforms == ("cpu", "cuda", "tpu")
  feature = exported.in_avals[-1]
  assert str(feature.shape[0]) == "b" and feature.shape[1] == 1


def test_variables_are_plain_orbax_equal_to_the_checkpoint(seed):
  checkpointer = ocp.StandardCheckpointer()
  restored = checkpointer.restore(os.path.join(seed.path, "variables"))
  checkpointer.close()
  flat = estlab.checkpoint.flatten_names(restored["params"])
  assert sorted([*flat, "global_step"]) == seed.estimator.get_variable_names()
  for name, value in flat.items():
    np.testing.assert_array_equal(value,
                                  seed.estimator.get_variable_value(name))


def test_predictions_equal_estimator_predict_for_any_batch_size(seed):
  predict = seed.imported.signatures["predict"]
  xs = np.linspace(0., 5., 7).astype(np.float32)
  want = next(seed.estimator.predict(estlab.inputs.numpy_input_fn(
      {"x": xs}, batch_size=7, shuffle=False), yield_single_examples=False))
  for batch in (1, 2, 3, 5, 7):
    got = predict({"x": xs[:batch].tolist()})
    assert list(got) == list(want)
    np.testing.assert_allclose(got["probabilities"],
                               want["probabilities"][:batch], rtol=1e-6)
    assert got["classes"].tolist() == want["classes"][:batch].tolist()


def test_repeated_calls_reuse_one_compilation_per_padded_batch(seed):
  sig = seed.imported.signatures["regression"]
  for batch in (1, 2, 3, 4, 5, 8, 3, 1, 8):
    assert sig({"x": [1.0] * batch})["outputs"].shape == (batch, 1)
  assert sig.cache_size() == 4  # batches padded to 1, 2, 4 and 8


def test_concurrent_calls_each_get_their_own_answer(seed):
  sig = seed.imported.signatures["classification"]
  grid = np.round(np.linspace(0., 5., 11), 2).tolist()
  single = {x: sig({"x": [x]})["scores"][0] for x in grid}

  def ask(i):
    xs = [grid[(i + k) % len(grid)] for k in range(1 + i % 5)]
    return xs, sig({"x": xs})["scores"]

  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    for xs, scores in pool.map(ask, range(40)):
      np.testing.assert_allclose(scores, [single[x] for x in xs], rtol=1e-6)


@pytest.mark.parametrize("request_, error, words", [
    ({"x": [1.0], "y": [2.0]}, estlab.export.ServingInputError, ["'y'", "'x'"]),
    ({}, estlab.export.ServingInputError, ["missing", "'x'"]),
    ({"x": ["abc"]}, estlab.export.ServingInputTypeError, ["'x'", "'abc'"]),
    ({"x": [True]}, estlab.export.ServingInputTypeError, ["'x'"]),
    ({"x": 1.5}, estlab.export.ServingInputError, ["'x'", "one value per"]),
    ({"x": [[1.0, 2.0]]}, estlab.export.ServingInputError, ["'x'", "2 values"]),
    ({"x": [None]}, estlab.export.ServingInputError, ["'x'", "default_value"]),
    ([1.5], estlab.export.ServingInputTypeError, ["dict"]),
])
def test_bad_requests_are_clear_serving_input_errors(seed, request_, error,
                                                     words):
  with pytest.raises(error) as caught:
    seed.imported.signatures["predict"](request_)
  assert isinstance(caught.value, ValueError)
  for word in words:
    assert word in str(caught.value)


def test_load_takes_a_base_and_skips_unfinished_exports(seed, tmp_path):
  base = tmp_path / "base"
  shutil.copytree(seed.path, base / "100")
  shutil.copytree(seed.path, base / "temp-999")
  shutil.copytree(seed.path, base / "99999")
  os.remove(base / "99999" / "estlab_export.json")  # a half export
  assert estlab.export.load(base).path == str(base / "100")
  assert estlab.export.load(seed.base).path == seed.path


def test_paths_that_are_not_exports_are_clear_errors(seed, tmp_path):
  for path in (tmp_path / "missing", tmp_path):
    with pytest.raises(estlab.export.NotAnExportError, match="not") as caught:
      estlab.export.load(path)
    assert isinstance(caught.value, FileNotFoundError)
    assert isinstance(caught.value, ValueError)
    assert str(path) in str(caught.value)
  newer = tmp_path / "newer"
  shutil.copytree(seed.path, newer)
  info = json.loads((newer / "estlab_export.json").read_text())
  (newer / "estlab_export.json").write_text(json.dumps(
      dict(info, format_version=99)))
  os.remove(newer / "estlab_export.sha256")  # a newer estlab's, checksummed
  _integrity.write_checksums(str(newer))
  with pytest.raises(ValueError, match="Upgrade estlab"):
    estlab.export.load(newer)
  shutil.rmtree(newer / "variables")
  (newer / "estlab_export.json").write_text(json.dumps(info))
  with pytest.raises(estlab.export.NotAnExportError, match="damaged"):
    estlab.export.load(newer)


def test_a_crash_mid_export_leaves_nothing_that_looks_whole(seed, tmp_path,
                                                            monkeypatch):
  def crash(*args):
    del args
    raise RuntimeError("disk full")

  monkeypatch.setattr(_exporter, "_copy_assets", crash)
  with pytest.raises(RuntimeError, match="disk full"):
    seed.estimator.export_saved_model(tmp_path / "base", seed.receiver)
  assert os.listdir(tmp_path / "base") == []


def test_exports_in_the_same_second_get_their_own_directories(seed, tmp_path,
                                                              monkeypatch):
  monkeypatch.setattr(_exporter, "_now", lambda: 1_800_000_000.5)
  first = seed.estimator.export_saved_model(tmp_path, seed.receiver)
  second = seed.estimator.export_saved_model(tmp_path, seed.receiver)
  assert [os.path.basename(p) for p in (first, second)] == [
      "1800000000", "1800000001"]


def test_assets_extra_are_copied_and_as_text_writes_stablehlo(seed, tmp_path):
  vocab = tmp_path / "words.txt"
  vocab.write_text("a\nb\n")
  path = seed.estimator.export_saved_model(
      tmp_path / "base", seed.receiver, assets_extra={"vocab/words.txt": vocab},
      as_text=True)
  assert open(os.path.join(path, "assets.extra", "vocab", "words.txt")).read(
      ) == "a\nb\n"
  assert "stablehlo" in open(os.path.join(path, "model.mlir")).read()
  with pytest.raises(ValueError, match="relative path"):
    seed.estimator.export_saved_model(tmp_path / "other", seed.receiver,
                                      assets_extra={"../up.txt": vocab})


def test_only_predict_and_eval_modes_are_exported(seed, tmp_path):
  train_mode = estlab.ModeKeys.TRAIN
  with pytest.raises(ValueError, match="'train'.*'infer', 'eval'"):
    seed.estimator.export_saved_model(tmp_path, seed.receiver,
                                      experimental_mode=train_mode)
  with pytest.raises(ValueError, match="PREDICT and EVAL only"):
    seed.estimator.experimental_export_all_saved_models(
        tmp_path, {estlab.ModeKeys.PREDICT: seed.receiver,
                   train_mode: seed.receiver})
  path = seed.estimator.experimental_export_all_saved_models(
      tmp_path, {estlab.ModeKeys.PREDICT: seed.receiver})
  assert set(estlab.export.load(path).signatures) == set(
      seed.imported.signatures)
  assert os.listdir(tmp_path) == [os.path.basename(path)]


def test_checkpoint_path_picks_the_checkpoint(seed, tmp_path):
  path = seed.estimator.export_saved_model(
      tmp_path, seed.receiver,
      checkpoint_path=seed.estimator.latest_checkpoint())
  assert estlab.export.load(path).global_step == 50


def test_default_batch_size_fixes_the_batch(seed, tmp_path):
  receiver = estlab.export.build_parsing_serving_input_receiver_fn(
      estlab.feature_column.make_parse_example_spec([seed.column]),
      default_batch_size=2)
  sig = estlab.export.load(seed.estimator.export_saved_model(
      tmp_path, receiver)).signatures["predict"]
  assert sig.inputs["x"]["shape"] == [2, 1]
  assert sig({"x": [1.5, 3.5]})["class_ids"].tolist() == [[1], [0]]
  with pytest.raises(estlab.export.ServingInputError, match="exactly 2"):
    sig({"x": [1.5, 2.5, 3.5]})


def test_a_raw_receiver_takes_encoded_features(seed, tmp_path):
  encoded = estlab.feature_column.encode([seed.column], {"x": _X})
  receiver = estlab.export.build_raw_serving_input_receiver_fn(encoded)
  sig = estlab.export.load(seed.estimator.export_saved_model(
      tmp_path, receiver)).signatures["predict"]
  assert dict(sig.inputs) == {"x": {"kind": "array", "dtype": "float32",
                                    "shape": [None, 1]}}
  parsed = seed.imported.signatures["predict"]({"x": [1.5, 3.5]})
  raw = sig({"x": [[1.5], [3.5]]})
  np.testing.assert_allclose(raw["probabilities"], parsed["probabilities"])
  with pytest.raises(estlab.export.ServingInputError, match="shape"):
    sig({"x": [1.5, 3.5]})


def test_receiver_fn_must_return_a_receiver(seed, tmp_path):
  with pytest.raises(TypeError, match="ServingInputReceiver"):
    seed.estimator.export_saved_model(tmp_path, lambda: {"x": _X})


def test_a_host_normalized_bucketized_column_cannot_be_exported(tmp_path):
  age = estlab.feature_column.numeric_column(
      "age", normalizer_fn=lambda a: a / 100.0)
  buckets = estlab.feature_column.bucketized_column(age, [0.3, 0.6])
  est = estlab.LinearClassifier([buckets], model_dir=str(tmp_path / "m"))
  receiver = estlab.export.build_parsing_serving_input_receiver_fn(
      estlab.feature_column.make_parse_example_spec([buckets]))
  with pytest.raises(ValueError, match="'age_bucketized'.*normalizer_fn"):
    est.export_saved_model(tmp_path / "export", receiver)


def test_a_model_fn_cannot_be_served_strings(tmp_path):
  def model_fn(features, mode):
    return estlab.EstimatorSpec(mode, predictions={"y": features["x"]})
  est = estlab.Estimator(model_fn, str(tmp_path / "m"))
  receiver = estlab.export.build_parsing_serving_input_receiver_fn(
      {"x": estlab.feature_column.FixedLenFeature((1,), "string")})
  with pytest.raises(ValueError, match=r"\['x'\] are strings"):
    est.export_saved_model(tmp_path / "export", receiver)


def test_without_a_checkpoint_export_says_train_first(tmp_path):
  col = estlab.feature_column.numeric_column("x")
  est = estlab.LinearRegressor([col], model_dir=str(tmp_path / "m"))
  receiver = estlab.export.build_parsing_serving_input_receiver_fn(
      estlab.feature_column.make_parse_example_spec([col]))
  with pytest.raises(ValueError, match="train first"):
    est.export_saved_model(tmp_path / "export", receiver)
  assert not os.path.exists(tmp_path / "export")
