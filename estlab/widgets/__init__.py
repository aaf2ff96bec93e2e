"""Notebook widgets; imported only by users, never by the core.

Each widget lives in its own module and is imported on first use, so a
missing optional dependency (ipywidgets, matplotlib) or sibling module only
breaks the widget that needs it, not ``import estlab.widgets``.

Example:
  >>> import estlab.widgets
  >>> sorted(estlab.widgets.__all__)
  ['CheckpointInspector', 'FeatureColumnBuilder', 'Launcher']
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FeatureColumnBuilder", "Launcher", "CheckpointInspector"]

_EXPORTS = {
    "FeatureColumnBuilder": "estlab.widgets.builder",
    "Launcher": "estlab.widgets.launcher",
    "CheckpointInspector": "estlab.widgets.inspector",
}


def __getattr__(name: str) -> Any:
  if name not in _EXPORTS:
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}; "
                         f"it exports {sorted(_EXPORTS)!r}.")
  value = getattr(importlib.import_module(_EXPORTS[name]), name)
  globals()[name] = value  # later lookups skip __getattr__
  return value


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_EXPORTS))
