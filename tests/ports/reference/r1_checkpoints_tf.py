"""Reference run of tensorflow/docs site/en/r1/guide/checkpoints.md with
TensorFlow 2.15, for ``test_r1_checkpoints.py``.

The guide's snippets over tensorflow/models r1.13.0
samples/core/get_started/premade_estimator.py (iris, DNNClassifier [10, 10]),
with ``import tensorflow.compat.v1 as tf`` (the guide is TF1's: its
``tf.estimator.DNNClassifier`` is today's ``tf.compat.v1.estimator`` one),
except: local iris CSVs (``_data_c.iris_csvs``); ``models/iris`` is a
temporary directory; the ``ls`` and prints are recorded; the schedule is
shown by training in 12 calls of 10 steps; the "bad restoration" trains
``classifier2`` (the guide's snippet calls ``classifier.train``, a typo: its
text says retraining the changed model fails). The first scene is also run
with the TF2 ``tf.estimator.DNNClassifier`` for comparison. JSON on stdout.

Run: /work/tf215/bin/python tests/ports/reference/r1_checkpoints_tf.py > tests/ports/reference/r1_checkpoints.json
"""
import json
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from _data_c import fingerprint, iris_csvs  # noqa: E402

import pandas as pd  # noqa: E402
import tensorflow as tf2  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

CSV_COLUMN_NAMES = ['SepalLength', 'SepalWidth', 'PetalLength', 'PetalWidth', 'Species']


def train_input_fn(features, labels, batch_size):
  """An input function for training"""
  dataset = tf.data.Dataset.from_tensor_slices((dict(features), labels))
  return dataset.shuffle(1000).repeat().batch(batch_size)


def eval_input_fn(features, labels, batch_size):
  """An input function for evaluation or prediction"""
  features = dict(features)
  inputs = features if labels is None else (features, labels)
  dataset = tf.data.Dataset.from_tensor_slices(inputs)
  return dataset.batch(batch_size)


def steps_in(model_dir):
  state = tf.train.get_checkpoint_state(model_dir)
  return [int(re.search(r"ckpt-(\d+)$", p).group(1))
          for p in state.all_model_checkpoint_paths]


def main():
  directory = tempfile.mkdtemp()
  train_path, test_path = iris_csvs(directory)
  out = {"tensorflow": tf.__version__, "data": fingerprint([train_path, test_path])}
  train = pd.read_csv(train_path, names=CSV_COLUMN_NAMES, header=0)
  train_x, train_y = train, train.pop('Species')
  test = pd.read_csv(test_path, names=CSV_COLUMN_NAMES, header=0)
  test_x, test_y = test, test.pop('Species')
  my_feature_columns = [tf.feature_column.numeric_column(key=k) for k in train_x.keys()]
  feature_columns = my_feature_columns

  for version, DNNClassifier in (("v1", tf.estimator.DNNClassifier),
                                 ("v2", tf2.estimator.DNNClassifier)):
    runs = []
    for _ in range(3):
      model_dir = os.path.join(tempfile.mkdtemp(), 'models/iris')
      classifier = DNNClassifier(
          feature_columns=my_feature_columns,
          hidden_units=[10, 10],
          n_classes=3,
          model_dir=model_dir)
      classifier.train(
          input_fn=lambda: train_input_fn(train_x, train_y, batch_size=100),
          steps=200)
      run = {"steps_after_train": steps_in(model_dir),
             "files": sorted(f for f in os.listdir(model_dir)
                             if f.startswith("events") is False)}
      ev = classifier.evaluate(input_fn=lambda: eval_input_fn(test_x, test_y, 100))
      run["evaluate"] = {k: float(v) for k, v in ev.items()}
      # "Each subsequent call to train, evaluate or predict ... initializes
      # the weights of the new model from the most recent checkpoint."
      again = DNNClassifier(feature_columns=my_feature_columns, hidden_units=[10, 10],
                            n_classes=3, model_dir=model_dir)
      run["evaluate_new_object"] = {
          k: float(v) for k, v in again.evaluate(
              input_fn=lambda: eval_input_fn(test_x, test_y, 100)).items()}
      classifier.train(
          input_fn=lambda: train_input_fn(train_x, train_y, batch_size=100),
          steps=200)
      run["steps_after_second_train"] = steps_in(model_dir)
      run["global_step"] = int(classifier.get_variable_value("global_step"))
      if version == "v1":
        classifier2 = DNNClassifier(
            feature_columns=my_feature_columns,
            hidden_units=[20, 20],  # Change the number of neurons in the model.
            n_classes=3,
            model_dir=model_dir)
        try:
          classifier2.train(
              input_fn=lambda: train_input_fn(train_x, train_y, batch_size=100),
              steps=200)
          run["bad_restoration"] = None
        except Exception as e:  # noqa: BLE001
          run["bad_restoration"] = {"type": type(e).__name__,
                                    "bases": [c.__name__ for c in type(e).__mro__],
                                    "message": str(e)[:600]}
      runs.append(run)
    out[version] = runs

  # Default checkpoint directory
  classifier = tf.estimator.DNNClassifier(
      feature_columns=my_feature_columns,
      hidden_units=[10, 10],
      n_classes=3)
  out["default_model_dir"] = {
      "in_tempdir": os.path.dirname(classifier.model_dir) == tempfile.gettempdir(),
      "exists": os.path.isdir(classifier.model_dir)}

  # Checkpointing Frequency
  my_checkpointing_config = tf.estimator.RunConfig(
      save_checkpoints_secs=20*60,  # Save checkpoints every 20 minutes.
      keep_checkpoint_max=10,       # Retain the 10 most recent checkpoints.
  )
  model_dir = os.path.join(tempfile.mkdtemp(), 'models/iris')
  classifier = tf.estimator.DNNClassifier(
      feature_columns=my_feature_columns,
      hidden_units=[10, 10],
      n_classes=3,
      model_dir=model_dir,
      config=my_checkpointing_config)
  out["config"] = {"save_checkpoints_secs": classifier.config.save_checkpoints_secs,
                   "save_checkpoints_steps": classifier.config.save_checkpoints_steps,
                   "keep_checkpoint_max": classifier.config.keep_checkpoint_max}
  for _ in range(12):
    classifier.train(
        input_fn=lambda: train_input_fn(train_x, train_y, batch_size=100), steps=10)
  out["kept_with_max_10"] = steps_in(model_dir)
  model_dir = os.path.join(tempfile.mkdtemp(), 'models/iris')
  classifier = tf.estimator.DNNClassifier(
      feature_columns=my_feature_columns, hidden_units=[10, 10], n_classes=3,
      model_dir=model_dir)
  for _ in range(12):
    classifier.train(
        input_fn=lambda: train_input_fn(train_x, train_y, batch_size=100), steps=10)
  out["kept_by_default"] = steps_in(model_dir)
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
