"""Warm start from a tf.estimator model_dir, read without TensorFlow.

``tf_reference/tf_checkpoints/{linear,dnn,custom}`` are model_dirs TF 2.15
trained (``tf_reference/tf_checkpoints_tf.py``: a LinearClassifier, a
DNNClassifier with an indicator and an embedding column, a custom model_fn
of ``tf.compat.v1.layers.dense`` with a partitioned embedding and string,
bool and int variables); ``tf_checkpoints_tf215.json`` holds TF's
predictions on the same rows and every variable as TF read it. estlab's
estimators warm-started from them save their starting state at step 0 (a
save cadence is set) and predict from it what TF predicted.
"""
import json
import os
import shutil
import subprocess
import sys

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import estlab
from estlab.checkpoint import _tf_format
from estlab.checkpoint import inspect as ckpt_inspect

fc = estlab.feature_column
_REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                    "tf_reference")
_DIRS = os.path.join(_REF, "tf_checkpoints")
with open(os.path.join(_REF, "tf_checkpoints_tf215.json")) as _f:
  _TF = json.load(_f)
ROWS = {k: np.array(v) for k, v in _TF["rows"].items()}
ROWS["x1"], ROWS["x2"] = (ROWS["x1"].astype(np.float32),
                          ROWS["x2"].astype(np.float32))
LABELS = np.array([[1], [0], [1], [0], [1], [0]])
COLORS, SHAPES = ["red", "green", "blue"], ["circle", "square", "triangle"]


def _dir(name):
  return os.path.join(_DIRS, name)


def _input_fn():
  return dict(ROWS), LABELS


def _numeric_input_fn():
  """The custom model_fn's rows: no strings (they never enter jit)."""
  return {k: ROWS[k] for k in ("x1", "x2", "id")}, LABELS.astype(np.float32)


def _config(model_dir):
  return estlab.RunConfig(model_dir=str(model_dir), save_checkpoints_steps=100,
                          save_summary_steps=None, log_step_count_steps=None)


def _start(est, model_dir, input_fn=_input_fn):
  """The warm-started state's predictions: train writes step 0 first."""
  est.train(input_fn, steps=1)
  assert estlab.checkpoint.latest_checkpoint(model_dir).endswith("1")
  return list(est.predict(lambda: input_fn()[0],
                          checkpoint_path=os.path.join(model_dir, "0")))


def test_reader_reads_what_tensorflow_read():
  for name in ("linear", "dnn", "custom"):
    reader = _tf_format.TFCheckpointReader(_dir(name))
    want = _TF["models"][name]["variables"]
    values = reader.read_all()
    assert sorted(values) == sorted(want)
    for var, value in values.items():
      assert list(value.shape) == want[var]["shape"], var
      got = ([s.decode() for s in value.ravel()] if value.dtype == object
             else value.ravel().tolist())
      assert got == want[var]["value"], var
      assert reader.variable_dtypes()[var] == (
          "string" if want[var]["dtype"] == "object" else want[var]["dtype"])
  # TF saved the partitioned embedding as two slices; they are joined.
  custom = _tf_format.TFCheckpointReader(_dir("custom"))
  assert custom.read("ids_embedding").shape == (6, 2)
  assert custom.read("tags").tolist() == [b"alpha", b"be"]
  assert custom.read("flags").dtype == np.bool_


def test_linear_classifier_predicts_what_tf_predicted(tmp_path):
  columns = [fc.numeric_column("x1"), fc.numeric_column("x2"),
             fc.categorical_column_with_vocabulary_list("color", COLORS)]
  est = estlab.LinearClassifier(columns, config=_config(tmp_path),
                                warm_start_from=_dir("linear"))
  preds = _start(est, tmp_path)
  tf = _TF["models"]["linear"]
  np.testing.assert_allclose([p["logits"] for p in preds], tf["logits"],
                             atol=1e-5)
  np.testing.assert_allclose([p["probabilities"] for p in preds],
                             tf["probabilities"], atol=1e-5)
  # global_step is not warm-started: training went on from 0, not 5.
  assert est.get_variable_value("global_step") == 1


def test_dnn_classifier_from_a_checkpoint_prefix(tmp_path):
  columns = [fc.numeric_column("x1"), fc.numeric_column("x2"),
             fc.indicator_column(
                 fc.categorical_column_with_vocabulary_list("color", COLORS)),
             fc.embedding_column(
                 fc.categorical_column_with_vocabulary_list("shape", SHAPES),
                 2)]
  prefix = os.path.join(_dir("dnn"), "model.ckpt-5")
  est = estlab.DNNClassifier(
      [4, 3], columns, n_classes=3, config=_config(tmp_path),
      warm_start_from=estlab.WarmStartSettings(prefix))
  preds = _start(est, tmp_path)
  tf = _TF["models"]["dnn"]
  np.testing.assert_allclose([p["logits"] for p in preds], tf["logits"],
                             atol=1e-5)
  np.testing.assert_allclose([p["probabilities"] for p in preds],
                             tf["probabilities"], atol=1e-5)


def _custom_model_fn(features, labels, mode):
  x = jnp.concatenate([features["x1"], features["x2"]], 1)
  hidden = nn.relu(nn.Dense(3, name="hidden")(x))
  embedded = nn.Embed(6, 2, name="ids_embedding")(features["id"][:, 0])
  logits = nn.Dense(1, name="logits")(jnp.concatenate([hidden, embedded], 1))
  predictions = {"logits": logits}
  if mode == estlab.ModeKeys.PREDICT:
    return estlab.EstimatorSpec(mode, predictions=predictions)
  loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))
  return estlab.EstimatorSpec(mode, loss=loss, train_op=optax.sgd(0.1),
                              predictions=predictions)


def test_custom_model_fn_loads_by_name_and_renames(tmp_path):
  settings = estlab.WarmStartSettings(
      _dir("custom"), vars_to_warm_start=[".*"],
      var_name_to_prev_var_name={"ids_embedding/embedding": "ids_embedding"})
  est = estlab.Estimator(_custom_model_fn, config=_config(tmp_path),
                         warm_start_from=settings)
  preds = _start(est, tmp_path, _numeric_input_fn)
  np.testing.assert_allclose([p["logits"] for p in preds],
                             _TF["models"]["custom"]["logits"], atol=1e-5)
  start = ckpt_inspect.variable_values(str(tmp_path), step=0)
  tf_vars = _TF["models"]["custom"]["variables"]
  for name, tf_name in (("hidden/kernel", "hidden/kernel"),
                        ("logits/bias", "logits/bias"),
                        ("ids_embedding/embedding", "ids_embedding")):
    np.testing.assert_array_equal(start[name].ravel(),
                                  tf_vars[tf_name]["value"])


def test_without_a_rename_the_error_names_tf_variables(tmp_path):
  est = estlab.Estimator(_custom_model_fn, config=_config(tmp_path),
                         warm_start_from=_dir("custom"))
  with pytest.raises(ValueError, match="ids_embedding/embedding") as e:
    est.train(_numeric_input_fn, steps=1)
  assert "var_name_to_prev_var_name" in str(e.value)
  assert "'hidden/kernel/Adagrad'" in str(e.value)  # the checkpoint's names


def test_vocab_info_remaps_a_tf_variable(tmp_path):
  new_colors = ["blue", "red", "yellow"]
  columns = [fc.numeric_column("x1"), fc.numeric_column("x2"),
             fc.categorical_column_with_vocabulary_list("color", new_colors)]
  name = "linear/linear_model/color/weights"
  settings = estlab.WarmStartSettings(
      _dir("linear"), var_name_to_vocab_info={name: estlab.VocabInfo(
          new_colors, 3, 0, COLORS)})
  est = estlab.LinearClassifier(columns, config=_config(tmp_path),
                                warm_start_from=settings)
  est.train(_input_fn, steps=1)
  start = ckpt_inspect.variable_values(str(tmp_path), step=0)
  old = np.array(_TF["models"]["linear"]["variables"][name]["value"])
  np.testing.assert_array_equal(start[name][:, 0], [old[2], old[0], 0.0])
  # The others (vars_to_warm_start='.*') load as they are.
  np.testing.assert_array_equal(
      start["linear/linear_model/x1/weights"].ravel(),
      _TF["models"]["linear"]["variables"]["linear/linear_model/x1/weights"]
      ["value"])


def test_inspect_lists_a_tf_model_dir():
  rows = ckpt_inspect.list_checkpoints(_dir("dnn"))
  assert [r["step"] for r in rows] == [5]
  assert rows[0]["path"] == os.path.join(_dir("dnn"), "model.ckpt-5")
  assert ckpt_inspect.checkpoint_format(_dir("dnn")) == "tensorflow"
  out = subprocess.run(
      [sys.executable, "-m", "estlab", "inspect", _dir("custom")],
      capture_output=True, text=True, timeout=120,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert out.returncode == 0, out.stderr[-3000:]
  assert "TensorFlow checkpoints in" in out.stdout
  assert "model.ckpt-5" in out.stdout and "variables at step 5" in out.stdout
  lines = {line.split()[0]: line for line in out.stdout.splitlines()
           if line.strip()}
  assert "[6, 2]" in lines["ids_embedding"]
  assert "float32" in lines["ids_embedding"]
  assert "string" in lines["tags"] and "bool" in lines["flags"]
  assert "int64" in lines["global_step"]


_BLOCKED = """
import json, sys
sys.modules['tensorflow'] = None  # any import of TensorFlow now fails
import jax, numpy as np
from estlab import warm_starting
from estlab.checkpoint import _tf_format
params = {'dnn': {'logits': {'kernel': np.zeros((3, 3), np.float32),
                             'bias': np.zeros(3, np.float32)}}}
out = warm_starting.warm_start(params, warm_starting.WarmStartSettings(
    sys.argv[1], vars_to_warm_start='dnn/logits/.*'))
names = sorted(_tf_format.TFCheckpointReader(sys.argv[1]).read_all())
print(json.dumps({'kernel': np.asarray(out['dnn']['logits']['kernel'])
                  .ravel().tolist(), 'names': names}))
"""


def test_reader_and_warm_start_work_with_tensorflow_blocked():
  out = subprocess.run(
      [sys.executable, "-c", _BLOCKED, _dir("dnn")], capture_output=True,
      text=True, timeout=120, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert out.returncode == 0, out.stderr[-3000:]
  got = json.loads(out.stdout.strip().splitlines()[-1])
  tf = _TF["models"]["dnn"]["variables"]
  assert got["names"] == sorted(tf)
  assert got["kernel"] == tf["dnn/logits/kernel"]["value"]


@pytest.fixture(name="copy")
def _copy(tmp_path):
  target = tmp_path / "tf_dir"
  shutil.copytree(_dir("custom"), target)
  return target


def test_truncated_index_names_the_file(copy):
  index = copy / "model.ckpt-5.index"
  index.write_bytes(index.read_bytes()[:-10])
  with pytest.raises(ValueError, match="model.ckpt-5.index") as e:
    _tf_format.TFCheckpointReader(str(copy))
  assert "truncated" in str(e.value)
  index.write_bytes(b"not a table" * 10)
  with pytest.raises(ValueError, match="magic number"):
    _tf_format.TFCheckpointReader(str(copy))


def test_damaged_index_block_fails_its_checksum(copy):
  index = copy / "model.ckpt-5.index"
  data = bytearray(index.read_bytes())
  data[20] ^= 0xFF  # inside the first data block
  index.write_bytes(bytes(data))
  with pytest.raises(ValueError, match="checksum"):
    _tf_format.TFCheckpointReader(str(copy))


def test_truncated_or_damaged_data_names_the_file_and_tensor(copy, tmp_path):
  data = copy / "model.ckpt-5.data-00000-of-00001"
  raw = data.read_bytes()
  data.write_bytes(raw[:40])
  reader = _tf_format.TFCheckpointReader(str(copy))
  with pytest.raises(ValueError, match="data-00000-of-00001") as e:
    reader.read_all()
  assert "truncated" in str(e.value)
  # Through a warm start too: the error says which file.
  est = estlab.Estimator(_custom_model_fn, config=_config(tmp_path / "m"),
                         warm_start_from=estlab.WarmStartSettings(
                             str(copy), vars_to_warm_start="logits/.*"))
  with pytest.raises(ValueError, match="data-00000-of-00001"):
    est.train(_numeric_input_fn, steps=1)
  damaged = bytearray(raw)
  damaged[-1] ^= 0xFF
  data.write_bytes(bytes(damaged))
  with pytest.raises(ValueError, match="checksum"):
    _tf_format.TFCheckpointReader(str(copy)).read_all()


def test_state_file_naming_a_missing_checkpoint(copy):
  (copy / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-9"\n')
  with pytest.raises(ValueError, match="model.ckpt-9") as e:
    _tf_format.TFCheckpointReader(str(copy))
  assert "model_dir/model.ckpt-N" in str(e.value)
  with pytest.raises(ValueError, match="No TensorFlow checkpoint"):
    _tf_format.TFCheckpointReader(str(copy / "nothing_here"))


def test_slice_keys_encode_as_tensorflow_does():
  # checkpoint::EncodeTensorNameSlice("a", [0:2, full]) per ordered_code.cc:
  # \x00, "a" \x00\x01, 2 dims, start 0 -> \x80, length 2 -> \x82, start 0,
  # full extent -1 -> \x7f; a 2-byte number for 100.
  assert _tf_format._slice_key("a", [(0, 2), (0, -1)]) == (
      b"\x00a\x00\x01\x01\x02\x80\x82\x80\x7f")
  assert _tf_format._signed_num_increasing(100) == b"\xc0\x64"
  assert _tf_format._signed_num_increasing(-100) == b"\x3f\x9c"
