"""The seed's frozen feature extractor: MobileNetV2 (trainable=False) under a
Dense head; training the estimator changes the head only."""
import keras
import numpy as np

import _keras_data
import _models
import estlab
from estlab.keras import model_to_estimator


def _saved_values(model_dir):
  """``{name: value}`` of the latest checkpoint: params and non-trainables,
  read once (``get_variable_value`` reads the checkpoint per name)."""
  with estlab.checkpoint.Checkpointer(model_dir, async_save=False) as ckpt:
    params = ckpt.restore_params()
    state = ckpt.restore_model_state()
  assert sorted(state) == ["non_trainable"]
  flatten = estlab.checkpoint.flatten_names
  return {**flatten(params), **flatten(state["non_trainable"])}


def test_a_frozen_base_keeps_its_weights_and_the_head_learns(tmp_path):
  keras.utils.set_random_seed(0)
  base = keras.applications.MobileNetV2(weights=None, include_top=False,
                                        input_shape=(32, 32, 3))
  base.trainable = False
  image = keras.Input((32, 32, 3), name="image")
  features = keras.layers.GlobalAveragePooling2D()(base(image))
  label = keras.layers.Dense(_keras_data.CLASSES, name="head")(features)
  model = keras.Model(image, label)
  model.compile(optimizer=keras.optimizers.Adam(1e-2),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  before = _keras_data.weights(model)
  est = model_to_estimator(model, model_dir=str(tmp_path),
                           config=_models.quiet())
  x, y = _keras_data.images(16)
  est.train(_keras_data.batches(x, y, batch_size=8), steps=2)

  saved = _saved_values(str(tmp_path))
  assert sorted(saved) == sorted(before)
  base_paths = [v.path for v in base.variables]
  assert len(base_paths) > 200
  for path in base_paths:  # weights and BatchNorm statistics, bit for bit
    np.testing.assert_array_equal(saved[path], before[path])
  assert [v.path for v in model.trainable_variables] == ["head/kernel",
                                                         "head/bias"]
  for path in ("head/kernel", "head/bias"):
    assert not np.array_equal(saved[path], before[path])
