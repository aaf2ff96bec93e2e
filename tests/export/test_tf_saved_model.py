"""``export_saved_model(format='tf_saved_model')``: a TensorFlow SavedModel
for TF Serving. ``tf.saved_model.load`` of it answers every signature as
estlab's own export (``estlab.export.load``) does on the same rows, for a
custom model_fn (a raw receiver: dense inputs) and for premade estimators
whose feature columns become TF ops (a parsing receiver: serialized
``tf.train.Example``s, as TF's export takes them); ``saved_model_cli`` lists
the signatures TF 2.15's export wrote for the same estimators
(tests/tf_reference/tf_serving_signatures_tf.py wrote
tf_serving_signatures_tf215.json): input names, dtypes, shapes and method
names; hashed, crossed, weighted and OOV-bucket columns give estlab's ids
(TF's FarmHash) on ragged, missing, empty and unknown values; sequence
columns (no TF ops) and a missing TensorFlow are clear errors.
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import types

import flax.linen as nn
import jax
import numpy as np
import optax
import pytest
import tensorflow as tf

import estlab
from estlab import feature_column as fc
from estlab.export import _example_proto

_REFERENCE = json.loads((pathlib.Path(__file__).parents[1] / "tf_reference" /
                         "tf_serving_signatures_tf215.json").read_text())
_CONFIG = estlab.RunConfig(progress_bar=False, tf_random_seed=7)
_N = 24


def _data():
  rng = np.random.default_rng(0)
  a = rng.normal(size=_N).astype(np.float32)
  b = rng.normal(size=_N).astype(np.float32)
  c = rng.choice(["red", "green", "blue"], size=_N)
  d = rng.integers(0, 4, size=_N)
  y = ((a + 0.5 * b + (c == "red") - (d == 2)) > 0).astype(np.int64)
  return {"a": a, "b": b, "c": c, "d": d}, y


def _custom_model_fn(features, labels, mode):
  logits = nn.Dense(3)(nn.relu(nn.Dense(8)(features["x"])))
  if mode == estlab.ModeKeys.PREDICT:
    return estlab.EstimatorSpec(mode, predictions={
        "logits": logits, "probabilities": jax.nn.softmax(logits)})
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return estlab.EstimatorSpec(mode, loss=loss, train_op=optax.adam(0.05))


def _examples(rows):
  """Serialized ``tf.train.Example``s (estlab's ``Example``) of ``rows``:
  ``{feature: [values]}``; floats, ints or strings; a feature left out is
  missing from that example."""
  out = []
  for row in rows:
    example = _example_proto.Example()
    for name, values in row.items():
      feature = example.features.feature[name]
      if all(isinstance(v, str) for v in values) and values:
        feature.bytes_list.value.extend(v.encode() for v in values)
      elif all(isinstance(v, int) for v in values) and values:
        feature.int64_list.value.extend(values)
      else:
        feature.float_list.value.extend(values)
    out.append(example.SerializeToString())
  return out


def _examples_input(saved, name):
  """The one input of a parsing receiver's signature: ``inputs`` or
  ``examples`` (TF's names, by method)."""
  (key,) = saved.signatures[name].structured_input_signature[1]
  return key


def _train(est, features, labels):
  return est.train(estlab.inputs.numpy_input_fn(
      features, labels, batch_size=8, num_epochs=None, shuffle=False), steps=30)


def _both(est, base, receiver_fn):
  """``(tf.saved_model.load(...), estlab.export.load(...), tf path)``."""
  tf_path = est.export_saved_model(str(base / "tf"), receiver_fn,
                                   format="tf_saved_model")
  own_path = est.export_saved_model(str(base / "own"), receiver_fn)
  return tf.saved_model.load(tf_path), estlab.export.load(own_path), tf_path


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
  root = tmp_path_factory.mktemp("tf_saved_model")
  features, y = _data()
  out = {}

  x = np.stack([features["a"], features["b"]], 1)
  custom = _train(estlab.Estimator(_custom_model_fn, model_dir=str(root / "c"),
                                   config=_CONFIG), {"x": x}, y + (x[:, 0] > 1))
  out["custom"] = (custom, *_both(
      custom, root / "custom", estlab.export.build_raw_serving_input_receiver_fn(
          {"x": np.zeros((1, 2), np.float32)})))

  numeric = [fc.numeric_column("a"), fc.numeric_column("b", default_value=0.5)]
  linear = _train(estlab.LinearClassifier(numeric, model_dir=str(root / "l"),
                                          config=_CONFIG), features, y)
  out["linear"] = (linear, *_both(
      linear, root / "linear", estlab.export.build_parsing_serving_input_receiver_fn(
          fc.make_parse_example_spec(numeric))))

  regressor = _train(estlab.LinearRegressor(numeric, model_dir=str(root / "r"),
                                            config=_CONFIG), features,
                     (features["a"] - 2 * features["b"]).astype(np.float32))
  out["regressor"] = (regressor, *_both(
      regressor, root / "regressor",
      estlab.export.build_parsing_serving_input_receiver_fn(
          fc.make_parse_example_spec(numeric))))

  columns = numeric + [
      fc.bucketized_column(numeric[0], [-0.5, 0.0, 0.5]),
      fc.indicator_column(fc.categorical_column_with_vocabulary_list(
          "c", ["red", "green", "blue"])),
      fc.embedding_column(fc.categorical_column_with_identity("d", 4), 3)]
  dnn = _train(estlab.DNNClassifier([6], columns, n_classes=3,
                                    label_vocabulary=["no", "yes", "maybe"],
                                    model_dir=str(root / "d"), config=_CONFIG),
               features, np.array(["no", "yes"])[y])
  out["dnn"] = (dnn, *_both(
      dnn, root / "dnn", estlab.export.build_parsing_serving_input_receiver_fn(
          fc.make_parse_example_spec(columns))))
  return {k: types.SimpleNamespace(estimator=v[0], saved=v[1], own=v[2],
                                   path=v[3], root=root) for k, v in out.items()}


def _assert_same(tf_out, own_out):
  assert sorted(tf_out) == sorted(own_out)
  for key, expected in own_out.items():
    got = tf_out[key].numpy()
    if expected.dtype == object:
      np.testing.assert_array_equal(got.astype(str), expected.astype(str))
    else:
      np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_custom_model_fn_answers_as_estlab_export_at_two_batch_sizes(exports):
  case = exports["custom"]
  assert sorted(case.saved.signatures) == sorted(case.own.signatures) == [
      "predict", "serving_default"]
  rng = np.random.default_rng(1)
  for batch in (3, 7):  # one SavedModel, a polymorphic batch dimension
    x = rng.normal(size=(batch, 2)).astype(np.float32)
    for name, signature in case.own.signatures.items():
      got = case.saved.signatures[name](x=tf.constant(x))
      assert got["logits"].shape == (batch, 3)
      _assert_same(got, signature({"x": x}))


# b missing (third row) or NaN (fourth): its default_value, 0.5.
_NUMERIC_ROWS = [{"a": [-1.0], "b": [0.5]}, {"a": [0.2], "b": [-2.0]},
                 {"a": [1.5]}, {"a": [3.0], "b": [float("nan")]}]


@pytest.mark.parametrize("model, names", [
    ("linear", ["classification", "predict", "regression", "serving_default"]),
    ("regressor", ["predict", "regression", "serving_default"])])
def test_linear_models_answer_examples_as_estlab_export(exports, model, names):
  case = exports[model]
  assert sorted(case.saved.signatures) == sorted(case.own.signatures) == names
  examples = _examples(_NUMERIC_ROWS)
  for name, signature in case.own.signatures.items():
    key = _examples_input(case.saved, name)
    assert key == ("examples" if name == "predict" else "inputs")
    got = case.saved.signatures[name](**{key: tf.constant(examples)})
    _assert_same(got, signature(examples=examples))
  if model == "linear":
    got = case.saved.signatures["predict"](examples=tf.constant(examples))
    assert set(got["classes"].numpy().ravel()) <= {b"0", b"1"}
    assert got["class_ids"].dtype == tf.int64  # as TF's heads give them


def test_a_missing_required_feature_is_tfs_parse_error(exports):
  signature = exports["linear"].saved.signatures["serving_default"]
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="Feature: a .* is required"):
    signature(inputs=tf.constant(_examples([{"b": [1.0]}])))


def test_dnn_classifier_parses_varlen_features_as_estlab_export(exports):
  case = exports["dnn"]
  rows = [
      {"a": [-1.0], "b": [0.5], "c": ["red"], "d": [0]},
      {"a": [0.2], "b": [-2.0], "c": ["green", "blue"], "d": [3, 1]},
      {"a": [0.7], "b": [0.1], "d": [2]},  # c missing: no values
      {"a": [3.0], "b": [1.0], "c": ["purple"]},  # out of vocabulary
      {"a": [-0.2], "b": [0.0], "c": ["blue"], "d": [3]}]
  examples = _examples(rows)
  for name, signature in case.own.signatures.items():
    key = _examples_input(case.saved, name)
    got = case.saved.signatures[name](**{key: tf.constant(examples)})
    _assert_same(got, signature(examples=examples))
  got = case.saved.signatures["predict"](examples=tf.constant(examples))
  assert set(got["classes"].numpy().ravel()) <= {b"no", b"yes", b"maybe"}
  # Every example without a VarLenFeature: a zero-width batch of it.
  examples = _examples([{"a": [0.3], "b": [1.0]}, {"a": [-0.3], "b": [2.0]}])
  _assert_same(case.saved.signatures["classification"](
      inputs=tf.constant(examples)),
               case.own.signatures["classification"](examples=examples))


def _hashed_data():
  rng = np.random.default_rng(3)
  a = rng.normal(size=_N).astype(np.float32)
  h = rng.choice(["foo", "bar", "baz", "qux", "a", "b"], size=_N).astype(object)
  k = rng.integers(0, 10, size=_N)
  c = rng.choice(["red", "green", "blue", "teal"], size=_N).astype(object)
  w = rng.uniform(0.5, 2.0, size=_N).astype(np.float32)
  y = ((a > 0) ^ (k % 2 == 0) ^ np.isin(h, ["foo", "a"])).astype(np.int64)
  return {"a": a, "h": h, "k": k, "c": c, "w": w}, y


def _hashed_columns():
  a = fc.numeric_column("a")
  colors = fc.categorical_column_with_vocabulary_list(
      "c", ["red", "green", "blue"], num_oov_buckets=2)
  return {
      "h": fc.categorical_column_with_hash_bucket("h", 20),
      "k": fc.categorical_column_with_hash_bucket("k", 10, dtype="int64"),
      "cross": fc.crossed_column(
          ["h", fc.bucketized_column(a, [-0.5, 0.0, 0.5])], 50,
          hash_key=0x5EED),
      "c": colors, "weighted": fc.weighted_categorical_column(colors, "w"),
      "a": a}


@pytest.fixture(scope="module")
def hashed_exports(tmp_path_factory):
  root = tmp_path_factory.mktemp("tf_saved_model_hashed")
  features, y = _hashed_data()
  out = {}
  cols = _hashed_columns()
  linear_columns = [cols[k] for k in ("h", "k", "cross", "c", "weighted")]
  linear = _train(estlab.LinearClassifier(
      linear_columns, model_dir=str(root / "l"), config=_CONFIG), features, y)
  out["linear"] = _both(linear, root / "linear",
                        estlab.export.build_parsing_serving_input_receiver_fn(
                            fc.make_parse_example_spec(linear_columns)))

  dnn_columns = [cols["a"], fc.embedding_column(cols["h"], 4),
                 fc.embedding_column(cols["k"], 3), fc.indicator_column(cols["c"])]
  dnn = _train(estlab.DNNClassifier([6], dnn_columns, n_classes=3,
                                    model_dir=str(root / "d"), config=_CONFIG),
               features, y + (features["a"] > 1))
  out["dnn"] = _both(dnn, root / "dnn",
                     estlab.export.build_parsing_serving_input_receiver_fn(
                         fc.make_parse_example_spec(dnn_columns)))

  # A raw receiver takes what the columns encode (ids), as estlab's does.
  encoded = fc.encode(linear_columns, {k: v[:1] for k, v in features.items()})
  out["raw"] = _both(linear, root / "raw",
                     estlab.export.build_raw_serving_input_receiver_fn(encoded))
  return {k: types.SimpleNamespace(saved=v[0], own=v[1], path=v[2])
          for k, v in out.items()}


# Ragged VarLen rows, OOV values (purple, mauve, teal), missing features,
# empty strings and -1 (no value), a zero weight (drops its value).
_HASHED_ROWS = [
    {"a": [-1.0], "h": ["foo"], "k": [3], "c": ["red"], "w": [1.0]},
    {"a": [0.2], "h": ["a", "b"], "k": [-1, 12], "c": ["green", "purple"],
     "w": [0.5, 2.0]},
    {"a": [0.7]},
    {"a": [3.0], "h": ["", "zz"], "k": [7], "c": ["", "blue", "mauve"],
     "w": [1.0, 0.0, 3.0]},
    {"a": [-0.2], "h": [""], "c": ["teal"], "w": [1.5]},
    {"a": [0.0], "h": ["qux", "baz", "foo"], "k": [0, 9, 4, 123456789]}]


@pytest.mark.parametrize("model", ["linear", "dnn"])
def test_hashed_crossed_and_oov_columns_answer_as_estlab_export(
    hashed_exports, model):
  case = hashed_exports[model]
  assert sorted(case.saved.signatures) == sorted(case.own.signatures)
  rows = [{k: v for k, v in row.items()
           if k in ("a", "h", "k", "c") or model == "linear"}
          for row in _HASHED_ROWS]
  for batch in (rows, rows[1:2], rows[2:3]):  # ragged, one row, no VarLen
    examples = _examples(batch)
    for name, signature in case.own.signatures.items():
      key = _examples_input(case.saved, name)
      got = case.saved.signatures[name](**{key: tf.constant(examples)})
      _assert_same(got, signature(examples=examples))


def test_hashed_ids_reach_the_model(hashed_exports):
  # Rows differing only in a hashed, crossed or OOV value answer differently
  # (the ids are not all dropped), the same in both exports.
  case = hashed_exports["linear"]
  rows = [{"a": [0.3], "h": [word], "c": [color], "w": [1.0]}
          for word in ("foo", "bar") for color in ("teal", "mauve", "red")]
  examples = _examples(rows)
  got = case.saved.signatures["predict"](examples=tf.constant(examples))
  logits = got["logits"].numpy().ravel()
  assert len(set(np.round(logits, 5))) >= 4
  _assert_same(got, case.own.signatures["predict"](examples=examples))


def test_a_raw_receiver_takes_the_encoded_hashed_ids(hashed_exports):
  case = hashed_exports["raw"]
  assert sorted(case.saved.signatures) == sorted(case.own.signatures)
  features, _ = _hashed_data()
  encoded = fc.encode([_hashed_columns()[k] for k in (
      "h", "k", "cross", "c", "weighted")], {k: v[:5] for k, v in features.items()})
  flat = estlab.export._receivers.flatten_features(encoded)  # pylint: disable=protected-access
  for name, signature in case.own.signatures.items():
    got = case.saved.signatures[name](**{
        k.replace("/", "_"): tf.constant(v) for k, v in flat.items()})
    _assert_same(got, signature(encoded))


def test_a_weight_without_its_value_is_an_error_as_in_estlab(hashed_exports):
  case = hashed_exports["linear"]
  examples = _examples([{"a": [0.1], "h": ["foo"], "c": ["red", "blue"],
                         "w": [1.0]}])  # two colours, one weight
  with pytest.raises(tf.errors.InvalidArgumentError, match="c_weighted_by_w"):
    case.saved.signatures["predict"](examples=tf.constant(examples))
  with pytest.raises(ValueError, match="c_weighted_by_w"):
    case.own.signatures["predict"](examples=examples)


def _shown_signatures(path):
  """``saved_model_cli show --all``'s SignatureDefs, as the reference holds
  them: ``{name: {method_name, inputs, outputs}}``."""
  cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
  shown = subprocess.run(
      [str(cli), "show", "--dir", path, "--all"],
      capture_output=True, text=True, timeout=300, check=True,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout
  shown = shown.split("Concrete Functions:")[0]
  signatures = {}
  for block in re.split(r"^signature_def\['", shown, flags=re.M)[1:]:
    name, body = block.split("']:", 1)
    if name == "__saved_model_init_op":
      continue
    signature = {"method_name": re.search(r"Method name is: (\S+)",
                                          body).group(1),
                 "inputs": {}, "outputs": {}}
    for side, key, dtype, shape in re.findall(
        r"(inputs|outputs)\['([^']+)'\] tensor_info:\s+dtype: (\w+)\s+"
        r"shape: \(([^)]*)\)", body):
      signature[side][key] = {"dtype": dtype, "shape": [
          int(d) for d in shape.split(",") if d.strip()]}
    signatures[name] = signature
  return signatures


@pytest.mark.parametrize("model, reference", [
    ("linear", "LinearClassifier"), ("regressor", "LinearRegressor"),
    ("dnn", "DNNClassifier")])
def test_saved_model_cli_shows_the_signatures_tf_wrote(exports, model,
                                                       reference):
  # Names, dtypes, shapes and method names of inputs and outputs, as TF
  # 2.15's export_saved_model wrote them for the same estimator.
  assert _shown_signatures(exports[model].path) == _REFERENCE[reference]


def test_a_raw_receiver_keeps_dense_inputs_and_the_predict_method(exports):
  shown = _shown_signatures(exports["custom"].path)
  assert sorted(shown) == ["predict", "serving_default"]
  for signature in shown.values():
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"] == {"x": {"dtype": "DT_FLOAT",
                                         "shape": [-1, 2]}}


_TF_ONLY = """
import json, sys
for name in ('jax', 'jaxlib', 'flax', 'estlab'):  # what TF Serving lacks
  sys.modules[name] = None
import tensorflow as tf
def example(a, b):
  return tf.train.Example(features=tf.train.Features(feature={
      'a': tf.train.Feature(float_list=tf.train.FloatList(value=[a])),
      'b': tf.train.Feature(float_list=tf.train.FloatList(value=[b]))}
      )).SerializeToString()
out = tf.saved_model.load(sys.argv[1]).signatures['predict'](
    examples=tf.constant([example(0.3, 1.0), example(2.0, -1.0)]))
print(json.dumps(out['probabilities'].numpy().tolist()))
"""


def test_the_saved_model_runs_with_tensorflow_alone(exports):
  case = exports["linear"]
  done = subprocess.run([sys.executable, "-c", _TF_ONLY, case.path],
                        capture_output=True, text=True, timeout=300, check=True,
                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  expected = case.own.signatures["predict"]({"a": [[0.3], [2.0]],
                                             "b": [[1.0], [-1.0]]})
  np.testing.assert_allclose(json.loads(done.stdout.strip().splitlines()[-1]),
                             expected["probabilities"], rtol=1e-5)


def test_a_column_without_tf_ops_is_refused_naming_it(tmp_path):
  # Sequence columns pad steps in Python on the host: no TF ops for them.
  tokens = fc.sequence_categorical_column_with_vocabulary_list("tok", ["a", "b"])
  est = estlab.experimental.RNNClassifier(
      [fc.indicator_column(tokens)], units=[4], model_dir=str(tmp_path / "m"),
      config=_CONFIG)
  seqs = np.empty(8, object)
  seqs[:] = [["a", "b"], ["b"], ["a"], ["b", "b", "a"]] * 2
  est.train(estlab.inputs.numpy_input_fn(
      {"tok": seqs}, np.arange(8) % 2, batch_size=4, shuffle=False), steps=2)
  receiver = estlab.export.build_parsing_serving_input_receiver_fn(
      fc.make_parse_example_spec([tokens]))
  with pytest.raises(ValueError, match=r"'tok' \(SequenceCategorical"
                     r"Column\).*format='estlab'.*estlab serve"):
    est.export_saved_model(str(tmp_path / "tf"), receiver,
                           format="tf_saved_model")
  assert os.listdir(tmp_path / "tf") == []  # no half-written export left
  own = estlab.export.load(est.export_saved_model(str(tmp_path / "own"), receiver))
  assert own.signatures["predict"]({"tok": [["a", "b"]]})["class_ids"].shape == (
      1, 1)


def test_eval_mode_and_unknown_formats_are_refused(exports, tmp_path):
  est = exports["custom"].estimator
  supervised = estlab.export.build_raw_supervised_input_receiver_fn(
      {"x": np.zeros((1, 2), np.float32)}, np.zeros((1,), np.int64))
  with pytest.raises(ValueError, match="PREDICT only"):
    est.export_saved_model(str(tmp_path), supervised,
                           experimental_mode=estlab.ModeKeys.EVAL,
                           format="tf_saved_model")
  with pytest.raises(ValueError, match="PREDICT only"):
    est.experimental_export_all_saved_models(str(tmp_path), {
        estlab.ModeKeys.PREDICT: supervised, estlab.ModeKeys.EVAL: supervised},
                                             format="tf_saved_model")
  with pytest.raises(ValueError, match="'onnx'.*'tf_saved_model'"):
    est.export_saved_model(str(tmp_path), supervised, format="onnx")
  with pytest.raises(ValueError, match="'onnx'"):
    estlab.export.FinalExporter("final", supervised, format="onnx")


def test_exporters_write_saved_models_as_text_too(exports, tmp_path):
  case = exports["linear"]
  receiver = estlab.export.build_parsing_serving_input_receiver_fn(
      fc.make_parse_example_spec([fc.numeric_column("a"), fc.numeric_column(
          "b", default_value=0.5)]))
  exporter = estlab.export.FinalExporter("final", receiver, as_text=True,
                                         format="tf_saved_model")
  path = exporter.export(case.estimator, str(tmp_path), None, {}, True)
  assert "saved_model.pbtxt" in os.listdir(path)
  examples = _examples([{"a": [0.3], "b": [0.3]}])
  got = tf.saved_model.load(path).signatures["serving_default"](
      inputs=tf.constant(examples))
  _assert_same(got, case.own.signatures["serving_default"](examples=examples))


_WITHOUT_TF = """
import sys, flax.linen as nn, numpy as np, optax, estlab
def model_fn(features, labels, mode):
  y = nn.Dense(1)(features['x'])
  return estlab.EstimatorSpec(mode, predictions={'y': y}, train_op=optax.sgd(
      0.1), loss=None if labels is None else ((y[:, 0] - labels) ** 2).mean())
est = estlab.Estimator(model_fn, model_dir=sys.argv[1],
                       config=estlab.RunConfig(progress_bar=False))
est.train(lambda: [({'x': np.ones((2, 2), np.float32)}, np.ones(2, np.float32))])
receiver = estlab.export.build_raw_serving_input_receiver_fn(
    {'x': np.zeros((1, 2), np.float32)})
est.export_saved_model(sys.argv[1] + '/own', receiver)
print('tensorflow imported:', 'tensorflow' in sys.modules)
sys.modules['tensorflow'] = None
try:
  est.export_saved_model(sys.argv[1] + '/tf', receiver, format='tf_saved_model')
except ImportError as e:
  print('error:', e)
"""


def test_without_tensorflow_the_error_names_the_extra(tmp_path):
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(
      [str(pathlib.Path(estlab.__file__).parent.parent),
       os.environ.get("PYTHONPATH", "")])}
  done = subprocess.run([sys.executable, "-c", _WITHOUT_TF, str(tmp_path)],
                        capture_output=True, text=True, timeout=300, env=env)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "tensorflow imported: False" in done.stdout  # a normal export: no TF
  assert 'pip install "estlab[tensorflow]"' in done.stdout
  assert "format='estlab'" in done.stdout
