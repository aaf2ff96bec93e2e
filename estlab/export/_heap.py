"""Giving a serving process's freed heap back to the system (glibc only).

CPython frees a big request's objects to the C library's heap; glibc keeps
what is not at the top of its heap, in one arena per thread that allocated.
``estlab serve`` caps the arenas at start and trims after big requests, so
its memory returns near idle after a large body (issue #24). Elsewhere
(macOS, musl) both calls do nothing.

Example:
  >>> limit_malloc_arenas(2)  # doctest: +SKIP
  True
  >>> malloc_trim()           # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util

__all__ = ["limit_malloc_arenas", "malloc_trim"]

_M_ARENA_MAX = -8  # glibc's mallopt parameter


def _libc():
  with contextlib.suppress(OSError, AttributeError, TypeError):
    name = ctypes.util.find_library("c")
    if name:
      libc = ctypes.CDLL(name)
      if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt"):
        return libc  # glibc
  return None


def limit_malloc_arenas(count: int = 2) -> bool:
  """Caps glibc's malloc arenas (what ``MALLOC_ARENA_MAX`` does); False
  where the C library is not glibc.

  glibc gives each thread that allocates its own arena (up to 8 per core);
  a big request answered on a handler or compute thread leaves its arena
  fragmented, and ``malloc_trim`` returns little of it: measured, a server
  grew ~35 MB per 10 MB request without the cap and stayed within ~30 MB of
  idle with it. Call before the threads start (arenas made before stay).
  """
  libc = _libc()
  return bool(libc and libc.mallopt(_M_ARENA_MAX, count))


_libc_trim = None


def malloc_trim() -> None:
  """Returns freed heap memory to the system (glibc only; else nothing).

  CPython frees a big request's objects to glibc's heap, which keeps them
  (its trim threshold only sees the top of the heap): the process would stay
  at its peak after one large body.
  """
  global _libc_trim
  if _libc_trim is None:
    libc = _libc()
    _libc_trim = libc.malloc_trim if libc else False
  if _libc_trim:
    _libc_trim(0)
