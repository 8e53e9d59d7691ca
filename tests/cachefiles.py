"""Where the cache keeps each entry, read from its segments' indexes the way the cache
lays them out (imgforge/cache/segment.py), for tests that damage or inspect entries."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import NamedTuple

INDEX_HEADER = 8
RECORD = struct.Struct("<32sQI")


class Located(NamedTuple):
    """One entry: the segment file, where it starts, its size (header included)."""

    segment: Path
    offset: int
    size: int
    key: bytes

    def read(self) -> bytes:
        with self.segment.open("rb") as handle:
            handle.seek(self.offset)
            return handle.read(self.size)

    def write(self, raw: bytes) -> None:
        """Put ``raw`` where the entry is (any length: the index still says the old one)."""
        with self.segment.open("r+b") as handle:
            handle.seek(self.offset)
            handle.write(raw)


def indexes(root: Path) -> list[Path]:
    """Every segment's index under ``root``, oldest first."""
    return sorted((root / "blocks").glob("*/*.idx"), key=lambda p: p.name)


def entries(root: Path) -> list[Located]:
    """Every entry the published segments under ``root`` name, segment by segment."""
    found = []
    for index in indexes(root):
        raw = index.read_bytes()[INDEX_HEADER:]
        segment = index.with_suffix(".seg")
        for key, offset, size in RECORD.iter_unpack(raw[: len(raw) // RECORD.size * RECORD.size]):
            found.append(Located(segment, offset, size, key))
    return found


def located(root: Path, key: bytes) -> Located:
    """The entry for ``key`` (the newest segment's, as the cache reads it)."""
    (last,) = [e for e in entries(root) if e.key == key][-1:]
    return last
