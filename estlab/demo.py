"""``estlab demo``: train, evaluate and checkpoint a penguin classifier.

The data is the Palmer penguins table that the ``palmerpenguins`` package
ships (344 rows; numeric and categorical columns with missing values), so the
demo needs no download. The model is a premade ``DNNClassifier`` over feature
columns: numeric ones with the median for missing values, categorical ones
shown as indicator columns, and the species names as the label vocabulary.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]
LABEL = "species"


def load_data(seed: int = 0):
  """The penguins table split 80/20: ``(train_df, test_df, species)``."""
  try:
    import palmerpenguins  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise SystemExit("estlab demo needs the palmerpenguins package: "
                     "pip install 'estlab[notebook]'") from e
  df = palmerpenguins.load_penguins()
  order = np.random.default_rng(seed).permutation(len(df))
  cut = int(0.8 * len(df))
  train, test = df.iloc[order[:cut]], df.iloc[order[cut:]]
  return train, test, sorted(df[LABEL].dropna().unique())


def feature_columns(train) -> list:
  """Numeric columns (missing -> train median, standardised) and categorical
  ones (missing values dropped), shown to the DNN as indicator columns."""
  import estlab  # pylint: disable=g-import-not-at-top
  fc = estlab.feature_column
  columns = []
  for name in NUMERIC:
    mean, std = float(train[name].mean()), float(train[name].std())
    columns.append(fc.numeric_column(
        name, default_value=float(train[name].median()),
        normalizer_fn=lambda x, m=mean, s=std: (x - m) / s))
  for name in CATEGORICAL:
    vocab = sorted(train[name].dropna().unique())
    columns.append(fc.indicator_column(
        fc.categorical_column_with_vocabulary_list(name, vocab)))
  return columns


def run(model_dir: str | None = None, steps: int = 600, progress_bar: bool = True,
        print_fn: Any = print) -> dict:
  """Trains and evaluates a DNNClassifier; returns the evaluation metrics."""
  import estlab  # pylint: disable=g-import-not-at-top
  train, test, species = load_data()
  model_dir = model_dir or tempfile.mkdtemp(prefix="estlab_demo_")
  print_fn(f"estlab demo: a DNNClassifier over feature columns tells "
           f"{len(species)} penguin species ({', '.join(species)}) apart, "
           f"from {len(train)} training rows with missing values.")
  print_fn(f"model_dir: {os.path.abspath(model_dir)}")
  print_fn(f"TensorBoard: tensorboard --logdir {os.path.abspath(model_dir)}")
  config = estlab.RunConfig(tf_random_seed=0, save_checkpoints_steps=200,
                            save_summary_steps=20, log_step_count_steps=200,
                            progress_bar=progress_bar)
  est = estlab.DNNClassifier(
      hidden_units=[32, 16], feature_columns=feature_columns(train),
      n_classes=len(species), label_vocabulary=species, model_dir=model_dir,
      optimizer="Adam", config=config)
  columns = NUMERIC + CATEGORICAL
  est.train(estlab.inputs.pandas_input_fn(
      train[columns], train[LABEL], batch_size=32, num_epochs=None,
      shuffle=True, seed=0), steps=steps)
  metrics = est.evaluate(estlab.inputs.pandas_input_fn(
      test[columns], test[LABEL], batch_size=64, shuffle=False))
  print_fn("checkpoints: " + ", ".join(
      str(s) for s in estlab.checkpoint.Checkpointer(model_dir).all_steps()))
  print_fn("eval: " + ", ".join(f"{k} = {float(v):.4f}" if k != "global_step"
                                else f"{k} = {int(v)}" for k, v in sorted(metrics.items())))
  return metrics
