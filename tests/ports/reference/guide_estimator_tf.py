"""Reference for test_guide_estimator.py: the original, run with TensorFlow 2.15.

tensorflow/docs site/en/guide/estimator.ipynb, code cells in order, unchanged
except: ``train.csv`` is written by ``_data_a.titanic_csvs`` instead of
downloaded (``tf.keras.utils.get_file``); the section "Create an Estimator
from a Keras model" is left out (MobileNetV2 weights and cats_vs_dogs are
downloads, and ``model_to_estimator`` has no estlab counterpart), as is
``tensorflow_datasets`` (only that section uses it); prints become records.
It runs in a temporary working directory, since the guide writes
``./tf_estimator_example/``. After the guide's MirroredStrategy cells, one
more ``regressor.train(input_fn=input_fn)`` reads the input to its end, to
record how many steps 100 batches make with this strategy (the guide's prose:
one step consumes one batch per replica). Writes guide_estimator.json:

  /work/tf215/bin/python tests/ports/reference/guide_estimator_tf.py
"""
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _data_a  # noqa: E402

_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guide_estimator.json")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")


def _plain(value):
  """Nested lists of Python values, text as str (TF gives bytes)."""
  value = np.asarray(value)
  if value.dtype.kind in "SOU":
    return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else str(v),
                        otypes=[object])(value).tolist()
  return value.tolist()


def premade(titanic_file):
  record = {}

  def train_input_fn():
    titanic = tf.data.experimental.make_csv_dataset(
        titanic_file, batch_size=32,
        label_name="survived")
    titanic_batches = (
        titanic.cache().repeat().shuffle(500)
        .prefetch(tf.data.AUTOTUNE))
    return titanic_batches

  age = tf.feature_column.numeric_column('age')
  cls = tf.feature_column.categorical_column_with_vocabulary_list('class', ['First', 'Second', 'Third'])
  embark = tf.feature_column.categorical_column_with_hash_bucket('embark_town', 32)

  model_dir = tempfile.mkdtemp()
  model = tf.estimator.LinearClassifier(
      model_dir=model_dir,
      feature_columns=[embark, cls, age],
      n_classes=2
  )
  model = model.train(input_fn=train_input_fn, steps=100)

  result = model.evaluate(train_input_fn, steps=10)
  for key, value in result.items():
    print(key, ":", value)
  record["result"] = {k: float(v) for k, v in result.items()}

  for pred in model.predict(train_input_fn):
    for key, value in pred.items():
      print(key, ":", value)
    break
  record["pred"] = {k: _plain(v) for k, v in pred.items()}
  record["variable_names"] = model.get_variable_names()
  return record


def object_checkpoint():
  import tensorflow.compat.v1 as tf_compat

  def toy_dataset():
    inputs = tf.range(10.)[:, None]
    labels = inputs * 5. + tf.range(5.)[None, :]
    return tf.data.Dataset.from_tensor_slices(
      dict(x=inputs, y=labels)).repeat().batch(2)

  class Net(tf.keras.Model):
    """A simple linear model."""

    def __init__(self):
      super(Net, self).__init__()
      self.l1 = tf.keras.layers.Dense(5)

    def call(self, x):
      return self.l1(x)

  def model_fn(features, labels, mode):
    net = Net()
    opt = tf.keras.optimizers.Adam(0.1)
    ckpt = tf.train.Checkpoint(step=tf_compat.train.get_global_step(),
                               optimizer=opt, net=net)
    with tf.GradientTape() as tape:
      output = net(features['x'])
      loss = tf.reduce_mean(tf.abs(output - features['y']))
    variables = net.trainable_variables
    gradients = tape.gradient(loss, variables)
    return tf.estimator.EstimatorSpec(
      mode,
      loss=loss,
      train_op=tf.group(opt.apply_gradients(zip(gradients, variables)),
                        ckpt.step.assign_add(1)),
      # Tell the Estimator to save "ckpt" in an object-based format.
      scaffold=tf_compat.train.Scaffold(saver=ckpt))

  tf.keras.backend.clear_session()
  est = tf.estimator.Estimator(model_fn, './tf_estimator_example/')
  est.train(toy_dataset, steps=10)

  opt = tf.keras.optimizers.Adam(0.1)
  net = Net()
  ckpt = tf.train.Checkpoint(
    step=tf.Variable(1, dtype=tf.int64), optimizer=opt, net=net)
  ckpt.restore(tf.train.latest_checkpoint('./tf_estimator_example/'))
  return {"step": int(ckpt.step.numpy()),  # From est.train(..., steps=10)
          "latest_checkpoint": os.path.basename(
              tf.train.latest_checkpoint('./tf_estimator_example/'))}


def saved_model():
  record = {}
  input_column = tf.feature_column.numeric_column("x")

  estimator = tf.estimator.LinearClassifier(feature_columns=[input_column])

  def input_fn():
    return tf.data.Dataset.from_tensor_slices(
      ({"x": [1., 2., 3., 4.]}, [1, 1, 0, 0])).repeat(200).shuffle(64).batch(16)
  estimator.train(input_fn)
  record["global_step"] = int(estimator.get_variable_value("global_step"))

  tmpdir = tempfile.mkdtemp()

  serving_input_fn = tf.estimator.export.build_parsing_serving_input_receiver_fn(
    tf.feature_column.make_parse_example_spec([input_column]))

  estimator_base_path = os.path.join(tmpdir, 'from_estimator')
  estimator_path = estimator.export_saved_model(estimator_base_path, serving_input_fn)

  imported = tf.saved_model.load(estimator_path)

  def predict(x):
    example = tf.train.Example()
    example.features.feature["x"].float_list.value.extend([x])
    return imported.signatures["predict"](
      examples=tf.constant([example.SerializeToString()]))

  print(predict(1.5))
  print(predict(3.5))
  record["predict"] = {str(x): {k: _plain(v) for k, v in predict(x).items()}
                       for x in (1.5, 3.5)}
  direct = list(estimator.predict(lambda: tf.data.Dataset.from_tensor_slices(
      {"x": [1.5, 3.5]}).batch(2)))
  record["estimator_predict"] = [{k: _plain(v) for k, v in p.items()} for p in direct]
  record["signatures"] = sorted(imported.signatures.keys())
  return record


def mirrored():
  record = {}
  mirrored_strategy = tf.distribute.MirroredStrategy()
  config = tf.estimator.RunConfig(
      train_distribute=mirrored_strategy, eval_distribute=mirrored_strategy)
  regressor = tf.estimator.LinearRegressor(
      feature_columns=[tf.feature_column.numeric_column('feats')],
      optimizer='SGD',
      config=config)

  def input_fn():
    dataset = tf.data.Dataset.from_tensors(({"feats":[1.]}, [1.]))
    return dataset.repeat(1000).batch(10)
  regressor.train(input_fn=input_fn, steps=10)
  result = regressor.evaluate(input_fn=input_fn, steps=10)
  record["num_replicas_in_sync"] = mirrored_strategy.num_replicas_in_sync
  record["result"] = {k: float(v) for k, v in result.items()}
  record["variables"] = {
      name: _plain(regressor.get_variable_value(name))
      for name in ("linear/linear_model/feats/weights",
                   "linear/linear_model/bias_weights")}
  # Not in the guide: read the input to its end (100 batches of 10).
  regressor.train(input_fn=input_fn)
  record["steps_for_100_batches"] = int(
      regressor.get_variable_value("global_step")) - 10
  return record


def main():
  with tempfile.TemporaryDirectory() as tmp:
    (train_csv, _) = _data_a.titanic_csvs(tmp)
    tempfile.tempdir = tmp
    os.chdir(tmp)
    out = {"tensorflow": tf.__version__, "data": _data_a.fingerprint([train_csv]),
           "premade": [premade(train_csv) for _ in range(3)],
           "object_checkpoint": object_checkpoint(),
           "saved_model": [saved_model() for _ in range(3)],
           "mirrored": mirrored()}
    os.chdir("/")
  with open(_OUT, "w") as f:
    json.dump(out, f, indent=1)


if __name__ == "__main__":
  main()
