"""TF 1's estimator API: ``tf.compat.v1.estimator.X`` ->
``estlab.compat.v1.estimator.X``.

A program written for TF 1.x's ``tf.estimator`` (the r1 guides) meant TF 1's
premade estimators, which ``tf.compat.v1.estimator`` keeps in TF 2 and
whose defaults differ from TF 2's (``estlab.X``): the training loss is
summed over the batch (``loss_reduction`` 'weighted_sum'), so
``evaluate()['loss']`` is the mean over batches of the batch's summed loss,
and a named DNN optimizer trains at 0.05 instead of 0.001
(``estlab.compat.v1.premade`` lists every difference).

Modules, in the order they build on each other:
  losses      TF 1's ``Reduction`` names -> ``estlab.heads`` reductions
  optimizers  TF 1's optimizer names (``tf.compat.v1.train``) -> optax
  premade     the 12 premade estimators of ``tf.compat.v1.estimator`` on
              ``estlab.premade``'s: DNN, Linear, DNNLinearCombined and
              Baseline Classifier / Regressor / Estimator
  estimator   the ``tf.compat.v1.estimator`` namespace: those plus the
              names TF shares with ``tf.estimator`` (the ``estlab`` ones)

Of ``tf.compat.v1.estimator``'s names that differ from ``tf.estimator``'s in
TF 2.15, all 12 premades, ``Estimator`` and ``classifier_parse_example_spec``
/ ``regressor_parse_example_spec`` (the ``estlab`` ones) are here; left out:
``tpu`` (estlab has no TPUEstimator; ``jax`` runs the same code on TPUs).

Example:
  >>> from estlab.compat.v1 import estimator
  >>> from estlab import feature_column as fc
  >>> est = estimator.LinearClassifier([fc.numeric_column('x')])
  >>> est.head.loss_reduction
  'sum'
"""
import importlib
from typing import Any

_MODULES = ("estimator", "losses", "optimizers", "premade")
_PREMADE = ("DNNClassifier", "DNNRegressor", "DNNEstimator",
            "LinearClassifier", "LinearRegressor", "LinearEstimator",
            "DNNLinearCombinedClassifier", "DNNLinearCombinedRegressor",
            "DNNLinearCombinedEstimator", "BaselineClassifier",
            "BaselineRegressor", "BaselineEstimator")

__all__ = list(_MODULES) + list(_PREMADE)


def __getattr__(name: str) -> Any:
  if name in _MODULES:
    return importlib.import_module(f"estlab.compat.v1.{name}")
  if name in _PREMADE:
    return getattr(importlib.import_module("estlab.compat.v1.premade"), name)
  raise AttributeError(f"module 'estlab.compat.v1' has no attribute {name!r}")


def __dir__():
  return __all__
