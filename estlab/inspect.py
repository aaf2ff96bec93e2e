"""Public ``estlab.inspect``: what is in a model_dir's checkpoints.

Steps, variables, changes between steps and eval metrics, as tables for
``estlab inspect`` and ``estlab.widgets.CheckpointInspector``. This module only
re-exports the public names of ``estlab.checkpoint.inspect``, which implements
them (so a test that monkeypatches one should patch it there).

Example:
  >>> from estlab import inspect as ei                       # doctest: +SKIP
  >>> print(ei.format_checkpoints(ei.list_checkpoints(d)))   # doctest: +SKIP
  >>> print(ei.format_variables(ei.variable_table(d)))       # doctest: +SKIP
"""
from __future__ import annotations

from estlab.checkpoint import inspect as _impl
from estlab.checkpoint.inspect import *  # noqa: F401,F403  pylint: disable=wildcard-import

__all__ = list(_impl.__all__)
