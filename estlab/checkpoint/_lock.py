"""One trainer per model_dir: a lock the OS releases when its process dies.

``TrainerLock`` holds an exclusive ``fcntl.flock`` on the model_dir itself
(its directory file; no lock file is left beside the checkpoints) while a
``train`` call runs, so a second process training into the same model_dir
fails at once with ``ModelDirBusyError`` instead of interleaving
checkpoints. The OS drops a flock when its process exits or is killed, so a
SIGKILLed trainer never leaves the lock stuck. Within one process the lock
is shared (counted): estimators of one process may train into one model_dir
in turn or nested (a ``GlobalStepWaiterHook`` waiting on a chief there). Under ``jax.distributed`` the processes of
one job write one model_dir together: only process 0 takes the lock.

``check_writable`` is what train and evaluate check first: a read-only
model_dir fails with ``ReadOnlyModelDirError`` before any input is read or
step compiled.
"""
from __future__ import annotations

import errno
import os
import tempfile

__all__ = ["ModelDirBusyError", "ReadOnlyModelDirError",
           "TrainerLock", "check_writable"]

# realpath -> [descriptor holding the flock, holders in this process]
_HELD: dict[str, list[int]] = {}


class ModelDirBusyError(ValueError):
  """Another process is training into this model_dir."""


class ReadOnlyModelDirError(ValueError):
  """The model_dir cannot be written (train and evaluate write there)."""


def check_writable(directory: str, action: str) -> None:
  """Raises ``ReadOnlyModelDirError`` unless a file can be created in
  ``directory`` (or, when it does not exist yet, in its nearest existing
  parent). Remote directories (``gs://...``) are not checked.

  Example:
    >>> check_writable(tempfile.gettempdir(), 'train')
  """
  if "://" in directory:
    return
  where = os.path.abspath(directory)
  while not os.path.isdir(where) and os.path.dirname(where) != where:
    where = os.path.dirname(where)
  try:
    with tempfile.TemporaryFile(dir=where, prefix=".estlab-write-check-"):
      pass
  except OSError as e:
    raise ReadOnlyModelDirError(
        f"Cannot {action}: model_dir {directory!r} is not writable ({e}); "
        f"{action} writes checkpoints and events there. Fix: pass a writable "
        "model_dir (copy this one there to continue from its checkpoints), "
        "or only predict, export or inspect, which read it.") from None


class TrainerLock:
  """An exclusive lock on ``directory`` for one training process.

  Example:
    >>> lock = TrainerLock(tempfile.mkdtemp())
    >>> lock.acquire()
    True
    >>> lock.release()
  """

  def __init__(self, directory: str):
    self.directory = directory
    self._fd: int | None = None

  @property
  def held(self) -> bool:
    return self._fd is not None

  def acquire(self) -> bool:
    """Takes the lock (creating ``directory``); a no-op when held. Returns
    whether this took it from the OS (False: this process held it already).

    Raises:
      ReadOnlyModelDirError: the directory cannot be written.
      ModelDirBusyError: another process holds the lock.
    """
    import fcntl  # pylint: disable=g-import-not-at-top  (POSIX only)
    if self._fd is not None or "://" in self.directory:
      return False
    key = os.path.realpath(self.directory)
    if key in _HELD:  # this process holds it already
      _HELD[key][1] += 1
      self._fd = _HELD[key][0]
      return False
    try:
      os.makedirs(self.directory, exist_ok=True)
      fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
      check_writable(self.directory, "train")
      raise ReadOnlyModelDirError(
          f"Cannot train: cannot open model_dir {self.directory!r} ({e}). "
          "Fix: pass a writable model_dir.") from None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise
      raise ModelDirBusyError(
          f"Cannot train: another process is training into model_dir "
          f"{self.directory!r} (it holds the model_dir's lock). Two trainers "
          "would interleave their checkpoints. Fix: wait for it to finish "
          "(the lock goes when that process exits, also when it is killed), "
          "or train into another model_dir.") from None
    self._fd = fd
    _HELD[key] = [fd, 1]
    return True

  def release(self) -> None:
    """Releases the lock (a no-op when not held)."""
    if self._fd is not None:
      self._fd = None
      key = os.path.realpath(self.directory)
      _HELD[key][1] -= 1
      if _HELD[key][1] == 0:
        os.close(_HELD.pop(key)[0])  # the only descriptor: drops the flock

  def __del__(self):
    self.release()
