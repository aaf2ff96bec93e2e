"""Temporary export directories: named for their writer, cleaned when stale.

An export is written into ``<export_dir_base>/temp-<stamp>-<pid>-<ns>-<host>``
and renamed ``<stamp>`` when whole (``estlab.export._exporter``). A writer
killed mid-write leaves its ``temp-*`` folder behind; ``load`` and ``estlab
serve`` never read one (``_format.is_version_name``), and the next export
into the same base removes it (``remove_stale``) when it is stale:

* written on this host (same host name and PID namespace) by a process
  that is gone (or a zombie); or
* older than ``MAX_AGE_S`` (24 hours, by its modification time), whoever
  wrote it: another host's, the unparsed ``temp-<stamp>-<pid>`` of older
  estlab versions, and TensorFlow's ``temp-<stamp>``
  (``get_temp_export_dir``; TensorFlow itself never removes them).

A live writer's folder is kept, so two processes may export into one base
at once. A folder that cannot be removed is left with a debug log: cleaning
never fails an export.

Example:
  >>> name = temp_name(1764115200)  # 'temp-1764115200-4242-4026531836-host1'
  >>> writer(name).pid == os.getpid()
  True
  >>> remove_stale('/tmp/exports')  # doctest: +SKIP
  ['/tmp/exports/temp-1764115100-4100-4026531836-host1']
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import socket
import time

from estlab.export import _format

__all__ = ["MAX_AGE_S", "Writer", "temp_name", "writer", "remove_stale"]

logger = logging.getLogger("estlab")

MAX_AGE_S = 24 * 3600  # a temp folder this old is stale whoever wrote it
_NAME = re.compile(r"(\d+)-(\d+)-(\d+)-([A-Za-z0-9._-]+)")


@dataclasses.dataclass(frozen=True)
class Writer:
  """Who wrote a temporary export folder: its time, PID, PID namespace and
  host (the host name with characters other than ``[A-Za-z0-9._-]`` as
  ``_``)."""
  stamp: int
  pid: int
  namespace: int
  host: str


def _host() -> str:
  return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "_"


def _namespace() -> int:
  """This process's PID namespace (its inode on Linux, else 0): two
  containers may share a host name and a volume, not a PID namespace."""
  try:
    link = os.readlink("/proc/self/ns/pid")  # 'pid:[4026531836]'
  except OSError:
    return 0
  digits = re.sub(r"\D", "", link)
  return int(digits) if digits else 0


def temp_name(stamp: int, pid: int | None = None) -> str:
  """``temp-<stamp>-<pid>-<namespace>-<host>`` for this process (or ``pid``,
  a process of this host and namespace)."""
  pid = os.getpid() if pid is None else int(pid)
  return (f"{_format.TEMP_PREFIX}{int(stamp)}-{pid}-{_namespace()}-"
          f"{_host()}")


def writer(name: str) -> Writer | None:
  """The ``Writer`` that ``temp_name`` put in ``name``; None for any other
  name (TensorFlow's ``temp-<stamp>``, older estlab's ``temp-<stamp>-<pid>``)."""
  if not name.startswith(_format.TEMP_PREFIX):
    return None
  match = _NAME.fullmatch(name[len(_format.TEMP_PREFIX):])
  if match is None:
    return None
  stamp, pid, namespace, host = match.groups()
  return Writer(int(stamp), int(pid), int(namespace), host)


def _alive(pid: int) -> bool:
  """Whether process ``pid`` of this namespace runs (a zombie does not)."""
  if pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's process
    return True
  except OSError:
    return True  # unknown: keep its folder
  try:
    with open(f"/proc/{pid}/stat", "rb") as f:
      # 'pid (comm) S ...': the state follows the last ')'.
      return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
  except (OSError, IndexError):
    return True


def _why_stale(path: str, name: str, now: float) -> str | None:
  """Why the temp folder ``path`` is stale, or None while it may be written."""
  found = writer(name)
  if (found is not None and found.host == _host()
      and found.namespace == _namespace() and not _alive(found.pid)):
    return f"its writer (pid {found.pid} on this host) is gone"
  age = now - os.stat(path).st_mtime
  if age > MAX_AGE_S:
    return (f"it is {age / 3600:.0f} hours old (more than "
            f"{MAX_AGE_S // 3600} hours)")
  return None


def remove_stale(export_dir_base: str, now: float | None = None) -> list[str]:
  """Removes the stale ``temp-*`` folders directly under ``export_dir_base``.

  Args:
    export_dir_base: the directory holding the timestamped exports.
    now: the current time (default ``time.time()``).

  Returns:
    The paths removed, sorted.
  """
  now = time.time() if now is None else now
  try:
    names = sorted(os.listdir(export_dir_base))
  except OSError:
    return []
  removed = []
  for name in names:
    path = os.path.join(export_dir_base, name)
    if not name.startswith(_format.TEMP_PREFIX) or os.path.islink(path) or \
        not os.path.isdir(path):
      continue
    try:
      why = _why_stale(path, name, now)
      if why is None:
        continue
      shutil.rmtree(path)
    except OSError as e:  # gone meanwhile, or not ours to remove
      logger.debug("Left the unfinished export %s: %s", path, e)
      continue
    logger.info("Removed the unfinished export %s: %s.", path, why)
    removed.append(path)
  return removed
