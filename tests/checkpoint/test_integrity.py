"""Damaged checkpoints: 16 kinds of damage to the newest step, each detected.

A small model is trained once (checkpoints at steps 0, 4, 8, 12); each test
damages step 12 of a copy. What a user relies on: the damaged step is named
(a warning, with the file), the newest intact one (8) is used by
``latest_checkpoint``, ``evaluate`` and a resumed ``train``; asking for the
damaged step explicitly raises ``CorruptCheckpointError`` naming the file;
``estlab inspect`` prints one line for it and lists the intact ones.
"""
import contextlib
import io
import json
import logging
import os
import shutil

import numpy as np
import pytest

import _models
import estlab
from estlab import cli
from estlab.checkpoint import CorruptCheckpointError, latest_checkpoint
from estlab.checkpoint import _integrity


def _largest(step_dir, item):
  """The biggest file of ``item`` (an array data file)."""
  files = []
  for root, _, names in os.walk(os.path.join(step_dir, item)):
    files += [os.path.join(root, n) for n in names]
  return max(files, key=os.path.getsize)


def _flip(path, count, offset=0):
  data = bytearray(open(path, "rb").read())
  for i in range(offset, min(len(data), offset + count)):
    data[i] ^= 0xFF
  open(path, "wb").write(bytes(data))


def _write(path, data):
  with open(path, "wb") as f:
    f.write(data)


def _truncate(path, size):
  with open(path, "r+b") as f:
    f.truncate(size)


def _edit_step(path):
  """The step in the metadata's train_state, one digit changed: valid JSON
  of the same length, so only the checksum can tell."""
  info = json.loads(open(path, "rb").read())
  step = info["train_state"]["step"]
  info["train_state"]["step"] = step + 1 if step % 10 != 9 else step - 1
  _write(path, json.dumps(info).encode())


_RANDOM = np.random.default_rng(0).bytes(300)

# name -> (damage(step_dir) -> None, the file the error must name)
DAMAGE = {
    "64_bytes_flipped_in_params_data": (
        lambda d: _flip(_largest(d, "params"), 64), "params/"),
    "1_byte_flipped_in_opt_state_data": (
        lambda d: _flip(_largest(d, "opt_state"), 1, 7), "opt_state/"),
    "params_data_replaced_by_random_bytes": (
        lambda d: _write(_largest(d, "params"), _RANDOM[:os.path.getsize(
            _largest(d, "params"))]), "params/"),
    "params_data_truncated": (
        lambda d: _truncate(_largest(d, "params"), 10), "params/"),
    "opt_state_data_emptied": (
        lambda d: _truncate(_largest(d, "opt_state"), 0), "opt_state/"),
    "params_data_deleted": (
        lambda d: os.remove(_largest(d, "params")), "params/"),
    "params_ocdbt_manifest_deleted": (
        lambda d: os.remove(os.path.join(d, "params", "manifest.ocdbt")),
        "params/manifest.ocdbt"),
    "params_orbax_metadata_emptied": (
        lambda d: _truncate(os.path.join(d, "params", "_METADATA"), 0),
        "params/_METADATA"),
    "opt_state_orbax_metadata_garbage": (
        lambda d: _write(os.path.join(d, "opt_state", "_METADATA"),
                         b"\xff\xfe garbage"), "opt_state/_METADATA"),
    "estlab_metadata_emptied": (
        lambda d: _truncate(os.path.join(d, "metadata", "metadata"), 0),
        "metadata/metadata"),
    "estlab_metadata_edited_valid_json": (
        lambda d: _write(os.path.join(d, "metadata", "metadata"),
                         json.dumps({"step": 12, "variables": {}}).encode()),
        "metadata/metadata"),
    "train_state_step_edited_same_length": (  # the step now lives there
        lambda d: _edit_step(os.path.join(d, "metadata", "metadata")),
        "metadata/metadata"),
    "params_folder_deleted": (
        lambda d: shutil.rmtree(os.path.join(d, "params")), "params/"),
    "opt_state_folder_deleted": (
        lambda d: shutil.rmtree(os.path.join(d, "opt_state")), "opt_state/"),
    "orbax_step_metadata_garbage": (
        lambda d: _write(os.path.join(d, "_CHECKPOINT_METADATA"), _RANDOM),
        "_CHECKPOINT_METADATA"),
    "checksums_deleted": (
        lambda d: os.remove(os.path.join(d, _integrity.MANIFEST)),
        _integrity.MANIFEST),
    "checksums_garbage": (
        lambda d: _write(os.path.join(d, _integrity.MANIFEST), _RANDOM),
        _integrity.MANIFEST),
}


def _estimator(model_dir):
  return estlab.Estimator(_models.linear_model_fn, str(model_dir),
                          config=_models.quiet(save_checkpoints_steps=4),
                          params={"learning_rate": 0.1})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A model_dir with steps 0, 4, 8, 12, and evaluate's result at step 8."""
  model_dir = tmp_path_factory.mktemp("trained") / "model"
  est, _, eval_input_fn = _models.train_with_checkpoints(str(model_dir))
  at_8 = est.evaluate(eval_input_fn, checkpoint_path=str(model_dir / "8"))
  return model_dir, at_8


def test_every_saved_step_has_checksums_that_match(trained):
  model_dir, _ = trained
  for step in (0, 4, 8, 12):
    path = str(model_dir / str(step))
    _integrity.verify(path)  # raises if any file differs
    listed = json.load(open(os.path.join(path, _integrity.MANIFEST)))["files"]
    assert any(name.startswith("params/") for name in listed)
    assert "metadata/metadata" in listed


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damaged_newest_checkpoint(kind, trained, tmp_path, caplog, capsys):
  source, at_8 = trained
  model_dir = tmp_path / "model"
  shutil.copytree(source, model_dir)
  damage, named = DAMAGE[kind]
  damage(str(model_dir / "12"))

  # Detected, and the newest intact checkpoint is the latest, with a warning
  # naming the step and the file.
  with caplog.at_level(logging.WARNING, logger="estlab"):
    assert latest_checkpoint(model_dir) == str(model_dir / "8")
  warned = " ".join(r.getMessage() for r in caplog.records)
  assert "step 12" in warned and named in warned and "step 8" in warned

  # Asked for explicitly: a clear error naming the file.
  est = _estimator(model_dir)
  eval_input_fn = _models.batches_input_fn(*_models.regression_data())
  with pytest.raises(CorruptCheckpointError, match=r"step 12.*" + named):
    est.evaluate(eval_input_fn, checkpoint_path=str(model_dir / "12"))
  assert isinstance(CorruptCheckpointError("p", "f", "r"), ValueError)

  # evaluate and predict read step 8, as if step 12 had not been saved.
  assert est.latest_checkpoint() == str(model_dir / "8")
  assert est.evaluate(eval_input_fn) == at_8
  x, _ = _models.regression_data(4)
  assert len(list(est.predict(lambda: iter([{"x": x}])))) == 4

  # `estlab inspect`: one line for step 12, no traceback, steps 0-8 listed.
  capsys.readouterr()
  assert cli.main(["inspect", str(model_dir)]) == 0
  out, err = capsys.readouterr()
  lines = [line for line in out.splitlines() if "step 12" in line]
  assert len(lines) == 1 and "damaged" in lines[0] and named in lines[0]
  assert "Traceback" not in out + err
  assert all(str(model_dir / str(s)) in out for s in (0, 4, 8))
  assert cli.main(["inspect", str(model_dir), "--step", "12"]) == 2
  err = capsys.readouterr().err
  assert named in err and "Traceback" not in err and len(err.splitlines()) == 1

  # train resumes from step 8, and saves step 12 again (the damaged one is
  # moved aside, never read).
  with caplog.at_level(logging.INFO, logger="estlab"):
    caplog.clear()
    est = _estimator(model_dir)
    est.train(_models.batches_input_fn(*_models.regression_data(), epochs=2),
              max_steps=16)
  restored = [r.getMessage() for r in caplog.records
              if r.getMessage().startswith("Restoring parameters from")]
  assert restored == [f"Restoring parameters from {model_dir / '8'}"]
  assert est.latest_checkpoint() == str(model_dir / "16")
  for step in (12, 16):
    _integrity.verify(str(model_dir / str(step)))
  assert any(name.startswith("12.damaged-") for name in os.listdir(model_dir))


def test_checkpoint_without_checksums_still_loads(caplog):
  """A step written before checksums (no estlab_checksums.json) is trusted."""
  model_dir = os.path.join(os.path.dirname(__file__), "legacy_names",
                           "model_dir")
  assert not os.path.exists(os.path.join(model_dir, "3", _integrity.MANIFEST))
  with caplog.at_level(logging.DEBUG, logger="estlab"):
    assert latest_checkpoint(model_dir) == os.path.join(model_dir, "3")
  assert any("has no checksums" in r.getMessage() for r in caplog.records)
  values = estlab.inspect.variable_values(model_dir)
  assert values["dnn/logits/kernel"].shape == (3, 1)


def test_every_step_damaged_names_the_newest(trained, tmp_path):
  model_dir = tmp_path / "model"
  shutil.copytree(trained[0], model_dir)
  for step in (0, 4, 8, 12):
    os.remove(model_dir / str(step) / "metadata" / "metadata")
  assert latest_checkpoint(model_dir) is None
  est = _estimator(model_dir)
  with pytest.raises(ValueError, match="Could not find a trained model"):
    est.evaluate(_models.batches_input_fn(*_models.regression_data()))
  with pytest.raises(CorruptCheckpointError, match="step 12.*metadata"):
    estlab.checkpoint.Checkpointer(model_dir).restore_params()


# The checksum itself (``_integrity._checksums``): what it must tell apart.
_PAGE = 4096


def _digest(tmp_path, data: bytes, mapped=False):
  (tmp_path / "f").write_bytes(data)
  return _integrity._checksums(str(tmp_path), ["f"], mapped=mapped)["f"]


@pytest.mark.parametrize("size", [0, 1, 7, _PAGE - 1, _PAGE, 3 * _PAGE + 5,
                                  (8 << 20) + 3])
def test_checksum_reads_and_maps_alike_and_sees_every_changed_byte(
    tmp_path, size):
  data = bytearray(np.random.default_rng(size).bytes(size))
  want = _digest(tmp_path, bytes(data))
  assert want[0] == size
  assert _digest(tmp_path, bytes(data), mapped=True) == want
  rng = np.random.default_rng(1)
  for at in {0, size // 2, size - 1} if size else ():
    for bit in rng.choice(8, 2, replace=False):
      changed = bytearray(data)
      changed[at] ^= 1 << int(bit)
      assert _digest(tmp_path, bytes(changed)) != want, (at, bit)


def test_checksum_sees_moved_pages_and_zeroed_tails(tmp_path):
  pages = [np.random.default_rng(i).bytes(_PAGE) for i in range(4)]
  want = _digest(tmp_path, b"".join(pages))
  assert _digest(tmp_path, b"".join([pages[1], pages[0], *pages[2:]])) != want
  # Words swapped within a page, and a page's tail zeroed (same sizes).
  words = np.frombuffer(pages[2], "<u8").copy()
  words[[3, 9]] = words[[9, 3]]
  assert _digest(tmp_path, b"".join([*pages[:2], words.tobytes(),
                                     pages[3]])) != want
  assert _digest(tmp_path, b"".join(pages)[:-100] + bytes(100)) != want


def test_manifests_written_with_crc32_still_verify_and_catch_damage(
    trained, tmp_path):
  """Steps saved before the page-sum checksum (its manifests name
  ``crc32-of-8MiB-crc32s``) are still checked."""
  model_dir, _ = trained
  step = tmp_path / "12"
  shutil.copytree(model_dir / "12", step)
  manifest = json.loads((step / _integrity.MANIFEST).read_text())
  names = sorted(manifest["files"])
  sums = _integrity._checksums(str(step), names, _integrity._LEGACY)
  (step / _integrity.MANIFEST).write_text(json.dumps({
      "format": 1, "algorithm": _integrity._LEGACY,
      "files": {n: list(sums[n]) for n in names}}))
  _integrity.verify(str(step))
  _flip(_largest(str(step), "params"), 1)
  with pytest.raises(CorruptCheckpointError, match="params/"):
    _integrity.verify(str(step))
