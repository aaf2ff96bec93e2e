r"""Checks a CSV file's lines as pandas reads them: UTF-8, field counts, lines.

``CheckedCsv`` is the binary file object ``make_csv_dataset`` hands to
``pandas.read_csv``. Each block it passes on holds whole lines, checked
first, as TF's CSV reader checks them: the bytes must be UTF-8 text and
every row must have one field per column (pandas fills short rows with
missing values and, given ``usecols``, drops extra fields without a word).
A bad line raises ``CsvParseError`` naming the file, the line, the counts
and the line itself; with ``skip_bad`` (``ignore_errors=True``) rows with
the wrong field count are left out instead. ``pop_lines`` gives the file
line of each row pandas parsed, so later errors name exact lines.

Lines without quotes are counted with numpy, a block at a time; a block
holding a quote is read with the ``csv`` module, since a quoted field may
hold delimiters and newlines.

Example:
  >>> import os, tempfile
  >>> path = os.path.join(tempfile.mkdtemp(), 'd.csv')
  >>> _ = open(path, 'w').write('a,b\n1,2\n\n3,4\n')
  >>> with CheckedCsv(path, delimiter=',', num_fields=2, header=True) as f:
  ...   data = f.read()
  ...   f.pop_lines(2).tolist()
  [2, 4]
  >>> _ = open(path, 'a').write('5\n')
  >>> with CheckedCsv(path, delimiter=',', num_fields=2) as f:
  ...   f.read()
  Traceback (most recent call last):
  ...
  estlab.data._errors.CsvParseError: Line 5 of '...d.csv' has 1 field but the file has 2 columns: '5'. Fix or remove the line, or pass ignore_errors=True to skip such lines.
"""
from __future__ import annotations

import csv
import gzip
import io
from typing import List, Optional

import numpy as np

from estlab.data._errors import CsvParseError

_BLOCK = 1 << 20  # Bytes read from the file at a time.
_NEWLINE, _QUOTE = ord("\n"), ord('"')


class CheckedCsv(io.RawIOBase):
  """A CSV file's bytes, whole checked lines at a time (see the module).

  Args:
    path: the file.
    delimiter: the one-character field separator.
    num_fields: fields every row must have; None checks only UTF-8.
    quoting: whether double quotes enclose fields.
    header: whether the first non-blank line is a header (not a row).
    skip_bad: leave out rows with the wrong field count instead of raising.
    gzipped: whether the file is gzip-compressed.
  """

  def __init__(self, path: str, *, delimiter: str,
               num_fields: Optional[int], quoting: bool = True,
               header: bool = False, skip_bad: bool = False,
               gzipped: bool = False):
    super().__init__()
    self.path = path
    self._file = gzip.open(path, "rb") if gzipped else open(path, "rb")
    self._delimiter = delimiter
    self._num_fields = num_fields
    self._quoting = quoting
    self._header = header
    self._skip_bad = skip_bad
    # pandas skips lines of only whitespace; a tab delimiter is not one.
    self._blank_bytes = np.array([ord(c) for c in " \t\r"
                                  if c != delimiter], dtype=np.uint8)
    self._pending = b""  # Read but not checked: the last, partial line.
    self._line = 1  # The line number of the first line of _pending.
    self._out = bytearray()  # Checked, not yet handed to pandas.
    self._row_lines: List[np.ndarray] = []
    self._eof = False

  def readable(self) -> bool:
    return True

  def close(self) -> None:
    self._file.close()
    super().close()

  def read(self, size: int = -1) -> bytes:
    while not self._eof and (size is None or size < 0
                             or len(self._out) < size):
      self._fill()
    if size is None or size < 0:
      size = len(self._out)
    data = bytes(self._out[:size])
    del self._out[:size]
    return data

  def readinto(self, buffer) -> int:
    data = self.read(len(buffer))
    buffer[:len(data)] = data
    return len(data)

  def pop_lines(self, count: int) -> np.ndarray:
    """The file lines (1-based) of the next ``count`` rows pandas parsed."""
    lines = (np.concatenate(self._row_lines) if self._row_lines
             else np.zeros(0, np.int64))
    self._row_lines = [lines[count:]]
    return lines[:count]

  def _fill(self) -> None:
    """Reads a block; checks and queues its whole lines."""
    data = self._file.read(_BLOCK)
    buf = self._pending + data
    if not data:
      self._eof = True
      if buf and not buf.endswith(b"\n"):
        buf += b"\n"
      self._pending = b""
      self._check(buf)
      return
    cut = self._last_line_end(buf)
    self._pending = buf[cut:]
    self._check(buf[:cut])

  def _last_line_end(self, buf: bytes) -> int:
    """The end of the last whole line in ``buf`` (outside quotes), or 0."""
    if not (self._quoting and b'"' in buf):
      return buf.rfind(b"\n") + 1
    a = np.frombuffer(buf, np.uint8)
    newlines = np.flatnonzero(a == _NEWLINE)
    quotes = np.cumsum(a == _QUOTE)[newlines] if newlines.size else newlines
    outside = newlines[quotes % 2 == 0]
    return int(outside[-1]) + 1 if outside.size else 0

  def _check(self, block: bytes) -> None:
    """Checks whole lines: UTF-8, then field counts; queues kept bytes."""
    if not block:
      return
    try:
      block.decode("utf-8")
    except UnicodeDecodeError as err:
      self._not_text(block, err)
    count = (self._count_quoted if self._quoting and b'"' in block
             else self._count_plain)
    starts, ends, fields, blank, numbers, num_lines = count(block)
    rows = ~blank
    if self._header and rows.any():
      first = int(np.flatnonzero(rows)[0])
      rows[first] = False  # The header is no row, but has the columns too.
      self._header = False
      if self._num_fields is not None and fields[first] != self._num_fields:
        self._wrong_count(block, starts, ends, fields, numbers, first,
                          "header")
    bad = rows & (fields != self._num_fields) if self._num_fields else (
        np.zeros_like(rows))
    if bad.any():
      if not self._skip_bad:
        self._wrong_count(block, starts, ends, fields, numbers,
                          int(np.flatnonzero(bad)[0]), "row")
      keep = np.ones(len(block), dtype=bool)
      for start, end in zip(starts[bad], ends[bad]):
        keep[start:end] = False
      block = np.frombuffer(block, np.uint8)[keep].tobytes()
      rows &= ~bad
    self._line += num_lines
    self._row_lines.append(numbers[rows])
    self._out += block

  def _count_plain(self, block: bytes):
    """Per line: start, end (after its newline), fields, blank, number;
    and the number of lines."""
    a = np.frombuffer(block, np.uint8)
    ends = np.flatnonzero(a == _NEWLINE) + 1
    starts = np.concatenate([[0], ends[:-1]])
    delims = np.flatnonzero(a == ord(self._delimiter))
    fields = (np.searchsorted(delims, ends) - np.searchsorted(delims, starts)
              + 1)
    blank = np.zeros(len(ends), dtype=bool)  # A line with a field delimiter
    one = np.flatnonzero(fields == 1)  # is not blank; others may be.
    if one.size:
      solid = np.flatnonzero(~np.isin(a, self._blank_bytes) & (a != _NEWLINE))
      blank[one] = (np.searchsorted(solid, ends[one])
                    == np.searchsorted(solid, starts[one]))
    numbers = self._line + np.arange(len(ends), dtype=np.int64)
    return starts, ends, fields, blank, numbers, len(ends)

  def _count_quoted(self, block: bytes):
    """``_count_plain`` for a block with quotes: one entry per CSV row.

    Returns:
      ``(starts, ends, fields, blank, line numbers, lines in the block)``.
    """
    a = np.frombuffer(block, np.uint8)
    line_ends = np.flatnonzero(a == _NEWLINE) + 1
    line_starts = np.concatenate([[0], line_ends[:-1]])
    text = block.decode("utf-8").split("\n")[:-1]
    reader = csv.reader((t + "\n" for t in text), delimiter=self._delimiter,
                        quotechar='"', doublequote=True, strict=False)
    starts, ends, fields, blank, numbers = [], [], [], [], []
    previous = 0  # Lines read before this row.
    for row in reader:
      first, last = previous, reader.line_num - 1  # 0-based line indices.
      previous = reader.line_num
      starts.append(line_starts[first])
      ends.append(line_ends[last])
      fields.append(len(row))
      blank.append(not row or (len(row) == 1 and not row[0].strip(
          "".join(map(chr, self._blank_bytes)))
          and b'"' not in block[line_starts[first]:line_ends[last]]))
      numbers.append(self._line + first)
    return (np.asarray(starts, np.int64), np.asarray(ends, np.int64),
            np.asarray(fields, np.int64), np.asarray(blank, bool),
            np.asarray(numbers, np.int64), len(line_ends))

  def _not_text(self, block: bytes, err: UnicodeDecodeError) -> None:
    line = self._line + block.count(b"\n", 0, err.start)
    column = err.start - (block.rfind(b"\n", 0, err.start) + 1)
    byte = block[err.start]
    raise CsvParseError(
        f"{self.path!r} is not UTF-8 text: line {line} holds the byte "
        f"0x{byte:02x} (byte {column + 1} of the line), which UTF-8 cannot "
        f"decode. Is it a CSV file? CSV files are read as UTF-8 (as TF "
        f"reads them): pass a text file, or convert it first, e.g. "
        f"iconv -f latin1 -t utf-8.", path=self.path, line=line,
        value=block[err.start:err.start + 8]) from None

  def _wrong_count(self, block: bytes, starts: np.ndarray, ends: np.ndarray,
                   fields: np.ndarray, numbers: np.ndarray, index: int,
                   what: str) -> None:
    line = int(numbers[index])
    text = block[starts[index]:ends[index]].decode("utf-8").rstrip("\r\n")
    got = int(fields[index])
    fix = ("Fix or remove the line, or pass ignore_errors=True to skip such "
           "lines." if what == "row" else
           "Give every file the same columns.")
    raise CsvParseError(
        f"Line {line} of {self.path!r} has {got} field{'s' * (got != 1)} but "
        f"the file has {self._num_fields} columns: {text!r:.200}. {fix}",
        path=self.path, line=line, value=text)
