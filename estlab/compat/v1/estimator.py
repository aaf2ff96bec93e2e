"""``tf.compat.v1.estimator`` as a namespace: ``tf.compat.v1.estimator.X`` ->
``estlab.compat.v1.estimator.X``.

The premade estimators are TF 1's (``estlab.compat.v1.premade``: SUM loss,
TF 1's learning rates); ``Estimator`` is ``estlab.Estimator`` with TF 1's
``export_savedmodel``. Every other name is the ``estlab`` one, because in
TF 2.15 ``tf.compat.v1.estimator.X is tf.estimator.X`` for them (heads,
hooks, specs, RunConfig, train_and_evaluate, ...); ``inputs`` (TF 1's
``numpy_input_fn`` / ``pandas_input_fn``) is ``estlab.inputs``.

``classifier_parse_example_spec`` / ``regressor_parse_example_spec`` are the
``estlab`` ones (TF 1's differ from TF 2's only in taking TF 1's feature
columns; estlab has one kind). Left out: ``tpu`` (no TPUEstimator) and the
hooks estlab does not have (``CheckpointSaverHook``, ``FeedFnHook``, ...), as
they are absent from ``estlab`` itself.

Example:
  >>> from estlab.compat.v1 import estimator
  >>> estimator.DNNClassifier.__module__
  'estlab.compat.v1.premade'
  >>> import estlab
  >>> estimator.RunConfig is estlab.RunConfig
  True
"""
from __future__ import annotations

import importlib
from typing import Any

import estlab
from estlab.compat.v1 import premade as _premade
from estlab.compat.v1.premade import *  # noqa: F401,F403  pylint: disable=wildcard-import

_V1 = tuple(_premade.__all__) + ("Estimator",)
# Names TF 2.15 shares between tf.estimator and tf.compat.v1.estimator.
_SHARED = tuple(name for name in estlab.__all__
                if name not in _V1 and name[0].isupper()) + (
                    "add_metrics", "train_and_evaluate",
                    "classifier_parse_example_spec",
                    "regressor_parse_example_spec")
_MODULES = {"inputs": "estlab.inputs", "export": "estlab.export",
            "experimental": "estlab.experimental"}

__all__ = sorted(_V1 + _SHARED + tuple(_MODULES))


class Estimator(_premade._V1Methods, estlab.Estimator):  # pylint: disable=protected-access
  """``tf.compat.v1.estimator.Estimator``: ``estlab.Estimator`` plus TF 1's
  ``export_savedmodel`` name. A model_fn's loss is whatever it returns, so
  there is no default to change."""


def __getattr__(name: str) -> Any:
  if name in _SHARED:
    return getattr(estlab, name)
  if name in _MODULES:
    return importlib.import_module(_MODULES[name])
  raise AttributeError(
      f"module 'estlab.compat.v1.estimator' has no attribute {name!r}")


def __dir__():
  return __all__
