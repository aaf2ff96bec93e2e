"""Checksums of a checkpoint's files: written when a step commits, checked
before it is read.

Every step directory estlab writes holds ``estlab_checksums.json``: the
size and checksum of each of its files, written last, inside Orbax's
temporary directory, just before Orbax renames it to ``model_dir/<step>``
(``_orbax.ChecksummedRename``). A step is *intact* when every listed file is
there with its size and checksum; otherwise reading it raises
``CorruptCheckpointError`` naming the step and the first damaged file, and
the Estimator falls back to the newest intact step (``newest_intact``).

Two files are left out: Orbax's ``_CHECKPOINT_METADATA`` and
``commit_success.txt`` at the top of the step, which Orbax rewrites as it
commits (after the checksums); ``_CHECKPOINT_METADATA`` must still parse.

A step written before checksums (no ``estlab_checksums.json``, and no
``checksums`` entry in its ``metadata/metadata`` JSON) is trusted as it is.

The checksum (``_checksums``): BLAKE2b over the weighted 64-bit sums of
each 4 KiB page (numpy; ~8 GB/s on one core here against zlib's CRC-32 at
~3.5 GB/s, which the first manifests used and which is still read). Blocks
of 8 MiB are hashed in parallel threads, each file read once into a reused
1 MiB buffer. It catches flipped, truncated, moved and replaced bytes; it is
not a defence against someone who rewrites the checksums too (no key). No
Orbax import here.

Example:
  >>> write_manifest('/tmp/model/100.orbax-checkpoint-tmp-1')  # doctest: +SKIP
  >>> verify('/tmp/model/100')                          # doctest: +SKIP
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import mmap
import os
import threading
import zlib
from typing import Any

import numpy as np

__all__ = [
    "CorruptCheckpointError",
    "MANIFEST",
    "damage",
    "newest_intact",
    "verify",
    "write_manifest",
]

logger = logging.getLogger("estlab")

MANIFEST = "estlab_checksums.json"
# Orbax writes these at the top of a step as it commits, after the manifest.
_COMMIT_FILES = ("_CHECKPOINT_METADATA", "commit_success.txt")
_METADATA_FILE = "metadata/metadata"
_BLOCK = 8 << 20  # bytes hashed per thread job (whole 4 KiB pages)
_FORMAT = 1
_ALGORITHM = "blake2b128-of-4KiB-page-wsum64s"
_LEGACY = "crc32-of-8MiB-crc32s"  # manifests before 2026-12-08: read only


class CorruptCheckpointError(ValueError):
  """A checkpoint's files are not the ones estlab wrote when it committed it.

  Attributes:
    path: the step directory (``model_dir/<step>``).
    file: the damaged file, relative to ``path``.
    reason: what is wrong with it (missing, size, checksum, unreadable).
  """

  def __init__(self, path: str, file: str, reason: str):
    self.path, self.file, self.reason = path, file, reason
    step = os.path.basename(path.rstrip("/"))
    super().__init__(
        f"The checkpoint {path!r} (step {step}) is damaged: {file!r} "
        f"{reason}. Its files changed after estlab wrote them (disk error, "
        "an interrupted copy, or an edit). Fix: pass another checkpoint, "
        "e.g. an older step directory of the same model_dir (the Estimator "
        "uses the newest intact one when checkpoint_path is None), or "
        "delete this step directory.")


def _files(directory: str) -> list[str]:
  """'/'-joined paths of the regular files under ``directory``, sorted."""
  found = []
  for root, dirs, names in os.walk(directory):
    dirs.sort()
    rel = os.path.relpath(root, directory)
    for name in names:
      path = name if rel == "." else f"{rel}/{name}".replace(os.sep, "/")
      if os.path.isfile(os.path.join(root, name)):
        found.append(path)
  return sorted(found)


_CHUNK = 1 << 20  # bytes read at a time: a reused buffer that stays in cache
_PAGE_WORDS = 512  # 4 KiB pages of little-endian 64-bit words
# Odd multipliers, one per word of a page: odd numbers are invertible mod
# 2**64, so changing any one word always changes its page's sum.
_WEIGHTS = ((np.arange(1, _PAGE_WORDS + 1, dtype=np.uint64)
             * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1))


def _page_sums(buffer: memoryview, n: int) -> np.ndarray:
  """Each 4 KiB page's weighted word sum mod 2**64 (``_WEIGHTS``) of the
  first ``n`` bytes of ``buffer``; a short last page is zero-padded."""
  whole = n - n % (_PAGE_WORDS * 8)
  pages = np.frombuffer(buffer[:whole], "<u8").reshape(-1, _PAGE_WORDS)
  sums = pages @ _WEIGHTS  # numpy's integer matmul: wraps, GIL released
  if whole == n:
    return sums
  last = np.zeros(_PAGE_WORDS * 8, np.uint8)
  last[:n - whole] = np.frombuffer(buffer[whole:n], np.uint8)
  return np.concatenate([sums, [last.view("<u8") @ _WEIGHTS]])


def _read_full(fd: int, buffer: memoryview, offset: int, path: str) -> int:
  """Fills ``buffer`` from ``fd`` at ``offset`` (``pread``: threads share
  the fd); OSError if the file ends first."""
  n = 0
  while n < len(buffer):
    got = os.preadv(fd, [buffer[n:]], offset + n)
    if not got:  # shorter than its size: changed while read
      raise OSError(f"{path!r} shrank while its checksum was computed")
    n += got
  return n


def _block_sums(fd: int, offset: int, size: int, buffer: memoryview,
                path: str) -> np.ndarray:
  """``_page_sums`` of ``size`` bytes of ``fd`` from ``offset``, read once
  through ``buffer`` (reused: a fresh ``bytes`` per read costs its page
  faults). ``offset`` and the buffer's size are whole pages."""
  out = []
  while size:
    n = _read_full(fd, buffer[:min(len(buffer), size)], offset, path)
    out.append(_page_sums(buffer, n))
    offset, size = offset + n, size - n
  return np.concatenate(out) if out else np.zeros(0, np.uint64)


def _crc_of_blocks(fd: int, offset: int, size: int, buffer: memoryview,
                   path: str) -> int:
  """CRC-32 of ``size`` bytes of ``fd`` from ``offset`` (``_LEGACY``)."""
  crc = 0
  while size:
    n = _read_full(fd, buffer[:min(len(buffer), size)], offset, path)
    crc = zlib.crc32(buffer[:n], crc)
    offset, size = offset + n, size - n
  return crc


def _checksums(directory: str, names: list[str], algorithm: str = _ALGORITHM,
               mapped: bool = False) -> dict[str, tuple[int, int | str]]:
  """``{name: (size, checksum)}`` of the files ``names`` under
  ``directory`` (``_digests``)."""
  fds = []
  try:
    for name in names:
      fds.append(os.open(os.path.join(directory, name), os.O_RDONLY))
    return _digests(directory, names, fds, algorithm, mapped)
  finally:
    for fd in fds:
      os.close(fd)


def _digests(directory: str, names: list[str], fds: list[int],
             algorithm: str = _ALGORITHM, mapped: bool = False
             ) -> dict[str, tuple[int, int | str]]:
  """``{name: (size, checksum)}`` of open files, their ``_BLOCK``-byte
  blocks hashed in parallel threads (numpy and zlib release the GIL).

  ``_ALGORITHM``: the hex BLAKE2b-128 of the file's 4 KiB pages' weighted
  64-bit sums (``_page_sums``): a changed word always changes its page's
  sum, and the page sums' BLAKE2b catches moved, lost and added pages.
  ``_LEGACY`` (read only, manifests written before): the CRC-32 of the
  blocks' CRC-32s.

  ``mapped``: hash the files through ``mmap`` instead of reading them
  (``_ALGORITHM`` only): for the files of a save estlab just wrote. Copying
  95 MB out of the page cache took 40-55 ms on the 2-core VM, hashing it in
  place 15 ms. Reading is kept for ``verify``: a file truncated while mapped
  would kill the process (SIGBUS) instead of raising.
  """
  paths = [os.path.join(directory, name) for name in names]
  sizes = [os.fstat(fd).st_size for fd in fds]
  jobs = [(i, offset, min(_BLOCK, size - offset))
          for i, size in enumerate(sizes) for offset in range(0, size, _BLOCK)]
  hash_block = _block_sums if algorithm == _ALGORITHM else _crc_of_blocks
  maps = ([mmap.mmap(fd, 0, access=mmap.ACCESS_READ) if size else None
           for fd, size in zip(fds, sizes)]
          if mapped and algorithm == _ALGORITHM else None)
  local = threading.local()

  def one(job: tuple[int, int, int]):
    index, offset, size = job
    if maps is not None:
      with memoryview(maps[index]) as view:
        return _page_sums(view[offset:offset + size], size)
    buffer = getattr(local, "buffer", None)
    if buffer is None:
      buffer = local.buffer = memoryview(bytearray(_CHUNK))
    return hash_block(fds[index], offset, size, buffer, paths[index])

  try:
    workers = max(1, min(4, os.cpu_count() or 1, len(jobs)))
    if workers == 1 or sum(sizes) <= _BLOCK:
      results = [one(job) for job in jobs]
    else:
      with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, jobs))
  finally:
    for m in maps or ():
      if m is not None:
        m.close()
  blocks: list[list] = [[] for _ in names]
  for (index, _, _), result in zip(jobs, results):
    blocks[index].append(result)
  if algorithm == _ALGORITHM:
    return {name: (size, hashlib.blake2b(
        b"".join(s.astype("<u8").tobytes() for s in sums),
        digest_size=16).hexdigest())
            for name, size, sums in zip(names, sizes, blocks)}
  return {name: (size, zlib.crc32(b"".join(c.to_bytes(4, "big")
                                           for c in crcs)))
          for name, size, crcs in zip(names, sizes, blocks)}


def _write_file(path: str, body: bytes) -> None:
  """Writes ``body`` to ``path`` and flushes it to the disk."""
  with open(path, "wb") as f:
    f.write(body)
    f.flush()
    os.fsync(f.fileno())


def write_manifest(directory: str, final: str | None = None) -> None:
  """Writes ``directory/estlab_checksums.json`` for the files there now.

  Written to a temporary name, flushed and renamed, so the manifest is
  either complete or absent.

  Args:
    directory: the step directory being committed (Orbax's temporary one).
    final: the name it will be renamed to; this process then trusts it
      without hashing it again while its files stay as written.
  """
  names = [n for n in _files(directory)
           if n != MANIFEST and n not in _COMMIT_FILES]
  sums = _checksums(directory, names, mapped=True)
  body = json.dumps({"format": _FORMAT, "algorithm": _ALGORITHM,
                     "files": {n: list(sums[n]) for n in names}},
                    sort_keys=True).encode("utf-8")
  path = os.path.join(directory, MANIFEST)
  _write_file(path + ".tmp", body)
  os.replace(path + ".tmp", path)
  if final is not None:
    _VERIFIED[os.fspath(final).rstrip("/")] = (_signature(directory), None)


def _read_json(path: str, directory: str, name: str) -> Any:
  try:
    with open(path, "rb") as f:
      return json.loads(f.read().decode("utf-8"))
  except FileNotFoundError:
    raise CorruptCheckpointError(directory, name, "is missing") from None
  except (UnicodeDecodeError, ValueError, RecursionError) as e:
    raise CorruptCheckpointError(
        directory, name, f"is not valid JSON ({type(e).__name__})") from None


def _check_step_metadata(directory: str) -> None:
  """Orbax's ``_CHECKPOINT_METADATA`` (rewritten at commit, so not
  checksummed), if there, must be a JSON object."""
  path = os.path.join(directory, _COMMIT_FILES[0])
  if os.path.exists(path) and not isinstance(
      _read_json(path, directory, _COMMIT_FILES[0]), dict):
    raise CorruptCheckpointError(directory, _COMMIT_FILES[0],
                                 "is not a JSON object")


def verify(directory: str) -> None:
  """Checks a committed step directory against its checksums.

  Raises:
    CorruptCheckpointError: a listed file is missing, has another size or
      checksum, or the manifest (or Orbax's step metadata) is unreadable.
  """
  directory = os.fspath(directory).rstrip("/")
  manifest_path = os.path.join(directory, MANIFEST)
  _check_step_metadata(directory)
  if not os.path.exists(manifest_path):
    info = _read_json(os.path.join(directory, _METADATA_FILE), directory,
                      _METADATA_FILE)
    if not isinstance(info, dict):
      raise CorruptCheckpointError(directory, _METADATA_FILE,
                                   "is not a JSON object")
    if "checksums" in info:
      raise CorruptCheckpointError(directory, MANIFEST, "is missing")
    logger.debug("%s has no checksums (written before estlab kept them); "
                 "trusting its files.", directory)
    return
  manifest = _read_json(manifest_path, directory, MANIFEST)
  files = manifest.get("files") if isinstance(manifest, dict) else None
  algorithm = manifest.get("algorithm") if isinstance(manifest, dict) else None
  if isinstance(manifest, dict) and algorithm not in (_ALGORITHM, _LEGACY):
    raise CorruptCheckpointError(
        directory, MANIFEST,
        f"names the checksum {algorithm!r}, not {_ALGORITHM!r}")
  if not isinstance(files, dict) or not files or not all(
      isinstance(v, list) and len(v) == 2 for v in files.values()):
    raise CorruptCheckpointError(directory, MANIFEST,
                                 "does not list the checkpoint's files")
  present = set(_files(directory))
  for name in sorted(files):
    if name not in present:
      raise CorruptCheckpointError(directory, name, "is missing")
  for name in sorted(files):
    size = os.path.getsize(os.path.join(directory, name))
    if size != files[name][0]:
      raise CorruptCheckpointError(
          directory, name, f"has {size} bytes, {files[name][0]} were written")
  sums = _checksums(directory, sorted(files), algorithm)
  for name in sorted(files):
    if list(sums[name]) != list(files[name]):
      raise CorruptCheckpointError(
          directory, name, "does not match its checksum (bytes changed)")


# path -> (signature of its files, the error or None): a step is hashed once
# per process until one of its files changes.
_VERIFIED: dict[str, tuple[Any, CorruptCheckpointError | None]] = {}


def _signature(directory: str) -> tuple:
  """Name, size, mtime and inode of each file (a rename of the directory
  keeps them); Orbax's commit files, written after the checksums, aside."""
  entries = []
  for name in _files(directory):
    if name in _COMMIT_FILES:
      continue
    st = os.stat(os.path.join(directory, name))
    entries.append((name, st.st_size, st.st_mtime_ns, st.st_ino))
  return tuple(entries)


def damage(directory: str) -> CorruptCheckpointError | None:
  """``verify``'s error for ``directory``, or None if intact (cached until a
  file there changes)."""
  directory = os.fspath(directory).rstrip("/")
  try:
    _check_step_metadata(directory)
    signature = _signature(directory)
    cached = _VERIFIED.get(directory)
    if cached is not None and cached[0] == signature:
      return cached[1]
    try:
      verify(directory)
      error = None
    except CorruptCheckpointError as e:
      error = e
    _VERIFIED[directory] = (signature, error)
    return error
  except CorruptCheckpointError as e:
    return e
  except OSError as e:  # unreadable: a permission or I/O error
    return CorruptCheckpointError(
        directory, os.path.relpath(e.filename, directory) if e.filename
        else ".", f"cannot be read ({e.strerror or e})")


_WARNED: set = set()


def newest_intact(directory: str, steps: list[int]) -> int | None:
  """The newest of ``steps`` (ascending) under a local ``directory`` whose
  files match their checksums; each damaged step passed over is logged as
  a warning (once per process) naming it and its file."""
  skipped = []
  found = None
  for step in reversed(steps):
    error = damage(f"{directory.rstrip('/')}/{step}")
    if error is None:
      found = step
      break
    skipped.append((step, error))
  for step, error in skipped:
    if (error.path, error.file, error.reason) in _WARNED:
      continue
    _WARNED.add((error.path, error.file, error.reason))
    logger.warning(
        "The checkpoint of step %d (%s) is damaged: %r %s. %s", step,
        error.path, error.file, error.reason,
        "There is no intact checkpoint before it." if found is None else
        f"Using step {found}, the newest intact checkpoint.")
  return found
