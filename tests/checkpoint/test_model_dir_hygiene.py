"""A model_dir's hygiene (#23): stray all-digit names, exports into it,
half-deleted steps, keep_checkpoint_max=0, read-only dirs, one trainer at a
time, and saving every step without waiting on the previous save."""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest

import estlab
from estlab.checkpoint._lock import ModelDirBusyError, ReadOnlyModelDirError
from estlab.checkpoint._step_dirs import TRASH, local_steps
from _models import batches_input_fn, linear_model_fn, quiet, regression_data

_HERE = os.path.dirname(os.path.abspath(__file__))
_TESTS = os.path.dirname(_HERE)
_WORKER = os.path.join(_HERE, "_train_worker.py")


def _estimator(model_dir, **config):
  config.setdefault("save_checkpoints_steps", 2)
  return estlab.Estimator(linear_model_fn, str(model_dir),
                          config=quiet(**config), params={"learning_rate": 0.1})


def _train(est, steps):
  x, y = regression_data()
  return est.train(batches_input_fn(x, y, epochs=20), steps=steps)


def _inputs():
  x, y = regression_data()
  return batches_input_fn(x, y)


def _steps(model_dir):
  return sorted(int(n) for n in os.listdir(model_dir) if n.isdigit())


def _env():
  return dict(os.environ, JAX_PLATFORMS="cpu",
              PYTHONPATH=os.pathsep.join([os.path.dirname(_TESTS), _TESTS,
                                          os.environ.get("PYTHONPATH", "")]))


# -- stray all-digit names ---------------------------------------------------

def test_stray_digit_folders_and_files_are_not_steps(tmp_path):
  model_dir = tmp_path / "m"
  (model_dir / "2024" / "notes").mkdir(parents=True)
  (model_dir / "9999").write_text("a file, not a checkpoint")
  (model_dir / "1").mkdir()  # an empty folder below the first save
  est = _train(_estimator(model_dir, keep_checkpoint_max=1), 6)
  want = os.path.join(str(model_dir), "6")
  assert est.latest_checkpoint() == want
  assert estlab.checkpoint.latest_checkpoint(model_dir) == want
  assert "linear/kernel" in est.get_variable_names()
  assert est.evaluate(_inputs())["global_step"] == 6
  assert len(list(est.predict(_inputs()))) == 256
  assert [r["step"] for r in estlab.inspect.list_checkpoints(model_dir)] == [6]
  fresh = _estimator(model_dir)  # a new process's view: resumes at 6
  _train(fresh, 2)
  assert fresh.latest_checkpoint() == os.path.join(str(model_dir), "8")
  # keep_checkpoint_max deletes only estlab's steps, never the user's names
  assert (model_dir / "2024" / "notes").is_dir()
  assert (model_dir / "9999").read_text() == "a file, not a checkpoint"
  assert (model_dir / "1").is_dir()


def test_estlab_inspect_cli_ignores_a_stray_folder(tmp_path):
  est = _train(_estimator(tmp_path), 2)
  (tmp_path / "2024").mkdir()
  out = subprocess.run([sys.executable, "-m", "estlab", "inspect",
                        str(tmp_path)], env=_env(), capture_output=True,
                       text=True, timeout=300, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "step 2" in out.stdout and "2024" not in out.stdout
  assert est.latest_checkpoint().endswith("/2")


def test_export_into_the_model_dir_is_refused_with_the_path_to_use(tmp_path):
  est = _train(_estimator(tmp_path), 2)
  receiver = estlab.export.build_raw_serving_input_receiver_fn(
      {"x": np.zeros((1, 3), np.float32)})
  with pytest.raises(ValueError, match=r"model_dir/export/<name>") as error:
    est.export_saved_model(str(tmp_path), receiver)
  assert os.path.join(str(tmp_path), "export", "saved_model") in str(
      error.value)
  assert _steps(tmp_path) == [0, 2]
  assert est.latest_checkpoint() == os.path.join(str(tmp_path), "2")


# -- half-deleted steps ------------------------------------------------------

def _half_delete(step_dir):
  """What Orbax's deleter leaves when killed: the step's top-level files
  (``_CHECKPOINT_METADATA``, ``commit_success.txt``) and some array files
  gone, its item folders still there."""
  for name in ("_CHECKPOINT_METADATA", "commit_success.txt"):
    os.remove(os.path.join(step_dir, name))
  for root, _, files in os.walk(os.path.join(step_dir, "params")):
    for name in files[::2]:
      os.remove(os.path.join(root, name))


def test_a_half_deleted_step_is_never_used_and_is_cleaned_on_start(tmp_path):
  est = _train(_estimator(tmp_path, keep_checkpoint_max=None), 6)
  _half_delete(str(tmp_path / "2"))
  shutil.copytree(tmp_path / "6", tmp_path / "7")  # newest, half-deleted
  _half_delete(str(tmp_path / "7"))
  trash = tmp_path / TRASH / "4"  # a rename-away deletion, interrupted
  shutil.copytree(tmp_path / "4", trash)
  _half_delete(str(trash))
  assert local_steps(str(tmp_path)) == [0, 4, 6]
  assert est.latest_checkpoint() == os.path.join(str(tmp_path), "6")
  assert [r["step"] for r in estlab.inspect.list_checkpoints(tmp_path)] == [
      0, 4, 6]
  with pytest.raises(ValueError, match="not a finished checkpoint"):
    est.evaluate(_inputs(), checkpoint_path=str(tmp_path / "2"))
  fresh = _estimator(tmp_path, keep_checkpoint_max=None)
  assert fresh.evaluate(_inputs())["global_step"] == 6
  _train(fresh, 2)  # the next start cleans what lies below the newest step
  assert not (tmp_path / "2").exists() and not (tmp_path / TRASH).exists()
  assert _steps(tmp_path) == [0, 4, 6, 7, 8]  # 7: above the newest: kept
  assert fresh.latest_checkpoint() == os.path.join(str(tmp_path), "8")


def test_orbax_deletions_rename_the_step_away_first(tmp_path):
  _train(_estimator(tmp_path, keep_checkpoint_max=2), 8)
  assert _steps(tmp_path) == [6, 8]
  assert not (tmp_path / TRASH).exists()  # emptied once the save finished


# -- keep_checkpoint_max -----------------------------------------------------

@pytest.mark.parametrize("keep", [0, None])
def test_keep_checkpoint_max_0_or_none_keeps_every_checkpoint(tmp_path, keep):
  est = _train(_estimator(tmp_path, keep_checkpoint_max=keep), 14)
  assert est.config.keep_checkpoint_max == keep  # as given, as TF's
  assert _steps(tmp_path) == [0, 2, 4, 6, 8, 10, 12, 14]


# -- read-only model_dir -----------------------------------------------------

def _unprivileged(command):
  """``command`` run without root's permission override (a read-only
  folder is then read-only to it)."""
  if os.geteuid() != 0:
    return command
  return ["capsh", "--drop=cap_dac_override,cap_dac_read_search,cap_fowner",
          "--", "-c", " ".join(f"'{c}'" for c in command)]


def test_a_read_only_model_dir_fails_train_and_evaluate_first(tmp_path):
  model_dir = tmp_path / "m"
  _train(_estimator(model_dir), 2)
  for root, dirs, files in os.walk(model_dir):
    for name in dirs + files:
      path = os.path.join(root, name)
      os.chmod(path, os.stat(path).st_mode & ~0o222)
  os.chmod(model_dir, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP |
           stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
  try:
    out = subprocess.run(
        _unprivileged([sys.executable, _WORKER, str(model_dir), "readonly"]),
        env=_env(), capture_output=True, text=True, timeout=300, check=False)
  finally:
    for root, dirs, _ in os.walk(model_dir):
      for name in dirs:
        os.chmod(os.path.join(root, name), 0o755)
    os.chmod(model_dir, 0o755)
  assert out.returncode == 0, out.stderr[-3000:]
  outcome = json.loads(out.stdout.strip().splitlines()[-1])
  for call in ("train", "evaluate"):
    kind, message = outcome[call]
    assert kind == "ReadOnlyModelDirError", outcome
    assert f"Cannot {call}" in message and "not writable" in message
  assert outcome["predict"] == ["ok", "256"]
  assert outcome["inspect"] == ["ok", "[0, 2]"]
  assert _steps(model_dir) == [0, 2]


def test_read_only_errors_are_value_errors(tmp_path):
  assert issubclass(ReadOnlyModelDirError, ValueError)
  assert issubclass(ModelDirBusyError, ValueError)


# -- one trainer per model_dir -----------------------------------------------

def _holder(model_dir):
  """A real training process, stopped after its first step."""
  proc = subprocess.Popen([sys.executable, _WORKER, str(model_dir), "hold"],
                          env=_env(), stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True, start_new_session=True)
  line = proc.stdout.readline()
  assert line.strip() == "training", line
  return proc


def test_a_second_trainer_is_refused_while_the_first_trains(tmp_path):
  proc = _holder(tmp_path)
  try:
    est = _estimator(tmp_path)
    with pytest.raises(ModelDirBusyError, match="another process is training"):
      _train(est, 2)
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "done"
    assert proc.wait(timeout=300) == 0
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
  assert _steps(tmp_path) == [0, 2, 4, 6]  # the holder's, not interleaved
  _train(est, 2)  # free again: continues from the holder's last step
  assert _steps(tmp_path) == [0, 2, 4, 6, 8]


def test_a_killed_trainer_does_not_leave_the_lock_stuck(tmp_path):
  proc = _holder(tmp_path)
  os.killpg(proc.pid, signal.SIGKILL)
  proc.wait(timeout=60)
  est = _train(_estimator(tmp_path), 2)
  assert est.latest_checkpoint() == os.path.join(str(tmp_path), "2")


def test_one_process_may_train_again_and_two_estimators_take_turns(tmp_path):
  first, second = _estimator(tmp_path), _estimator(tmp_path)
  _train(first, 2)
  _train(second, 2)
  _train(first, 2)
  assert first.latest_checkpoint() == os.path.join(str(tmp_path), "6")


# -- saving every step -------------------------------------------------------

def test_saving_every_step_ends_with_the_last_step_saved(tmp_path):
  coalesced = _train(_estimator(tmp_path / "a", save_checkpoints_steps=1,
                                keep_checkpoint_max=None), 12)
  written = _train(_estimator(tmp_path / "b", save_checkpoints_steps=1,
                              async_checkpoints=False), 12)
  assert coalesced.latest_checkpoint() == os.path.join(str(tmp_path / "a"),
                                                       "12")
  for name in ("linear/kernel", "linear/bias"):
    np.testing.assert_array_equal(coalesced.get_variable_value(name),
                                  written.get_variable_value(name))
  steps = _steps(tmp_path / "a")
  assert steps[0] == 0 and steps[-1] == 12 and set(steps) <= set(range(13))
  assert _steps(tmp_path / "b") == [8, 9, 10, 11, 12]  # sync: every one
