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
from imgforge.cache.entryfile import TOUCH_SECONDS, mine, open_regular

# A location packs the segment's number, the entry's offset and its size in one int.
_SIZE_BITS, _OFFSET_BITS = 24, 40
_SIZE_MASK, _OFFSET_MASK = (1 << _SIZE_BITS) - 1, (1 << _OFFSET_BITS) - 1
# Entries known at most (about 160 bytes of memory each; 64 GB of 64 KB blocks): older
# segments past it are not read. Segments kept open at most; past it, each read opens its
# segment and closes it again.
MAX_ENTRIES = 1 << 20
MAX_OPEN = 64


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
        self._kept = 0
        for name in reversed(_published(directory)):  # the newest first: they win
            if len(self._where) >= MAX_ENTRIES:
                break
            self._load(f"{directory}{os.sep}{name}")

    def _load(self, base: str) -> None:
        """The entries of the segment ``base``.seg that its index names within it."""
        found = segment.read_index(base + segment.INDEX_SUFFIX)
        try:
            data = os.lstat(base + segment.SEGMENT_SUFFIX)
        except OSError:
            return
        if found is None or not stat.S_ISREG(data.st_mode):
            return
        raw, index_stat = found
        number = len(self._segments)
        index, used = base + segment.INDEX_SUFFIX, index_stat.st_mtime
        self._segments.append(_Segment(base + segment.SEGMENT_SUFFIX, index, used))
        where, largest, end = self._where, self._largest, min(data.st_size, _OFFSET_MASK)
        for key, offset, size in segment.records(raw):
            if entry.HEADER_BYTES <= size <= largest and offset + size <= end:
                where.setdefault(key, _location(number, offset, size))

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
        fd, private, passing = (held.fd, held.private, False) if held.opened else self._use(held)
        if fd is None:
            return None
        header, data = bytearray(entry.HEADER_BYTES), bytearray(size - entry.HEADER_BYTES)
        try:
            complete = os.preadv(fd, [header, data], offset) == size
        except OSError:
            complete = False
        finally:
            if passing:
                os.close(fd)
        compressed = entry.check(key, header, data) if complete else None
        if compressed is None:
            self._where.pop(key, None)
            raise Damaged(held.data)
        held.hit = True
        # A bytearray serves as bytes everywhere the writer takes a block's data.
        return data, compressed, private  # type: ignore[return-value]

    def _use(self, held: _Segment) -> tuple[int | None, bool, bool]:
        """A descriptor of the segment, whether it is private, and whether it is this
        read's alone (to close after it): opened once and kept, up to MAX_OPEN segments.
        Only a regular file is opened (a symbolic link, FIFO or device planted in the
        cache is never followed or waited on)."""
        with self._opening:
            if not held.opened and self._kept < MAX_OPEN:
                held.fd, held.private = self._opened(held.data)
                held.opened = True  # after fd: readers that see it opened read fd unlocked
                self._kept += held.fd is not None
            if held.opened:
                return held.fd, held.private, False
        return (*self._opened(held.data), True)

    def _opened(self, path: str) -> tuple[int | None, bool]:
        opened = open_regular(path)
        if opened is None:
            return None, False
        fd, found = opened
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
        self._kept = 0


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
