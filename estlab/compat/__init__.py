"""TF's compatibility namespaces: ``tf.compat.v1.estimator.X`` ->
``estlab.compat.v1.estimator.X``.

``estlab.compat.v1`` holds TF 1's premade estimators (TF 1's optimizer
defaults and loss semantics); ``estlab.X`` follows TF 2's ``tf.estimator``.
"""
import importlib
from typing import Any

__all__ = ["v1"]


def __getattr__(name: str) -> Any:
  if name == "v1":
    return importlib.import_module("estlab.compat.v1")
  raise AttributeError(f"module 'estlab.compat' has no attribute {name!r}")
