"""Local stand-ins for the data the ported tutorials download (no network).

Shared by the ports (``test_tutorial_premade``, ``test_tutorial_linear``,
``test_guide_estimator``) and by their TensorFlow reference scripts in
``reference/``, which run in another interpreter: this module imports only
numpy and pandas, never estlab or TensorFlow.

- Iris: the 150 rows of scikit-learn's bundled ``iris.csv`` (copied verbatim
  to ``data/iris.csv``: the same measurements the tutorial's
  ``iris_training.csv``/``iris_test.csv`` hold), split 120/30 with a fixed
  seed and written in the tutorial's CSV format.
- Titanic: generated with the schema, value sets and rough marginals of
  ``tf-datasets/titanic/{train,eval}.csv`` (627 and 264 rows); survival
  depends on sex, class and age (and on sex by age), so models can learn.
"""
import hashlib
import os

import numpy as np
import pandas as pd

_HERE = os.path.dirname(os.path.abspath(__file__))
IRIS_CSV = os.path.join(_HERE, "data", "iris.csv")

TITANIC_COLUMNS = ["survived", "sex", "age", "n_siblings_spouses", "parch",
                   "fare", "class", "deck", "embark_town", "alone"]


def iris_csvs(directory, seed=0):
  """Writes ``iris_training.csv`` (120 rows) and ``iris_test.csv`` (30 rows).

  The format is the tutorial's files': a first line ``N,4,setosa,versicolor,
  virginica``, then ``SepalLength,SepalWidth,PetalLength,PetalWidth,Species``
  values with the species as 0, 1, 2.

  Args:
    directory: where to write them.
    seed: the split's seed.

  Returns:
    ``(train_path, test_path)``.
  """
  rows = np.loadtxt(IRIS_CSV, delimiter=",", skiprows=1)
  order = np.random.default_rng(seed).permutation(len(rows))
  paths = []
  for name, part in (("iris_training.csv", rows[order[:120]]),
                     ("iris_test.csv", rows[order[120:]])):
    path = os.path.join(str(directory), name)
    with open(path, "w") as f:
      f.write(f"{len(part)},4,setosa,versicolor,virginica\n")
      for r in part:
        f.write(f"{r[0]:.1f},{r[1]:.1f},{r[2]:.1f},{r[3]:.1f},{int(r[4])}\n")
    paths.append(path)
  return tuple(paths)


def _titanic(n, rng):
  cls = rng.choice(["First", "Second", "Third"], n, p=[0.24, 0.21, 0.55])
  sex = rng.choice(["male", "female"], n, p=[0.65, 0.35])
  age = np.clip(rng.normal(30.0 + 8.0 * (cls == "First"), 13.0, n), 0.42, 80.0)
  age = np.where(age < 1, np.round(age, 2), np.round(age))
  age[rng.random(n) < 0.2] = 28.0           # the CSV's fill for unknown ages
  sibsp = rng.choice([0, 1, 2, 3, 4, 5, 8], n,
                     p=[0.68, 0.23, 0.03, 0.02, 0.02, 0.01, 0.01])
  parch = rng.choice([0, 1, 2, 3, 4, 5], n, p=[0.76, 0.13, 0.09, 0.005, 0.005, 0.01])
  base = np.select([cls == "First", cls == "Second"], [60.0, 18.0], 9.0)
  fare = np.round(base * rng.lognormal(0.0, 0.6, n) * (1 + 0.2 * (sibsp + parch)), 4)
  fare[rng.random(n) < 0.01] = 0.0
  deck = np.full(n, "unknown", dtype=object)
  for c, decks, p_known in (("First", ["A", "B", "C", "D", "E"], 0.8),
                            ("Second", ["D", "E", "F"], 0.15),
                            ("Third", ["E", "F", "G"], 0.05)):
    known = (cls == c) & (rng.random(n) < p_known)
    deck[known] = rng.choice(decks, known.sum())
  embark = rng.choice(["Southampton", "Cherbourg", "Queenstown", "unknown"], n,
                      p=[0.72, 0.19, 0.085, 0.005])
  alone = np.where(sibsp + parch == 0, "y", "n")
  female = sex == "female"
  child = age < 13
  logit = (-1.75 + 2.9 * female + 1.1 * (cls == "First") + 0.3 * (cls == "Second")
           - 0.9 * (cls == "Third") * female - 0.015 * (age - 30)
           + 1.8 * (child & ~female) - 0.3 * (sibsp >= 3))
  survived = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
  return pd.DataFrame({
      "survived": survived, "sex": sex, "age": age, "n_siblings_spouses": sibsp,
      "parch": parch, "fare": fare, "class": cls, "deck": deck.astype(str),
      "embark_town": embark, "alone": alone})[TITANIC_COLUMNS]


def titanic(seed=0):
  """The stand-in Titanic tables, as read from the CSVs.

  Returns:
    ``(dftrain, dfeval)``: 627 and 264 rows, ``survived`` still a column.
  """
  rng = np.random.default_rng(seed)
  return _titanic(627, rng), _titanic(264, rng)


def titanic_csvs(directory, seed=0):
  """Writes ``train.csv`` and ``eval.csv``; returns their paths."""
  paths = []
  for name, frame in zip(("train.csv", "eval.csv"), titanic(seed)):
    path = os.path.join(str(directory), name)
    frame.to_csv(path, index=False)
    paths.append(path)
  return tuple(paths)


def fingerprint(paths):
  """sha256 of the files' bytes: the reference JSONs record which data they saw."""
  digest = hashlib.sha256()
  for path in paths:
    with open(path, "rb") as f:
      digest.update(f.read())
  return digest.hexdigest()
