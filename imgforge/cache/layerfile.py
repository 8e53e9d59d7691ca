"""The layer index's file format, and its records as kept in memory: one bytes object per
file (not a tree of Python objects), so that an image of hundreds of thousands of files
costs tens of megabytes, parsed without a JSON tree in between.

A payload is ``MAGIC``, the layer directory's path (length-prefixed), then per file: its
name (length-prefixed, as the layer walk names it) and its record. A record is the stamp
(inode, size, mtime ns, ctime ns), the tail digest's length (0 or 32) and the digest, the
number of full blocks and their keys. Integers are little-endian. The payload goes in the
checksummed entry format of entry.py.
"""

from __future__ import annotations

import os
import struct

from imgforge.cache.entry import KEY_BYTES

MAGIC = b"IFLI\x01"
_LENGTH = struct.Struct("<I")
_HEAD = struct.Struct("<QQqqB")  # the stamp, then the tail digest's length
_COUNT = struct.Struct("<I")
Stamp = tuple[int, int, int, int]


def record(stamp: Stamp, keys: list[bytes], tail: bytes | None) -> bytes:
    """One file's record."""
    digest = tail or b""
    return b"".join((_HEAD.pack(*stamp, len(digest)), digest, _COUNT.pack(len(keys)), *keys))


def unpack(found: bytes) -> tuple[Stamp, list[bytes], bytes | None]:
    """The stamp, block keys and tail digest of a record :func:`decode` accepted."""
    ino, size, mtime, ctime, length = _HEAD.unpack_from(found)
    at = _HEAD.size
    tail = found[at : at + length] or None
    at += length + _COUNT.size
    keys = [found[i : i + KEY_BYTES] for i in range(at, len(found), KEY_BYTES)]
    return (ino, size, mtime, ctime), keys, tail


def encode(layer: str, files: dict[str, bytes]) -> bytes:
    """The payload for ``layer``'s records by name."""
    parts = [MAGIC, _named(layer)]
    for name, found in files.items():
        parts += (_named(name), found)
    return b"".join(parts)


def decode(layer: str, payload: bytes) -> dict[str, bytes]:
    """The records by name; empty when the payload is not one for ``layer`` or is not
    well formed anywhere (a private, checksummed index is ours: the shape only guards
    against a format this code doesn't know)."""
    view = memoryview(payload)
    files: dict[str, bytes] = {}
    try:
        if bytes(view[: len(MAGIC)]) != MAGIC:
            return {}
        name, at = _name(view, len(MAGIC))
        if name != layer:
            return {}
        while at < len(view):
            name, at = _name(view, at)
            length = _HEAD.unpack_from(view, at)[4]
            if length not in (0, KEY_BYTES):
                return {}
            count = _COUNT.unpack_from(view, at + _HEAD.size + length)[0]
            end = at + _HEAD.size + length + _COUNT.size + count * KEY_BYTES
            if end > len(view):
                return {}
            files[name] = bytes(view[at:end])
            at = end
    except (struct.error, UnicodeDecodeError):
        return {}
    return files


def _named(text: str) -> bytes:
    raw = os.fsencode(text)
    return _LENGTH.pack(len(raw)) + raw


def _name(view: memoryview, at: int) -> tuple[str, int]:
    (length,) = _LENGTH.unpack_from(view, at)
    start = at + _LENGTH.size
    if start + length > len(view):
        raise struct.error("a name runs past the end")
    return os.fsdecode(bytes(view[start : start + length])), start + length
