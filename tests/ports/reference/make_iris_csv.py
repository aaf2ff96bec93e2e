"""Writes tests/ports/data/iris_training.csv and iris_test.csv (run once).

TensorFlow's iris_training.csv / iris_test.csv (download.tensorflow.org) are
Fisher's 150 iris rows split 120/30, in the CSV format of scikit-learn's
bundled ``sklearn/datasets/data/iris.csv`` (a header line
``N,4,setosa,versicolor,virginica``, then 4 floats and the class id). No
download here: this splits scikit-learn's bundled copy, 40/10 rows per class,
in a shuffled order fixed by seed 0. Run with any Python that has
scikit-learn (e.g. /work/tf215/bin/python); the CSVs are committed.
"""
import os

import numpy as np
import sklearn.datasets

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "data")


def main():
  source = os.path.join(os.path.dirname(sklearn.datasets.__file__), "data",
                        "iris.csv")
  with open(source) as f:
    header, *lines = f.read().strip().splitlines()
  assert header.startswith("150,4,"), header
  labels = np.array([int(line.rsplit(",", 1)[1]) for line in lines])
  rng = np.random.default_rng(0)
  train, test = [], []
  for k in range(3):
    rows = rng.permutation(np.flatnonzero(labels == k))
    train += list(rows[:40])
    test += list(rows[40:])
  for name, rows in (("iris_training.csv", train), ("iris_test.csv", test)):
    rows = rng.permutation(rows)
    with open(os.path.join(OUT, name), "w") as f:
      f.write(f"{len(rows)},4,setosa,versicolor,virginica\n")
      f.writelines(lines[i] + "\n" for i in rows)


if __name__ == "__main__":
  main()
