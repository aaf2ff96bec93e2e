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

from estlab.checkpoint.inspect import (STAT_NAMES, checkpoint_diff,
                                       diff_values, eval_metrics_at,
                                       format_checkpoints, format_histogram,
                                       format_time, format_variables,
                                       histogram, list_checkpoints, table_rows,
                                       variable_stats, variable_table,
                                       variable_values)

__all__ = [
    'STAT_NAMES',
    'checkpoint_diff',
    'diff_values',
    'eval_metrics_at',
    'format_checkpoints',
    'format_histogram',
    'format_time',
    'format_variables',
    'histogram',
    'list_checkpoints',
    'table_rows',
    'variable_stats',
    'variable_table',
    'variable_values',
]
