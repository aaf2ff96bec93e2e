"""Warm-starting variables whose vocabulary changed: ``estlab.VocabInfo``.

The old models learn over vocabulary ['a', 'b', 'c'] (labels ['x', 'y',
'z']); the new ones, over ['c', 'a', 'd'] (labels ['z', 'x', 'w']), are
warm-started from them and trained one step at learning rate 0, so their
variables are the warm-started values. Rows (columns, axis=1) move by token:
'c' and 'a' keep their old rows, 'd' and the OOV bucket get the backup
initializer's. ``tf_reference/warm_start_vocab_tf215.json`` holds TF 2.15's
result for the same setups (``warm_start_vocab_tf.py``): for each new row,
the old row it equals or null for the backup initializer's; estlab's must
be the same.
"""
import json
import os

import jax
import numpy as np
import optax
import pytest

import estlab
from estlab.warm_starting import remap_vocab

fc = estlab.feature_column
_TF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_reference",
                   "warm_start_vocab_tf215.json")
TOKENS = ["a", "a", "b", "c", "z", "z"]
LABELS = [1, 1, 0, 1, 0, 0]
HALF = jax.nn.initializers.constant(0.5)


def _tf(case):
  with open(_TF) as f:
    return json.load(f)[case]


@pytest.fixture(name="vocab")
def _vocab(tmp_path):
  def write(name, tokens):
    path = tmp_path / name
    path.write_text("".join(t + "\n" for t in tokens))
    return str(path)
  return {"old": write("old.txt", "abc"), "new": write("new.txt", "cad"),
          "old_labels": write("old_labels.txt", "xyz"),
          "new_labels": write("new_labels.txt", "zxw"), "dir": tmp_path}


def input_fn(labels, key="c"):
  return lambda: ({key: np.array([[t] for t in TOKENS])},
                  np.array([[l] for l in labels]))


def column(vocab, key="c"):
  return fc.categorical_column_with_vocabulary_file(
      key, vocab, vocabulary_size=3, num_oov_buckets=1)


def info(vocab, axis=0, oov=1, new="new", old="old", backup=HALF):
  return estlab.VocabInfo(vocab[new], 3, oov, vocab[old],
                          backup_initializer=backup, axis=axis)


def rows_from(old, new, axis):
  """For each new row (column), the old one it equals, or None for 0.5s."""
  old, new = np.moveaxis(old, axis, 0), np.moveaxis(new, axis, 0)
  out = []
  for row in new:
    same = [i for i, o in enumerate(old) if np.array_equal(o, row)]
    assert len(same) <= 1 and (same or np.all(row == 0.5)), (old, new)
    out.append(same[0] if same else None)
  return out


def run(old_est, new_est, var, prev_var=None, labels=LABELS, new_labels=LABELS,
        key="c"):
  old_est.train(input_fn(labels), steps=3)
  new_est.train(input_fn(new_labels, key), steps=1)
  return (old_est.get_variable_value(prev_var or var),
          new_est.get_variable_value(var))


def test_linear_weights_move_by_token_as_tf(vocab):
  var = "linear/linear_model/c/weights"
  old_dir = str(vocab["dir"] / "old")
  old, new = run(
      estlab.LinearClassifier([column(vocab["old"])], model_dir=old_dir),
      estlab.LinearClassifier(
          [column(vocab["new"])], optimizer=optax.sgd(0.0),
          warm_start_from=estlab.WarmStartSettings(
              old_dir, ".*", var_name_to_vocab_info={var: info(vocab)})),
      var)
  assert old.shape == new.shape == (4, 1)
  assert new[0] == old[2] and new[1] == old[0]   # 'c', 'a' copied
  assert new[2] == 0.5 and new[3] == 0.5          # 'd', OOV: backup
  assert rows_from(old, new, 0) == _tf("linear")["rows_from"]


def test_dnn_embedding_moves_by_token_as_tf(vocab):
  var = ("dnn/input_from_feature_columns/input_layer/c_embedding/"
         "embedding_weights")
  old_dir = str(vocab["dir"] / "old")
  old_est = estlab.DNNClassifier(
      [3], [fc.embedding_column(column(vocab["old"]), 2)], model_dir=old_dir)
  old, new = run(
      old_est, estlab.DNNClassifier(
          [3], [fc.embedding_column(column(vocab["new"]), 2)],
          optimizer=optax.sgd(0.0),
          warm_start_from=estlab.WarmStartSettings(
              old_dir, ".*", var_name_to_vocab_info={var: info(vocab)})),
      var)
  np.testing.assert_array_equal(new[:2], old[[2, 0]])
  np.testing.assert_array_equal(new[2:], 0.5)
  assert rows_from(old, new, 0) == _tf("dnn_embedding")["rows_from"]


def test_renamed_variable_with_vocab_only(vocab):
  """vars_to_warm_start=None: only the VocabInfo variables, found under
  their previous name."""
  var = "linear/linear_model/c/weights"
  new_var = "linear/linear_model/c2/weights"
  old_dir = str(vocab["dir"] / "old")
  new_est = estlab.LinearClassifier(
      [column(vocab["new"], "c2")], optimizer=optax.sgd(0.0),
      warm_start_from=estlab.WarmStartSettings(
          old_dir, None, var_name_to_vocab_info={new_var: info(vocab)},
          var_name_to_prev_var_name={new_var: var}))
  old_est = estlab.LinearClassifier([column(vocab["old"])], model_dir=old_dir)
  old, new = run(old_est, new_est, new_var, prev_var=var, key="c2")
  assert rows_from(old, new, 0) == _tf("linear_renamed")["rows_from"]
  # The bias is not warm-started (vars_to_warm_start=None): still zero.
  assert old_est.get_variable_value("linear/linear_model/bias_weights") != 0
  assert new_est.get_variable_value("linear/linear_model/bias_weights") == 0


def test_renamed_variable_without_vocab(vocab):
  old_dir = str(vocab["dir"] / "old")
  old_est = estlab.LinearClassifier([column(vocab["old"])], model_dir=old_dir)
  old_est.train(input_fn(LABELS), steps=3)
  new_est = estlab.LinearClassifier(
      [column(vocab["old"], "c2")], optimizer=optax.sgd(0.0),
      warm_start_from=estlab.WarmStartSettings(
          old_dir, "linear/linear_model/c2/.*", var_name_to_prev_var_name={
              "linear/linear_model/c2/weights":
                  "linear/linear_model/c/weights"}))
  new_est.train(input_fn(LABELS, "c2"), steps=1)
  np.testing.assert_array_equal(
      new_est.get_variable_value("linear/linear_model/c2/weights"),
      old_est.get_variable_value("linear/linear_model/c/weights"))


def test_output_layer_columns_move_with_the_label_vocabulary(vocab):
  """axis=1: the logits kernel's columns follow the classes, as TF; the
  bias (1-D, axis=0, which TF refuses) too."""
  kernel, bias = "dnn/logits/kernel", "dnn/logits/bias"
  emb = lambda: [fc.embedding_column(
      fc.categorical_column_with_vocabulary_list("c", list("abc")), 2)]
  old_dir = str(vocab["dir"] / "old")
  old_est = estlab.DNNClassifier([3], emb(), n_classes=3, model_dir=old_dir,
                                 label_vocabulary=["x", "y", "z"])
  label_info = lambda axis, backup: info(vocab, axis, 0, "new_labels",
                                         "old_labels", backup)
  new_est = estlab.DNNClassifier(
      [3], emb(), n_classes=3, label_vocabulary=["z", "x", "w"],
      optimizer=optax.sgd(0.0),
      warm_start_from=estlab.WarmStartSettings(
          old_dir, ["dnn/hiddenlayer.*", "dnn/input_from.*", "dnn/logits/.*"],
          var_name_to_vocab_info={kernel: label_info(1, HALF),
                                  bias: label_info(0, None)}))
  old, new = run(old_est, new_est, kernel, labels=list("xxyzyz"),
                 new_labels=list("zzxwxw"))
  assert rows_from(old, new, 1) == _tf("dnn_logits_axis1")["rows_from"]
  np.testing.assert_array_equal(new[:, :2], old[:, [2, 0]])
  old_bias = old_est.get_variable_value(bias)
  np.testing.assert_array_equal(new_est.get_variable_value(bias),
                                [old_bias[2], old_bias[0], 0.0])
  np.testing.assert_array_equal(
      new_est.get_variable_value("dnn/hiddenlayer_0/kernel"),
      old_est.get_variable_value("dnn/hiddenlayer_0/kernel"))


def test_remap_reads_only_old_vocab_size_entries():
  old = np.array([[1.0], [2.0], [3.0]])
  got = remap_vocab(old, np.zeros((3, 1), np.float32),
                    estlab.VocabInfo(["c", "a", "b"], 3, 0, ["a", "b", "c"],
                                     old_vocab_size=2),
                    jax.random.PRNGKey(0))
  assert got[:, 0].tolist() == [0.0, 1.0, 2.0]  # 'c' is past old_vocab_size


def test_backup_initializer_draws_new_rows():
  got = remap_vocab(np.ones((2, 8)), np.zeros((3, 8), np.float32),
                    estlab.VocabInfo(["a", "new"], 2, 1, ["a", "b"],
                                     backup_initializer=jax.nn.initializers
                                     .normal(1.0)),
                    jax.random.PRNGKey(1))
  np.testing.assert_array_equal(got[0], 1.0)
  assert np.all(got[1:] != 1.0) and np.std(got[1:]) > 0.3


@pytest.mark.parametrize("make,error,pattern", [
    (lambda v: estlab.VocabInfo(v["new"], 3, 1, v["old"], axis=2),
     ValueError, "axis"),
    (lambda v: estlab.VocabInfo(v["new"], 3, -1, v["old"]),
     ValueError, "num_oov_buckets"),
    (lambda v: estlab.VocabInfo(v["new"], 3, 1, v["old"],
                                backup_initializer=0.5),
     TypeError, "JAX initializer"),
])
def test_vocab_info_rejects_bad_arguments(vocab, make, error, pattern):
  with pytest.raises(error, match=pattern):
    make(vocab)


@pytest.mark.parametrize("settings,pattern", [
    (dict(var_name_to_vocab_info="linear/linear_model/typo/weights"),
     "not variables selected"),
    (dict(var_name_to_prev_var_name="linear/linear_model/typo/weights"),
     "not variables selected"),
    (dict(size=4), r"new_vocab_size=4 must be in \[1, 3\]"),
    (dict(oov=0), "new_vocab_size \\+ num_oov_buckets = 3 \\+ 0 = 3"),
    (dict(backup=lambda shape, dtype: np.zeros(shape)),
     "must be a JAX initializer"),
])
def test_warm_start_says_what_is_wrong(vocab, settings, pattern):
  old_dir = str(vocab["dir"] / "old")
  estlab.LinearClassifier([column(vocab["old"])], model_dir=old_dir).train(
      input_fn(LABELS), steps=1)
  var = "linear/linear_model/c/weights"
  vi = estlab.VocabInfo(vocab["new"], settings.get("size", 3),
                        settings.get("oov", 1), vocab["old"],
                        backup_initializer=settings.get("backup"))
  vocab_name = settings.get("var_name_to_vocab_info", var)
  prev = settings.get("var_name_to_prev_var_name")
  new_est = estlab.LinearClassifier(
      [column(vocab["new"])], warm_start_from=estlab.WarmStartSettings(
          old_dir, ".*", var_name_to_vocab_info={vocab_name: vi},
          var_name_to_prev_var_name={prev: var} if prev else None))
  with pytest.raises((ValueError, TypeError), match=pattern):
    new_est.train(input_fn(LABELS), steps=1)
