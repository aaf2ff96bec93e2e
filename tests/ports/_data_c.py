"""Local stand-ins for the data the ports ``test_r1_*`` / ``test_extra_*`` read.

Shared by those ports and by their TensorFlow reference scripts in
``reference/``, which run in another interpreter: this module imports only
numpy (and pandas where asked), never estlab or TensorFlow.

- MNIST: ``tf.keras.datasets.mnist.load_data()``'s shapes and dtypes
  (``(N, 28, 28)`` uint8 images, uint8 labels) built from scikit-learn's
  bundled 8x8 digits (``data/digits.csv.gz``, copied verbatim: 1797 images,
  values 0-16): each image scaled to 0-255, upsampled 3x to 24x24 and padded
  to 28x28; split 1497/300 with a fixed seed.
- Iris: the 150 rows of scikit-learn's bundled ``iris.csv`` (``data/iris.csv``,
  verbatim), split 120/30 with a fixed seed and written in the format of
  TensorFlow's ``iris_training.csv`` / ``iris_test.csv``.
"""
import gzip
import hashlib
import os

import numpy as np

from _data_a import iris_csvs  # noqa: F401  (the r1 guides' iris files)

_HERE = os.path.dirname(os.path.abspath(__file__))
DIGITS_CSV = os.path.join(_HERE, "data", "digits.csv.gz")

IRIS_COLUMNS = ['SepalLength', 'SepalWidth', 'PetalLength', 'PetalWidth',
                'Species']


def mnist_load_data(seed=0, num_eval=300):
  """A stand-in for ``tf.keras.datasets.mnist.load_data()``.

  Args:
    seed: the train/eval split's seed.
    num_eval: images held out for evaluation.

  Returns:
    ``((train_data, train_labels), (eval_data, eval_labels))``: uint8 images
    of shape ``(N, 28, 28)`` and uint8 labels 0-9, as Keras returns them.
  """
  with gzip.open(DIGITS_CSV, "rt") as f:
    rows = np.loadtxt(f, delimiter=",")
  images = rows[:, :64].reshape(-1, 8, 8) * (255.0 / 16.0)
  labels = rows[:, 64].astype(np.uint8)
  big = np.kron(images, np.ones((1, 3, 3)))              # 24x24
  big = np.pad(big, ((0, 0), (2, 2), (2, 2)))            # 28x28, as MNIST
  big = np.round(big).astype(np.uint8)
  order = np.random.default_rng(seed).permutation(len(big))
  train, test = order[num_eval:], order[:num_eval]
  return (big[train], labels[train]), (big[test], labels[test])


def fingerprint(arrays_or_paths):
  """A short SHA-256 of arrays (their bytes) or files (their contents), so a
  port can check it reads the data its reference run read."""
  digest = hashlib.sha256()
  for item in arrays_or_paths:
    if isinstance(item, (str, os.PathLike)):
      with open(item, "rb") as f:
        digest.update(f.read())
    else:
      digest.update(np.ascontiguousarray(item).tobytes())
  return digest.hexdigest()[:16]
