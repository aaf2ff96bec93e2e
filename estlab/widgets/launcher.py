"""Launcher: train and evaluate an Estimator from a notebook, with live curves.

Pick a device, the number of steps and how often to evaluate, press Train:
training runs in a background thread (the notebook stays usable), a progress
bar, steps/sec and loss / eval-metric curves update as it runs, and Stop ends
it at the next step with a final checkpoint written.

Example (in a notebook cell; the last line displays the widget):
  >>> import estlab, estlab.widgets
  >>> est = estlab.LinearRegressor([estlab.feature_column.numeric_column('x')])
  >>> launcher = estlab.widgets.Launcher(est, train_fn, eval_fn)  # doctest: +SKIP
  >>> launcher                                                   # doctest: +SKIP

Training runs in chunks of "eval every" steps, with ``estimator.evaluate``
between chunks when an ``eval_input_fn`` is given; each chunk is one
``train`` call, which calls ``train_input_fn`` again (``train_and_evaluate``
instead evaluates inside one call), so a repeating input_fn is the usual
choice. A finite input that runs out ends the run.

Devices: the dropdown offers the estimator's own configuration, each device
of ``jax.local_devices()`` (``OneDeviceStrategy``) and, where there are
several, all of them (``MirroredStrategy``). ``RunConfig`` is frozen, so a
choice replaces the estimator's config (``train_distribute``) between runs,
never during one; parameters are then restored from the latest checkpoint onto
the new devices.

Colab with a TPU runtime (Runtime > Change runtime type > TPU): the same
widget trains on the TPU cores. Set-up cell, not tested here::

  !pip install "estlab[notebook]"   # Colab's TPU runtime ships jax with TPU
  # support; elsewhere: pip install "jax[tpu]"
  from google.colab import output
  output.enable_custom_widget_manager()
  import jax; jax.devices()         # [TpuDevice(id=0, ...), ...]

then choose "all 8 tpu devices" in the dropdown. Under ``MirroredStrategy``
the input_fn's batches are per-replica, as in tf.estimator: a step takes one
per device (a global batch 8 times the input_fn's).
"""
from __future__ import annotations

import html
import importlib.util
import io
import logging
import os
import shlex
import shutil
import sys
import threading
import time
import traceback
from typing import Any, Callable

import ipywidgets as widgets
import jax
import numpy as np

from estlab.distribute import MirroredStrategy, OneDeviceStrategy
from estlab.hooks import PeriodicTrigger, SessionRunHook

__all__ = ["Launcher", "device_choices"]

logger = logging.getLogger("estlab")

CONFIGURED = "configured"   # the dropdown value: keep the estimator's strategy
_PLOT_SECS = 0.5            # the figure is redrawn at most twice per second
_TICK_SECS = 0.1            # progress bar and steps/sec at most ten times
_MAX_POINTS = 200           # loss points recorded per run (about)


def device_choices(devices: list | None = None) -> list[tuple[str, Any]]:
  """Dropdown options ``(label, value)`` for ``devices`` (default: local ones).

  The value is ``CONFIGURED`` or a tuple of devices; one device trains with
  ``OneDeviceStrategy``, several with ``MirroredStrategy``.

  Example:
    >>> [label for label, _ in device_choices()][:2]  # doctest: +SKIP
    ['as configured', 'all 4 cpu devices']
  """
  devices = list(jax.local_devices() if devices is None else devices)
  options: list[tuple[str, Any]] = [("as configured", CONFIGURED)]
  for platform in dict.fromkeys(d.platform for d in devices):
    group = tuple(d for d in devices if d.platform == platform)
    if len(group) > 1:
      options.append((f"all {len(group)} {platform} devices", group))
    options.extend((f"{d.platform}:{d.id}", (d,)) for d in group)
  return options


def _strategy(devices: tuple) -> Any:
  if len(devices) == 1:
    return OneDeviceStrategy(devices[0])
  return MirroredStrategy(list(devices))


def _tensorboard_missing() -> str | None:
  """Why the TensorBoard button is disabled, or None when it can work."""
  if importlib.util.find_spec("tensorboard") is None:
    return "TensorBoard is not installed: pip install tensorboard"
  return None


class _Monitor(SessionRunHook):
  """Feeds the launcher each step; requests a stop when Stop was pressed."""

  def __init__(self, launcher: "Launcher"):
    self._launcher = launcher
    self.chunk_start: int | None = None
    self.chunks = 0   # train/evaluate calls seen: a new one restarts the rate

  def begin(self):
    self.chunk_start = None
    self.chunks += 1

  def before_run(self, run_context):
    if self.chunk_start is None:
      self.chunk_start = run_context.global_step

  def after_run(self, run_context, run_values):
    if self._launcher._stop.is_set():  # pylint: disable=protected-access
      run_context.request_stop()
    if run_context.mode == "train":
      self._launcher._on_step(run_context.global_step, run_values)  # pylint: disable=protected-access


class Launcher:
  """A notebook widget that trains and evaluates ``estimator`` in the background.

  Args:
    estimator: an ``estlab.Estimator`` (premade or custom).
    train_input_fn: the input_fn of ``estimator.train``; called once per chunk.
    eval_input_fn: the input_fn of ``estimator.evaluate``, or None (no eval).
    steps: initial value of the "steps" box.
    eval_every: initial value of the "eval every" box (0: only at the end).
    eval_steps: ``evaluate(steps=...)``; None reads the eval input to its end.

  Attributes:
    widget: the UI (an ``ipywidgets.VBox``); the launcher displays as it.
    history: ``{'loss': [(step, value)], 'eval/<metric>': [(step, value)]}``.
    error: the exception that ended the last run, or None.
  """

  def __init__(self, estimator: Any, train_input_fn: Callable,
               eval_input_fn: Callable | None = None, *, steps: int = 1000,
               eval_every: int = 200, eval_steps: int | None = None):
    self.estimator = estimator
    self.train_input_fn = train_input_fn
    self.eval_input_fn = eval_input_fn
    self.eval_steps = eval_steps
    self.history: dict[str, list[tuple[int, float]]] = {"loss": []}
    self.error: BaseException | None = None
    self._configured = estimator.config.train_distribute
    self._applied = CONFIGURED
    self._thread: threading.Thread | None = None
    self._stop = threading.Event()
    self._monitor = _Monitor(self)
    self._clock = time.monotonic
    self._reset_run(1)

    has_eval = eval_input_fn is not None
    no_eval = "" if has_eval else "no eval_input_fn was given"
    self.device = widgets.Dropdown(options=device_choices(), value=CONFIGURED,
                                   description="device")
    self.steps = widgets.IntText(value=steps, description="steps")
    self.eval_every = widgets.IntText(
        value=eval_every if has_eval else 0, description="eval every",
        disabled=not has_eval, tooltip=no_eval or "0: evaluate at the end only")
    self.train_button = widgets.Button(description="Train", icon="play",
                                       button_style="primary")
    self.evaluate_button = widgets.Button(description="Evaluate",
                                          disabled=not has_eval, tooltip=no_eval)
    self.stop_button = widgets.Button(description="Stop", icon="stop",
                                      button_style="danger", disabled=True)
    missing = _tensorboard_missing()
    self.tensorboard_button = widgets.Button(
        description="TensorBoard", disabled=missing is not None,
        tooltip=missing or "open TensorBoard on model_dir, inline")
    self.progress = widgets.IntProgress(value=0, min=0, max=max(steps, 1))
    self.rate = widgets.Label("")
    self.status = widgets.HTML("")
    self.plot = widgets.Image(format="png")
    logdir = shlex.quote(estimator.model_dir)
    self.info = widgets.HTML(
        f"model_dir: <code>{html.escape(estimator.model_dir)}</code><br>"
        f"<code>tensorboard --logdir {html.escape(logdir)}</code>")
    self.tensorboard_output = widgets.Output()

    self.train_button.on_click(self._on_train)
    self.evaluate_button.on_click(self._on_evaluate)
    self.stop_button.on_click(lambda _: self.stop())
    self.tensorboard_button.on_click(self._open_tensorboard)
    self.widget = widgets.VBox([
        widgets.HBox([self.device, self.steps, self.eval_every]),
        widgets.HBox([self.train_button, self.evaluate_button, self.stop_button,
                      self.tensorboard_button]),
        widgets.HBox([self.progress, self.rate]),
        self.status, self.plot, self.info, self.tensorboard_output])

  # -- display ----------------------------------------------------------------

  def _repr_mimebundle_(self, **kwargs):
    return self.widget._repr_mimebundle_(**kwargs)  # pylint: disable=protected-access

  def _ipython_display_(self):
    from IPython.display import display  # pylint: disable=g-import-not-at-top
    display(self.widget)

  # -- public controls ---------------------------------------------------------

  @property
  def running(self) -> bool:
    return self._thread is not None and self._thread.is_alive()

  def stop(self) -> None:
    """Ends training at the next step (a checkpoint is written), as Stop does."""
    self._stop.set()

  def wait(self, timeout: float | None = None) -> bool:
    """Joins the background run; returns whether it has finished."""
    thread = self._thread
    if thread is not None:
      thread.join(timeout)
    return not self.running

  # -- buttons -----------------------------------------------------------------

  def _on_train(self, _=None) -> None:
    steps, every = self.steps.value, self.eval_every.value
    if steps <= 0:
      self._show_error(ValueError(f"steps={steps!r}: must be a positive int."))
      return
    self._start(lambda: self._train(steps, max(every, 0)))

  def _on_evaluate(self, _=None) -> None:
    self._start(self._evaluate_once)

  def _start(self, work: Callable[[], str]) -> None:
    if self.running:
      return
    self.error = None
    self._stop.clear()
    self._set_running(True)
    try:
      self._apply_device()
    except Exception as e:  # pylint: disable=broad-except
      self._finish(error=e)
      return
    self._thread = threading.Thread(target=self._work, args=(work,),
                                    name="estlab-launcher", daemon=True)
    self._thread.start()

  def _work(self, work: Callable[[], str]) -> None:
    try:
      message = work()
    except Exception as e:  # pylint: disable=broad-except
      logger.exception("Launcher run failed")
      self._finish(error=e)
    else:
      self._finish(message=message)

  def _finish(self, message: str = "", error: BaseException | None = None):
    if error is not None:
      self._show_error(error)
    else:
      self.status.value = html.escape(message)
    self._render(force=True)
    self._set_running(False)

  def _set_running(self, running: bool) -> None:
    has_eval = self.eval_input_fn is not None
    self.train_button.disabled = running
    self.evaluate_button.disabled = running or not has_eval
    self.stop_button.disabled = not running
    self.device.disabled = running
    self.steps.disabled = running
    self.eval_every.disabled = running or not has_eval

  def _show_error(self, error: BaseException) -> None:
    self.error = error
    trace = "".join(traceback.format_exception(
        type(error), error, error.__traceback__))
    self.status.value = (
        f"<span style='color:#c00'><b>{html.escape(type(error).__name__)}</b>: "
        f"{html.escape(str(error))}</span><details><summary>traceback"
        f"</summary><pre>{html.escape(trace)}</pre></details>")

  def _open_tensorboard(self, _=None) -> None:
    from tensorboard import notebook  # pylint: disable=g-import-not-at-top
    # A kernel started from a virtual environment often lacks its bin/ on PATH.
    beside = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    if (not os.environ.get("TENSORBOARD_BINARY") and
        shutil.which("tensorboard") is None and os.path.exists(beside)):
      os.environ["TENSORBOARD_BINARY"] = beside
    self.tensorboard_output.clear_output()
    with self.tensorboard_output:
      notebook.start(f"--logdir {shlex.quote(self.estimator.model_dir)}")

  # -- devices -------------------------------------------------------------------

  def _apply_device(self) -> None:
    """Replaces the estimator's ``train_distribute`` (RunConfig is frozen)."""
    choice = self.device.value
    if choice == self._applied:
      return
    strategy = self._configured if choice == CONFIGURED else _strategy(choice)
    est = self.estimator
    est._config = est.config.replace(train_distribute=strategy)  # pylint: disable=protected-access
    # Parameters on the old devices are dropped; the next run restores the
    # latest checkpoint onto the new ones.
    if est._session is not None:  # pylint: disable=protected-access
      est._session.forget()  # pylint: disable=protected-access
    self._applied = choice

  # -- the runs (background thread) ------------------------------------------

  def _reset_run(self, record_every: int) -> None:
    self._run_start: int | None = None
    self._record_every = record_every
    self._record = PeriodicTrigger(every_steps=record_every)
    self._step: int | None = None
    self._rate_chunk: int | None = None
    self._rate_from: tuple[int, float] | None = None
    self._last_tick = self._last_plot = -float("inf")
    self._plotted = None

  def _train(self, steps: int, every: int) -> str:
    self._reset_run(max(1, steps // _MAX_POINTS))
    self.progress.max, self.progress.value = steps, 0
    done = 0
    while done < steps and not self._stop.is_set():
      chunk = min(every or steps, steps - done)
      self.status.value = f"training {done} of {steps} steps"
      self.estimator.train(self.train_input_fn, steps=chunk,
                           hooks=[self._monitor])
      trained = (self._step or 0) - (self._monitor.chunk_start or 0)
      done += trained
      self._tick(force=True)
      if self.eval_input_fn is not None and not self._stop.is_set() and (
          every or done >= steps or trained < chunk):
        self._evaluate()
      if trained < chunk and not self._stop.is_set():
        return f"the input ended: trained {done} steps, global step {self._step}"
    if self._stop.is_set():
      return f"stopped at global step {self._step}; checkpoint saved"
    return f"done: global step {self._step}"

  def _evaluate_once(self) -> str:
    step = self._evaluate()
    return "evaluation stopped" if step is None else f"evaluated global step {step}"

  def _evaluate(self) -> int | None:
    self.status.value = "evaluating"
    result = self.estimator.evaluate(self.eval_input_fn, steps=self.eval_steps,
                                     hooks=[self._monitor])
    if self._stop.is_set():  # cut short: the metrics cover part of the input
      return None
    step = int(result["global_step"])
    for key, value in sorted(result.items()):
      if key != "global_step" and np.ndim(value) == 0:
        self.history.setdefault(f"eval/{key}", []).append((step, float(value)))
    self._render(force=True)
    return step

  def _on_step(self, step: int, run_values: Any) -> None:
    """After each train step (or loop): record, update the progress, replot."""
    now = self._clock()
    if self._run_start is None:
      self._run_start = self._monitor.chunk_start
      self._record = PeriodicTrigger(every_steps=self._record_every,
                                     start_step=self._run_start)
    if self._monitor.chunks != self._rate_chunk:
      # Steps/sec counts from each chunk's first step: compiled by then.
      self._rate_chunk, self._rate_from = self._monitor.chunks, (step, now)
    self._step = step
    if self._record(step, now):
      self.history["loss"].append((step, float(run_values.results["loss"])))
    self._tick(now)
    self._render(now)

  def _tick(self, now: float | None = None, force: bool = False) -> None:
    now = self._clock() if now is None else now
    if not force and now - self._last_tick < _TICK_SECS:
      return
    self._last_tick = now
    if self._step is None or self._run_start is None:
      return
    self.progress.value = min(self._step - self._run_start, self.progress.max)
    if self._rate_from is not None and now > self._rate_from[1]:
      rate = (self._step - self._rate_from[0]) / (now - self._rate_from[1])
      self.rate.value = f"step {self._step}, {rate:.1f} steps/sec"

  def _render(self, now: float | None = None, force: bool = False) -> None:
    """Draws the curves into ``self.plot`` (PNG), at most twice per second."""
    now = self._clock() if now is None else now
    if not force and now - self._last_plot < _PLOT_SECS:
      return
    self._last_plot = now
    sizes = tuple((k, len(v)) for k, v in self.history.items())
    if sizes == self._plotted or not any(n for _, n in sizes):
      return
    self._plotted = sizes
    self.plot.value = _figure_png(self.history)


def _figure_png(history: dict[str, list[tuple[int, float]]]) -> bytes:
  """Train / eval loss on the left, the other eval metrics on the right."""
  # pylint: disable=g-import-not-at-top
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  metrics = [k for k in history if k.startswith("eval/") and k != "eval/loss"]
  figure = Figure(figsize=(9 if metrics else 5, 3), dpi=80, layout="tight")
  FigureCanvasAgg(figure)  # pyplot-free: safe outside the main thread
  axes = figure.subplots(1, 2 if metrics else 1, squeeze=False)[0]
  for key, style in (("loss", "-"), ("eval/loss", "o-")):
    if history.get(key):
      steps, values = zip(*history[key])
      axes[0].plot(steps, values, style, label=key, markersize=3)
  axes[0].set(xlabel="global step", title="loss")
  if axes[0].lines:
    axes[0].legend()
  for key in metrics:
    steps, values = zip(*history[key])
    axes[1].plot(steps, values, "o-", label=key[len("eval/"):], markersize=3)
  if metrics:
    axes[1].set(xlabel="global step", title="eval metrics")
    axes[1].legend()
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png")
  return buffer.getvalue()
