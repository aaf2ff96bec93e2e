"""Local stand-ins for the data the ported programs download (no downloads).

Shared by the "ports-b" ports (tests/ports/test_migrate_*.py,
test_custom_estimator.py) and by their TensorFlow reference scripts in
tests/ports/reference/, which import this module so that both sides train on
the same rows. Uses numpy and pandas only (no TensorFlow, no JAX).

* Iris: TensorFlow's iris_training.csv / iris_test.csv are Fisher's 150 rows
  split 120/30; tests/ports/data/ holds the same split of scikit-learn's
  bundled copy, in the same CSV format (reference/make_iris_csv.py).
* Titanic: storage.googleapis.com/tf-datasets/titanic/{train,eval}.csv has
  627 and 264 rows; ``write_titanic_csvs`` writes two CSVs with that schema,
  those sizes and a survival signal like the real one (sex, class, age).
* MNIST: tfds' ``mnist`` with ``as_supervised=True`` gives (uint8 [28, 28, 1]
  image, int64 label) pairs, 60000 train and 10000 test; ``mnist`` returns
  arrays of that schema: a noisy stroke pattern per digit class.

``fingerprint`` summarises arrays so that a test can check it reads the rows
its reference run read (numpy's Generator streams are stable, but a reference
JSON should say what it was computed on).
"""
import functools
import os

import numpy as np
import pandas as pd

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
IRIS_TRAIN = os.path.join(DATA_DIR, "iris_training.csv")
IRIS_TEST = os.path.join(DATA_DIR, "iris_test.csv")

TITANIC_COLUMNS = ("survived", "sex", "age", "n_siblings_spouses", "parch",
                   "fare", "class", "deck", "embark_town", "alone")


def _titanic(n, seed):
  rng = np.random.default_rng(seed)
  sex = rng.choice(["male", "female"], n, p=[0.65, 0.35])
  cls = rng.choice(["First", "Second", "Third"], n, p=[0.24, 0.21, 0.55])
  age = np.round(np.clip(rng.normal(29.0, 13.0, n), 0.75, 80.0), 1)
  siblings = rng.choice([0, 1, 2, 3, 4, 5, 8], n,
                        p=[0.68, 0.23, 0.03, 0.02, 0.02, 0.01, 0.01])
  parch = rng.choice([0, 1, 2, 3, 4, 5], n, p=[0.76, 0.13, 0.08, 0.01, 0.01, 0.01])
  base_fare = np.select([cls == "First", cls == "Second"], [60.0, 20.0], 10.0)
  fare = np.round(base_fare * rng.lognormal(0.0, 0.5, n), 4)
  deck = np.where(cls == "First", rng.choice(list("ABCDE"), n),
                  np.where(rng.random(n) < 0.1, rng.choice(list("DEFG"), n),
                           "unknown"))
  embark = rng.choice(["Southampton", "Cherbourg", "Queenstown", "unknown"], n,
                      p=[0.72, 0.19, 0.085, 0.005])
  alone = np.where(siblings + parch == 0, "y", "n")
  logit = (2.4 * (sex == "female") + 1.0 * (cls == "First")
           - 1.1 * (cls == "Third") - 0.025 * (age - 30.0)
           - 0.25 * siblings - 1.1)
  survived = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
  return pd.DataFrame({
      "survived": survived, "sex": sex, "age": age,
      "n_siblings_spouses": siblings, "parch": parch, "fare": fare,
      "class": cls, "deck": deck, "embark_town": embark, "alone": alone},
      columns=list(TITANIC_COLUMNS))


def write_titanic_csvs(directory):
  """Writes train.csv (627 rows) and eval.csv (264 rows); returns both paths."""
  paths = []
  for name, n, seed in (("train.csv", 627, 1912), ("eval.csv", 264, 1913)):
    path = os.path.join(os.fspath(directory), name)
    _titanic(n, seed).to_csv(path, index=False)
    paths.append(path)
  return tuple(paths)


def _strokes(rng):
  """Ten 28x28 stroke patterns in [0, 1], one per digit class."""
  yy, xx = np.mgrid[0:28, 0:28].astype(np.float64)
  patterns = np.zeros((10, 28, 28))
  for k in range(10):
    for _ in range(3):
      (x0, y0), (x1, y1) = rng.uniform(5, 23, size=(2, 2))
      t = np.clip(((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0))
                  / ((x1 - x0) ** 2 + (y1 - y0) ** 2 + 1e-9), 0, 1)
      dist = np.hypot(xx - (x0 + t * (x1 - x0)), yy - (y0 + t * (y1 - y0)))
      patterns[k] = np.maximum(patterns[k], np.exp(-dist ** 2 / 3.0))
  return patterns


@functools.lru_cache(maxsize=2)
def mnist(split):
  """``(images, labels)``: uint8 [n, 28, 28, 1] and int64 [n], as tfds' mnist.

  Cached: each split is made once per process (read-only arrays).

  Args:
    split: 'train' (60000 rows) or 'test' (10000 rows).
  """
  n, seed = {"train": (60000, 0), "test": (10000, 1)}[split]
  patterns = _strokes(np.random.default_rng(1998))
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, n)
  shift = rng.integers(-2, 3, size=(n, 2))
  images = np.empty((n, 28, 28), np.float32)
  for k in range(10):
    for dy in range(-2, 3):
      for dx in range(-2, 3):
        rows = (labels == k) & (shift[:, 0] == dy) & (shift[:, 1] == dx)
        images[rows] = np.roll(patterns[k], (dy, dx), axis=(0, 1))
  images *= rng.uniform(0.5, 1.0, size=(n, 1, 1)).astype(np.float32)
  images += rng.normal(0.0, 0.35, size=images.shape).astype(np.float32)
  images = np.clip(images * 255.0, 0, 255).astype(np.uint8)
  images, labels = images[..., None], labels.astype(np.int64)
  images.flags.writeable = labels.flags.writeable = False
  return images, labels


def fingerprint(*arrays):
  """A short, exact summary of arrays: [[shape, sum as float], ...]."""
  out = []
  for a in arrays:
    a = np.asarray(a)
    out.append([list(a.shape), float(np.sum(a, dtype=np.float64))])
  return out
