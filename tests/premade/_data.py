"""A small mixed-type table with a learnable signal, for premade tests."""
import numpy as np

import estlab
from estlab import feature_column as fc

CITIES = ["paris", "rome", "oslo", "lima"]


def table(n=600, seed=0):
  """Features (numeric, vocabulary with missing '', hashed) and labels."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=n).astype(np.float32)
  age = rng.uniform(18, 80, size=n).astype(np.float32)
  city = np.asarray(CITIES, dtype=object)[rng.integers(0, 4, n)]
  city[rng.random(n) < 0.1] = ""                     # missing values
  code = np.asarray([f"c{i}" for i in rng.integers(0, 50, n)], dtype=object)
  score = 2.0 * x + 1.5 * (city == "paris") - 1.0 * (city == "oslo") + 0.02 * (age - 50)
  features = {"x": x, "age": age, "city": city, "code": code}
  labels = {
      "binary": (score + 0.3 * rng.normal(size=n) > 0).astype(np.int64),
      "multi": np.digitize(score, [-1.0, 1.0]).astype(np.int64),
      "regression": (score + 0.1 * rng.normal(size=n)).astype(np.float32),
  }
  return features, labels


def columns():
  city = fc.categorical_column_with_vocabulary_list("city", CITIES)
  code = fc.categorical_column_with_hash_bucket("code", 20)
  age = fc.numeric_column("age", normalizer_fn=lambda a: (a - 50.0) / 20.0)
  linear = [fc.numeric_column("x"), age, city, code,
            fc.bucketized_column(fc.numeric_column("age"), [30, 50, 70])]
  dnn = [fc.numeric_column("x"), age, fc.indicator_column(city),
         fc.embedding_column(code, 4)]
  return linear, dnn


def input_fn(features, labels, batch_size=64, epochs=1, shuffle=False):
  return estlab.inputs.numpy_input_fn(features, labels, batch_size=batch_size,
                                      num_epochs=epochs, shuffle=shuffle, seed=0)
