"""LinearClassifier/LinearRegressor(optimizer=experimental.LinearSDCA(...)).

TF 2.15's results on the same data come from
tests/tf_reference/linear_sdca_tf.py (linear_sdca_tf215.json).
"""
import json
import pathlib

import numpy as np
import pytest

import estlab
from estlab import feature_column as fc
from estlab.experimental import LinearSDCA

_TF = json.loads((pathlib.Path(__file__).parent.parent / "tf_reference" /
                  "linear_sdca_tf215.json").read_text())
_CASES = {case["name"]: case for case in _TF["cases"]}


def _config():
  return estlab.RunConfig(tf_random_seed=0, progress_bar=False)


def _columns():
  return [fc.numeric_column("x", shape=(2,)), fc.numeric_column("z"),
          fc.categorical_column_with_vocabulary_list("cat", ["a", "b", "c"])]


def _features(data, with_ids=True):
  features = {"x": np.array(data["x"], np.float32),
              "z": np.array(data["z"], np.float32),
              "cat": np.array(data["cat"], dtype=object)}
  if with_ids:
    features["example_id"] = np.array(data["example_id"], dtype=object)
  return features


def _input_fn(features, labels, epochs=None):
  return estlab.inputs.numpy_input_fn(
      features, labels, batch_size=len(next(iter(features.values()))),
      num_epochs=epochs, shuffle=False)


def _estimator(case, model_dir=None, **kwargs):
  sdca = LinearSDCA("example_id", symmetric_l1_regularization=case["l1"],
                    symmetric_l2_regularization=case["l2"], **kwargs)
  cls = (estlab.LinearRegressor if case["kind"] == "regression"
         else estlab.LinearClassifier)
  return cls(_columns(), optimizer=sdca, config=_config(), model_dir=model_dir)


def _weights(est):
  get = est.get_variable_value
  return {name: get(f"linear/linear_model/{name}/weights").reshape(-1)
          for name in ("x", "z", "cat")} | {
              "bias": get("linear/linear_model/bias_weights").reshape(-1)}


@pytest.mark.parametrize("name", sorted(_CASES))
def test_learns_tf_215s_weights(name, tmp_path):
  """The regularised objective has one minimum: after TF's steps both are
  there (TF visits examples in another random order, so not bit for bit)."""
  case = _CASES[name]
  est = _estimator(case, tmp_path)
  labels = np.array(case["data"]["label"], np.float32)
  est.train(_input_fn(_features(case["data"]), labels), steps=case["steps"])
  got = _weights(est)
  for key, want in case["weights"].items():
    np.testing.assert_allclose(got[key], want, atol=2e-3, err_msg=key)
  metrics = est.evaluate(_input_fn(_features(case["data"]), labels, epochs=1))
  assert metrics["loss"] == pytest.approx(case["metrics"]["loss"], abs=1e-3)
  if "accuracy" in case["metrics"]:
    assert metrics["accuracy"] == pytest.approx(case["metrics"]["accuracy"])
  if case["l1"]:  # L1's proximal step leaves exact zeros, as TF's
    assert (got["z"] == 0).all() and (got["bias"] == 0).all()


def test_regression_reaches_the_ridge_solution(tmp_path):
  """Squared loss + l2: w = (X'X + l2 I)^-1 X'y, the bias regularised too."""
  case = _CASES["regression_l2"]
  data = case["data"]
  onehot = (np.array(data["cat"])[:, None] == np.array(["a", "b", "c"])
            ).astype(np.float64)
  design = np.concatenate([np.array(data["x"]), np.array(data["z"]), onehot,
                           np.ones((len(onehot), 1))], axis=1)
  labels = np.array(data["label"], np.float64)
  ridge = np.linalg.solve(design.T @ design + case["l2"] * np.eye(7),
                          design.T @ labels)
  est = _estimator(case, tmp_path)
  est.train(_input_fn(_features(data), labels.astype(np.float32)), steps=100)
  w = _weights(est)
  got = np.concatenate([w["x"], w["z"], w["cat"], w["bias"]])
  np.testing.assert_allclose(got, ridge, atol=1e-3)


def test_separable_binary_problem_is_classified_exactly(tmp_path):
  """TF's sdca test: linearly separable data, accuracy 1 and a small loss."""
  rng = np.random.RandomState(0)
  x = rng.randn(200, 2).astype(np.float32)
  labels = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
  features = {"x": x, "example_id": np.array([f"e{i}" for i in range(200)],
                                             dtype=object)}
  est = estlab.LinearClassifier(
      [fc.numeric_column("x", shape=(2,))], model_dir=tmp_path,
      optimizer=LinearSDCA("example_id", symmetric_l2_regularization=0.1),
      config=_config())
  est.train(_input_fn(features, labels), steps=20)
  metrics = est.evaluate(_input_fn(features, labels, epochs=1))
  assert metrics["accuracy"] == 1.0
  assert metrics["loss"] < 0.1
  # Prediction and evaluation need no example ids.
  del features["example_id"]
  predictions = list(est.predict(_input_fn(features, None, epochs=1)))
  assert [int(p["class_ids"][0]) for p in predictions] == labels.tolist()


def test_resuming_from_a_checkpoint_keeps_the_duals(tmp_path):
  """Training 6 + 6 steps (the second call restores the checkpoint) ends
  where 12 uninterrupted steps do: the duals and unshrunk weights are in the
  train state. Without them the second call re-adds every example's step."""
  case = _CASES["classifier_l1"]
  features = _features(case["data"])
  labels = np.array(case["data"]["label"], np.float32)
  whole = _estimator(case, tmp_path / "whole")
  whole.train(_input_fn(features, labels), steps=12)
  split = _estimator(case, tmp_path / "split")
  split.train(_input_fn(features, labels), steps=6)
  resumed = _estimator(case, tmp_path / "split")
  resumed.train(_input_fn(features, labels), steps=6)
  assert resumed.get_variable_value("global_step") == 12
  for key, want in _weights(whole).items():
    np.testing.assert_allclose(_weights(resumed)[key], want, atol=1e-6,
                               err_msg=key)


def test_example_weights_count_as_repeated_examples(tmp_path):
  """A weight-2 example is (at the optimum) two copies of it: the weighted
  ridge solution."""
  case = _CASES["regression_l2"]
  data = case["data"]
  weight = np.where(np.arange(len(data["label"])) % 2 == 0, 2.0, 1.0
                    ).astype(np.float32)
  features = {**_features(data), "w": weight}
  labels = np.array(data["label"], np.float32)
  est = estlab.LinearRegressor(
      _columns(), weight_column="w", model_dir=tmp_path, config=_config(),
      optimizer=LinearSDCA("example_id", symmetric_l2_regularization=4.0))
  est.train(_input_fn(features, labels), steps=150)
  onehot = (np.array(data["cat"])[:, None] == np.array(["a", "b", "c"])
            ).astype(np.float64)
  design = np.concatenate([np.array(data["x"]), np.array(data["z"]), onehot,
                           np.ones((len(onehot), 1))], axis=1)
  ridge = np.linalg.solve(design.T @ (weight[:, None] * design) +
                          4.0 * np.eye(7), design.T @ (weight * labels))
  w = _weights(est)
  np.testing.assert_allclose(
      np.concatenate([w["x"], w["z"], w["cat"], w["bias"]]), ridge, atol=1e-3)


def test_missing_example_id_column_is_a_clear_error(tmp_path):
  case = _CASES["classifier_l2"]
  est = _estimator(case, tmp_path)
  labels = np.array(case["data"]["label"], np.float32)
  with pytest.raises(ValueError, match="example_id_column='example_id'"):
    est.train(_input_fn(_features(case["data"], with_ids=False), labels),
              steps=1)


def test_a_full_dual_table_is_a_clear_error(tmp_path):
  case = _CASES["classifier_l2"]
  est = _estimator(case, tmp_path, max_examples=8)  # 16 slots, 48 examples
  labels = np.array(case["data"]["label"], np.float32)
  with pytest.raises(ValueError, match="table of duals is full"):
    est.train(_input_fn(_features(case["data"]), labels), steps=2)


def test_unsupported_settings_raise_tf_errors():
  sdca = LinearSDCA("example_id")
  with pytest.raises(ValueError, match="multi-class setting"):
    estlab.LinearClassifier(_columns(), n_classes=3, optimizer=sdca)
  with pytest.raises(ValueError, match="one-dimensional label"):
    estlab.LinearRegressor(_columns(), label_dimension=2, optimizer=sdca)
  with pytest.raises(ValueError, match='sparse_combiner must be "sum"'):
    estlab.LinearClassifier(_columns(), optimizer=sdca, sparse_combiner="mean")
  with pytest.raises(ValueError, match="Unsupported head type"):
    estlab.LinearEstimator(estlab.heads.MultiLabelHead(3), _columns(),
                           optimizer=sdca)
  with pytest.raises(ValueError, match="should be positive"):
    estlab.LinearClassifier(_columns(), optimizer=LinearSDCA(
        "example_id", symmetric_l2_regularization=0.0))
  with pytest.raises(ValueError, match="non-negative"):
    estlab.LinearClassifier(_columns(), optimizer=LinearSDCA(
        "example_id", symmetric_l1_regularization=-1.0))


def test_logistic_sdca_takes_labels_0_or_1_only(tmp_path):
  case = _CASES["classifier_l2"]
  est = _estimator(case, tmp_path)
  labels = np.full(len(case["data"]["label"]), 0.5, np.float32)
  with pytest.raises(ValueError, match="Only labels of 0.0 or 1.0"):
    est.train(_input_fn(_features(case["data"]), labels), steps=1)


def test_adaptive_sampling_converges_too(tmp_path):
  case = _CASES["classifier_l2"]
  est = _estimator(case, tmp_path, adaptive=True)
  labels = np.array(case["data"]["label"], np.float32)
  est.train(_input_fn(_features(case["data"]), labels), steps=100)
  for key, want in case["weights"].items():
    np.testing.assert_allclose(_weights(est)[key], want, atol=2e-3,
                               err_msg=key)
