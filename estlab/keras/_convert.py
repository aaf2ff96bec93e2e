"""``model_to_estimator``: a compiled Keras 3 model (JAX backend) as an
``estlab.Estimator``, as ``tf.keras.estimator.model_to_estimator``.

Keras is imported here, on call: ``import estlab`` never imports it.
"""
from __future__ import annotations

import importlib
import os
from typing import Any, Mapping

from estlab.estimator import Estimator
from estlab.keras._model_fn import KerasModelFn
from estlab.run_config import RunConfig

__all__ = ["model_to_estimator", "CHECKPOINT_FORMATS"]

# TF's values; estlab writes Orbax checkpoints for both (see the docstring).
CHECKPOINT_FORMATS = (None, "checkpoint", "saver")


def _keras() -> Any:
  """Keras 3 on its JAX backend, or a clear error."""
  try:
    keras = importlib.import_module("keras")
  except ImportError as e:
    raise ImportError("estlab.keras needs Keras 3: pip install 'estlab[keras]'"
                      " (keras>=3.0).") from e
  version = getattr(keras, "__version__", "0")
  if int(version.split(".")[0]) < 3:
    raise ImportError(f"estlab.keras needs Keras 3; keras {version} is "
                      "installed: pip install 'keras>=3.0'.")
  backend = keras.backend.backend()
  if backend != "jax":
    raise ValueError(
        f"estlab.keras runs Keras models on JAX, but Keras' backend is "
        f"{backend!r} (KERAS_BACKEND={os.environ.get('KERAS_BACKEND')!r}). "
        "Set KERAS_BACKEND=jax before keras is first imported, e.g. "
        "os.environ['KERAS_BACKEND'] = 'jax' at the top of the script or "
        "notebook (restart the kernel if keras was already imported), then "
        "build the model again.")
  return keras


def _checked_model(keras: Any, keras_model: Any) -> Any:
  if not isinstance(keras_model, keras.Model):
    raise TypeError(
        f"keras_model={keras_model!r:.200} is not a Keras 3 model "
        "(keras.Model); build it with `import keras` (Keras 3), not "
        "tf.keras 2.")
  if getattr(keras_model, "optimizer", None) is None:
    raise ValueError(
        f"The Keras model {keras_model.name!r} has not been compiled: call "
        "model.compile(optimizer=..., loss=..., metrics=[...]) before "
        "model_to_estimator(); the estimator trains with its optimizer and "
        "loss.")
  if not keras_model.built or not getattr(keras_model, "inputs", None):
    raise ValueError(
        f"The Keras model {keras_model.name!r} has no defined inputs: "
        "model_to_estimator takes a Functional or Sequential model built "
        "with keras.Input(shape=...) (its variables are the estimator's "
        "starting point), e.g. keras.Sequential([keras.Input((4,)), ...]).")
  return keras_model


def model_to_estimator(keras_model: Any = None, keras_model_path: Any = None,
                       custom_objects: Mapping | None = None,
                       model_dir: str | os.PathLike | None = None,
                       config: RunConfig | None = None,
                       checkpoint_format: str | None = None,
                       metric_names_map: Mapping[str, str] | None = None,
                       export_outputs: Mapping[str, type] | None = None
                       ) -> Estimator:
  """An ``Estimator`` training, evaluating and serving a compiled Keras model.

  As ``tf.keras.estimator.model_to_estimator``, on Keras 3 with its JAX
  backend (set ``KERAS_BACKEND=jax`` before keras is imported). The
  estimator starts from the model's current weights: its trainable
  variables are the model_fn's ``params`` and the others (BatchNorm
  statistics, frozen layers) its ``'non_trainable'`` collection, updated in
  TRAIN, each named by its Keras path (``sequential/dense/kernel``) in
  checkpoints and ``get_variable_names()`` (name your layers so a model
  built again matches its checkpoints; Dropout's seed states are drawn from
  the estimator's rng each step, never stored). Training uses the compiled loss
  and optimizer (Keras' stateless API inside the compiled step),
  ``evaluate`` reports the loss and the compiled metrics, ``predict`` and
  exports give ``{output name: array}``. The Keras model itself is not
  updated: read trained weights with ``get_variable_value`` (or restore
  them into the model, e.g. ``v.assign(est.get_variable_value(v.path))``).

  Features are keyed by the model's input names (the ``keras.Input``
  layers' names, or a dict-input model's keys; one array for a one-input
  model); labels by its output names (or one array for one output).
  ``{'features': ..., 'sample_weights': ...}`` features weight the loss and
  weighted metrics, as TF's.

  Args:
    keras_model: a compiled, built Keras 3 model (Functional or Sequential).
    keras_model_path: instead, a ``.keras`` file saved by ``model.save``
      (compiled), loaded with ``keras.saving.load_model``.
    custom_objects: custom layers and functions to load ``keras_model_path``.
    model_dir: where checkpoints and summaries go (or ``config.model_dir``).
    config: an ``estlab.RunConfig``.
    checkpoint_format: TF's choice between object-based (``'checkpoint'``,
      the default) and name-based (``'saver'``) TF checkpoints. estlab writes
      Orbax checkpoints for both, keyed by the Keras variable paths; the
      values are accepted so migrated calls run, anything else is a
      ValueError as in TF.
    metric_names_map: ``{compiled metric name: eval name}`` covering every
      compiled metric (TF's check), to rename ``evaluate``'s results.
    export_outputs: ``{output name: ExportOutput class}`` such as
      ``{'label': estlab.export.ClassificationOutput}``: extra signatures,
      each serving one output, beside ``serving_default`` (all predictions).

  Returns:
    An ``estlab.Estimator``.

  Raises:
    ValueError: neither or both of ``keras_model`` and ``keras_model_path``;
      an uncompiled or input-less model; a backend other than JAX; an
      unknown ``checkpoint_format``.

  Example:
    >>> import os; os.environ['KERAS_BACKEND'] = 'jax'   # before keras
    >>> import keras, estlab.keras                       # doctest: +SKIP
    >>> model = keras.Sequential([keras.Input((4,), name='x'),
    ...                           keras.layers.Dense(1)])  # doctest: +SKIP
    >>> model.compile('adam', 'mse')                     # doctest: +SKIP
    >>> est = estlab.keras.model_to_estimator(model)     # doctest: +SKIP
    >>> est.train(lambda: ({'x': x}, y), steps=100)      # doctest: +SKIP
  """
  if (keras_model is None) == (keras_model_path is None):
    raise ValueError(
        "Pass exactly one of keras_model (a compiled Keras model) and "
        f"keras_model_path (a .keras file); got keras_model={keras_model!r:.80}"
        f" and keras_model_path={keras_model_path!r}.")
  if checkpoint_format not in CHECKPOINT_FORMATS:
    raise ValueError(
        f"checkpoint_format={checkpoint_format!r}: must be one of "
        "'checkpoint' or 'saver' (TF's values; estlab writes Orbax "
        "checkpoints for both) or None.")
  keras = _keras()
  if keras_model is None:
    path = os.fspath(keras_model_path)
    if not path.endswith(".keras"):
      raise ValueError(
          f"keras_model_path={path!r}: estlab loads Keras 3 '.keras' files "
          "(model.save('model.keras')); convert an HDF5 file by loading it "
          "in Keras and saving it as .keras.")
    keras_model = keras.saving.load_model(path, custom_objects=custom_objects)
  model_fn = KerasModelFn(_checked_model(keras, keras_model),
                          metric_names_map=metric_names_map,
                          export_outputs=export_outputs)
  return Estimator(model_fn, model_dir=model_dir, config=config)
