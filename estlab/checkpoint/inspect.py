"""What is in a model_dir's checkpoints: steps, variables, changes, eval metrics.

Pure functions over the on-disk layout (see
``estlab.checkpoint._checkpointer``), read with Orbax only (never unpickled);
a tf.estimator model_dir (TF's ``checkpoint`` file and ``model.ckpt-N``
bundles) is read too, without TensorFlow (``_tf_format``);
``estlab inspect`` prints them and ``estlab.widgets.CheckpointInspector``
shows them in a notebook. Users import them as ``estlab.inspect`` (a module
that re-exports this one's public names).

Example:
  >>> from estlab import inspect as ei                       # doctest: +SKIP
  >>> print(ei.format_checkpoints(ei.list_checkpoints(d)))   # doctest: +SKIP
  >>> print(ei.format_variables(ei.variable_table(d)))       # doctest: +SKIP
"""
from __future__ import annotations

import glob
import math
import os
import time as time_lib
from typing import Any

import numpy as np

from estlab import summary
from estlab.checkpoint import _tf_format
from estlab.checkpoint import _integrity
from estlab.checkpoint._checkpointer import Checkpointer
from estlab.checkpoint._integrity import CorruptCheckpointError
from estlab.checkpoint._step_dirs import local_steps
from estlab.checkpoint._trees import flatten_names

__all__ = [
    'STAT_NAMES',
    'checkpoint_diff',
    'checkpoint_format',
    'diff_values',
    'eval_metrics_at',
    'format_checkpoints',
    'format_histogram',
    'format_time',
    'format_variables',
    'damaged_checkpoints',
    'histogram',
    'list_checkpoints',
    'table_rows',
    'variable_stats',
    'variable_table',
    'variable_values',
]

STAT_NAMES = ('mean', 'std', 'min', 'max', 'l2_norm', 'zero_fraction')


def _size_on_disk(path: str) -> int:
  """Bytes of the regular files under ``path`` (apparent sizes, no links)."""
  total = 0
  for root, _, files in os.walk(path):
    for name in files:
      full = os.path.join(root, name)
      if not os.path.islink(full):
        total += os.path.getsize(full)
  return total


def checkpoint_format(model_dir: str | os.PathLike) -> str:
  """``'tensorflow'`` for a tf.estimator model_dir (or TF checkpoint
  prefix), else ``'estlab'``.

  Example:
    >>> checkpoint_format('/tmp/no/such/dir')
    'estlab'
  """
  return ('tensorflow' if _tf_format.is_tf_checkpoint(os.fspath(model_dir))
          else 'estlab')


def _tf_row(prefix: str) -> dict[str, Any]:
  files = glob.glob(glob.escape(prefix) + '.*')
  return {'step': _tf_format.tf_checkpoint_step(prefix),
          'time': os.path.getmtime(prefix + '.index'),
          'size_bytes': sum(os.path.getsize(f) for f in files), 'path': prefix}


def list_checkpoints(model_dir: str | os.PathLike) -> list[dict[str, Any]]:
  """Lists the finished, intact checkpoints in ``model_dir``, oldest first
  (``damaged_checkpoints`` lists the others).

  Args:
    model_dir: the Estimator's model directory.

  Returns:
    ``[{'step', 'time', 'size_bytes', 'path'}, ...]``: ``time`` is the save
    time (unix seconds) from the checkpoint's metadata JSON (None if absent),
    ``size_bytes`` the bytes of the files in the step directory. Empty if there
    is no checkpoint (or no such directory). For a tf.estimator model_dir:
    the checkpoints its ``checkpoint`` state file lists (``path`` the
    ``model.ckpt-N`` prefix, ``time`` its index file's modification time).
  """
  if checkpoint_format(model_dir) == 'tensorflow':
    if os.path.isfile(os.fspath(model_dir) + '.index'):  # one prefix
      return [_tf_row(os.fspath(model_dir))]
    return [_tf_row(prefix) for prefix in
            _tf_format.tf_checkpoint_prefixes(os.fspath(model_dir))]
  with Checkpointer(model_dir, async_save=False) as ckpt:
    rows = []
    for step in ckpt.all_steps():
      path = ckpt.path(step)
      if '://' not in path and _integrity.damage(path) is not None:
        continue  # damaged_checkpoints names it
      saved = ckpt.read_metadata(step=step).get('time')
      rows.append({'step': step,
                   'time': None if saved is None else float(saved),
                   'size_bytes': _size_on_disk(path), 'path': path})
  return rows


def damaged_checkpoints(model_dir: str | os.PathLike
                        ) -> list[CorruptCheckpointError]:
  """The damaged checkpoints of a local ``model_dir``, oldest first: each a
  ``CorruptCheckpointError`` (``.path``, ``.file``, ``.reason``) for a step
  whose files no longer match the checksums written when it was saved.
  ``list_checkpoints`` leaves these out.

  Example:
    >>> damaged_checkpoints('/tmp/no/such/dir')
    []
  """
  if checkpoint_format(model_dir) == 'tensorflow':
    return []
  directory = os.path.abspath(os.fspath(model_dir))
  steps = local_steps(directory) or []
  errors = [_integrity.damage(f'{directory}/{step}') for step in steps]
  return [e for e in errors if e is not None]


def variable_values(model_dir: str | os.PathLike,
                    step: int | None = None) -> dict[str, np.ndarray]:
  """Returns ``{name: numpy array}`` of a checkpoint's params (default latest).

  A tf.estimator model_dir is read without TensorFlow: every tensor of its
  checkpoint (optimizer slots and ``global_step`` too), partitioned ones
  joined, strings as ``bytes`` objects.

  Raises:
    ValueError: no checkpoint in ``model_dir``, or none for ``step``.
  """
  if checkpoint_format(model_dir) == 'tensorflow':
    rows = {row['step']: row['path'] for row in list_checkpoints(model_dir)}
    if step is not None and step not in rows:
      raise ValueError(f'No checkpoint for step {step!r} in {model_dir!r}; '
                       f'its steps are {sorted(rows)!r}.')
    path = rows[max(rows) if step is None else step]
    return _tf_format.TFCheckpointReader(path).read_all()
  with Checkpointer(model_dir, async_save=False) as ckpt:
    params = ckpt.restore_params(step=step)
  return {name: np.asarray(value)
          for name, value in sorted(flatten_names(params).items())}


def variable_stats(value: Any) -> dict[str, float]:
  """``mean, std, min, max, l2_norm, zero_fraction`` of an array (float64).

  An empty array gives NaN for all but ``l2_norm`` (0); so does one of
  strings (a TF checkpoint may hold some).
  """
  a = np.asarray(value)
  if a.dtype.kind in 'OSUV':
    a = np.zeros(0)
  a = a.astype(np.float64).ravel()
  if a.size == 0:
    nan = float('nan')
    return dict(mean=nan, std=nan, min=nan, max=nan, l2_norm=0.0,
                zero_fraction=nan)
  return dict(mean=float(a.mean()), std=float(a.std()), min=float(a.min()),
              max=float(a.max()), l2_norm=float(np.linalg.norm(a)),
              zero_fraction=float(np.mean(a == 0)))


def variable_table(model_dir: str | os.PathLike,
                   step: int | None = None) -> list[dict[str, Any]]:
  """One row per variable of a checkpoint (default the latest), by name.

  Returns:
    ``[{'name', 'shape', 'dtype', 'mean', 'std', 'min', 'max', 'l2_norm',
    'zero_fraction'}, ...]``; ``shape`` is a tuple, ``dtype`` a string.
  """
  return table_rows(variable_values(model_dir, step))


def table_rows(values: dict[str, Any]) -> list[dict[str, Any]]:
  """``variable_table``'s rows for ``{name: array}`` already read."""
  return [{'name': name, 'shape': tuple(np.shape(a)),
           'dtype': _dtype_name(a), **variable_stats(a)}
          for name, a in values.items()]


def _dtype_name(value: Any) -> str:
  dtype = np.asarray(value).dtype
  return 'string' if dtype.kind in 'OSU' else dtype.name


def checkpoint_diff(model_dir: str | os.PathLike, step_a: int,
                    step_b: int) -> dict[str, float]:
  """``{name: ||b - a||_2}`` for each variable of either checkpoint.

  A variable missing from one checkpoint, or with another shape there, gets
  NaN: there is no element-wise change to measure.
  """
  return diff_values(variable_values(model_dir, step_a),
                     variable_values(model_dir, step_b))


def diff_values(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
  """``checkpoint_diff`` for ``{name: array}`` already read."""
  diff = {}
  for name in sorted(set(a) | set(b)):
    if name in a and name in b and np.shape(a[name]) == np.shape(b[name]):
      change = (np.asarray(b[name], np.float64) -
                np.asarray(a[name], np.float64))
      diff[name] = float(np.linalg.norm(change.ravel()))
    else:
      diff[name] = float('nan')
  return diff


def eval_metrics_at(model_dir: str | os.PathLike,
                    step: int) -> dict[str, dict[str, float]]:
  """The eval metrics written at ``step``, per ``model_dir/eval*`` directory.

  Returns:
    ``{'eval': {'loss': ..., ...}, 'eval_<name>': {...}}``; directories with
    nothing at that step are left out.
  """
  found = {}
  pattern = os.path.join(glob.escape(os.fspath(model_dir)), 'eval*')
  for logdir in sorted(glob.glob(pattern)):
    if not os.path.isdir(logdir):
      continue
    at_step = {tag: value for tag, points in summary.read_scalars(logdir).items()
               for s, value in points if s == int(step)}
    if at_step:
      found[os.path.basename(logdir)] = at_step
  return found


def histogram(value: Any, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
  """``np.histogram`` of an array's finite values: (counts, bin edges)."""
  a = np.asarray(value, dtype=np.float64).ravel()
  return np.histogram(a[np.isfinite(a)], bins=bins)


# -- text ------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
  widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
  lines = ['  '.join(c.rjust(w) if i else c.ljust(w)
                     for i, (c, w) in enumerate(zip(r, widths))).rstrip()
           for r in [header] + rows]
  lines.insert(1, '  '.join('-' * w for w in widths))
  return '\n'.join(lines)


def _human_bytes(n: int) -> str:
  for unit in ('B', 'KiB', 'MiB', 'GiB'):
    if n < 1024 or unit == 'GiB':
      return f'{n} {unit}' if unit == 'B' else f'{n:.1f} {unit}'
    n /= 1024
  raise AssertionError('unreachable')


def format_time(seconds: float | None) -> str:
  """Local time ``YYYY-mm-dd HH:MM:SS`` of unix ``seconds``, or ``'?'``."""
  if seconds is None:
    return '?'
  return time_lib.strftime('%Y-%m-%d %H:%M:%S', time_lib.localtime(seconds))


def format_checkpoints(rows: list[dict[str, Any]]) -> str:
  """A text table of ``list_checkpoints``' rows: step, time, size, path."""
  return _table(['step', 'time', 'size', 'path'],
                [[str(r['step']), format_time(r['time']),
                  _human_bytes(r['size_bytes']), r['path']] for r in rows])


def _num(x: float) -> str:
  return 'nan' if math.isnan(x) else f'{x:.4g}'


def format_variables(rows: list[dict[str, Any]]) -> str:
  """A text table of ``variable_table``'s rows."""
  return _table(['name', 'shape', 'dtype', *STAT_NAMES],
                [[r['name'], str(list(r['shape'])), r['dtype'],
                  *(_num(r[k]) for k in STAT_NAMES)] for r in rows])


def format_histogram(value: Any, bins: int = 10, width: int = 40) -> str:
  """A text histogram: one line per bin, ``[lo, hi) count ####``."""
  counts, edges = histogram(value, bins)
  if counts.sum() == 0:
    return '(no finite values)'
  top = max(int(counts.max()), 1)
  labels = [f'[{_num(lo)}, {_num(hi)})' for lo, hi in zip(edges, edges[1:])]
  pad = max(len(s) for s in labels)
  digits = len(str(top))
  return '\n'.join(
      f'{label.ljust(pad)} {str(int(c)).rjust(digits)} '
      f'{"#" * round(width * int(c) / top)}'.rstrip()
      for label, c in zip(labels, counts))
