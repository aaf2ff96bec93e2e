"""Disk full while saving: the error says so, the previous checkpoint stays.

Two ways to fill the disk: a real 2 MB tmpfs (``unshare`` a user and mount
namespace, no root needed where the kernel allows user namespaces), where
TensorStore's array writes fail; and the last write before Orbax commits a
step (estlab's checksums file) raising ``ENOSPC``, everywhere.
"""
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import _models
import estlab
from estlab.checkpoint import _integrity, latest_checkpoint


def _estimator(model_dir, **config):
  return estlab.Estimator(
      _models.linear_model_fn, str(model_dir),
      config=_models.quiet(save_checkpoints_steps=4, **config),
      params={"learning_rate": 0.1})


def _input_fn():
  return _models.batches_input_fn(*_models.regression_data(), epochs=4)


@pytest.mark.parametrize("async_checkpoints", [True, False])
def test_checksums_write_fails_with_enospc(tmp_path, monkeypatch,
                                           async_checkpoints):
  model_dir = tmp_path / "model"
  _estimator(model_dir).train(_input_fn(), max_steps=12)

  def full(path, body):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

  monkeypatch.setattr(_integrity, "_write_file", full)
  est = _estimator(model_dir, async_checkpoints=async_checkpoints)
  with pytest.raises(OSError) as raised:
    est.train(_input_fn(), max_steps=16)
  message = str(raised.value)
  assert raised.value.errno == errno.ENOSPC
  assert "disk is full" in message and "step 16" in message
  assert repr(str(model_dir)) in message
  assert f"still step 12 ({str(model_dir / '12')!r})" in message
  # Nothing of step 16 is left; step 12 is the latest and intact.
  assert sorted(n for n in os.listdir(model_dir) if n[0].isdigit()) == [
      "0", "12", "4", "8"]
  assert latest_checkpoint(model_dir) == str(model_dir / "12")
  _integrity.verify(str(model_dir / "12"))

  monkeypatch.undo()  # space freed: training resumes from step 12
  est = _estimator(model_dir)
  est.train(_input_fn(), max_steps=16)
  assert est.latest_checkpoint() == str(model_dir / "16")
  assert est.evaluate(_models.batches_input_fn(
      *_models.regression_data()))["global_step"] == 16


_TMPFS_SCRIPT = textwrap.dedent("""
    import os, sys
    import flax.linen as nn, jax.numpy as jnp, numpy as np, optax, estlab
    def model_fn(features, labels, mode):
      y = nn.Dense(1)(nn.Dense(1024)(features["x"]))[:, 0]  # 1 MB: a 2 MB disk fills
      return estlab.EstimatorSpec(mode, predictions={"y": y},
                                  loss=jnp.mean((y - labels) ** 2),
                                  train_op=optax.sgd(1e-3))
    x, y = np.ones((4, 256), np.float32), np.ones(4, np.float32)
    model_dir = sys.argv[1]
    est = estlab.Estimator(model_fn, model_dir, config=estlab.RunConfig(
        save_checkpoints_steps=1, keep_checkpoint_max=None,
        progress_bar=False, tf_random_seed=0,
        async_checkpoints=sys.argv[2] == "async"))
    try:
      est.train(lambda: iter([({"x": x}, y)] * 100))
      print("NO ERROR")
    except OSError as e:
      print("ERRNO", e.errno)
      print("MESSAGE", e)
    latest = estlab.checkpoint.latest_checkpoint(model_dir)
    print("LATEST", latest)
    print("STEPS", sorted(int(n) for n in os.listdir(model_dir) if n.isdigit()))
    print("TMP", [n for n in os.listdir(model_dir) if "tmp" in n])
    est.evaluate(lambda: iter([({"x": x}, y)]))  # the latest reads back
    print("EVALUATED")
""")


def _tmpfs_works():
  unshare = shutil.which("unshare")
  if unshare is None:
    return False
  return subprocess.run(
      [unshare, "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
      capture_output=True, check=False).returncode == 0


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_real_disk_full_on_a_tiny_tmpfs(tmp_path, mode):
  if not _tmpfs_works() and not os.environ.get("ESTLAB_REQUIRE_TMPFS"):
    pytest.skip("unshare cannot mount a tmpfs here (no user namespaces; "
                "set ESTLAB_REQUIRE_TMPFS=1 to fail instead)")
  mount = tmp_path / "disk"
  mount.mkdir()
  script = tmp_path / "fill.py"
  script.write_text(_TMPFS_SCRIPT)
  model_dir = mount / "model"
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [os.path.dirname(os.path.dirname(estlab.__file__)),
       os.environ.get("PYTHONPATH", "")]))
  command = (f"mount -t tmpfs -o size=2m tmpfs {mount} && "
             f"{sys.executable} {script} {model_dir} {mode}")
  done = subprocess.run(["unshare", "-rm", "sh", "-c", command], env=env,
                        capture_output=True, text=True, timeout=600,
                        check=False)
  out = dict(line.partition(" ")[::2] for line in done.stdout.splitlines()
             if line.partition(" ")[0].isupper())
  assert done.returncode == 0, done.stderr[-3000:]
  assert out["ERRNO"] == str(errno.ENOSPC)
  steps = json.loads(out["STEPS"])
  assert steps and out["LATEST"] == f"{model_dir}/{steps[-1]}"
  # (saves asked for every step are coalesced while one is written, so the
  # step that failed is some step after the latest, not always the next)
  failed = re.search(r"disk is full: saving the checkpoint of step (\d+) to "
                     + re.escape(repr(str(model_dir))), out["MESSAGE"])
  assert failed and int(failed.group(1)) > steps[-1], out["MESSAGE"]
  assert f"still step {steps[-1]}" in out["MESSAGE"]
  assert out["TMP"] == "[]" and "EVALUATED" in out
