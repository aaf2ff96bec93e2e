"""Step counts a call is given (``train(steps=, max_steps=)``, ``evaluate(steps=)``).

A count is a positive whole number: ``True`` is no count (``steps=True``
trained one step, as in TF), ``2.5`` is none either (TF ran 3); a float that
is whole (``max_steps=1e6``, common in TF code) is taken as an int.

Example:
  >>> step_count(1e3, "train(max_steps=...)")
  1000
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["InvalidStepCountError", "step_count"]


class InvalidStepCountError(ValueError, TypeError):
  """A step count that is not a positive whole number (a ``ValueError`` as
  TF's ``Must specify steps > 0``, and a ``TypeError`` for a bool or text)."""


def step_count(value: Any, where: str) -> int | None:
  """``value`` as an int, None for None.

  Args:
    value: the count given.
    where: the argument as the caller wrote it, for the message, e.g.
      ``'train(steps=...)'``.

  Raises:
    InvalidStepCountError: ``value`` is a bool, not a whole number, or not
      positive (TF's ``Must specify steps > 0, given: 0``).
  """
  if value is None:
    return None
  name = where[where.index("(") + 1:where.index("=")]
  call = where.replace("...", repr(value))
  if isinstance(value, (bool, np.bool_)):
    raise InvalidStepCountError(
        f"{call}: {name} must be a positive int, not a bool ({value!r} is a "
        f"flag, not a count); pass {name}=1 for one step, or None to run "
        "until the input ends.")
  if isinstance(value, numbers.Integral):
    count = int(value)
  elif isinstance(value, numbers.Real) and float(value).is_integer():
    count = int(value)
  else:
    raise InvalidStepCountError(
        f"{call}: {name} must be a positive whole number of steps, got "
        f"{type(value).__name__} {value!r}; pass an int, e.g. {name}="
        f"{_suggest(value)}.")
  if count <= 0:
    raise InvalidStepCountError(
        f"{call}: Must specify {name} > 0, given: {value!r}. Pass a positive "
        "int, or None to run until the input ends.")
  return count


def _suggest(value: Any) -> str:
  """A whole count near ``value`` for the message (100 when there is none)."""
  try:
    return repr(max(1, round(float(value))))
  except (TypeError, ValueError, OverflowError):
    return "100"
