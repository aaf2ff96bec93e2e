"""Reads TensorFlow checkpoints (tf.estimator's model_dirs) without TensorFlow.

One job: a TF 2.x / TF 1.x "V2" checkpoint's variables as numpy arrays, so
``warm_start_from`` and ``estlab inspect`` take a tf.estimator model_dir.
The format (tensorflow/core/util/tensor_bundle, tsl/lib/io/table)::

  model_dir/checkpoint                 text proto: model_checkpoint_path:
                                       "model.ckpt-N" (relative or absolute)
  model.ckpt-N.index                   an SSTable (LevelDB's table format):
                                       key "" -> BundleHeaderProto, every
                                       other key a tensor name ->
                                       BundleEntryProto (dtype, shape,
                                       shard_id, offset, size, crc32c, slices)
  model.ckpt-N.data-0000s-of-0000n     the tensors' raw little-endian bytes

The table: data blocks of prefix-compressed entries (``shared, non_shared,
value_len`` varints, key delta, value) closed by restart offsets, each block
followed by a 1-byte compression type and a masked CRC32C; an index block maps
each data block's last key to its handle; a 48-byte footer holds the metaindex
and index handles and the magic number. A string tensor's bytes are varint64
lengths, a 4-byte checksum, then the strings. A partitioned variable
(``.../part_0``, ``.../part_1`` in the graph) is one entry with ``slices``
whose data sit under keys encoded as ``checkpoint::EncodeTensorNameSlice``;
they are joined into the full tensor. (Rows are joined in slice order:
a table that TF looked up with ``embedding_lookup``'s default
``partition_strategy='mod'`` keeps id ``i`` in part ``i % n``, so its rows
need permuting before a lookup by id; ``'div'`` (feature columns' embeddings,
through safe_embedding_lookup_sparse) keeps them in order.)

The protobufs are decoded by a small wire-format reader (proto3 varints,
fixed32 and length-delimited fields), so neither TensorFlow nor generated
protobuf classes are needed.

Example:
  >>> reader = TFCheckpointReader('/tmp/tf_model_dir')        # doctest: +SKIP
  >>> reader.variable_shapes()['dnn/logits/kernel']           # doctest: +SKIP
  (3, 1)
  >>> reader.read('dnn/logits/kernel').dtype                  # doctest: +SKIP
  dtype('float32')
"""
from __future__ import annotations

import os
import re
import struct
from typing import Any, Iterator

import numpy as np

__all__ = [
    "TFCheckpointError",
    "TFCheckpointReader",
    "is_tf_checkpoint",
    "latest_tf_checkpoint",
    "tf_checkpoint_prefixes",
    "tf_checkpoint_step",
]

_MAGIC = 0xdb4775248b80fb57
_FOOTER = 48  # two BlockHandles padded to 40 bytes + the 8-byte magic
_TRAILER = 5  # compression type + masked crc32c after each block
_CRC_CHECK_LIMIT = 16 << 20  # tensors above this skip the (pure Python) CRC

# tensorflow/core/framework/types.proto -> numpy (little-endian)
_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1",
           7: "string", 8: "<c8", 9: "<i8", 10: "?", 14: "bfloat16",
           17: "<u2", 18: "<c16", 19: "<f2", 22: "<u4", 23: "<u8"}
_DTYPE_NAMES = {20: "DT_RESOURCE", 21: "DT_VARIANT", 11: "DT_QINT8",
                12: "DT_QUINT8", 13: "DT_QINT32", 15: "DT_QINT16",
                16: "DT_QUINT16"}


class TFCheckpointError(ValueError):
  """A TensorFlow checkpoint file is damaged, missing or not understood."""


# -- crc32c (Castagnoli), as TF and LevelDB checksum blocks and tensors -------


def _crc_table() -> list[int]:
  table = []
  for i in range(256):
    c = i
    for _ in range(8):
      c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
  return table


_CRC_TABLE = _crc_table()


def crc32c(data: bytes, crc: int = 0) -> int:
  """CRC32C of ``data`` (continuing ``crc``), pure Python."""
  crc ^= 0xFFFFFFFF
  table = _CRC_TABLE
  for byte in data:
    crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
  """TF's ``crc32c::Mask``: stored checksums are rotated and offset."""
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# -- protobuf wire format -------------------------------------------------------


def _varint(buf: bytes, pos: int, where: str) -> tuple[int, int]:
  result = shift = 0
  while True:
    if pos >= len(buf) or shift > 63:
      raise TFCheckpointError(f"{where}: a varint runs past the end of its "
                              "data (the file is truncated or damaged).")
    byte = buf[pos]
    pos += 1
    result |= (byte & 0x7F) << shift
    shift += 7
    if not byte & 0x80:
      return result, pos


def _fields(buf: bytes, where: str) -> Iterator[tuple[int, Any]]:
  """``(field number, value)`` of a serialized message: an int for varint
  and fixed fields, bytes for length-delimited ones."""
  pos = 0
  while pos < len(buf):
    tag, pos = _varint(buf, pos, where)
    number, wire = tag >> 3, tag & 7
    if wire == 0:
      value, pos = _varint(buf, pos, where)
    elif wire == 1:
      value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
    elif wire == 2:
      length, pos = _varint(buf, pos, where)
      value, pos = bytes(buf[pos:pos + length]), pos + length
    elif wire == 5:
      value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
    else:
      raise TFCheckpointError(f"{where}: unknown protobuf wire type {wire} "
                              "(the file is damaged or not a checkpoint).")
    if pos > len(buf):
      raise TFCheckpointError(f"{where}: a protobuf field runs past the end "
                              "of its data (the file is truncated or damaged).")
    yield number, value


def _signed64(value: int) -> int:
  return value - (1 << 64) if value >= 1 << 63 else value


def _shape(buf: bytes, where: str) -> tuple[int, ...]:
  """A TensorShapeProto: ``dim`` (2) of ``Dim{size (1)}``."""
  dims = []
  for number, value in _fields(buf, where):
    if number == 2:
      size = 0
      for n, v in _fields(value, where):
        if n == 1:
          size = _signed64(v)
      dims.append(size)
    elif number == 3 and value:
      raise TFCheckpointError(f"{where}: a tensor of unknown rank.")
  return tuple(dims)


def _slice(buf: bytes, where: str) -> list[tuple[int, int]]:
  """A TensorSliceProto: ``extent`` (1) of ``{start (1), length (2)}``;
  a missing length is the full extent, ``-1`` as TF encodes it."""
  extents = []
  for number, value in _fields(buf, where):
    if number == 1:
      start, length = 0, -1
      for n, v in _fields(value, where):
        if n == 1:
          start = _signed64(v)
        elif n == 2:
          length = _signed64(v)
      extents.append((start, length))
  return extents


class _Entry:
  """A BundleEntryProto."""

  def __init__(self, buf: bytes, where: str):
    self.dtype, self.shape, self.shard = 0, (), 0
    self.offset = self.size = self.crc = 0
    self.slices: list[list[tuple[int, int]]] = []
    for number, value in _fields(buf, where):
      if number == 1:
        self.dtype = value
      elif number == 2:
        self.shape = _shape(value, where)
      elif number == 3:
        self.shard = value
      elif number == 4:
        self.offset = value
      elif number == 5:
        self.size = value
      elif number == 6:
        self.crc = value
      elif number == 7:
        self.slices.append(_slice(value, where))


# -- the SSTable ----------------------------------------------------------------


def _block_handle(buf: bytes, pos: int, where: str) -> tuple[int, int, int]:
  offset, pos = _varint(buf, pos, where)
  size, pos = _varint(buf, pos, where)
  return offset, size, pos


def _read_block(data: bytes, offset: int, size: int, where: str) -> bytes:
  end = offset + size + _TRAILER
  if offset < 0 or end > len(data):
    raise TFCheckpointError(
        f"{where}: a block at bytes [{offset}, {end}) lies past the end of "
        f"the file ({len(data)} bytes): it is truncated.")
  block = data[offset:offset + size]
  kind = data[offset + size]
  stored = int.from_bytes(data[offset + size + 1:end], "little")
  if _masked(crc32c(data[offset:offset + size + 1])) != stored:
    raise TFCheckpointError(f"{where}: the block at byte {offset} fails its "
                            "checksum: the file is damaged.")
  if kind != 0:
    raise TFCheckpointError(
        f"{where}: a block is compressed (type {kind}, 1 = snappy); TF writes "
        "checkpoint indexes uncompressed and estlab reads only those.")
  return block


def _block_entries(block: bytes, where: str) -> Iterator[tuple[bytes, bytes]]:
  """The ``(key, value)`` pairs of one block, keys prefix-decompressed."""
  if len(block) < 4:
    raise TFCheckpointError(f"{where}: a block of {len(block)} bytes is too "
                            "short to hold its restart count.")
  restarts = int.from_bytes(block[-4:], "little")
  limit = len(block) - 4 - 4 * restarts
  if limit < 0:
    raise TFCheckpointError(f"{where}: a block claims {restarts} restart "
                            "points, more than it can hold: it is damaged.")
  pos, key = 0, b""
  while pos < limit:
    shared, pos = _varint(block, pos, where)
    unshared, pos = _varint(block, pos, where)
    length, pos = _varint(block, pos, where)
    if shared > len(key) or pos + unshared + length > limit:
      raise TFCheckpointError(f"{where}: a block entry is malformed: the file "
                              "is damaged.")
    key = key[:shared] + block[pos:pos + unshared]
    pos += unshared
    yield key, block[pos:pos + length]
    pos += length


def _table(path: str) -> Iterator[tuple[bytes, bytes]]:
  """Every ``(key, value)`` of an SSTable file, in key order."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise TFCheckpointError(f"Cannot read the checkpoint index {path!r}: {e}."
                            ) from None
  if len(data) < _FOOTER:
    raise TFCheckpointError(
        f"{path!r} holds {len(data)} bytes, fewer than a table's "
        f"{_FOOTER}-byte footer: it is truncated or not a TF checkpoint index.")
  footer = data[-_FOOTER:]
  magic = (int.from_bytes(footer[-8:-4], "little")
           | int.from_bytes(footer[-4:], "little") << 32)
  if magic != _MAGIC:
    raise TFCheckpointError(
        f"{path!r} does not end in TF's table magic number: it is truncated, "
        "damaged or not a TF checkpoint index (model.ckpt-N.index).")
  _, _, pos = _block_handle(footer, 0, path)  # metaindex: unused by bundles
  offset, size, _ = _block_handle(footer, pos, path)
  index = _read_block(data, offset, size, path)
  for _, handle in _block_entries(index, path):
    block_offset, block_size, _ = _block_handle(handle, 0, path)
    yield from _block_entries(_read_block(data, block_offset, block_size, path),
                              path)


# -- slice keys (tensorflow/core/util/saved_tensor_slice_util) -----------------

_HEADER_BITS = [(0, 0), (0x80, 0), (0xC0, 0), (0xE0, 0), (0xF0, 0), (0xF8, 0),
                (0xFC, 0), (0xFE, 0), (0xFF, 0), (0xFF, 0x80), (0xFF, 0xC0)]


def _num_increasing(value: int) -> bytes:
  body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
  return bytes([len(body)]) + body


def _signed_num_increasing(value: int) -> bytes:
  x = ~value if value < 0 else value
  if x < 64:
    return bytes([(0x80 ^ value) & 0xFF])
  length = (x.bit_length() + 7) // 7  # kBitsToLength
  sign = b"\xff\xff" if value < 0 else b"\x00\x00"
  buf = bytearray((sign + (value & (1 << 64) - 1).to_bytes(8, "big"))
                  [10 - length:])
  buf[0] ^= _HEADER_BITS[length][0]
  buf[1] ^= _HEADER_BITS[length][1]
  return bytes(buf)


def _slice_key(name: str, extents: list[tuple[int, int]]) -> bytes:
  """``checkpoint::EncodeTensorNameSlice``: where a slice's entry is kept."""
  escaped = name.encode().replace(b"\x00", b"\x00\xff").replace(b"\xff",
                                                                 b"\xff\x00")
  key = _num_increasing(0) + escaped + b"\x00\x01"
  key += _num_increasing(len(extents))
  for start, length in extents:
    key += _signed_num_increasing(start) + _signed_num_increasing(length)
  return key


# -- the checkpoint ---------------------------------------------------------------


def _state_paths(model_dir: str) -> list[str]:
  """The checkpoint prefixes the ``checkpoint`` state file names, newest
  last (``all_model_checkpoint_paths``, then ``model_checkpoint_path``)."""
  state = os.path.join(model_dir, "checkpoint")
  try:
    with open(state, encoding="utf-8") as f:
      text = f.read()
  except OSError:
    return []
  found = re.findall(r'^\s*(model_checkpoint_path|all_model_checkpoint_paths)'
                     r'\s*:\s*"((?:[^"\\]|\\.)*)"', text, re.M)
  latest = [p for k, p in found if k == "model_checkpoint_path"]
  paths = [p for k, p in found if k == "all_model_checkpoint_paths"]
  paths += [p for p in latest if p not in paths]
  out = []
  for p in paths:
    p = p.encode().decode("unicode_escape")
    full = p if os.path.isabs(p) else os.path.join(model_dir, p)
    if not os.path.exists(full + ".index"):
      # A model_dir moved since it was written keeps absolute paths.
      full = os.path.join(model_dir, os.path.basename(p))
    if os.path.exists(full + ".index"):
      out.append(full)
  if latest and (not out or os.path.basename(out[-1]) !=
                 os.path.basename(latest[-1])):
    raise TFCheckpointError(
        f"{state!r} names {latest[-1]!r} as the latest checkpoint, but its "
        f"{os.path.basename(latest[-1])}.index is not in {model_dir!r}. Copy "
        "the model_dir whole, or pass the checkpoint prefix "
        "(model_dir/model.ckpt-N) of one that is there.")
  return out


def latest_tf_checkpoint(model_dir: str | os.PathLike) -> str | None:
  """The newest TF checkpoint prefix of ``model_dir`` (as
  ``tf.train.latest_checkpoint``), or None if it has none.

  Example:
    >>> latest_tf_checkpoint('/tmp/no/such/dir') is None
    True
  """
  paths = _state_paths(os.fspath(model_dir))
  return paths[-1] if paths else None


def tf_checkpoint_prefixes(model_dir: str | os.PathLike) -> list[str]:
  """The checkpoint prefixes ``model_dir``'s state file lists, oldest first
  (those whose ``.index`` is there)."""
  return sorted(_state_paths(os.fspath(model_dir)), key=tf_checkpoint_step)


def tf_checkpoint_step(prefix: str) -> int:
  """The step of a prefix ``model.ckpt-N`` (N; 0 without a ``-N``).

  Example:
    >>> tf_checkpoint_step('/tmp/model/model.ckpt-120')
    120
  """
  found = re.search(r"-(\d+)$", prefix)
  return int(found.group(1)) if found else 0


def is_tf_checkpoint(path: str | os.PathLike) -> bool:
  """Whether ``path`` is a TF checkpoint prefix (``model.ckpt-N``, with its
  ``.index`` file) or a model_dir whose ``checkpoint`` state file names one."""
  path = os.fspath(path)
  if os.path.isfile(path + ".index"):
    return True
  return (os.path.isfile(os.path.join(path, "checkpoint"))
          and latest_tf_checkpoint(path) is not None)


class TFCheckpointReader:
  """The variables of one TF checkpoint, read without TensorFlow.

  Args:
    path: a checkpoint prefix (``model_dir/model.ckpt-N``) or a model_dir
      (its latest checkpoint).

  Raises:
    TFCheckpointError: no checkpoint there, or its index is damaged.
  """

  def __init__(self, path: str | os.PathLike):
    path = os.fspath(path)
    if not os.path.isfile(path + ".index"):
      latest = latest_tf_checkpoint(path) if os.path.isdir(path) else None
      if latest is None:
        raise TFCheckpointError(
            f"No TensorFlow checkpoint at {path!r}: pass a tf.estimator "
            "model_dir (with its 'checkpoint' file) or a prefix "
            "model_dir/model.ckpt-N (with model.ckpt-N.index beside it).")
      path = latest
    self.prefix = path
    index = path + ".index"
    self._entries: dict[str, _Entry] = {}
    self._slices: dict[bytes, _Entry] = {}
    self._shards = 1
    for key, value in _table(index):
      if key == b"":
        self._shards = self._header(value, index)
      elif key[:1] == b"\x00":
        self._slices[key] = _Entry(value, index)
      else:
        self._entries[key.decode("utf-8", "replace")] = _Entry(value, index)

  @staticmethod
  def _header(value: bytes, index: str) -> int:
    shards, endianness = 1, 0
    for number, v in _fields(value, index):
      if number == 1:
        shards = v
      elif number == 2:
        endianness = v
    if endianness != 0:
      raise TFCheckpointError(f"{index!r} was written on a big-endian "
                              "machine; estlab reads little-endian bundles.")
    return shards

  def variable_shapes(self) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of every tensor, sorted by name."""
    return {n: e.shape for n, e in sorted(self._entries.items())}

  def variable_dtypes(self) -> dict[str, str]:
    """``{name: numpy dtype name}`` (``'string'``, or TF's name for a dtype
    numpy has no match for) of every tensor, sorted by name."""
    return {n: _dtype_name(e.dtype) for n, e in sorted(self._entries.items())}

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def read(self, name: str) -> np.ndarray:
    """The value of tensor ``name`` (partitioned tensors joined); strings
    come back as an object array of ``bytes``.

    Raises:
      KeyError: no such tensor.
      TFCheckpointError: its data file is missing, truncated or damaged.
    """
    if name not in self._entries:
      raise KeyError(f"{name!r} is not in the TF checkpoint {self.prefix!r}; "
                     f"it holds {sorted(self._entries)!r}.")
    entry = self._entries[name]
    if not entry.slices:
      return self._tensor(entry, name)
    full = None
    for extents in entry.slices:
      part = self._slices.get(_slice_key(name, extents))
      if part is None:
        raise TFCheckpointError(
            f"{self.prefix}.index lists a slice {extents!r} of partitioned "
            f"variable {name!r} but holds no data entry for it: it is damaged.")
      value = self._tensor(part, f"{name} slice {extents!r}")
      if full is None:
        full = np.zeros(entry.shape, value.dtype) if value.dtype != object \
            else np.full(entry.shape, b"", object)
      index = tuple(slice(None) if length == -1 else
                    slice(start, start + length) for start, length in extents)
      full[index] = value
    return full

  def read_all(self) -> dict[str, np.ndarray]:
    """``{name: value}`` of every tensor, sorted by name."""
    return {name: self.read(name) for name in sorted(self._entries)}

  def _tensor(self, entry: _Entry, name: str) -> np.ndarray:
    dtype = _DTYPES.get(entry.dtype)
    if dtype is None:
      raise TFCheckpointError(
          f"Tensor {name!r} of {self.prefix!r} has dtype "
          f"{_dtype_name(entry.dtype)}, which estlab cannot load. Leave it "
          "out of vars_to_warm_start.")
    data_path = (f"{self.prefix}.data-{entry.shard:05d}-of-"
                 f"{self._shards:05d}")
    try:
      with open(data_path, "rb") as f:
        f.seek(entry.offset)
        raw = f.read(entry.size)
    except OSError as e:
      raise TFCheckpointError(f"Cannot read {name!r} from the checkpoint data "
                              f"file {data_path!r}: {e}.") from None
    if len(raw) != entry.size:
      raise TFCheckpointError(
          f"{data_path!r} ends before tensor {name!r} (bytes [{entry.offset}, "
          f"{entry.offset + entry.size})): the data file is truncated.")
    count = int(np.prod(entry.shape, dtype=np.int64))
    if dtype == "string":
      return self._strings(raw, count, entry, name, data_path)
    if entry.size <= _CRC_CHECK_LIMIT and _masked(crc32c(raw)) != entry.crc:
      raise TFCheckpointError(f"Tensor {name!r} in {data_path!r} fails its "
                              "checksum: the data file is damaged.")
    if dtype == "bfloat16":
      import ml_dtypes  # pylint: disable=g-import-not-at-top
      np_dtype = np.dtype(ml_dtypes.bfloat16)
    else:
      np_dtype = np.dtype(dtype)
    if count * np_dtype.itemsize != entry.size:
      raise TFCheckpointError(
          f"Tensor {name!r} has shape {entry.shape!r} and dtype "
          f"{np_dtype.name} ({count * np_dtype.itemsize} bytes) but "
          f"{entry.size} bytes in {data_path!r}: the index is damaged.")
    return np.frombuffer(raw, np_dtype).reshape(entry.shape).astype(
        np_dtype.newbyteorder("="))

  @staticmethod
  def _strings(raw: bytes, count: int, entry: _Entry, name: str,
               data_path: str) -> np.ndarray:
    lengths, pos = [], 0
    for _ in range(count):
      length, pos = _varint(raw, pos, data_path)
      lengths.append(length)
    pos += 4  # the masked checksum of the lengths
    if pos + sum(lengths) != len(raw):
      raise TFCheckpointError(f"String tensor {name!r} in {data_path!r} does "
                              "not add up to its size: the file is damaged.")
    crc = 0
    for length in lengths:
      crc = crc32c(struct.pack("<I" if length <= 0xFFFFFFFF else "<Q",
                               length), crc)
    crc = crc32c(raw[pos - 4:], crc)
    if _masked(crc) != entry.crc:
      raise TFCheckpointError(f"String tensor {name!r} in {data_path!r} fails "
                              "its checksum: the data file is damaged.")
    out = np.empty(count, object)
    for i, length in enumerate(lengths):
      out[i] = raw[pos:pos + length]
      pos += length
    return out.reshape(entry.shape)


def _dtype_name(code: int) -> str:
  dtype = _DTYPES.get(code)
  if dtype is None:
    return _DTYPE_NAMES.get(code, f"DataType {code}")
  return dtype if dtype in ("string", "bfloat16") else np.dtype(dtype).name
