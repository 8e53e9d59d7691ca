"""Catalog: where each key's entry is among a profile's segments, and reading it there."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from imgforge.cache import entry, segment
from imgforge.cache.entryfile import TOUCH_SECONDS, mine

# A location packs the segment's number, the entry's offset and its size in one int.
_SIZE_BITS, _OFFSET_BITS = 24, 40
_SIZE_MASK, _OFFSET_MASK = (1 << _SIZE_BITS) - 1, (1 << _OFFSET_BITS) - 1


@dataclass
class _Segment:
    data: str  # the segment file
    index: str  # its index file ("" for the segment this build writes)
    used: float  # the index's mtime: the segment's last use
    fd: int | None = None
    private: bool = False
    opened: bool = False
    hit: bool = False


class Catalog:
    """The entries of the segments in ``directory``, by key; ``private(directory)`` says
    whether only this user can have written what is in it. Safe from many threads."""

    def __init__(self, directory: str, private: Callable[[str], bool], largest: int) -> None:
        self.directory, self._private, self._largest = directory, private, largest
        self._where: dict[bytes, int] = {}
        self._segments: list[_Segment] = []
        self._opening = threading.Lock()
        for name in _published(directory):
            self._load(name)

    def _load(self, name: str) -> None:
        base = f"{self.directory}{os.sep}{name}"
        found = segment.read_index(base + segment.INDEX_SUFFIX)
        if found is None:
            return
        raw, index_stat = found
        number = len(self._segments)
        self._segments.append(
            _Segment(
                base + segment.SEGMENT_SUFFIX, base + segment.INDEX_SUFFIX, index_stat.st_mtime
            )
        )
        where, largest = self._where, self._largest
        for key, offset, size in segment.records(raw):
            if entry.HEADER_BYTES <= size <= largest and offset <= _OFFSET_MASK:
                where[key] = _location(number, offset, size)

    def adopt(self, fd: int, path: str) -> int:
        """Serve the segment this build writes, open at ``fd``; its number."""
        with self._opening:
            self._segments.append(_Segment(path, "", 0.0, fd, True, True))
            return len(self._segments) - 1

    def add(self, number: int, key: bytes, offset: int, size: int) -> None:
        self._where[key] = _location(number, offset, size)

    def read(self, key: bytes) -> tuple[bytes, bool, bool] | None:
        """(data, compressed, private) of the entry for ``key``, or None when no segment
        names it. Raises Damaged when the one that does holds no whole, intact entry for
        it there (it is forgotten: later reads miss)."""
        location = self._where.get(key)
        if location is None:
            return None
        number, size = location >> (_OFFSET_BITS + _SIZE_BITS), location & _SIZE_MASK
        offset = (location >> _SIZE_BITS) & _OFFSET_MASK
        held = self._segments[number]
        fd = held.fd if held.opened else self._open(held)
        if fd is None:
            return None
        header, data = bytearray(entry.HEADER_BYTES), bytearray(size - entry.HEADER_BYTES)
        try:
            complete = os.preadv(fd, [header, data], offset) == size
        except OSError:
            complete = False
        compressed = entry.check(key, header, data) if complete else None
        if compressed is None:
            self._where.pop(key, None)
            raise Damaged(held.data)
        held.hit = True
        # A bytearray serves as bytes everywhere the writer takes a block's data.
        return data, compressed, held.private  # type: ignore[return-value]

    def _open(self, held: _Segment) -> int | None:
        """The segment's descriptor, opened once: only a regular file (a symbolic link,
        FIFO or device planted in the cache is never followed or waited on)."""
        with self._opening:
            if not held.opened:
                held.fd, held.private = self._opened(held.data)
                held.opened = True  # after fd: readers that see it opened read fd unlocked
            return held.fd

    def _opened(self, path: str) -> tuple[int | None, bool]:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except OSError:
            return None, False
        try:
            found = os.fstat(fd)
        except OSError:
            found = None
        if found is None or not stat.S_ISREG(found.st_mode):
            os.close(fd)
            return None, False
        return fd, mine(found) and self._private(self.directory)

    def close(self) -> None:
        """Mark the segments read from as used now (unless they were within the last
        TOUCH_SECONDS) and close them; the segment this build wrote is its writer's."""
        for held in self._segments:
            if held.index and held.hit and held.used < time.time() - TOUCH_SECONDS:
                # Another user's segment in a shared cache may refuse: it just ages.
                with contextlib.suppress(OSError):
                    os.utime(held.index, follow_symlinks=False)
            if held.index and held.fd is not None:
                os.close(held.fd)
            held.fd = None


class Damaged(Exception):
    """An index named an entry that its segment does not hold whole and intact."""


def _location(number: int, offset: int, size: int) -> int:
    return (((number << _OFFSET_BITS) | offset) << _SIZE_BITS) | size


def _published(directory: str) -> list[str]:
    """The NAMEs of the segments with an index in ``directory``, oldest first."""
    try:
        with os.scandir(directory) as items:
            names = [
                item.name[: -len(segment.INDEX_SUFFIX)]
                for item in items
                if segment.is_name(item.name, segment.INDEX_SUFFIX)
            ]
    except OSError:
        return []
    return sorted(names)
