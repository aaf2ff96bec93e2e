"""Temporary export folders of killed exports: never loaded, cleaned next time.

An export is written into ``temp-<stamp>-<pid>-<ns>-<host>`` and renamed
when whole. The next export into the same base removes the temp folders of
writers that are gone (this host) or older than 24 hours (anyone's,
TensorFlow's ``temp-<stamp>`` included) and keeps a live writer's.
"""
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import estlab
import estlab.export
from estlab import feature_column as fc
from estlab.export import _server, _temp_dirs

_X = np.array([1., 2., 3., 4.], np.float32)
_Y = np.array([2., 4., 6., 8.], np.float32)


def _estimator(model_dir):
  return estlab.LinearRegressor(
      [fc.numeric_column("x")], model_dir=str(model_dir),
      config=estlab.RunConfig(progress_bar=False, tf_random_seed=1))


def _receiver():
  return estlab.export.build_parsing_serving_input_receiver_fn(
      fc.make_parse_example_spec([fc.numeric_column("x")]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """``{model_dir, version}``: a trained model and one export of it."""
  root = tmp_path_factory.mktemp("temp_dirs")
  est = _estimator(root / "model")
  est.train(estlab.inputs.numpy_input_fn({"x": _X}, _Y, batch_size=4,
                                         num_epochs=None, shuffle=False),
            steps=2)
  version = os.fsdecode(est.export_saved_model(root / "export", _receiver()))
  return {"model_dir": str(root / "model"), "version": version}


def _base_with_version(trained, tmp_path):
  base = tmp_path / "base"
  shutil.copytree(trained["version"], base / "100")
  return base


def _gone_pid():
  child = subprocess.Popen([sys.executable, "-c", "pass"])
  child.wait()  # reaped: the pid is free
  return child.pid


def test_names_say_who_writes_them():
  name = _temp_dirs.temp_name(1764115200)
  assert name.startswith("temp-1764115200-")
  found = _temp_dirs.writer(name)
  assert (found.stamp, found.pid) == (1764115200, os.getpid())
  assert not estlab.export._format.is_version_name(name)
  for other in ("temp-1764115200", "temp-1764115200-42", "100", "temp-x"):
    assert _temp_dirs.writer(other) is None


def test_an_export_removes_stale_temp_folders_and_keeps_live_ones(
    trained, tmp_path, caplog):
  base = _base_with_version(trained, tmp_path)
  now = time.time()
  stamp = int(now)
  day_ago = now - 25 * 3600
  zombie = subprocess.Popen([sys.executable, "-c", "pass"])
  os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, unreaped
  folders = {
      # removed: this host's writer is gone (reaped, or a zombie)
      _temp_dirs.temp_name(stamp, pid=_gone_pid()): False,
      _temp_dirs.temp_name(stamp - 1, pid=zombie.pid): False,
      # removed: older than 24 hours, whoever wrote them
      f"temp-{stamp - 90000}-7-1-otherhost": day_ago,
      f"temp-{stamp - 90000}": day_ago,             # TensorFlow's
      # kept: a live writer (this process), another host's, TF's, recent
      _temp_dirs.temp_name(stamp - 2): True,
      f"temp-{stamp}-7-1-otherhost": True,
      f"temp-{stamp}": True,
      f"temp-{stamp}-{_gone_pid()}": True,          # older estlab: no host
  }
  for name, keep in folders.items():
    (base / name / "variables").mkdir(parents=True)
    (base / name / "model.jaxexport").write_bytes(b"half written")
    if isinstance(keep, float):
      os.utime(base / name, (keep, keep))
  (base / "temp-file").write_text("not a folder")
  (base / "notes").mkdir()
  # Before the next export: load and serve see only the whole version.
  assert estlab.export.load(base).path == str(base / "100")
  with caplog.at_level("INFO", logger="estlab"):
    new = os.fsdecode(_estimator(trained["model_dir"]).export_saved_model(
        base, _receiver()))
  zombie.wait()
  kept = {name for name, keep in folders.items() if keep is True}
  assert set(os.listdir(base)) == kept | {
      "100", os.path.basename(new), "temp-file", "notes"}
  removed = [r.getMessage() for r in caplog.records
             if "Removed the unfinished export" in r.getMessage()]
  assert len(removed) == 4, removed
  assert sum("is gone" in m for m in removed) == 2
  assert sum("hours old" in m for m in removed) == 2
  assert estlab.export.load(base).path == new


_KILLED_EXPORT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from estlab.export import _integrity
    from test_export_temp_dirs import _estimator, _receiver

    def killed(directory):  # every file written; killed before the rename
      print(os.path.basename(directory), flush=True)
      os.kill(os.getpid(), signal.SIGKILL)

    _integrity.write_checksums = killed
    _estimator({model_dir!r}).export_saved_model({base!r}, _receiver())
""")


@pytest.mark.slow
def test_a_killed_export_is_ignored_then_removed_by_the_next_export(
    trained, tmp_path):
  base = _base_with_version(trained, tmp_path)
  script = tmp_path / "killed.py"
  script.write_text(_KILLED_EXPORT.format(
      tests=str(pathlib.Path(__file__).parent),
      model_dir=trained["model_dir"], base=str(base)))
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join(sys.path))
  child = subprocess.Popen([sys.executable, str(script)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=env, cwd=str(tmp_path))
  out, err = child.communicate(timeout=300)
  assert child.returncode == -signal.SIGKILL, err[-3000:]
  (temp,) = [n for n in os.listdir(base) if n != "100"]
  assert out.strip() == temp
  assert _temp_dirs.writer(temp).pid == child.pid
  # Left behind, never loaded nor served:
  assert estlab.export.load(base).path == str(base / "100")
  server = _server.make_server(base, "m", port=0)
  try:
    assert server.version == "100"
  finally:
    server.server_close()
  new = os.fsdecode(_estimator(trained["model_dir"]).export_saved_model(
      base, _receiver()))
  assert sorted(os.listdir(base)) == sorted(["100", os.path.basename(new)])
  assert estlab.export.load(base).path == new
