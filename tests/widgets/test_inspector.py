"""CheckpointInspector, driven headless: what a user clicks, and what it shows."""
import numpy as np
import pytest

import estlab
from estlab.checkpoint import Checkpointer, flatten_names
from estlab.widgets import CheckpointInspector
from _models import (batches_input_fn, linear_model_fn, quiet, regression_data,
                     train_with_checkpoints)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """12 steps, a checkpoint every 4 (steps 4, 8, 12), evaluated once at 12."""
  model_dir = str(tmp_path_factory.mktemp("inspector") / "model")
  est, result, eval_fn = train_with_checkpoints(model_dir)
  return est, model_dir, result, eval_fn


def _values(model_dir, step):
  with Checkpointer(model_dir) as ckpt:
    return {k: np.asarray(v, np.float64)
            for k, v in flatten_names(ckpt.restore_params(step=step)).items()}


def test_lists_checkpoints_and_picks_the_latest(trained):
  _, model_dir, _, _ = trained
  ui = CheckpointInspector(model_dir)
  assert [v for _, v in ui.checkpoints.options] == [0, 4, 8, 12]
  assert ui.step == 12
  assert " bytes" in ui.checkpoints.options[0][0]
  assert ui.evaluate_button.disabled
  assert "application/vnd.jupyter.widget-view+json" in ui._repr_mimebundle_()


def test_table_statistics_equal_numpys(trained):
  est, model_dir, _, _ = trained
  ui = CheckpointInspector(model_dir)
  rows = {r["name"]: r for r in ui.table()}
  assert sorted([*rows, "global_step"]) == est.get_variable_names()
  for name, row in rows.items():
    a = est.get_variable_value(name).astype(np.float64)
    np.testing.assert_allclose(
        [row[k] for k in ("mean", "std", "min", "max", "l2_norm",
                          "zero_fraction")],
        [a.mean(), a.std(), a.min(), a.max(), np.linalg.norm(a.ravel()),
         np.mean(a == 0)], rtol=1e-12)
    assert name in ui.variables_html.value
  assert f"{rows['linear/kernel']['max']:.6g}" in ui.variables_html.value


def test_choosing_a_checkpoint_or_variable_redraws(trained):
  _, model_dir, _, _ = trained
  ui = CheckpointInspector(model_dir)
  ui.variable.value = "linear/bias"
  bias_png = ui.histogram.value
  assert bias_png[:8] == b"\x89PNG\r\n\x1a\n"
  ui.variable.value = "linear/kernel"
  kernel_png = ui.histogram.value
  assert kernel_png != bias_png
  ui.checkpoints.value = 4
  assert ui.variable.value == "linear/kernel"  # the choice is kept
  assert ui.histogram.value != kernel_png
  at4 = _values(model_dir, 4)["linear/kernel"]
  assert {r["name"]: r for r in ui.table()}["linear/kernel"]["max"] == (
      pytest.approx(at4.max()))


def test_diff_equals_numpys_norm_of_the_difference(trained):
  _, model_dir, _, _ = trained
  ui = CheckpointInspector(model_dir)
  assert ui.diff() == {}
  ui.checkpoints.value = 12
  ui.compare.value = 4
  a4, a12 = _values(model_dir, 4), _values(model_dir, 12)
  diff = ui.diff()
  assert sorted(diff) == sorted(a12)
  for name, change in diff.items():
    assert change == pytest.approx(np.linalg.norm((a12[name] - a4[name]).ravel()),
                                   rel=1e-12)
    assert name in ui.diff_html.value


def test_eval_metrics_at_the_evaluated_step(trained):
  _, model_dir, result, _ = trained
  ui = CheckpointInspector(model_dir)
  ui.checkpoints.value = 12
  assert f"{float(result['mse']):.6g}" in ui.metrics_html.value
  ui.checkpoints.value = 4
  assert "no eval metrics at step 4" in ui.metrics_html.value


def test_evaluate_button_matches_estimator_evaluate(trained):
  est, model_dir, _, input_fn = trained
  ui = CheckpointInspector(model_dir, estimator=est, input_fn=input_fn)
  assert not ui.evaluate_button.disabled
  ui.checkpoints.value = 8
  ui.evaluate_button.click()
  got = ui.last_evaluation
  expected = est.evaluate(input_fn, checkpoint_path=f"{model_dir}/8")
  assert got["global_step"] == 8
  assert sorted(got) == sorted(expected)
  for k in expected:
    np.testing.assert_allclose(got[k], expected[k], rtol=1e-6)
  assert f"{float(expected['mse']):.6g}" in ui.evaluation_html.value
  assert "mse" in ui.metrics_html.value  # its events, shown at step 8


def test_refresh_sees_new_checkpoints(tmp_path):
  x, y = regression_data()
  model_dir = str(tmp_path / "model")
  ui = CheckpointInspector(model_dir)
  assert ui.checkpoints.options == () and "No checkpoints" in ui.message.value
  est = estlab.Estimator(linear_model_fn, model_dir,
                         config=quiet(save_checkpoints_steps=2))
  est.train(batches_input_fn(x, y, epochs=10), steps=2)
  ui.refresh()
  assert [v for _, v in ui.checkpoints.options] == [0, 2] and ui.step == 2
  assert ui.message.value == "" and "linear/kernel" in ui.variables_html.value
