"""TF's string fingerprints on the host: FarmHash ``Fingerprint64``, ``FingerprintCat64``.

TensorFlow hashes feature values with ``Fingerprint64`` (its
``platform/fingerprint.h``: FarmHash's ``farmhashna::Hash64`` over the
string's bytes) and combines fingerprints with ``FingerprintCat64``. These
are the same functions, bit for bit, without TensorFlow:

* ``tf.strings.to_hash_bucket_fast(x, n)`` (``categorical_column_with_hash_bucket``,
  the OOV buckets of vocabulary columns) is ``hash_bucket(x, n)``:
  ``Fingerprint64(x) % n``, text as UTF-8, integers as their decimal strings
  (TF's ``as_string``);
* ``tf.sparse.cross_hashed`` (``crossed_column``) folds
  ``FingerprintCat64(acc, f)`` over one value of each input, starting from
  ``hash_key``, where ``f`` is ``Fingerprint64`` of a string value or an
  int64 value itself, as ``uint64``.

Everything is vectorised with numpy ``uint64`` arithmetic (wrapping, as C's):
only a batch's distinct strings are hashed, grouped by FarmHash's length
classes (0, 1-3, 4-7, 8-16, 17-32, 33-64, then by 64-byte block count), each
class one pass of array operations; unaligned 8-byte reads come from eight
shifted ``uint64`` views of the joined bytes. Recently hashed values are kept
in a bounded cache, so hot values are hashed once per process.

Example:
  >>> hex(int(fingerprint64(np.array(['hello'], object))[0]))
  '0xb48be5a931380ce8'
  >>> hash_bucket(np.array(['hello', 'world'], object), 100).tolist()
  [96, 98]
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["fingerprint64", "fingerprint_cat64", "hash_bucket",
           "int_fingerprints"]

_U = np.uint64
_K0 = _U(0xC3A5C85C97CB3127)
_K1 = _U(0xB492B66FBE98F273)
_K2 = _U(0x9AE16A3B2F90404F)
_MUL = _U(0xC6A4A7935BD1E995)  # FingerprintCat64's kMul
_S47 = _U(47)
_LOW32 = _U(0xFFFFFFFF)
_CACHE_LIMIT = 1 << 17
_cache: dict = {}


def _rotate(value: np.ndarray, shift: int) -> np.ndarray:
  """FarmHash's ``Rotate64``: right rotation by a constant 1..63."""
  return (value >> _U(shift)) | (value << _U(64 - shift))


def _shift_mix(value: np.ndarray) -> np.ndarray:
  return value ^ (value >> _S47)


def _len16(u: np.ndarray, v: np.ndarray, mul: Any) -> np.ndarray:
  """``farmhashna::HashLen16(u, v, mul)``."""
  a = _shift_mix((u ^ v) * mul)
  return _shift_mix((v ^ a) * mul) * mul


def _weak32(fetch, at: np.ndarray, a: np.ndarray, b: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
  """``WeakHashLen32WithSeeds(s + at, a, b)``."""
  w, x, y, z = (fetch(at + _U(k)) for k in (0, 8, 16, 24))
  a = a + w
  b = _rotate(b + a + z, 21)
  c = a
  a = a + x + y
  b = b + _rotate(a, 44)
  return a + z, b + c


class _Bytes:
  """The joined bytes of many strings, read at per-string offsets.

  ``fetch(offsets)`` is FarmHash's ``Fetch64`` (the little-endian uint64 at
  each byte offset): one gather from an unaligned uint64 view of the buffer
  with a stride of one byte (no copy).
  """

  def __init__(self, joined: bytes):
    buf = np.frombuffer(joined + bytes(16), dtype=np.uint8)
    self.bytes = buf
    self.words = np.ndarray(shape=(len(joined) + 8,), dtype="<u8", buffer=buf,
                            strides=(1,))

  def fetch(self, offsets: np.ndarray) -> np.ndarray:
    return self.words[offsets]

  def fetch32(self, offsets: np.ndarray) -> np.ndarray:
    return self.words[offsets] & _LOW32


def _len1to3(data: _Bytes, s: np.ndarray, n: np.ndarray) -> np.ndarray:
  raw = data.bytes
  a = raw[s].astype(np.uint64)
  b = raw[s + (n >> _U(1))].astype(np.uint64)
  c = raw[s + n - _U(1)].astype(np.uint64)
  y = a + (b << _U(8))
  z = n + (c << _U(2))
  return _shift_mix((y * _K2) ^ (z * _K0)) * _K2


def _len4to7(data: _Bytes, s: np.ndarray, n: np.ndarray) -> np.ndarray:
  mul = _K2 + n * _U(2)
  a = data.fetch32(s)
  return _len16(n + (a << _U(3)), data.fetch32(s + n - _U(4)), mul)


def _len8to16(data: _Bytes, s: np.ndarray, n: np.ndarray) -> np.ndarray:
  mul = _K2 + n * _U(2)
  a = data.fetch(s) + _K2
  b = data.fetch(s + n - _U(8))
  c = _rotate(b, 37) * mul + a
  d = (_rotate(a, 25) + b) * mul
  return _len16(c, d, mul)


def _len17to32(data: _Bytes, s: np.ndarray, n: np.ndarray) -> np.ndarray:
  fetch = data.fetch
  mul = _K2 + n * _U(2)
  a = fetch(s) * _K1
  b = fetch(s + _U(8))
  c = fetch(s + n - _U(8)) * mul
  d = fetch(s + n - _U(16)) * _K2
  return _len16(_rotate(a + b, 43) + _rotate(c, 30) + d,
                a + _rotate(b + _K2, 18) + c, mul)


def _len33to64(data: _Bytes, s: np.ndarray, n: np.ndarray) -> np.ndarray:
  fetch = data.fetch
  mul = _K2 + n * _U(2)
  a = fetch(s) * _K2
  b = fetch(s + _U(8))
  c = fetch(s + n - _U(8)) * mul
  d = fetch(s + n - _U(16)) * _K2
  y = _rotate(a + b, 43) + _rotate(c, 30) + d
  z = _len16(y, a + _rotate(b + _K2, 18) + c, mul)
  e = fetch(s + _U(16)) * mul
  f = fetch(s + _U(24))
  g = (y + fetch(s + n - _U(32))) * mul
  h = (z + fetch(s + n - _U(24))) * mul
  return _len16(_rotate(e + f, 43) + _rotate(g, 30) + h,
                e + _rotate(f + a, 18) + g, mul)


def _len65plus(data: _Bytes, s: np.ndarray, n: np.ndarray, blocks: int
               ) -> np.ndarray:
  """``farmhashna::Hash64`` past 64 bytes; all strings have ``blocks`` loops."""
  fetch = data.fetch
  x = np.full(s.shape, 81, dtype=np.uint64)  # seed
  y = np.full(s.shape, (81 * int(_K1) + 113) % (1 << 64), dtype=np.uint64)
  z = _shift_mix(y * _K2 + _U(113)) * _K2
  v0 = v1 = w0 = w1 = np.zeros(s.shape, dtype=np.uint64)
  x = x * _K2 + fetch(s)
  last64 = s + n - _U(64)
  at = s
  for _ in range(blocks):
    x = _rotate(x + y + v0 + fetch(at + _U(8)), 37) * _K1
    y = _rotate(y + v1 + fetch(at + _U(48)), 42) * _K1
    x = x ^ w1
    y = y + v0 + fetch(at + _U(40))
    z = _rotate(z + w0, 33) * _K1
    v0, v1 = _weak32(fetch, at, v1 * _K1, x + w0)
    w0, w1 = _weak32(fetch, at + _U(32), z + w1, y + fetch(at + _U(16)))
    x, z = z, x
    at = at + _U(64)
  mul = _K1 + ((z & _U(0xFF)) << _U(1))
  at = last64
  w0 = w0 + ((n - _U(1)) & _U(63))
  v0 = v0 + w0
  w0 = w0 + v0
  x = _rotate(x + y + v0 + fetch(at + _U(8)), 37) * mul
  y = _rotate(y + v1 + fetch(at + _U(48)), 42) * mul
  x = x ^ (w1 * _U(9))
  y = y + v0 * _U(9) + fetch(at + _U(40))
  z = _rotate(z + w0, 33) * mul
  v0, v1 = _weak32(fetch, at, v1 * mul, x + w0)
  w0, w1 = _weak32(fetch, at + _U(32), z + w1, y + fetch(at + _U(16)))
  x, z = z, x
  return _len16(_len16(v0, w0, mul) + _shift_mix(y) * _K0 + z,
                _len16(v1, w1, mul) + x, mul)


_CLASSES = ((1, 3, _len1to3), (4, 7, _len4to7), (8, 16, _len8to16),
            (17, 32, _len17to32), (33, 64, _len33to64))


def fingerprint64_bytes(values: list) -> np.ndarray:
  """``Fingerprint64`` of each ``bytes`` value: a uint64 array (no cache).

  Example:
    >>> int(fingerprint64_bytes([b''])[0]) == 0x9AE16A3B2F90404F
    True
  """
  lengths = np.fromiter(map(len, values), dtype=np.uint64, count=len(values))
  return _hash_joined(b"".join(values), lengths)


def _hash_joined(joined: bytes, lengths: np.ndarray) -> np.ndarray:
  """Fingerprints of the strings laid end to end in ``joined``."""
  out = np.empty(lengths.size, dtype=np.uint64)
  if not lengths.size:
    return out
  starts = np.cumsum(lengths, dtype=np.uint64) - lengths
  data = _Bytes(joined)
  out[lengths == 0] = _K2
  for low, high, hash_class in _CLASSES:
    rows = np.flatnonzero((lengths >= low) & (lengths <= high))
    if rows.size:
      out[rows] = hash_class(data, starts[rows], lengths[rows])
  long = lengths > 64
  if long.any():
    blocks = (lengths - _U(1)) >> _U(6)
    for count in np.unique(blocks[long]).tolist():
      rows = np.flatnonzero(long & (blocks == count))
      out[rows] = _len65plus(data, starts[rows], lengths[rows], int(count))
  return out


def _encode(value: Any) -> bytes:
  if isinstance(value, bytes):
    return value
  if isinstance(value, str):
    return value.encode("utf-8")
  raise TypeError(f"Fingerprint64 hashes strings or bytes, got {value!r} "
                  f"({type(value).__name__}); convert the values with "
                  ".astype(str) first.")


def _hash_values(values: np.ndarray) -> np.ndarray:
  """Fingerprints of an object array of str / bytes (UTF-8 for str)."""
  items = values.tolist()
  lengths = np.fromiter(map(len, items), dtype=np.uint64, count=len(items))
  try:  # all str: one join; when all ASCII, byte lengths are char lengths
    text = "".join(items)
  except TypeError:
    text = None
  if text is not None:
    joined = text.encode("utf-8")
    if len(joined) == len(text):
      return _hash_joined(joined, lengths)
  return fingerprint64_bytes([_encode(v) for v in items])


def _distinct(values: np.ndarray) -> np.ndarray:
  """Fingerprints of distinct values (an object array), through the cache."""
  cache = _cache
  found = None
  if cache:
    found = np.array(list(map(cache.get, values.tolist())), dtype=object)
    missing = np.flatnonzero(np.equal(found, None))
    if not missing.size:
      return found.astype(np.uint64)
    values = values[missing]
  fresh = _hash_values(values)
  if len(cache) + values.size > _CACHE_LIMIT:
    cache.clear()
  if values.size <= _CACHE_LIMIT:
    cache.update(zip(values.tolist(), fresh.tolist()))
  if found is None:
    return fresh
  found[missing] = fresh.tolist()
  return found.astype(np.uint64)


def fingerprint64(values: Any) -> np.ndarray:
  """TF's ``Fingerprint64`` of each string (UTF-8) or bytes value.

  Integers are hashed as their decimal strings (TF's ``as_string``, as
  ``to_hash_bucket_fast`` sees them).

  Args:
    values: an array (any shape) or sequence of ``str`` / ``bytes``, or an
      integer array.

  Returns:
    uint64 array of ``values``' shape.

  Raises:
    TypeError: a value that is neither str nor bytes.

  Example:
    >>> fingerprint64(np.array([['a', 'b']], object)).shape
    (1, 2)
  """
  array = np.asarray(values)
  if array.size == 0:
    return np.zeros(array.shape, dtype=np.uint64)
  if array.dtype.kind in "iu":
    codes, uniques = pd.factorize(array.ravel())
    decimal = np.asarray(uniques).astype(str).astype(object)
    return _distinct(decimal)[codes].reshape(array.shape)
  flat = array.astype(object, copy=False).ravel()
  if flat.size == 1:
    return _distinct(flat).reshape(array.shape)
  codes, uniques = pd.factorize(flat)
  return _distinct(np.asarray(uniques, dtype=object))[codes].reshape(
      array.shape)


def hash_bucket(values: Any, num_buckets: int) -> np.ndarray:
  """``tf.strings.to_hash_bucket_fast(values, num_buckets)``: int64 ids.

  Example:
    >>> hash_bucket(['hello'], 100).tolist()
    [96]
  """
  return (fingerprint64(values) % _U(num_buckets)).astype(np.int64)


def int_fingerprints(values: np.ndarray) -> np.ndarray:
  """What ``sparse_cross_hashed`` crosses for int64 values: their bits as uint64."""
  return np.asarray(values).astype(np.int64).view(np.uint64)


def fingerprint_cat64(fp1: np.ndarray, fp2: np.ndarray) -> np.ndarray:
  """TF's ``FingerprintCat64(fp1, fp2)`` over uint64 arrays (broadcasting).

  Example:
    >>> seed = np.array([0xDECAFCAFFE], np.uint64)
    >>> fingerprint_cat64(seed, fingerprint64(['a'])).dtype
    dtype('uint64')
  """
  result = np.asarray(fp1, dtype=np.uint64) ^ _MUL
  result = result ^ (_shift_mix(np.asarray(fp2, dtype=np.uint64) * _MUL) * _MUL)
  result = result * _MUL
  return _shift_mix(_shift_mix(result) * _MUL)
