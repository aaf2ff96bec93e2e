"""The seed's Titanic example ports with import changes only."""
import itertools

import numpy as np
import pandas as pd

import estlab


def _titanic_csv(path, n=400, seed=0):
  """A CSV with the Titanic schema and a realistic signal (no download)."""
  rng = np.random.default_rng(seed)
  sex = rng.choice(["male", "female"], n)
  cls = rng.choice(["First", "Second", "Third"], n, p=[0.25, 0.2, 0.55])
  age = np.round(rng.uniform(1, 75, n))
  logit = (2.0 * (sex == "female") + 1.2 * (cls == "First") - 1.0 * (cls == "Third")
           - 0.02 * (age - 30) - 0.6)
  survived = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
  pd.DataFrame({
      "survived": survived, "sex": sex, "age": age,
      "n_siblings_spouses": rng.integers(0, 4, n), "parch": rng.integers(0, 3, n),
      "fare": np.round(rng.lognormal(3, 0.8, n), 2), "class": cls,
      "deck": rng.choice(["A", "B", "C", "unknown"], n),
      "embark_town": rng.choice(["Southampton", "Cherbourg", "Queenstown"], n),
      "alone": rng.choice(["y", "n"], n)}).to_csv(path, index=False)


def test_titanic_linear_classifier(tmp_path):
  train_file = tmp_path / "train.csv"
  _titanic_csv(train_file)

  # --- the seed, with `tf.estimator` -> `estlab` and tf.data -> estlab.inputs ---
  fc = estlab.feature_column

  def input_fn():
    return estlab.inputs.make_csv_dataset(str(train_file), batch_size=32,
                                          label_name="survived",
                                          shuffle_seed=0)  # added: no flakes
  embark = fc.categorical_column_with_hash_bucket("embark_town", 32)
  cls = fc.categorical_column_with_vocabulary_list("class", ["First", "Second", "Third"])
  age = fc.numeric_column("age")
  model = estlab.LinearClassifier(feature_columns=[embark, cls, age],
                                  model_dir=str(tmp_path / "model"))
  model = model.train(input_fn=input_fn, steps=100)
  result = model.evaluate(input_fn, steps=10)
  for pred in itertools.islice(model.predict(input_fn), 3):
    assert set(pred) >= {"probabilities", "class_ids", "classes"}
    assert pred["classes"][0] in ("0", "1")
  # --------------------------------------------------------------------------
  assert result["global_step"] == 100
  assert result["auc"] > 0.6
  assert "linear/linear_model/class/weights" in model.get_variable_names()
  weights = model.get_variable_value("linear/linear_model/class/weights")[:, 0]
  assert weights[0] > weights[2]          # First-class survived more than Third
