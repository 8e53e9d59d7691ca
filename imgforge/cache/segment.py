"""Segments: the files that hold the cache's entries, many to a file.

A build appends each entry it stores (entry.py's format: a header that names its key and
checksums it, then the data) to one segment of its own, ``.NAME.seg`` while it writes,
and keeps where each entry starts. When the build closes the cache, the segment is renamed
``NAME.seg`` and its index ``NAME.idx`` is written beside it (atomically): a segment is
read only through its index, so no build reads one another build is still writing.

An index is INDEX_MAGIC (4 bytes), a version (1) and three zero bytes, then one record per
entry: the 32-byte key, the entry's offset in the segment (8 bytes) and its size (4 bytes),
little-endian. An index only says where to look: what is read there must still be a whole,
intact entry for the key (entry.check), so a damaged or forged index costs misses, never a
wrong block.

NAME is the time the segment was made (16 hex digits of microseconds) and 16 random hex
digits: names sort in the order segments were made, so an entry stored again (after its
copy was found damaged) is read from the newer segment.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from imgforge.cache import entry
from imgforge.cache.entryfile import FILE_MODE, make_private_dir, open_regular, write_atomically
from imgforge.cache.layout import HEX_DIGITS, TEMPORARY_PREFIX

SEGMENT_SUFFIX = ".seg"
INDEX_SUFFIX = ".idx"
INDEX_MAGIC = b"IFSX"
INDEX_VERSION = 1
_INDEX_HEADER = struct.Struct("<4sBxxx")
RECORD = struct.Struct("<32sQI")
NAME_LENGTH = 32
# A larger index is not one the cache wrote (a million and a half entries).
INDEX_MAX = 64 << 20


def is_name(name: str, suffix: str) -> bool:
    """Whether ``name`` is a published segment's file with ``suffix``."""
    stem = name[: -len(suffix)]
    return name.endswith(suffix) and len(stem) == NAME_LENGTH and HEX_DIGITS.issuperset(stem)


def new_name() -> str:
    """A segment's NAME: its making time in microseconds, then random digits."""
    return f"{time.time_ns() // 1000:016x}{secrets.token_hex(8)}"


class SegmentWriter:
    """Appends entries to a new segment in ``directory`` (from any thread) and publishes
    it with its index. Raises OSError when the segment can't be made or written."""

    def __init__(self, directory: Path) -> None:
        self.name = new_name()
        self.directory = directory
        self.temporary = directory / f"{TEMPORARY_PREFIX}{self.name}{SEGMENT_SUFFIX}"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self.fd = os.open(self.temporary, flags, FILE_MODE)
        except FileNotFoundError:
            make_private_dir(directory)
            self.fd = os.open(self.temporary, flags, FILE_MODE)
        os.fchmod(self.fd, FILE_MODE)  # whatever the umask: see BlockCache.lookup
        self.size = 0
        self.records = bytearray(_INDEX_HEADER.pack(INDEX_MAGIC, INDEX_VERSION))
        self._lock = threading.Lock()

    def append(self, key: bytes, data: bytes, *, compressed: bool) -> tuple[int, int]:
        """Write one entry; its (offset, size) in the segment."""
        header = entry.header(key, data, compressed=compressed)
        size = len(header) + len(data)
        with self._lock:
            offset = self.size
            if os.pwritev(self.fd, [header, data], offset) != size:
                raise OSError(f"{self.temporary}: short write (is the disk full?)")
            self.size += size
            self.records += RECORD.pack(key, offset, size)
        return offset, size

    def publish(self) -> None:
        """Rename the segment into place, then write its index; with nothing written,
        remove it. Raises OSError when it can't be published, having removed it."""
        published = self.directory / f"{self.name}{SEGMENT_SUFFIX}"
        try:
            if self.size == 0:
                self.temporary.unlink()
                return
            os.rename(self.temporary, published)
            write_atomically(self.directory / f"{self.name}{INDEX_SUFFIX}", self.records)
        except OSError:
            for path in (self.temporary, published):
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        finally:
            os.close(self.fd)


def read_index(path: str) -> tuple[bytes, os.stat_result] | None:
    """An index file's records (whole ones only) and its stat; None for anything but a
    regular file of at most INDEX_MAX bytes that starts as an index does (never a symbolic
    link followed or a FIFO waited on)."""
    opened = open_regular(path)
    if opened is None:
        return None
    fd, found = opened
    try:
        if found.st_size > INDEX_MAX:
            return None
        raw = os.read(fd, INDEX_MAX)
    except OSError:
        return None
    finally:
        os.close(fd)
    if raw[: _INDEX_HEADER.size] != _INDEX_HEADER.pack(INDEX_MAGIC, INDEX_VERSION):
        return None
    whole = (len(raw) - _INDEX_HEADER.size) // RECORD.size * RECORD.size
    return raw[_INDEX_HEADER.size : _INDEX_HEADER.size + whole], found


def records(raw: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(key, offset, size) of each record in what read_index returned."""
    return RECORD.iter_unpack(raw)


def count(index_size: int) -> int:
    """How many entries an index file of ``index_size`` bytes names."""
    return max(0, index_size - _INDEX_HEADER.size) // RECORD.size
