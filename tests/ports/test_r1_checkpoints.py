"""Port of tensorflow/docs site/en/r1/guide/checkpoints.md ("Checkpoints":
saving partially-trained models, the schedule, restoring, a bad restoration).

The guide's snippets over the iris program they modify (tensorflow/models
r1.13.0 samples/core/get_started/premade_estimator.py and iris_data.py:
``train_input_fn``, ``eval_input_fn``), with ``tf.estimator`` ->
``estlab.compat.v1.estimator`` (a guide written for TF 1.x's
``tf.estimator`` is ``tf.compat.v1.estimator`` in TF 2),
``tf.feature_column`` -> ``estlab.feature_column``, ``tf.data`` ->
``estlab.data``. Changes beyond imports:
- data: ``iris_data.load_data()``'s download -> ``_data_c.iris_csvs`` (local
  files of the same format), read as iris_data.py reads them.
- ``model_dir='models/iris'`` -> ``<tmp_path>/models/iris``.
- ``ls -1 models/iris`` (the guide's shell listing of ``model.ckpt-<step>``
  files) -> the step directories of estlab's Orbax layout
  (``model_dir/<step>/``; README "Checkpoints"), compared with the steps
  TF 2.15 kept (``tf.train.get_checkpoint_state``).
- "Checkpointing Frequency": the guide only builds the RunConfig; to show
  the schedule it claims (a checkpoint when ``train`` starts and ends, the
  most recent 5 or ``keep_checkpoint_max`` kept) the port trains 12 calls of
  10 steps and compares the kept steps with TF's.
- "Restoring your model": the guide states that each later ``train``,
  ``evaluate`` or ``predict`` rebuilds the model from the latest checkpoint;
  the port evaluates, evaluates again from a new estimator object on the
  same ``model_dir``, and trains 200 more steps.
- "Avoiding a bad restoration": the guide's snippet builds ``classifier2``
  and then calls ``classifier.train`` (a typo: its text says the changed
  model's retraining fails); the port calls ``classifier2.train``.
- prints become assertions.
- (import) The guide is TF1's: its ``tf.estimator.DNNClassifier`` is today's
  ``tf.compat.v1.estimator.DNNClassifier`` (Adagrad at 0.05, loss summed
  over the batch), so it becomes ``estlab.compat.v1.estimator.DNNClassifier``.
Reference: ``reference/r1_checkpoints_tf.py`` (``reference/r1_checkpoints.json``;
three runs of the v1 classifier, the guide's, and three of the v2 one).

Original: Copyright The TensorFlow Authors, Apache License 2.0 (docs
licensed CC BY 4.0, code samples Apache 2.0).
"""
import json
import os
import tempfile

import numpy as np
import pandas as pd
import pytest

import estlab
from _data_c import fingerprint, iris_csvs

_REFERENCE = os.path.join(os.path.dirname(__file__), "reference", "r1_checkpoints.json")

CSV_COLUMN_NAMES = ['SepalLength', 'SepalWidth', 'PetalLength', 'PetalWidth', 'Species']


@pytest.fixture
def reference():
  with open(_REFERENCE) as f:
    return json.load(f)


@pytest.fixture
def iris(tmp_path, reference):
  train_path, test_path = iris_csvs(tmp_path)
  assert fingerprint([train_path, test_path]) == reference["data"]
  # iris_data.load_data()
  train = pd.read_csv(train_path, names=CSV_COLUMN_NAMES, header=0)
  train_x, train_y = train, train.pop('Species')
  test = pd.read_csv(test_path, names=CSV_COLUMN_NAMES, header=0)
  test_x, test_y = test, test.pop('Species')
  # premade_estimator.py: "Feature columns describe how to use the input."
  my_feature_columns = []
  for key in train_x.keys():
    my_feature_columns.append(estlab.feature_column.numeric_column(key=key))
  return (train_x, train_y), (test_x, test_y), my_feature_columns


# --- iris_data.py -------------------------------------------------------------
def train_input_fn(features, labels, batch_size):
  """An input function for training"""
  # Convert the inputs to a Dataset.
  dataset = estlab.data.Dataset.from_tensor_slices((dict(features), labels))

  # Shuffle, repeat, and batch the examples.
  dataset = dataset.shuffle(1000).repeat().batch(batch_size)

  # Return the dataset.
  return dataset


def eval_input_fn(features, labels, batch_size):
  """An input function for evaluation or prediction"""
  features = dict(features)
  if labels is None:
    # No labels, use only features.
    inputs = features
  else:
    inputs = (features, labels)

  # Convert the inputs to a Dataset.
  dataset = estlab.data.Dataset.from_tensor_slices(inputs)

  # Batch the examples
  assert batch_size is not None, "batch_size must not be None"
  dataset = dataset.batch(batch_size)

  # Return the dataset.
  return dataset


def ls_checkpoints(model_dir):
  """The steps of the checkpoints in ``model_dir`` (``ls -1 models/iris``)."""
  return sorted(int(name) for name in os.listdir(model_dir) if name.isdigit())


def test_saving_and_restoring(tmp_path, iris, reference):
  (train_x, train_y), (test_x, test_y), my_feature_columns = iris
  feature_columns = my_feature_columns
  ref = reference["v1"]

  # --- "Saving partially-trained models" -------------------------------------
  classifier = estlab.compat.v1.estimator.DNNClassifier(
      feature_columns=my_feature_columns,
      hidden_units=[10, 10],
      n_classes=3,
      model_dir=str(tmp_path / 'models/iris'))

  classifier.train(
      input_fn=lambda: train_input_fn(train_x, train_y, batch_size=100),
      steps=200)

  # "the Estimator created checkpoints at steps 1 (the start of training) and
  # 200 (the end of training)" (TF 2.15: 0 and 200)
  assert ls_checkpoints(str(tmp_path / 'models/iris')) == ref[0]["steps_after_train"]

  # --- "Restoring your model" -------------------------------------------------
  ev = classifier.evaluate(input_fn=lambda: eval_input_fn(test_x, test_y, 100))
  again = estlab.compat.v1.estimator.DNNClassifier(feature_columns=my_feature_columns, hidden_units=[10, 10],
                               n_classes=3, model_dir=str(tmp_path / 'models/iris'))
  ev_again = again.evaluate(input_fn=lambda: eval_input_fn(test_x, test_y, 100))
  # the same weights, from the checkpoint
  assert {k: float(v) for k, v in ev_again.items()} == pytest.approx(
      {k: float(v) for k, v in ev.items()})
  assert ev["global_step"] == 200
  # The guide's (v1) classifier after 200 steps: other initial weights and
  # shuffles than TF's, so within TF's spread, widened.
  assert ev["accuracy"] >= min(r["evaluate"]["accuracy"] for r in ref) - 0.1
  assert ev["average_loss"] <= max(r["evaluate"]["average_loss"] for r in ref) + 0.15

  classifier.train(
      input_fn=lambda: train_input_fn(train_x, train_y, batch_size=100),
      steps=200)
  assert ls_checkpoints(str(tmp_path / 'models/iris')) == ref[0]["steps_after_second_train"]
  assert ref[0]["global_step"] == 400  # (and the listing ends at 400)

  # --- "Avoiding a bad restoration" -------------------------------------------
  classifier2 = estlab.compat.v1.estimator.DNNClassifier(
      feature_columns=feature_columns,
      hidden_units=[20, 20],  # Change the number of neurons in the model.
      n_classes=3,
      model_dir=str(tmp_path / 'models/iris'))

  # TF: InvalidArgumentError "... shape in shape_and_slice spec [20] does not
  # match the shape stored in checkpoint: [10]"
  assert ref[0]["bad_restoration"]["type"] == "InvalidArgumentError"
  with pytest.raises(ValueError) as error:
    classifier2.train(
        input_fn=lambda: train_input_fn(train_x, train_y, batch_size=100),
        steps=200)
  message = str(error.value)
  assert "10" in message and "20" in message, message
  # The checkpoint is left as it was.
  assert ls_checkpoints(str(tmp_path / 'models/iris')) == ref[0]["steps_after_second_train"]


def test_default_checkpoint_directory(tmp_path, iris, reference, monkeypatch):
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
  _, _, my_feature_columns = iris
  classifier = estlab.compat.v1.estimator.DNNClassifier(
      feature_columns=my_feature_columns,
      hidden_units=[10, 10],
      n_classes=3)

  print(classifier.model_dir)
  assert reference["default_model_dir"] == {"in_tempdir": True, "exists": True}
  assert os.path.dirname(classifier.model_dir) == tempfile.gettempdir()
  assert os.path.isdir(classifier.model_dir)


def test_checkpointing_frequency(tmp_path, iris, reference):
  (train_x, train_y), _, my_feature_columns = iris
  my_checkpointing_config = estlab.compat.v1.estimator.RunConfig(
      save_checkpoints_secs = 20*60,  # Save checkpoints every 20 minutes.
      keep_checkpoint_max = 10,       # Retain the 10 most recent checkpoints.
  )

  classifier = estlab.compat.v1.estimator.DNNClassifier(
      feature_columns=my_feature_columns,
      hidden_units=[10, 10],
      n_classes=3,
      model_dir=str(tmp_path / 'models/iris'),
      config=my_checkpointing_config)
  assert {"save_checkpoints_secs": classifier.config.save_checkpoints_secs,
          "save_checkpoints_steps": classifier.config.save_checkpoints_steps,
          "keep_checkpoint_max": classifier.config.keep_checkpoint_max
          } == reference["config"]

  # Added: 12 calls of 10 steps; each train call starts and ends with a
  # checkpoint, and only the 10 most recent are kept.
  for _ in range(12):
    classifier.train(
        input_fn=lambda: train_input_fn(train_x, train_y, batch_size=100), steps=10)
  assert ls_checkpoints(str(tmp_path / 'models/iris')) == reference["kept_with_max_10"]

  # "Retains only the 5 most recent checkpoints in the directory."
  classifier = estlab.compat.v1.estimator.DNNClassifier(
      feature_columns=my_feature_columns, hidden_units=[10, 10], n_classes=3,
      model_dir=str(tmp_path / 'models/iris_default'))
  for _ in range(12):
    classifier.train(
        input_fn=lambda: train_input_fn(train_x, train_y, batch_size=100), steps=10)
  assert ls_checkpoints(str(tmp_path / 'models/iris_default')) == reference["kept_by_default"]
