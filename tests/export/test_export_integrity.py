"""Damaged, hostile and half-written exports: every failure is estlab's, at load.

An export's files carry SHA-256 checksums (``estlab_export.sha256``), checked
before anything is deserialized; every path an export names resolves inside
it; JSON nested too deeply is refused; an export killed mid-write never shows
as a version. One small real export (PREDICT and EVAL modules, a vocabulary
file column) is copied and damaged in many ways.
"""
import hashlib
import http.client
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import estlab
import estlab.export
from estlab import feature_column as fc
from estlab.export import _format, _integrity, _server

DamagedExportError = estlab.export.DamagedExportError
_X = np.array([1., 2., 3., 4.], np.float32)
_C = np.array(["a", "b", "a", "c"])
_Y = np.array([1, 1, 0, 0])
_REQUEST = {"x": [1.5, 3.5], "c": ["a", "c"]}


def _columns(vocab):
  return [fc.numeric_column("x"),
          fc.indicator_column(fc.categorical_column_with_vocabulary_file(
              "c", str(vocab)))]


def _estimator(model_dir, vocab):
  return estlab.LinearClassifier(
      _columns(vocab), model_dir=str(model_dir),
      config=estlab.RunConfig(progress_bar=False, tf_random_seed=1))


@pytest.fixture(scope="module")
def export(tmp_path_factory):
  """``{path, base, model_dir, vocab, answer}`` of a real PREDICT + EVAL export."""
  root = tmp_path_factory.mktemp("integrity")
  vocab = root / "vocab.txt"
  vocab.write_text("a\nb\nc\n")
  est = _estimator(root / "model", vocab)
  est.train(estlab.inputs.numpy_input_fn({"x": _X, "c": _C}, _Y, batch_size=4,
                                         num_epochs=None, shuffle=False),
            steps=3)
  spec = fc.make_parse_example_spec(_columns(vocab))
  path = est.experimental_export_all_saved_models(root / "export", {
      estlab.ModeKeys.PREDICT:
          estlab.export.build_parsing_serving_input_receiver_fn(spec),
      estlab.ModeKeys.EVAL:
          estlab.export.build_raw_supervised_input_receiver_fn(
              spec, np.zeros((1,), np.int64))},
      assets_extra={"vocab.txt": str(vocab)})
  path = os.fsdecode(path)
  answer = estlab.export.load(path).signatures["predict"](_REQUEST)
  return {"path": path, "base": str(root / "export"), "root": root,
          "model_dir": str(root / "model"), "vocab": str(vocab),
          "answer": answer}


def _copy(export, tmp_path, name="copy"):
  target = tmp_path / name
  shutil.copytree(export["path"], target, symlinks=True)
  return target


def _edit_description(path, edit, checksums=True):
  """Rewrites estlab_export.json with ``edit``; then, as a crafter would,
  the checksums (or, with ``checksums=False``, drops them: an old export)."""
  file = path / _format.DESCRIPTION
  description = json.loads(file.read_text())
  edit(description)
  if not checksums:
    description.pop("checksums", None)
  file.write_text(json.dumps(description))
  (path / _format.CHECKSUMS).unlink()
  if checksums:
    _integrity.write_checksums(str(path))


# ---------------------------------------------------------------- checksums


def test_every_file_has_a_sha256_that_sha256sum_reads(export):
  path = pathlib.Path(export["path"])
  lines = (path / _format.CHECKSUMS).read_text().splitlines()
  listed = dict(reversed(line.split("  ", 1)) for line in lines)
  on_disk = sorted(str(p.relative_to(path)) for p in path.rglob("*")
                   if p.is_file() and p.name != _format.CHECKSUMS)
  assert sorted(listed) == on_disk
  assert {"model.jaxexport", "eval.jaxexport", "estlab_export.json",
          "assets.extra/vocab.txt"} <= set(listed)
  assert any(name.startswith("variables/") for name in listed)
  for name, digest in listed.items():
    assert hashlib.sha256((path / name).read_bytes()).hexdigest() == digest
  assert json.loads((path / _format.DESCRIPTION).read_text())[
      "checksums"] == _format.CHECKSUMS


def _damages(size):
  """``{label: bytes -> bytes}``: flipped bytes across the file, truncations."""
  out = {}
  for fraction in (0, 0.2, 0.4, 0.5, 0.6, 0.8):
    at = min(int(size * fraction), size - 1)
    for mask in (0x01, 0x80, 0xFF):
      out[f"flip {mask:#04x} at {at}"] = (
          lambda data, at=at, mask=mask:
          data[:at] + bytes([data[at] ^ mask]) + data[at + 1:])
  out["last byte flipped"] = lambda data: data[:-1] + bytes([data[-1] ^ 0x10])
  out["truncated to half"] = lambda data: data[:len(data) // 2]
  out["last byte cut"] = lambda data: data[:-1]
  out["emptied"] = lambda data: b""
  out["a byte appended"] = lambda data: data + b"\0"
  return out


def _damaged_files(path):
  files = ["model.jaxexport", "eval.jaxexport", _format.DESCRIPTION,
           _format.CHECKSUMS]
  variables = sorted(str(p.relative_to(path)) for p in
                     (path / "variables").rglob("*") if p.is_file())
  assert variables
  return files + variables


def test_each_damaged_copy_fails_at_load_naming_the_file(export, tmp_path):
  """~20 kinds of damage to each file: 0 load, 0 raw library errors."""
  source = pathlib.Path(export["path"])
  tried = 0
  for name in _damaged_files(source):
    data = (source / name).read_bytes()
    for label, damage in _damages(len(data)).items():
      copy = tmp_path / f"d{tried}"
      shutil.copytree(source, copy)
      damaged = damage(data)
      if damaged == data:
        continue
      (copy / name).write_bytes(damaged)
      with pytest.raises(DamagedExportError) as raised:
        estlab.export.load(copy)
      message = str(raised.value)
      if name == _format.CHECKSUMS:
        assert _format.CHECKSUMS in message, (label, message)
      else:
        assert name in message or os.path.basename(name) in message, (
            name, label, message)
      assert isinstance(raised.value, (estlab.export.NotAnExportError,
                                       ValueError))
      shutil.rmtree(copy)
      tried += 1
  assert tried > 150


def test_a_deleted_file_fails_at_load_naming_it(export, tmp_path):
  source = pathlib.Path(export["path"])
  for i, name in enumerate(_damaged_files(source)):
    copy = _copy(export, tmp_path, f"del{i}")
    (copy / name).unlink()
    with pytest.raises(DamagedExportError, match=(
        _format.DESCRIPTION if name == _format.DESCRIPTION else
        _format.CHECKSUMS if name == _format.CHECKSUMS else
        os.path.basename(name))):
      estlab.export.load(copy)


def test_a_file_added_to_the_variables_fails_at_load(export, tmp_path):
  copy = _copy(export, tmp_path)
  (copy / "variables" / "extra").write_bytes(b"{}")
  with pytest.raises(DamagedExportError, match="variables/extra"):
    estlab.export.load(copy)


def test_an_export_written_before_checksums_loads_trusted(export, tmp_path,
                                                          caplog):
  copy = _copy(export, tmp_path)
  _edit_description(copy, lambda d: None, checksums=False)
  with caplog.at_level("DEBUG", logger="estlab"):
    imported = estlab.export.load(copy)
  assert "trusted" in caplog.text
  got = imported.signatures["predict"](_REQUEST)
  np.testing.assert_array_equal(got["class_ids"], export["answer"]["class_ids"])


@pytest.mark.slow  # each load of an export without checksums starts a child
def test_damaged_module_bytes_without_checksums_fail_at_load_or_run(
    export, tmp_path):
  """An old export has no checksums: a damaged module fails with estlab's
  error naming the file (never a raw struct.error / IndexError /
  UnicodeDecodeError / "Error refining shapes", never a crash: XLA's
  StableHLO reader segfaults on some damaged bytes, so such a module is read
  in a child process first) -- at load, or at the first call of a batch
  shape whose compiling meets the damage -- or is read as a module that runs
  (the byte was in a part no call reads)."""
  copy = _copy(export, tmp_path)
  _edit_description(copy, lambda d: None, checksums=False)
  module = copy / "model.jaxexport"
  data = module.read_bytes()
  rng = np.random.default_rng(0)
  failed = 0
  for at in rng.choice(len(data), 20, replace=False):
    module.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:])
    try:
      imported = estlab.export.load(copy)
      for rows in (1, 3):
        got = imported.signatures["predict"](
            {k: v * rows for k, v in _REQUEST.items()})
        assert set(got) == set(export["answer"])
    except DamagedExportError as e:
      failed += 1
      assert "model.jaxexport" in str(e)
  assert failed >= 5


def test_serve_refuses_to_start_on_a_damaged_export(export, tmp_path):
  copy = _copy(export, tmp_path)
  module = copy / "model.jaxexport"
  data = module.read_bytes()
  module.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
  out = subprocess.run(
      [sys.executable, "-m", "estlab", "serve", str(copy), "--port", "0"],
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert out.returncode == 2, out.stdout + out.stderr
  assert "model.jaxexport" in out.stderr and "damaged" in out.stderr
  assert "Traceback" not in out.stderr and "Serving" not in out.stdout


# -------------------------------------------------------------------- paths


def test_eval_module_outside_the_export_is_refused(export, tmp_path):
  for i, module in enumerate(["../../../../etc/passwd", "/etc/passwd"]):
    copy = _copy(export, tmp_path, f"c{i}")
    _edit_description(copy, lambda d, m=module: d["eval"].update(module=m))
    with pytest.raises(DamagedExportError) as raised:
      estlab.export.load(copy)
    assert "'eval.module'" in str(raised.value)
    assert module in str(raised.value) and "outside" in str(raised.value)


def _vocabulary_column(description):
  (spec,) = [s for s in description["transform"]["feature_columns"]
             if s["class_name"] == "IndicatorColumn"]
  return spec["config"]["categorical_column"]["config"]


def test_vocabulary_file_outside_the_export_is_never_read(export, tmp_path):
  def edit(description):
    _vocabulary_column(description).update(vocabulary_file="/etc/passwd",
                                           vocabulary=[])
  for checksums in (True, False):
    copy = _copy(export, tmp_path, f"c{checksums}")
    _edit_description(copy, edit, checksums=checksums)
    with pytest.raises(DamagedExportError) as raised:
      estlab.export.load(copy)
    message = str(raised.value)
    assert "/etc/passwd" in message and "outside" in message
    assert ("transform.feature_columns[1].config.categorical_column.config."
            "vocabulary_file") in message


def test_recorded_vocabulary_file_is_not_opened(export, tmp_path):
  """The spec holds its vocabulary; vocabulary_file only records its origin."""
  copy = _copy(export, tmp_path)
  _edit_description(copy, lambda d: _vocabulary_column(d).update(
      vocabulary_file="/etc/passwd"))
  got = estlab.export.load(copy).signatures["predict"](_REQUEST)
  np.testing.assert_array_equal(got["class_ids"], export["answer"]["class_ids"])


def test_vocabulary_file_inside_the_export_is_read(export, tmp_path):
  copy = _copy(export, tmp_path)
  _edit_description(copy, lambda d: _vocabulary_column(d).update(
      vocabulary_file="assets.extra/vocab.txt", vocabulary=[]))
  got = estlab.export.load(copy).signatures["predict"](_REQUEST)
  np.testing.assert_array_equal(got["class_ids"], export["answer"]["class_ids"])


@pytest.mark.parametrize("name", ["model.jaxexport", "variables",
                                  "assets.extra/vocab.txt",
                                  _format.DESCRIPTION])
def test_a_symlink_out_of_the_export_is_refused(export, tmp_path, name):
  outside = tmp_path / "outside"
  shutil.copytree(export["path"], outside)
  for checksums in (True, False):
    copy = _copy(export, tmp_path, f"c{checksums}")
    if not checksums:
      _edit_description(copy, lambda d: None, checksums=False)
    target = copy / name
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    target.symlink_to(outside / name)
    with pytest.raises(DamagedExportError) as raised:
      estlab.export.load(copy)
    assert name in str(raised.value) and "outside" in str(raised.value)


def test_a_symlink_inside_the_export_is_followed(export, tmp_path):
  copy = _copy(export, tmp_path)
  module = copy / "model.jaxexport"
  module.rename(copy / "module.bin")
  module.symlink_to("module.bin")
  got = estlab.export.load(copy).signatures["predict"](_REQUEST)
  np.testing.assert_array_equal(got["class_ids"], export["answer"]["class_ids"])


# --------------------------------------------------------------- deep JSON

_DEEP = "[" * 200_000 + "]" * 200_000


def test_a_deeply_nested_description_is_refused(export, tmp_path):
  copy = _copy(export, tmp_path)
  (copy / _format.DESCRIPTION).write_text(_DEEP)
  (copy / _format.CHECKSUMS).unlink()
  _integrity.write_checksums(str(copy))
  with pytest.raises(DamagedExportError, match="nests"):
    estlab.export.load(copy)
  copy = _copy(export, tmp_path, "spec")
  nested = {"class_name": "NumericColumn", "config": {"key": json.loads(
      "[" * 900 + "]" * 900)}}
  _edit_description(copy, lambda d: d["transform"]["feature_columns"].append(
      nested))
  with pytest.raises(ValueError):  # DamagedExportError or the column's own
    estlab.export.load(copy)


def _post(server, body: bytes):
  host, port = server.server_address[:2]
  connection = http.client.HTTPConnection(host, port, timeout=60)
  try:
    connection.request("POST", "/v1/models/m:predict", body,
                       {"Content-Type": "application/json"})
    answer = connection.getresponse()
    return answer.status, json.loads(answer.read())
  finally:
    connection.close()


def test_a_deeply_nested_request_gets_400_and_the_server_lives_on(export):
  server = _server.make_server(export["path"], "m", port=0)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    status, answer = _post(server, _DEEP.encode())
    assert status == 400 and "nests too deeply" in answer["error"]
    deep = '{"instances": ' + "[" * 200_000 + "]" * 200_000 + "}"
    status, answer = _post(server, deep.encode())
    assert status == 400, answer
    for depth, words in ((20, "x"), (200, "nests too deeply"),
                         (900, "nests too deeply")):
      body = {"instances": [{"x": json.loads("[" * depth + "1, 2" + "]" * depth),
                             "c": "a"}]}
      status, answer = _post(server, json.dumps(body).encode())
      assert status == 400 and words in answer["error"], answer
    status, answer = _post(server, json.dumps(
        {"signature_name": "predict", "instances": [
            {"x": 1.5, "c": "a"}, {"x": 3.5, "c": "c"}]}).encode())
    assert status == 200, answer
    assert [p["class_ids"][0] for p in answer["predictions"]] == list(
        export["answer"]["class_ids"][:, 0])
  finally:
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)


# ------------------------------------------------------ interrupted exports


def test_unfinished_and_incomplete_versions_are_not_versions(export, tmp_path):
  base = tmp_path / "base"
  base.mkdir()
  shutil.copytree(export["path"], base / "100")
  shutil.copytree(export["path"], base / "temp-300-4242")  # whole, not renamed
  shutil.copytree(export["path"], base / "400")
  (base / "400" / _format.DESCRIPTION).unlink()             # no description
  (base / "500").mkdir()                                    # empty
  (base / "600").write_text("a file")
  assert estlab.export.load(base).path == str(base / "100")
  server = _server.make_server(base, "m", port=0)
  try:
    assert server.version == "100"
  finally:
    server.server_close()
  with pytest.raises(DamagedExportError, match="incomplete"):
    estlab.export.load(base / "400")


_KILLED_EXPORT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    import estlab
    from estlab import feature_column as fc
    from estlab.export import _integrity
    from test_export_integrity import _columns, _estimator

    def killed(directory):  # every file written; killed before the rename
      print(sorted(os.listdir(directory)), flush=True)
      os.kill(os.getpid(), signal.SIGKILL)

    _integrity.write_checksums = killed
    est = _estimator({model_dir!r}, {vocab!r})
    spec = fc.make_parse_example_spec(_columns({vocab!r}))
    est.export_saved_model({base!r},
        estlab.export.build_parsing_serving_input_receiver_fn(spec))
""")


@pytest.mark.slow
def test_an_export_killed_mid_write_never_shows_as_a_version(export, tmp_path):
  base = tmp_path / "base"
  shutil.copytree(export["path"], base / "100")
  script = tmp_path / "killed.py"
  script.write_text(_KILLED_EXPORT.format(
      tests=str(pathlib.Path(__file__).parent), model_dir=export["model_dir"],
      vocab=export["vocab"], base=str(base)))
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join(sys.path))
  done = subprocess.run([sys.executable, str(script)], capture_output=True,
                        text=True, timeout=300, env=env, cwd=str(tmp_path))
  assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
  assert _format.DESCRIPTION in done.stdout  # killed after the last file
  (temp,) = [n for n in os.listdir(base) if n != "100"]
  assert temp.startswith(_format.TEMP_PREFIX)
  assert estlab.export.load(base).path == str(base / "100")
  server = _server.make_server(base, "m", port=0)
  try:
    assert server.version == "100"
  finally:
    server.server_close()
