"""One ``ArrayTable`` for equal columns, across Datasets and input_fn calls.

An Estimator encodes a table's columns once and keeps the encoding while
the ``ArrayTable`` object lives. An input_fn that builds its Dataset on
each call (``Dataset.from_tensor_slices((dict(df), y))``, as tutorials
write it) makes new arrays each call (pandas gives new ones), so tables are
looked up by content: a digest of every column (its bytes; for text, its
strings). A few recent tables are kept (``_KEEP``) with their
columns, so changed data is never served from the cache and the memory held
is bounded.
"""
from __future__ import annotations

import collections
import hashlib
import threading
from typing import Any, Callable, Optional

import numpy as np

__all__ = ["shared"]

_KEEP = 4  # Tables kept alive: a training, an evaluation and a predict set.
_LOCK = threading.Lock()
_TABLES: "collections.OrderedDict[Any, Any]" = collections.OrderedDict()


def _digest(array: np.ndarray) -> Optional[bytes]:
  """A digest of an array's content: of its bytes, or for text of its
  strings (and of their tuple's hash, for where each ends); None for other
  objects (not cached)."""
  digest = hashlib.blake2b(digest_size=20)
  if array.dtype == object:
    values = array.ravel().tolist()
    try:
      joined = "".join(values)  # (a TypeError unless all are str)
    except TypeError:
      return None
    digest.update(joined.encode("utf-8", "surrogatepass"))
    # Where the strings end (the join drops it): their tuple's hash.
    digest.update(hash(tuple(values)).to_bytes(8, "little", signed=True))
  else:
    digest.update(np.ascontiguousarray(array).view(np.uint8))
  return digest.digest()


def shared(treedef: Any, leaves: list, make: Callable[[], Any]) -> Any:
  """The table of these columns: a kept one with equal content, else
  ``make()`` (kept from then on)."""
  digests = []
  for leaf in leaves:
    digest = _digest(leaf)
    if digest is None:
      return make()
    digests.append((leaf.shape, leaf.dtype.str, digest))
  key = (treedef, tuple(digests))
  with _LOCK:
    table = _TABLES.get(key)
    if table is not None:
      _TABLES.move_to_end(key)
      return table
  table = make()
  with _LOCK:
    table = _TABLES.setdefault(key, table)
    while len(_TABLES) > _KEEP:
      _TABLES.popitem(last=False)
  return table
