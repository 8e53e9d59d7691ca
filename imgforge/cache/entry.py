"""One cache entry's bytes: a header that names its key and checksums it, then the data.

An entry is ``MAGIC`` (4 bytes), a format version (1), flags (1; bit 0: the data is
compressed), two zero bytes, the 32-byte key, the 32-byte SHA-256 of everything else in
the entry (header fields, key and data), then the stored data. Any byte flipped, an entry cut
short or a key that isn't the one asked for fails :func:`decode`.
"""

from __future__ import annotations

import hashlib
import struct

MAGIC = b"IFBC"
VERSION = 1
KEY_BYTES = 32
DIGEST_BYTES = 32
COMPRESSED = 0x01
_FIELDS = struct.Struct("<4sBBxx")
HEADER_BYTES = _FIELDS.size + KEY_BYTES + DIGEST_BYTES
Buffer = bytes | bytearray | memoryview


def _digest(fields: bytes, key: bytes, data: Buffer) -> bytes:
    hasher = hashlib.sha256(fields)
    hasher.update(key)
    hasher.update(data)
    return hasher.digest()


def header(key: bytes, data: Buffer, *, compressed: bool) -> bytes:
    """The header (HEADER_BYTES) that comes before ``data`` stored under ``key``."""
    fields = _FIELDS.pack(MAGIC, VERSION, COMPRESSED if compressed else 0)
    return b"".join((fields, key, _digest(fields, key, data)))


def encode(key: bytes, data: bytes, *, compressed: bool) -> bytes:
    """The whole entry for ``data`` stored under ``key``."""
    return header(key, data, compressed=compressed) + data


def decode(key: bytes, raw: bytes) -> tuple[bytes, bool] | None:
    """(data, compressed) from an entry file's bytes, or None when they are not a whole,
    intact entry for ``key``."""
    if len(raw) < HEADER_BYTES:
        return None
    compressed = check(key, raw[:HEADER_BYTES], memoryview(raw)[HEADER_BYTES:])
    return None if compressed is None else (raw[HEADER_BYTES:], compressed)


def check(key: bytes, header: Buffer, data: Buffer) -> bool | None:
    """Whether the entry whose file holds ``header`` (HEADER_BYTES) then ``data`` is
    compressed; None when it is not a whole, intact entry for ``key``."""
    fields = bytes(header[: _FIELDS.size])
    magic, version, flags = _FIELDS.unpack(fields)
    if magic != MAGIC or version != VERSION or flags & ~COMPRESSED:
        return None
    stored_key = header[_FIELDS.size : _FIELDS.size + KEY_BYTES]
    digest = header[_FIELDS.size + KEY_BYTES : HEADER_BYTES]
    if stored_key != key or _digest(fields, key, data) != digest:
        return None
    return bool(flags & COMPRESSED)
