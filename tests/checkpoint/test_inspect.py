"""`estlab.inspect` and `estlab inspect`: a model_dir's checkpoints, read back."""
import os
import subprocess
import sys

import numpy as np
import pytest

from estlab import inspect
from estlab.checkpoint import Checkpointer, flatten_names
from _models import train_with_checkpoints


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """12 steps, a checkpoint every 4 (steps 4, 8, 12), evaluated once at 12."""
  model_dir = str(tmp_path_factory.mktemp("inspect") / "model")
  est, result, eval_fn = train_with_checkpoints(model_dir)
  return est, model_dir, result


def _values(model_dir, step):
  with Checkpointer(model_dir) as ckpt:
    return {k: np.asarray(v)
            for k, v in flatten_names(ckpt.restore_params(step=step)).items()}


def test_lists_every_checkpoint_with_time_and_size(trained):
  _, model_dir, _ = trained
  rows = inspect.list_checkpoints(model_dir)
  assert [r["step"] for r in rows] == [0, 4, 8, 12]
  for r in rows:
    assert r["path"] == os.path.join(model_dir, str(r["step"]))
    assert r["size_bytes"] > 0
    assert r["time"] == Checkpointer(model_dir).read_metadata(r["step"])["time"]
  text = inspect.format_checkpoints(rows)
  assert all(os.path.join(model_dir, s) in text for s in ("0", "4", "8", "12"))


def test_no_checkpoints_is_an_empty_list(tmp_path):
  assert inspect.list_checkpoints(tmp_path / "nothing") == []


def test_variable_statistics_equal_numpys(trained):
  est, model_dir, _ = trained
  rows = {r["name"]: r for r in inspect.variable_table(model_dir)}
  assert sorted([*rows, "global_step"]) == est.get_variable_names()
  for name, row in rows.items():
    a = est.get_variable_value(name).astype(np.float64)
    assert row["shape"] == a.shape and row["dtype"] == "float32"
    np.testing.assert_allclose(
        [row[k] for k in inspect.STAT_NAMES],
        [a.mean(), a.std(), a.min(), a.max(), np.sqrt((a ** 2).sum()),
         np.mean(a == 0)], rtol=1e-12)
  assert "linear/kernel" in inspect.format_variables(list(rows.values()))


def test_older_step_and_diff(trained):
  _, model_dir, _ = trained
  at4 = {r["name"]: r for r in inspect.variable_table(model_dir, step=4)}
  a4, a12 = _values(model_dir, 4), _values(model_dir, 12)
  assert at4["linear/kernel"]["max"] == pytest.approx(a4["linear/kernel"].max())
  diff = inspect.checkpoint_diff(model_dir, 4, 12)
  assert sorted(diff) == sorted(a4)
  for name, change in diff.items():
    expected = np.linalg.norm((a12[name].astype(np.float64)
                               - a4[name].astype(np.float64)).ravel())
    assert change == pytest.approx(expected, rel=1e-12) and change > 0


def test_eval_metrics_at_the_evaluated_step(trained):
  _, model_dir, result = trained
  found = inspect.eval_metrics_at(model_dir, 12)
  assert found["eval"]["mse"] == pytest.approx(float(result["mse"]))
  assert found["eval"]["loss"] == pytest.approx(float(result["loss"]))
  assert inspect.eval_metrics_at(model_dir, 4) == {}


def test_text_histogram_counts_every_value():
  lines = inspect.format_histogram(np.arange(100.0), bins=5).splitlines()
  assert len(lines) == 5
  assert [int(line.split()[2]) for line in lines] == [20] * 5


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "estlab", "inspect", *args],
                        capture_output=True, text=True, timeout=120,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))


def test_cli_prints_checkpoints_variables_and_metrics(trained):
  _, model_dir, _ = trained
  out = _cli(model_dir)
  assert out.returncode == 0, out.stderr[-3000:]
  for step in (4, 8, 12):
    assert os.path.join(model_dir, str(step)) in out.stdout
  assert "variables at step 12" in out.stdout
  assert "linear/kernel" in out.stdout and "linear/bias" in out.stdout
  assert "eval at step 12" in out.stdout and "mse = " in out.stdout


def test_cli_var_shows_stats_and_histogram(trained):
  _, model_dir, _ = trained
  out = _cli(model_dir, "--step", "8", "--var", "linear/kernel")
  assert out.returncode == 0, out.stderr[-3000:]
  assert "variables at step 8" in out.stdout
  assert "histogram of linear/kernel" in out.stdout and "#" in out.stdout
  assert "linear/bias" not in out.stdout
  max8 = _values(model_dir, 8)["linear/kernel"].max()
  assert f"{max8:.4g}" in out.stdout


def test_cli_errors_name_the_dir_the_var_and_the_steps(trained, tmp_path):
  _, model_dir, _ = trained
  out = _cli(str(tmp_path))
  assert out.returncode == 2 and "no checkpoints in" in out.stderr
  assert str(tmp_path) in out.stderr and not out.stdout
  out = _cli(model_dir, "--var", "nope")
  assert out.returncode == 2
  assert "'nope'" in out.stderr and "'linear/kernel'" in out.stderr
  out = _cli(model_dir, "--step", "5")
  assert out.returncode == 2 and "[0, 4, 8, 12]" in out.stderr
