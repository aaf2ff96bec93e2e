"""A notebook view of a model_dir's checkpoints: variables, changes, metrics.

The widget face of ``estlab.checkpoint.inspect`` (public as
``estlab.inspect``; it does the reading, with Orbax only; nothing is
unpickled). Matplotlib draws the histogram off-screen (Agg, no pyplot state)
into PNG bytes for an ``ipywidgets.Image``.

Example:
  >>> from estlab.widgets import CheckpointInspector        # doctest: +SKIP
  >>> CheckpointInspector(model_dir, estimator=est, input_fn=eval_input_fn)
"""
from __future__ import annotations

import html
import io
import math
import os
from typing import Any, Callable

import ipywidgets as widgets
import numpy as np

from estlab.checkpoint import inspect

__all__ = ['CheckpointInspector']

_NONE = '(none)'


def _num(x: Any) -> str:
  x = float(x)
  return 'nan' if math.isnan(x) else f'{x:.6g}'


def _html_table(header: list[str], rows: list[list[str]]) -> str:
  head = ''.join(f'<th>{html.escape(h)}</th>' for h in header)
  body = ''.join('<tr>' + ''.join(f'<td>{html.escape(c)}</td>' for c in r)
                 + '</tr>' for r in rows)
  return f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _histogram_png(name: str, value: np.ndarray, step: int) -> bytes:
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  counts, edges = inspect.histogram(value, bins=30)
  fig = Figure(figsize=(5, 2.6), dpi=80)
  ax = fig.add_subplot()
  ax.stairs(counts, edges, fill=True)
  ax.set_title(f'{name} at step {step}', fontsize=10)
  ax.set_xlabel('value')
  ax.set_ylabel('count')
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format='png')
  return buf.getvalue()


class CheckpointInspector:
  """Browses the checkpoints of ``model_dir``.

  Shows the checkpoints (step, save time, size on disk); for the chosen one a
  table of its variables (shape, dtype, mean, std, min, max, L2 norm, fraction
  of zeros), a histogram of one variable, the per-variable change norm to a
  second checkpoint, and the eval metrics written at its step. With an
  ``estimator`` and an ``input_fn``, a button runs
  ``estimator.evaluate(input_fn, checkpoint_path=<chosen checkpoint>)``.

  Attributes:
    widget: the ``ipywidgets.VBox`` to display or embed.
    last_evaluation: the dict the last button press returned (or None).

  Example:
    >>> ui = CheckpointInspector('/tmp/model')    # doctest: +SKIP
    >>> ui                                        # displays it in Jupyter
  """

  def __init__(self, model_dir: str | os.PathLike, estimator: Any = None,
               input_fn: Callable | None = None):
    self.model_dir = os.fspath(model_dir)
    self.estimator = estimator
    self.input_fn = input_fn
    self.last_evaluation: dict | None = None
    self._checkpoints: list[dict] = []
    self._values: dict[int, dict[str, np.ndarray]] = {}  # step -> arrays
    self._quiet = False

    self.checkpoints = widgets.Select(description='checkpoint', rows=5,
                                      layout=widgets.Layout(width='36em'))
    self.compare = widgets.Dropdown(description='compare to')
    self.variable = widgets.Dropdown(description='variable')
    self.refresh_button = widgets.Button(description='Refresh', icon='refresh')
    self.evaluate_button = widgets.Button(
        description='Evaluate', icon='play',
        disabled=estimator is None or input_fn is None,
        tooltip=('estimator.evaluate(input_fn, checkpoint_path=...)'
                 if estimator is not None and input_fn is not None else
                 'pass estimator= and input_fn= to evaluate a checkpoint'))
    self.message = widgets.HTML()
    self.variables_html = widgets.HTML()
    self.histogram = widgets.Image(format='png')
    self.diff_html = widgets.HTML()
    self.metrics_html = widgets.HTML()
    self.evaluation_html = widgets.HTML()

    self.checkpoints.observe(self._on_checkpoint, names='value')
    self.compare.observe(lambda _: self._show_diff(), names='value')
    self.variable.observe(
        lambda _: None if self._quiet else self._show_histogram(), names='value')
    self.refresh_button.on_click(lambda _: self.refresh())
    self.evaluate_button.on_click(lambda _: self.evaluate())

    self.widget = widgets.VBox([
        widgets.HBox([self.checkpoints, self.refresh_button]),
        self.message,
        widgets.HTML('<b>Variables</b>'), self.variables_html,
        self.variable, self.histogram,
        widgets.HTML('<b>Change to another checkpoint</b>'), self.compare,
        self.diff_html,
        widgets.HTML('<b>Eval metrics at this step</b>'), self.metrics_html,
        self.evaluate_button, self.evaluation_html,
    ])
    self.refresh()

  # -- public -------------------------------------------------------------------

  @property
  def step(self) -> int | None:
    """The chosen checkpoint's step."""
    return self.checkpoints.value

  def refresh(self) -> None:
    """Re-lists the checkpoints; keeps the chosen one if it still exists."""
    previous = self.checkpoints.value
    self._checkpoints = inspect.list_checkpoints(self.model_dir)
    steps = [c['step'] for c in self._checkpoints]
    self._values = {s: v for s, v in self._values.items() if s in steps}
    self.compare.options = [(_NONE, None)] + [(str(s), s) for s in steps]
    if not steps:
      self.message.value = (
          f'No checkpoints in {html.escape(repr(self.model_dir))} yet: train '
          'an Estimator with this model_dir, then press Refresh.')
      self._quiet = True
      try:
        self.checkpoints.options = []
      finally:
        self._quiet = False
      self._on_checkpoint()
      return
    self.message.value = ''
    options = [(f'{c["step"]:>8}   {inspect.format_time(c["time"])}   '
                f'{c["size_bytes"]:,} bytes', c['step'])
               for c in self._checkpoints]
    chosen = previous if previous in steps else steps[-1]
    self._quiet = True  # one redraw below, not one per trait change
    try:
      self.checkpoints.options = options
      self.checkpoints.value = chosen
    finally:
      self._quiet = False
    self._on_checkpoint()

  def table(self) -> list[dict]:
    """The chosen checkpoint's ``estlab.inspect.variable_table`` rows."""
    return inspect.table_rows(self._arrays(self.step)) if self.step is not None else []

  def diff(self) -> dict[str, float]:
    """Per-variable change norm from the chosen to the ``compare`` step."""
    if self.step is None or self.compare.value is None:
      return {}
    return inspect.diff_values(self._arrays(self.compare.value),
                               self._arrays(self.step))

  def evaluate(self) -> dict:
    """Evaluates the chosen checkpoint with the estimator; shows the result."""
    if self.estimator is None or self.input_fn is None:
      raise ValueError('CheckpointInspector(model_dir) has no estimator or '
                       'input_fn to evaluate with; pass CheckpointInspector('
                       'model_dir, estimator=est, input_fn=eval_input_fn).')
    if self.step is None:
      raise ValueError(f'No checkpoint chosen in {self.model_dir!r}.')
    path = self._path(self.step)
    self.evaluation_html.value = f'evaluating {html.escape(path)} ...'
    try:
      result = self.estimator.evaluate(self.input_fn, checkpoint_path=path)
    except Exception as e:  # shown in the widget, then re-raised
      self.evaluation_html.value = (
          f'<span style="color:#b00">{html.escape(type(e).__name__)}: '
          f'{html.escape(str(e))}</span>')
      raise
    self.last_evaluation = result
    self.evaluation_html.value = _html_table(
        ['metric', 'value'],
        [[k, _num(v) if np.ndim(v) == 0 else str(np.asarray(v).tolist())]
         for k, v in sorted(result.items())])
    self._show_metrics()  # evaluate wrote events at this step
    return result

  def _repr_mimebundle_(self, **kwargs):
    return self.widget._repr_mimebundle_(**kwargs)  # pylint: disable=protected-access

  def _ipython_display_(self):
    from IPython.display import display  # pylint: disable=g-import-not-at-top
    display(self.widget)

  # -- internals ----------------------------------------------------------------

  def _path(self, step: int) -> str:
    return next(c['path'] for c in self._checkpoints if c['step'] == step)

  def _arrays(self, step: int) -> dict[str, np.ndarray]:
    if step not in self._values:
      self._values[step] = inspect.variable_values(self.model_dir, step)
    return self._values[step]

  def _on_checkpoint(self, change: Any = None) -> None:
    if change is not None and self._quiet:
      return
    if self.step is None:
      self.variables_html.value = ''
      self.variable.options = []
      self.histogram.value = b''
      self.diff_html.value = self.metrics_html.value = ''
      return
    rows = self.table()
    self.variables_html.value = _html_table(
        ['name', 'shape', 'dtype', *inspect.STAT_NAMES],
        [[r['name'], str(list(r['shape'])), r['dtype'],
          *(_num(r[k]) for k in inspect.STAT_NAMES)] for r in rows])
    names = [r['name'] for r in rows]
    keep = self.variable.value if self.variable.value in names else None
    self._quiet = True
    try:
      self.variable.options = names
      self.variable.value = keep or (names[0] if names else None)
    finally:
      self._quiet = False
    self._show_histogram()
    self._show_diff()
    self._show_metrics()

  def _show_histogram(self) -> None:
    name = self.variable.value
    if self.step is None or name is None:
      self.histogram.value = b''
      return
    self.histogram.value = _histogram_png(name, self._arrays(self.step)[name],
                                          self.step)

  def _show_diff(self) -> None:
    if self.compare.value is None or self.step is None:
      self.diff_html.value = '<i>choose a checkpoint to compare to</i>'
      return
    self.diff_html.value = _html_table(
        ['name', f'||w({self.step}) - w({self.compare.value})||'],
        [[n, _num(v)] for n, v in self.diff().items()])

  def _show_metrics(self) -> None:
    if self.step is None:
      self.metrics_html.value = ''
      return
    found = inspect.eval_metrics_at(self.model_dir, self.step)
    if not found:
      self.metrics_html.value = f'<i>no eval metrics at step {self.step}</i>'
      return
    self.metrics_html.value = _html_table(
        ['eval dir', 'metric', 'value'],
        [[d, k, _num(v)] for d, m in found.items() for k, v in sorted(m.items())])
