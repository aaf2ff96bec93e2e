"""The on-disk format of an export: file names, version, errors, directories.

Shared by the exporter and the loader; imports neither JAX nor the estimator,
so the loader's side stays light. The layout itself is documented in the
package docstring (``estlab.export``).

Example:
  >>> is_version_name('1764115200'), is_version_name('temp-1764115200')
  (True, False)
"""
from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["FORMAT", "FORMAT_VERSION", "DESCRIPTION", "MODULE", "VARIABLES",
           "ASSETS_EXTRA", "TEXT_MODULE", "EVAL_MODULE", "TEXT_MODULES",
           "TEMP_PREFIX", "CHECKSUMS", "ServingInputError",
           "ServingInputTypeError", "NotAnExportError", "DamagedExportError",
           "is_version_name",
           "resolve_export_dir", "read_description"]

FORMAT = "estlab.export"
FORMAT_VERSION = 2                   # 2: may hold an EVAL module (1: PREDICT only)
DESCRIPTION = "estlab_export.json"   # written last: its presence marks a whole export
MODULE = "model.jaxexport"           # jax.export.Exported.serialize()
TEXT_MODULE = "model.mlir"           # StableHLO text, with as_text=True only
EVAL_MODULE = "eval.jaxexport"       # the EVAL-mode module, when exported
TEXT_MODULES = {MODULE: TEXT_MODULE, EVAL_MODULE: "eval.mlir"}
VARIABLES = "variables"              # Orbax StandardSave of the variables
ASSETS_EXTRA = "assets.extra"        # copies of export_saved_model(assets_extra=...)
TEMP_PREFIX = "temp-"                # an export being written; never loaded
CHECKSUMS = "estlab_export.sha256"   # sha256sum lines of every file, written
                                     # last (`sha256sum -c` checks it too)


class ServingInputError(ValueError):
  """A request a signature cannot take: unknown, missing or malformed features.

  A server answers it with HTTP 400; the message names the feature and the fix.
  """


class ServingInputTypeError(ServingInputError, TypeError):
  """A feature value of the wrong type (text for a number, a float for an id)."""


class NotAnExportError(FileNotFoundError, ValueError):
  """The path holds no estlab export (a FileNotFoundError and a ValueError)."""


class DamagedExportError(NotAnExportError):
  """An export whose files are damaged, incomplete or point outside it.

  Raised at load, before anything runs: a file whose checksum differs from
  the one written at export time (the message names the file), a module or
  variables that cannot be read, an ``estlab_export.json`` that is not
  valid JSON, or a path named by the export (or a symlink in it) that
  resolves outside the export directory (the message names the path and its
  key). A ``NotAnExportError``, so a ``FileNotFoundError`` and a
  ``ValueError``. Export again, or copy the export whole.
  """


def is_version_name(name: str) -> bool:
  """Whether a directory name is an export version (a unix timestamp)."""
  return name.isdigit()


def _is_export(path: str) -> bool:
  return os.path.isfile(os.path.join(path, DESCRIPTION))


def resolve_export_dir(path: str | os.PathLike) -> str:
  """An export directory, or the newest export under a base directory.

  Args:
    path: ``<export_dir_base>/<timestamp>`` as ``export_saved_model`` returned
      it, or ``<export_dir_base>`` (its newest complete export is used;
      unfinished ``temp-*`` directories, and versions without
      ``estlab_export.json``, are skipped).

  Raises:
    NotAnExportError: neither holds an export.
    DamagedExportError: ``path`` is a version that lost its description.
  """
  path = os.path.abspath(os.fspath(path))
  if _is_export(path):
    return path
  if os.path.lexists(os.path.join(path, CHECKSUMS)):
    raise DamagedExportError(
        f"{path!r} has the checksums of an export ({CHECKSUMS!r}) but no "
        f"{DESCRIPTION!r}: the export is incomplete or damaged; export again.")
  if not os.path.isdir(path):
    raise NotAnExportError(
        f"Export path {path!r} does not exist; pass the directory that "
        "export_saved_model returned, or its parent (export_dir_base).")
  versions = [name for name in os.listdir(path) if is_version_name(name) and
              _is_export(os.path.join(path, name))]
  if not versions:
    raise NotAnExportError(
        f"{path!r} is not an estlab export: it has no {DESCRIPTION!r} and no "
        f"<timestamp>/ subdirectory holding one (it has "
        f"{sorted(os.listdir(path))[:10]!r}). Pass the directory that "
        "export_saved_model returned, or its export_dir_base.")
  return os.path.join(path, max(versions, key=int))


def read_description(export_dir: str) -> dict[str, Any]:
  """The export's ``estlab_export.json``, checked for format and version.

  Raises:
    NotAnExportError: the file is not an estlab export description, or was
      written by a newer estlab (a newer format version).
  """
  file = os.path.join(export_dir, DESCRIPTION)
  try:
    with open(file, encoding="utf-8") as f:
      description = json.load(f)
  except OSError as e:
    raise NotAnExportError(f"Cannot read {file!r} ({e}); is {export_dir!r} an "
                           "estlab export?") from e
  except ValueError as e:  # not UTF-8, not JSON
    raise DamagedExportError(f"{file!r} is not valid JSON ({e}): the export "
                             "is damaged; export again.") from e
  except RecursionError:
    raise DamagedExportError(
        f"{file!r} nests its JSON too deeply to be an estlab export "
        "description: the export is damaged or crafted; export again.") from None
  if not isinstance(description, dict) or description.get("format") != FORMAT:
    raise NotAnExportError(f"{file!r} is not an estlab export description "
                           f"(format {FORMAT!r} expected).")
  version = description.get("format_version")
  if not isinstance(version, int) or version > FORMAT_VERSION:
    raise NotAnExportError(
        f"{export_dir!r} has export format version {version!r}; this estlab "
        f"reads versions up to {FORMAT_VERSION}. Upgrade estlab to load it.")
  return description
