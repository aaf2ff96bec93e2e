"""``export_saved_model(format='tf_saved_model')``: a TensorFlow SavedModel
for TF Serving. ``tf.saved_model.load`` of it answers every signature as
estlab's own export (``estlab.export.load``) does on the same rows, for a
custom model_fn and for premade estimators whose feature columns become TF
ops; ``saved_model_cli`` lists its signatures; columns without TF ops and a
missing TensorFlow are clear errors.
"""
import json
import os
import pathlib
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


def test_linear_classifier_answers_every_signature_as_estlab_export(exports):
  case = exports["linear"]
  assert sorted(case.saved.signatures) == sorted(case.own.signatures) == [
      "classification", "predict", "regression", "serving_default"]
  a = np.array([[-1.], [0.2], [1.5], [3.]], np.float32)
  b = np.array([[0.5], [-2.], [np.nan], [1.]], np.float32)  # NaN: default 0.5
  for name, signature in case.own.signatures.items():
    got = case.saved.signatures[name](a=tf.constant(a), b=tf.constant(b))
    _assert_same(got, signature({"a": a, "b": b}))
  classes = case.saved.signatures["predict"](a=tf.constant(a), b=tf.constant(b))
  assert set(classes["classes"].numpy().ravel()) <= {b"0", b"1"}


def test_dnn_classifier_columns_run_as_tf_ops_like_estlab_export(exports):
  case = exports["dnn"]
  a = np.array([[-1.], [0.2], [0.7], [3.], [-0.2]], np.float32)
  b = np.array([[0.5], [-2.], [0.1], [1.], [0.]], np.float32)
  # VarLenFeatures: lists per example in estlab's export; in the SavedModel a
  # dense [batch, None] tensor padded with '' and -1 ("no value").
  c_lists = [["red"], ["green", "blue"], [], ["purple"], ["blue"]]
  d_lists = [[0], [3, 1], [2], [], [7 % 4]]
  c = tf.constant([row + [""] * (2 - len(row)) for row in c_lists])
  d = tf.constant([row + [-1] * (2 - len(row)) for row in d_lists], tf.int64)
  for name, signature in case.own.signatures.items():
    got = case.saved.signatures[name](a=tf.constant(a), b=tf.constant(b), c=c,
                                      d=d)
    _assert_same(got, signature({"a": a, "b": b, "c": c_lists, "d": d_lists}))
  got = case.saved.signatures["predict"](a=tf.constant(a), b=tf.constant(b),
                                         c=c, d=d)
  assert set(got["classes"].numpy().ravel()) <= {b"no", b"yes", b"maybe"}


def test_saved_model_cli_lists_the_signatures(exports):
  cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
  shown = subprocess.run(
      [str(cli), "show", "--dir", exports["linear"].path, "--all"],
      capture_output=True, text=True, timeout=300, check=True,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}).stdout
  for name in ("serving_default", "predict", "classification", "regression"):
    assert f"signature_def['{name}']" in shown
  assert "inputs['a'] tensor_info" in shown
  assert "outputs['classes'] tensor_info" in shown


_TF_ONLY = """
import json, sys
for name in ('jax', 'jaxlib', 'flax', 'estlab'):  # what TF Serving lacks
  sys.modules[name] = None
import tensorflow as tf
out = tf.saved_model.load(sys.argv[1]).signatures['predict'](
    a=tf.constant([[0.3], [2.0]]), b=tf.constant([[1.0], [-1.0]]))
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


def test_a_column_without_tf_ops_is_refused_naming_it(exports, tmp_path):
  features, y = _data()
  hashed = fc.indicator_column(fc.categorical_column_with_hash_bucket("c", 5))
  est = _train(estlab.LinearClassifier([hashed], model_dir=str(tmp_path / "m"),
                                       config=_CONFIG), features, y)
  receiver = estlab.export.build_parsing_serving_input_receiver_fn(
      fc.make_parse_example_spec([hashed]))
  with pytest.raises(ValueError, match=r"'c' \(HashedCategorical"
                     r"Column\).*format='estlab'.*estlab serve"):
    est.export_saved_model(str(tmp_path / "tf"), receiver,
                           format="tf_saved_model")
  assert os.listdir(tmp_path / "tf") == []  # no half-written export left
  own = estlab.export.load(est.export_saved_model(str(tmp_path / "own"), receiver))
  assert own.signatures["predict"]({"c": [["red"]]})["class_ids"].shape == (1, 1)


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
  a = np.array([[0.3]], np.float32)
  got = tf.saved_model.load(path).signatures["serving_default"](
      a=tf.constant(a), b=tf.constant(a))
  _assert_same(got, case.own.signatures["serving_default"]({"a": a, "b": a}))


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
