"""estlab: tf.estimator's API on JAX, made for Jupyter.

Migrating is an import change: ``tf.estimator.X`` becomes ``estlab.X``.
Heavy modules (JAX, Flax, Orbax) load on first use of a name, so
``import estlab`` stays fast.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from estlab._version import __version__

# public name -> module that defines it
_EXPORTS = {
    "Estimator": "estlab.estimator",
    "NanLossDuringTrainingError": "estlab.estimator",
    "EstimatorSpec": "estlab.spec",
    "ModeKeys": "estlab.spec",
    "RunConfig": "estlab.run_config",
    "SessionRunHook": "estlab.hooks",
    "SessionRunContext": "estlab.hooks",
    "SessionRunValues": "estlab.hooks",
    "StopAtStepHook": "estlab.hooks",
    "CheckpointSaverListener": "estlab.hooks",
    "LoggingTensorHook": "estlab.hooks",
    "SecondOrStepTimer": "estlab.hooks",
    "SessionRunArgs": "estlab.hooks",
    "CheckpointSaverHook": "estlab._tf_hooks",
    "SummarySaverHook": "estlab._tf_hooks",
    "StepCounterHook": "estlab._tf_hooks",
    "NanTensorHook": "estlab._tf_hooks",
    "FinalOpsHook": "estlab._tf_hooks",
    "FeedFnHook": "estlab._tf_hooks",
    "GlobalStepWaiterHook": "estlab._tf_hooks",
    "TrainSpec": "estlab.training",
    "EvalSpec": "estlab.training",
    "train_and_evaluate": "estlab.training",
    "add_metrics": "estlab.extenders",
    "WarmStartSettings": "estlab.warm_starting",
    "VocabInfo": "estlab.warm_starting",
    "CheckpointMismatchError": "estlab.checkpoint",
    "Exporter": "estlab.export._exporters",
    "LatestExporter": "estlab.export._exporters",
    "BestExporter": "estlab.export._exporters",
    "FinalExporter": "estlab.export._exporters",
    "classifier_parse_example_spec": "estlab.feature_column.parsing",
    "regressor_parse_example_spec": "estlab.feature_column.parsing",
    "ProfilerHook": "estlab._profiler_hook",
}
_PREMADE = ("BaselineClassifier", "BaselineRegressor", "BaselineEstimator",
            "LinearClassifier", "LinearRegressor", "LinearEstimator",
            "DNNClassifier", "DNNRegressor", "DNNEstimator",
            "DNNLinearCombinedClassifier", "DNNLinearCombinedRegressor",
            "DNNLinearCombinedEstimator")
_HEADS = ("Head", "BinaryClassHead", "MultiClassHead", "MultiLabelHead",
          "RegressionHead", "PoissonRegressionHead", "LogisticRegressionHead",
          "MultiHead")
_EXPORTS.update({name: "estlab.premade" for name in _PREMADE})
_EXPORTS.update({name: "estlab.heads" for name in _HEADS})
_SUBMODULES = ("checkpoint", "compat", "data", "distribute", "experimental",
               "export", "feature_column", "heads", "inspect",
               "hooks", "inputs", "keras", "metrics", "premade", "summary")

__all__ = sorted(_EXPORTS) + list(_SUBMODULES) + ["__version__"]


def __getattr__(name: str):
  if name in _EXPORTS:
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
  if name in _SUBMODULES:
    return importlib.import_module(f"estlab.{name}")
  raise AttributeError(f"module 'estlab' has no attribute {name!r}")


def __dir__():
  return __all__


if TYPE_CHECKING:  # for type checkers and IDEs; not executed at run time
  from estlab._profiler_hook import ProfilerHook
  from estlab.checkpoint import CheckpointMismatchError
  from estlab._tf_hooks import (CheckpointSaverHook, FeedFnHook, FinalOpsHook,
                                GlobalStepWaiterHook, NanTensorHook,
                                StepCounterHook, SummarySaverHook)
  from estlab.estimator import Estimator, NanLossDuringTrainingError
  from estlab.export._exporters import (BestExporter, Exporter, FinalExporter,
                                        LatestExporter)
  from estlab.feature_column.parsing import (classifier_parse_example_spec,
                                             regressor_parse_example_spec)
  from estlab.hooks import (CheckpointSaverListener, LoggingTensorHook,
                            SecondOrStepTimer, SessionRunArgs,
                            SessionRunContext, SessionRunHook,
                            SessionRunValues, StopAtStepHook)
  from estlab.run_config import RunConfig
  from estlab.spec import EstimatorSpec, ModeKeys
  from estlab.extenders import add_metrics
  from estlab.training import EvalSpec, TrainSpec, train_and_evaluate
  from estlab.warm_starting import VocabInfo, WarmStartSettings
