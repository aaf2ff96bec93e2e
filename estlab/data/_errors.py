"""The errors of the input path: bad values in the data a user feeds.

Each names where the bad value came from (a file and line, or a column and
row) and shows it; each subclasses the built-in exception that old
``except`` clauses expect. Argument mistakes (a bad ``batch_size``) stay
plain ``ValueError`` / ``TypeError``.

Example:
  >>> err = CsvParseError("'x5' is not a number.", path='d.csv', line=3,
  ...                     column='b', value='x5')
  >>> isinstance(err, ValueError), err.line
  (True, 3)
"""
from __future__ import annotations

from typing import Any, Optional

__all__ = ["InvalidInputError", "CsvParseError", "InputTypeError",
           "decode_utf8"]


class InvalidInputError(ValueError):
  """A value in the input data is invalid (a ValueError).

  Attributes:
    path: the file it came from, or None.
    line: the 1-based line of ``path`` (or row of an in-memory table), or
      None.
    column: the column or feature it belongs to, or None.
    value: the offending value, or None.
  """

  def __init__(self, message: str, *, path: Optional[str] = None,
               line: Optional[int] = None, column: Any = None,
               value: Any = None):
    super().__init__(message)
    self.path = path
    self.line = line
    self.column = column
    self.value = value


class CsvParseError(InvalidInputError):
  """A CSV file cannot be read as the table it should be: a row with the
  wrong number of fields, bytes that are not UTF-8 text, or a cell that is
  not of its column's dtype. TF raises ``InvalidArgumentError`` (or a bare
  ``UnicodeDecodeError``) for these."""


class InputTypeError(TypeError):
  """A column of an in-memory input holds values that cannot be fed (a
  TypeError): Python objects that are neither numbers nor text, or a dtype
  estlab does not take.

  Attributes:
    column: the column or feature, or None.
    value: a sample of the offending values, or None.
  """

  def __init__(self, message: str, *, column: Any = None, value: Any = None):
    super().__init__(message)
    self.column = column
    self.value = value


def decode_utf8(value: Any, where: str) -> Any:
  """``bytes`` (or a numpy ``S`` array / object array of bytes) as UTF-8 str.

  Raises:
    InvalidInputError: naming ``where`` and the bytes that are not UTF-8.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  try:
    if isinstance(value, bytes):
      return value.decode("utf-8")
    array = np.asarray(value)
    if array.dtype.kind == "S":
      return np.char.decode(array, "utf-8").astype(object)
    return np.vectorize(lambda v: v.decode("utf-8") if isinstance(v, bytes)
                        else v, otypes=[object])(array)
  except UnicodeDecodeError as err:
    bad = err.object
    raise InvalidInputError(
        f"{where} holds bytes that are not UTF-8 text: {bytes(bad)[:40]!r} "
        f"(byte 0x{bad[err.start]:02x} at {err.start}). Text is read as "
        f"UTF-8, as TF's string features are; decode it first (e.g. "
        f"b.decode('latin-1')) or pass it as numbers.", column=where,
        value=bytes(bad)) from None
