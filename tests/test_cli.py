"""`estlab demo`: the main job, run as a user runs it."""
import os
import subprocess
import sys

import estlab


def test_demo_trains_evaluates_and_writes_events(tmp_path):
  model_dir = tmp_path / "demo"
  out = subprocess.run(
      [sys.executable, "-m", "estlab", "demo", "--model-dir", str(model_dir),
       "--no-progress"], capture_output=True, text=True, timeout=300,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert out.returncode == 0, out.stderr[-3000:]
  assert f"tensorboard --logdir {model_dir}" in out.stdout
  assert "checkpoints: 0, 200, 400, 600" in out.stdout  # TF saves the start too
  accuracy = float(out.stdout.split("accuracy = ")[1].split(",")[0])
  assert accuracy >= 0.9
  assert "loss" in estlab.summary.read_scalars(model_dir)
  assert "accuracy" in estlab.summary.read_scalars(model_dir / "eval")


def test_cli_without_a_command_shows_usage():
  out = subprocess.run([sys.executable, "-m", "estlab"], capture_output=True,
                       text=True, timeout=60)
  assert out.returncode == 2 and "demo" in out.stderr
