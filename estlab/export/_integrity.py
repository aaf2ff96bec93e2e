"""What keeps an export whole and inside its directory: checksums and paths.

At export time ``write_checksums`` hashes every file of the (temporary)
export directory with SHA-256, fsyncs it, and writes ``estlab_export.sha256``
in ``sha256sum``'s format, so ``sha256sum -c estlab_export.sha256`` checks an
export too. At load ``verify`` checks every listed file before anything is
deserialized, and ``inside`` resolves a path the export names (after
symlinks) and refuses one outside the export directory. Exports written
before checksums (no ``estlab_export.sha256`` and no ``checksums`` key in
``estlab_export.json``) load unchecked, with a debug log.

Example:
  >>> import tempfile, pathlib
  >>> d = tempfile.mkdtemp(); _ = pathlib.Path(d, 'a.bin').write_bytes(b'x')
  >>> write_checksums(d); sorted(verify(d))
  ['a.bin']
  >>> try:
  ...   inside(d, '../etc/passwd', 'eval.module')
  ... except _format.DamagedExportError as e:
  ...   print(str(e).split(', ')[0])
  'eval.module' of the export ... names '../etc/passwd'
"""
from __future__ import annotations

import hashlib
import logging
import os
import re

from estlab.export import _format

__all__ = ["write_checksums", "verify", "require_listed", "inside",
           "check_tree"]

_log = logging.getLogger("estlab")
_LINE = re.compile(r"([0-9a-f]{64})  (\S.*)")
_CHUNK = 1 << 20


def inside(export_dir: str, name: str, key: str) -> str:
  """The real path of ``name`` (relative to ``export_dir``), if inside it.

  Args:
    export_dir: the export directory.
    name: a path the export names, relative to ``export_dir``.
    key: where the export names it (``'eval.module'``), for the message.

  Raises:
    DamagedExportError: ``name`` is not a string, is absolute, or resolves
      (after symlinks) outside ``export_dir``.
  """
  root = os.path.realpath(export_dir)
  if not isinstance(name, str) or not name or "\0" in name:
    raise _format.DamagedExportError(
        f"{key!r} of the export {export_dir!r} is {name!r:.100}, not a path "
        "inside the export; the export is damaged or crafted. Export again.")
  path = os.path.realpath(os.path.join(root, name))
  if os.path.isabs(name) or os.path.commonpath([root, path]) != root:
    raise _format.DamagedExportError(
        f"{key!r} of the export {export_dir!r} names {name!r}, which resolves "
        f"to {path!r}, outside the export directory; an export reads only its "
        "own files. The export is damaged or crafted: export again.")
  return path


def check_tree(export_dir: str) -> None:
  """Refuses a symlink anywhere in the export that points outside it."""
  for parent, dirs, files in os.walk(export_dir):
    for name in dirs + files:
      path = os.path.join(parent, name)
      if os.path.islink(path):
        inside(export_dir, os.path.relpath(path, export_dir),
               f"symlink {os.path.relpath(path, export_dir)}")


def _sha256(path: str, sync: bool = False) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while chunk := f.read(_CHUNK):
      digest.update(chunk)
    if sync:
      os.fsync(f.fileno())
  return digest.hexdigest()


def _files(directory: str) -> list[str]:
  """Every regular file under ``directory``, relative, '/'-separated, sorted."""
  found = []
  for parent, dirs, files in os.walk(directory):
    dirs.sort()
    for name in files:
      relative = os.path.relpath(os.path.join(parent, name), directory)
      found.append(relative.replace(os.sep, "/"))
  return sorted(f for f in found if f != _format.CHECKSUMS)


def write_checksums(directory: str) -> None:
  """Writes ``estlab_export.sha256``: every file's SHA-256, all fsynced.

  Called last, on the complete temporary directory, before it is renamed.

  Raises:
    ValueError: a file name holds a newline (``assets_extra``).
  """
  lines = []
  for name in _files(directory):
    if "\n" in name or "\\" in name:
      raise ValueError(f"Export file name {name!r} holds a newline or a "
                       "backslash; rename it (assets_extra keys).")
    lines.append(f"{_sha256(os.path.join(directory, name), sync=True)}  {name}\n")
  path = os.path.join(directory, _format.CHECKSUMS)
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(lines)
    f.flush()
    os.fsync(f.fileno())
  fd = os.open(directory, os.O_RDONLY)
  try:
    os.fsync(fd)  # the directory's entries, before it is renamed
  finally:
    os.close(fd)


def _read_checksums(export_dir: str, path: str) -> dict[str, str]:
  try:
    with open(path, "rb") as f:
      text = f.read().decode("utf-8")
  except (OSError, UnicodeDecodeError) as e:
    raise _format.DamagedExportError(
        f"Cannot read the checksums {path!r} ({e}): the export is damaged; "
        "export again.") from e
  if text and not text.endswith("\n"):
    raise _format.DamagedExportError(
        f"{path!r} does not end with a newline: it is cut short, the export is"
        " damaged; export again.")
  listed = {}
  for number, line in enumerate(text.split("\n")[:-1], 1):
    match = _LINE.fullmatch(line)
    if not match or match[2] in listed:
      raise _format.DamagedExportError(
          f"Line {number} of {path!r} is {line!r:.120}, not '<sha256>  <file>'"
          " (or repeats a file): the export is damaged; export again.")
    inside(export_dir, match[2], f"{_format.CHECKSUMS} line {number}")
    listed[match[2]] = match[1]
  return listed


def verify(export_dir: str) -> set[str] | None:
  """Checks every file ``estlab_export.sha256`` lists; the files it lists.

  Returns:
    The listed files (relative, '/'-separated), or None for an export
    written before checksums (none to check; a debug log says so).

  Raises:
    DamagedExportError: the checksums cannot be read, a listed file is
      missing or differs (the message names it), or a symlink in the export
      points outside it.
  """
  check_tree(export_dir)
  path = os.path.join(export_dir, _format.CHECKSUMS)
  if not os.path.lexists(path):
    _log.debug("%s has no %s (written before estlab checked exports); its "
               "files are trusted as they are.", export_dir, _format.CHECKSUMS)
    return None
  listed = _read_checksums(export_dir, inside(export_dir, _format.CHECKSUMS,
                                              "checksums"))
  for name, expected in listed.items():
    file = os.path.join(export_dir, name)
    try:
      actual = _sha256(file)
    except OSError as e:
      raise _format.DamagedExportError(
          f"{file!r}, listed in {_format.CHECKSUMS}, cannot be read ({e}): "
          "the export is incomplete or damaged; export again.") from e
    if actual != expected:
      raise _format.DamagedExportError(
          f"{file!r} is damaged: its SHA-256 is {actual}, not {expected} as "
          f"written at export time ({_format.CHECKSUMS}). Export again, or "
          "copy the export whole.")
  return set(listed)


def require_listed(export_dir: str, listed: set[str] | None,
                   names: list[str], description: dict) -> None:
  """Every file the loader reads must be among the checked ones.

  ``names``: the module files and ``estlab_export.json``; every file under
  ``variables/`` counts too. For an export without checksums, one whose
  ``estlab_export.json`` says it has them is incomplete.

  Raises:
    DamagedExportError: a file the loader reads was not checked.
  """
  if listed is None:
    if description.get("checksums") is not None:
      raise _format.DamagedExportError(
          f"{export_dir!r} has no {_format.CHECKSUMS}, though its "
          f"{_format.DESCRIPTION} says it was written with one: the export is "
          "incomplete or damaged; export again.")
    return
  variables = os.path.join(export_dir, _format.VARIABLES)
  needed = list(names) + [f"{_format.VARIABLES}/{f}" for f in _files(variables)]
  for name in needed:
    if name not in listed:
      raise _format.DamagedExportError(
          f"{os.path.join(export_dir, name)!r} is not among the files "
          f"{_format.CHECKSUMS} lists: it was not written by the export (or "
          "the checksums are damaged); export again.")
