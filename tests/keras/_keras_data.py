"""Small Keras models and generated images shared by tests/keras (import as
`_keras_data`). KERAS_BACKEND=jax is set by tests/conftest.py."""
import keras
import numpy as np

CLASSES = 3


def images(n, seed=0):
  """32x32x3 noise with a brighter centre in channel ``label``: learnable."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, CLASSES, n).astype(np.int32)
  x = rng.normal(0.0, 0.5, (n, 32, 32, 3)).astype(np.float32)
  x[np.arange(n), 8:24, 8:24, labels] += 1.0
  return x, labels


def cnn(seed=0):
  """A compiled CNN over ``images`` (BatchNorm and Dropout included).

  Its layers are named, so a model built again matches its checkpoints
  (Keras numbers unnamed layers per process: conv2d, conv2d_1...).
  """
  keras.utils.set_random_seed(seed)
  image = keras.Input((32, 32, 3), name="image")
  h = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="conv1")(image)
  h = keras.layers.BatchNormalization(name="bn")(h)
  h = keras.layers.Conv2D(8, 3, activation="relu", name="conv2")(h)
  h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
  h = keras.layers.Dropout(0.1, name="dropout")(h)
  label = keras.layers.Dense(CLASSES, activation="softmax", name="label")(h)
  model = keras.Model(image, label)
  model.compile(optimizer=keras.optimizers.Adam(1e-2),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
  return model


def batches(x, y, batch_size=32, epochs=1, key="image"):
  """An input_fn: ``({key: x}, y)`` batches."""
  def input_fn():
    for _ in range(epochs):
      for i in range(0, len(x), batch_size):
        yield {key: x[i:i + batch_size]}, y[i:i + batch_size]
  return input_fn


def weights(model):
  """``{path: numpy value}`` of the model's layer variables, but for random
  layers' seed states (which estlab draws from its rng and never stores)."""
  return {v.path: np.array(v.value) for v in
          [*model.trainable_variables, *model.non_trainable_variables]
          if not v.path.endswith("seed_generator_state")}
