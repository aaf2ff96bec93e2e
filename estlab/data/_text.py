"""Lines of text files, as tf.data's ``TextLineDataset`` reads them.

A line is the text between ``\\n`` characters, without it; every ``\\r``
is dropped (so CRLF files read as LF ones), empty lines are elements, and
a last line without a newline is one too. Files are read in order (or
interleaved line by line, ``num_parallel_reads`` at a time, as TF does),
plain or GZIP / ZLIB compressed, in chunks of ``buffer_size`` bytes.
"""
from __future__ import annotations

import gzip
import os
import zlib
from typing import Any, Iterable, Iterator, List, Optional

import numpy as np

from estlab.data import _structure
from estlab.data._node import UNKNOWN, Node

__all__ = ["TextLines", "read_lines", "check_exists", "filename_list",
           "COMPRESSION_TYPES"]

COMPRESSION_TYPES = ("", "GZIP", "ZLIB")
_DEFAULT_BUFFER = 256 * 1024  # TF reads 256 KiB at a time by default


def _chunks(path: str, compression: str, size: int) -> Iterator[bytes]:
  """The file's (decompressed) bytes, ``size`` at a time."""
  if compression == "GZIP":
    with gzip.open(path, "rb") as f:
      yield from iter(lambda: f.read(size), b"")
    return
  with open(path, "rb") as f:
    if compression == "ZLIB":
      inflate = zlib.decompressobj()
      for chunk in iter(lambda: f.read(size), b""):
        yield inflate.decompress(chunk)
      yield inflate.flush()
    else:
      yield from iter(lambda: f.read(size), b"")


def read_lines(path: str, compression: str = "",
               buffer_size: int = _DEFAULT_BUFFER) -> Iterator[str]:
  """The lines of one file as ``str`` (UTF-8), TF's way (see the module).

  Raises:
    FileNotFoundError: naming the file, when it does not exist.
    ValueError: when the file is not UTF-8 text or not ``compression``.
  """
  check_exists(path)
  pending = b""
  try:
    for chunk in _chunks(path, compression, buffer_size):
      *lines, pending = (pending + chunk).split(b"\n")
      for line in lines:
        yield line.replace(b"\r", b"").decode("utf-8")
    if pending:
      yield pending.replace(b"\r", b"").decode("utf-8")
  except UnicodeDecodeError as err:
    raise ValueError(
        f"TextLineDataset: {path!r} is not UTF-8 text ({err}). estlab.data "
        f"gives lines as str; re-encode the file as UTF-8.") from None
  except (OSError, EOFError, zlib.error) as err:
    if isinstance(err, FileNotFoundError):
      raise
    raise ValueError(
        f"TextLineDataset: could not read {path!r} with compression_type="
        f"{compression!r} ({err}). Pass the file's compression: 'GZIP', "
        f"'ZLIB' or '' (none).") from None


def check_exists(path: str) -> None:
  """A FileNotFoundError naming ``path`` unless it is a file."""
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"TextLineDataset: no file {path!r} (relative names are looked up "
        f"in {os.getcwd()!r}). Pass the names of existing files.")


def filename_list(filenames: Any) -> List[str]:
  """``filenames`` (one name, or a list or array of names) as a list."""
  if isinstance(filenames, (str, bytes, os.PathLike)):
    filenames = [filenames]
  elif isinstance(filenames, np.ndarray):
    filenames = filenames.reshape(-1).tolist()
  elif not isinstance(filenames, (list, tuple)):
    raise TypeError(
        f"TextLineDataset takes a file name or a list of them; got "
        f"{filenames!r:.100}. Pass e.g. 'train.csv' or ['a.csv', 'b.csv'].")
  names = []
  for name in filenames:
    if isinstance(name, bytes):
      name = name.decode("utf-8")
    if not isinstance(name, (str, os.PathLike)):
      raise TypeError(
          f"TextLineDataset's file names must be strings; got {name!r:.100} "
          f"in {filenames!r:.200}.")
    names.append(os.fspath(name))
  return names


class TextLines(Node):
  """``TextLineDataset``: the lines of the files, one ``str`` scalar each.

  ``filenames`` is a list of names, checked to exist at once, or a Dataset
  node of names, read on each iteration.
  """

  name = "TextLineDataset"

  def __init__(self, filenames: Any, compression_type: Optional[str],
               buffer_size: Optional[int], num_parallel_reads: Optional[int]):
    super().__init__()
    compression = "" if compression_type is None else compression_type
    if compression not in COMPRESSION_TYPES:
      raise ValueError(
          f"TextLineDataset: unsupported compression_type "
          f"{compression_type!r}. Use 'GZIP', 'ZLIB', '' or None (none).")
    if buffer_size is not None and (
        not isinstance(buffer_size, (int, np.integer)) or buffer_size < 0):
      raise ValueError(f"TextLineDataset: buffer_size must be a number of "
                       f"bytes >= 0; got {buffer_size!r}.")
    if num_parallel_reads is not None and (
        not isinstance(num_parallel_reads, (int, np.integer))
        or (num_parallel_reads < 1 and num_parallel_reads != -1)):
      raise ValueError(
          f"TextLineDataset: num_parallel_reads must be a number of files "
          f">= 1 or estlab.data.AUTOTUNE; got {num_parallel_reads!r}.")
    if isinstance(filenames, Node):
      self._names_node = filenames
    else:
      self._names_node = None
      self._names = filename_list(filenames)
      for path in self._names:
        check_exists(path)
    self._compression = compression
    self._buffer = buffer_size or _DEFAULT_BUFFER
    if num_parallel_reads == -1:  # AUTOTUNE: TF opens one file per core
      num_parallel_reads = os.cpu_count() or 1
    self._cycle = int(num_parallel_reads or 1)

  def _spec(self) -> Any:
    return _structure.TensorSpec((), str)

  def cardinality(self) -> int:
    return UNKNOWN

  def _files(self) -> Iterable[str]:
    if self._names_node is None:
      return self._names
    from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
    names = _grain_ops.as_iter(self._names_node.grain(True))
    return (filename_list([name])[0] for name in names)

  def lines(self) -> Iterator[str]:
    """One pass over the lines of every file."""
    files = (read_lines(path, self._compression, self._buffer)
             for path in self._files())
    if self._cycle == 1:
      for lines in files:
        yield from lines
    else:
      yield from _interleave(files, self._cycle)

  def _grain(self, planned: bool) -> Any:
    from estlab.data import _grain_ops  # pylint: disable=g-import-not-at-top
    return _grain_ops.generator(self.lines, self.name)


def _interleave(iterators: Iterator[Iterator[Any]], cycle: int
                ) -> Iterator[Any]:
  """tf.data's ``interleave(cycle_length=cycle, block_length=1)``: one item
  from each of ``cycle`` open iterators in turn; a finished one's slot
  takes the next iterator when the turn comes back to it."""
  slots: List[Optional[Iterator[Any]]] = [None] * cycle
  more = True
  index = 0
  while True:
    if slots[index] is None and more:
      slots[index] = next(iterators, None)
      more = slots[index] is not None
    if slots[index] is not None:
      item = next(slots[index], _END)
      if item is _END:
        slots[index] = None
      else:
        yield item
    elif not more and all(slot is None for slot in slots):
      return
    index = (index + 1) % cycle


_END = object()
