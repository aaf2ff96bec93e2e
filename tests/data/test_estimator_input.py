"""Estimators train, evaluate and predict from ``lambda: Dataset...``.

The input_fns are written as tf.data tutorials write them, with
``tf.data`` replaced by ``estlab.data``.
"""
import numpy as np
import pandas as pd

import estlab
from estlab.data import AUTOTUNE, Dataset, _batching
from estlab.data.experimental import make_csv_dataset

import _models  # tests/_models.py (tests/ is on the path: its conftest)


def test_custom_model_fn_on_planned_datasets(tmp_path):
  x, y = _models.regression_data(128)
  est = estlab.Estimator(_models.linear_model_fn, str(tmp_path),
                         config=_models.quiet(), params={"learning_rate": 0.1})
  evaluate = lambda: Dataset.from_tensor_slices(({"x": x}, y)).batch(32)
  est.train(lambda: Dataset.from_tensor_slices(({"x": x}, y))
            .shuffle(128, seed=0).repeat().batch(16), steps=150)
  metrics = est.evaluate(evaluate)
  assert metrics["global_step"] == 150 and metrics["mse"] < 0.01
  predictions = list(est.predict(
      lambda: Dataset.from_tensor_slices({"x": x}).batch(50)))
  assert len(predictions) == 128
  np.testing.assert_allclose([p["pred"] for p in predictions], y, atol=0.2)


def test_custom_model_fn_on_element_path_datasets(tmp_path):
  x, y = _models.regression_data(64)

  def rows():
    yield from zip(x, y)

  def input_fn():
    return (Dataset.from_generator(rows, output_types=(np.float32, np.float32),
                                   output_shapes=((3,), ()))
            .map(lambda features, label: ({"x": features}, label))
            .repeat().batch(16).prefetch(AUTOTUNE))

  est = estlab.Estimator(_models.linear_model_fn, str(tmp_path),
                         config=_models.quiet(), params={"learning_rate": 0.1})
  est.train(input_fn, steps=100)
  metrics = est.evaluate(input_fn, steps=4)
  assert metrics["mse"] < 0.05


def _frame(n=400, seed=0):
  rng = np.random.default_rng(seed)
  df = pd.DataFrame({"age": rng.uniform(18, 70, n).astype(np.float32),
                     "city": rng.choice(["oslo", "rome", "lima"], n)})
  label = ((df["age"] > 40) | (df["city"] == "rome")).astype(np.int64)
  return df, label


def test_linear_classifier_on_a_dataframe_dataset_encodes_once(
    tmp_path, monkeypatch):
  df, label = _frame()
  encoded = []
  whole = _batching.ArrayTable.whole

  def counting_whole(table):  # the table, read whole to be encoded
    encoded.append(table)
    return whole(table)

  monkeypatch.setattr(_batching.ArrayTable, "whole", counting_whole)
  fc = estlab.feature_column
  age = fc.numeric_column("age", normalizer_fn=lambda x: (x - 40.0) / 15.0)
  columns = [age, fc.bucketized_column(fc.numeric_column("age"), [30, 40, 50]),
             fc.indicator_column(fc.categorical_column_with_vocabulary_list(
                 "city", ["oslo", "rome", "lima"]))]
  est = estlab.LinearClassifier(columns, model_dir=str(tmp_path),
                                config=_models.quiet())

  def train_input_fn():
    return Dataset.from_tensor_slices((dict(df), label)).shuffle(
        1000).repeat().batch(32)

  est.train(train_input_fn, steps=100)
  est.train(train_input_fn, steps=100)
  assert len(encoded) == 1  # one table, encoded once for TRAIN
  metrics = est.evaluate(
      lambda: Dataset.from_tensor_slices((dict(df), label)).batch(64))
  assert metrics["global_step"] == 200
  assert metrics["accuracy"] > 0.9
  predictions = list(est.predict(
      lambda: Dataset.from_tensor_slices(dict(df)).batch(64)))
  assert len(predictions) == len(df)
  classes = np.array([p["class_ids"][0] for p in predictions])
  assert np.mean(classes == label.to_numpy()) > 0.9


def test_linear_classifier_on_the_guides_csv_pipeline(tmp_path):
  """guide/estimator.ipynb's input_fn, tf.data -> estlab.data."""
  df, label = _frame(300)
  path = tmp_path / "train.csv"
  df.assign(survived=label).to_csv(path, index=False)

  def train_input_fn():
    titanic = make_csv_dataset(str(path), batch_size=32,
                               label_name="survived")
    return titanic.cache().repeat().shuffle(500).prefetch(AUTOTUNE)

  fc = estlab.feature_column
  columns = [fc.numeric_column("age"),
             fc.indicator_column(fc.categorical_column_with_vocabulary_list(
                 "city", ["oslo", "rome", "lima"]))]
  est = estlab.LinearClassifier(columns, model_dir=str(tmp_path / "model"),
                                config=_models.quiet())
  est.train(train_input_fn, steps=60)
  metrics = est.evaluate(lambda: make_csv_dataset(
      str(path), batch_size=50, label_name="survived", num_epochs=1,
      shuffle=False))
  assert metrics["global_step"] == 60 and 0 < metrics["loss"] < 1.0
