"""Launcher widget: trains in the background, records curves, stops, shows errors.

Headless: buttons are clicked from the test; runs are joined with deadlines
(``Launcher.wait``), never slept on. JAX has 4 virtual CPU devices
(tests/conftest.py).
"""
import itertools
import os
import sys

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")

import estlab  # pylint: disable=g-import-not-at-top
from estlab.widgets import launcher as launcher_lib
from _models import batches_input_fn, linear_model_fn, quiet, regression_data

_DEADLINE = 120  # seconds; a run that takes longer is a failure, not a wait


def _estimator(tmp_path, **config):
  return estlab.Estimator(linear_model_fn, str(tmp_path / "model"),
                          config=quiet(**config))


def _repeating(x, y, batch_size=32, on_batch=None):
  """A repeating input_fn; ``on_batch(i)`` is called before batch ``i``."""
  def input_fn():
    for i in itertools.count():
      if on_batch is not None:
        on_batch(i)
      j = (i * batch_size) % len(x)
      yield {"x": x[j:j + batch_size]}, y[j:j + batch_size]
  return input_fn


def _train(launcher, steps, eval_every=None):
  launcher.steps.value = steps
  if eval_every is not None:
    launcher.eval_every.value = eval_every
  launcher.train_button.click()
  assert launcher.wait(_DEADLINE), "training did not finish in time"


def _step_of(path):
  return int(os.path.basename(path))


def test_train_advances_records_loss_and_fills_progress(tmp_path):
  x, y = regression_data()
  est = _estimator(tmp_path)
  launcher = estlab.widgets.Launcher(est, _repeating(x, y))
  _train(launcher, 30)
  assert launcher.error is None, launcher.status.value
  assert _step_of(est.latest_checkpoint()) == 30
  assert launcher.progress.value == launcher.progress.max == 30
  steps = [s for s, _ in launcher.history["loss"]]
  assert steps == list(range(1, 31))  # every step of a short run
  losses = [v for _, v in launcher.history["loss"]]
  assert losses[-1] < losses[0]
  assert "steps/sec" in launcher.rate.value
  assert bytes(launcher.plot.value).startswith(b"\x89PNG")
  assert "done: global step 30" in launcher.status.value
  assert not launcher.train_button.disabled and launcher.stop_button.disabled
  assert launcher.evaluate_button.disabled  # no eval_input_fn

  _train(launcher, 10)  # a second run continues from the checkpoint
  assert _step_of(est.latest_checkpoint()) == 40
  assert launcher.progress.value == 10
  assert launcher.history["loss"][-1][0] == 40


def test_evaluates_every_n_steps(tmp_path):
  x, y = regression_data()
  est = _estimator(tmp_path)
  launcher = estlab.widgets.Launcher(est, _repeating(x, y),
                                     batches_input_fn(x, y))
  _train(launcher, 30, eval_every=10)
  assert launcher.error is None, launcher.status.value
  assert [s for s, _ in launcher.history["eval/mse"]] == [10, 20, 30]
  assert [s for s, _ in launcher.history["eval/loss"]] == [10, 20, 30]
  assert "eval/mean_pred" in launcher.history
  assert launcher.progress.value == 30
  mse = [v for _, v in launcher.history["eval/mse"]]
  assert mse[-1] < mse[0]

  launcher.evaluate_button.click()
  assert launcher.wait(_DEADLINE)
  assert launcher.history["eval/mse"][-1][0] == 30
  assert len(launcher.history["eval/mse"]) == 4


def test_eval_every_zero_evaluates_once_at_the_end(tmp_path):
  x, y = regression_data()
  launcher = estlab.widgets.Launcher(_estimator(tmp_path), _repeating(x, y),
                                     batches_input_fn(x, y))
  _train(launcher, 12, eval_every=0)
  assert [s for s, _ in launcher.history["eval/mse"]] == [12]


def test_finite_input_ends_the_run(tmp_path):
  x, y = regression_data(n=64)
  est = _estimator(tmp_path)
  launcher = estlab.widgets.Launcher(est, batches_input_fn(x, y, 32),
                                     batches_input_fn(x, y))
  _train(launcher, 100, eval_every=50)
  assert launcher.error is None, launcher.status.value
  assert _step_of(est.latest_checkpoint()) == 2
  assert "the input ended" in launcher.status.value
  assert [s for s, _ in launcher.history["eval/mse"]] == [2]


def test_stop_ends_a_long_run_with_a_checkpoint(tmp_path):
  x, y = regression_data()
  est = _estimator(tmp_path)
  launcher = None

  def press_stop(i):  # the user presses Stop while batch 20 is being read
    if i == 20:
      launcher.stop_button.click()
  launcher = estlab.widgets.Launcher(est, _repeating(x, y, on_batch=press_stop))
  requested = 1_000_000
  _train(launcher, requested)
  assert launcher.error is None, launcher.status.value
  step = _step_of(est.latest_checkpoint())
  assert 0 < step < 100  # prefetching reads a few batches ahead
  assert launcher.progress.value == step
  assert "stopped at global step" in launcher.status.value
  assert not launcher.train_button.disabled and launcher.stop_button.disabled


def test_an_input_error_shows_in_the_widget_and_re_enables_train(tmp_path):
  def broken():
    raise ValueError("the CSV file is missing")
  launcher = estlab.widgets.Launcher(_estimator(tmp_path), broken)
  _train(launcher, 5)
  assert isinstance(launcher.error, ValueError)
  assert "the CSV file is missing" in launcher.status.value
  assert "ValueError" in launcher.status.value
  assert not launcher.train_button.disabled
  assert launcher.stop_button.disabled and not launcher.running

  launcher.steps.value = 0  # a bad box value is an error too, not a thread
  launcher.train_button.click()
  assert "steps=0" in launcher.status.value and not launcher.running


def test_evaluate_before_training_says_to_train_first(tmp_path):
  x, y = regression_data()
  launcher = estlab.widgets.Launcher(_estimator(tmp_path), _repeating(x, y),
                                     batches_input_fn(x, y))
  launcher.evaluate_button.click()
  assert launcher.wait(_DEADLINE)
  assert "train first" in launcher.status.value
  assert not launcher.evaluate_button.disabled


def test_device_dropdown_lists_devices_and_trains_on_all(tmp_path):
  x, y = regression_data()
  est = _estimator(tmp_path)
  launcher = estlab.widgets.Launcher(est, _repeating(x, y))
  labels = [label for label, _ in launcher.device.options]
  assert labels == ["as configured", "all 4 cpu devices",
                    "cpu:0", "cpu:1", "cpu:2", "cpu:3"]

  launcher.device.label = "all 4 cpu devices"
  _train(launcher, 5)
  assert launcher.error is None, launcher.status.value
  strategy = est.config.train_distribute
  assert isinstance(strategy, estlab.distribute.MirroredStrategy)
  assert strategy.num_replicas_in_sync == 4

  launcher.device.label = "cpu:1"  # resumes from the checkpoint on cpu:1
  _train(launcher, 5)
  assert launcher.error is None, launcher.status.value
  assert isinstance(est.config.train_distribute,
                    estlab.distribute.OneDeviceStrategy)
  assert _step_of(est.latest_checkpoint()) == 10

  launcher.device.label = "as configured"
  _train(launcher, 5)
  assert est.config.train_distribute is None
  assert _step_of(est.latest_checkpoint()) == 15


def test_shows_model_dir_and_tensorboard_command(tmp_path):
  est = _estimator(tmp_path)
  launcher = estlab.widgets.Launcher(est, lambda: [])
  assert est.model_dir in launcher.info.value
  assert f"tensorboard --logdir {est.model_dir}" in launcher.info.value
  bundle = launcher._repr_mimebundle_()
  assert "application/vnd.jupyter.widget-view+json" in bundle


def test_tensorboard_button_starts_only_on_click(tmp_path, monkeypatch):
  notebook = pytest.importorskip("tensorboard.notebook")
  calls = []
  monkeypatch.setattr(notebook, "start", calls.append)
  est = _estimator(tmp_path)
  launcher = estlab.widgets.Launcher(est, lambda: [])
  assert not launcher.tensorboard_button.disabled and calls == []
  launcher.tensorboard_button.click()
  assert calls == [f"--logdir {est.model_dir}"]


def test_tensorboard_button_disabled_without_tensorboard(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
  launcher = estlab.widgets.Launcher(_estimator(tmp_path), lambda: [])
  assert launcher.tensorboard_button.disabled
  assert "not installed" in launcher.tensorboard_button.tooltip


def test_widgets_package_exports_lazily():
  import estlab.widgets as w  # pylint: disable=g-import-not-at-top
  assert w.Launcher is launcher_lib.Launcher
  assert "Launcher" in dir(w)
  with pytest.raises(AttributeError, match="exports"):
    getattr(w, "Nope")

