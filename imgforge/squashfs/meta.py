"""Metadata blocks: the 8 KiB units squashfs keeps its inode, directory and lookup tables in,
each stored compressed when that is smaller, behind a two-byte length word."""

from __future__ import annotations

import struct
from collections.abc import Callable

from imgforge.squashfs.format import META_SIZE, META_UNCOMPRESSED

HEADER = struct.Struct("<H")
POINTER = struct.Struct("<Q")


class MetaWriter:
    """Appends bytes into metadata blocks held in memory; :meth:`position` gives the
    reference of the next byte (the block's start in this table, the offset in it)."""

    def __init__(self, compress: Callable[[bytes], bytes]) -> None:
        self.compress = compress
        self.blocks = bytearray()
        self.current = bytearray()
        self.starts: list[int] = []

    def position(self) -> tuple[int, int]:
        return len(self.blocks), len(self.current)

    def written(self) -> int:
        """How many bytes were appended (uncompressed)."""
        return META_SIZE * len(self.starts) + len(self.current)

    def block_at(self, written: int) -> int:
        """Where the metadata block holding uncompressed byte ``written`` starts in the
        table (the block being filled starts where the sealed ones end)."""
        index = written // META_SIZE
        return self.starts[index] if index < len(self.starts) else len(self.blocks)

    def append(self, data: bytes) -> None:
        self.current += data
        while len(self.current) >= META_SIZE:
            self._seal(bytes(self.current[:META_SIZE]))
            del self.current[:META_SIZE]

    def flush(self) -> bytes:
        """Seal the last block; the table's bytes."""
        if self.current:
            self._seal(bytes(self.current))
            self.current.clear()
        return bytes(self.blocks)

    def _seal(self, raw: bytes) -> None:
        self.starts.append(len(self.blocks))
        packed = self.compress(raw)
        if len(packed) < len(raw):
            self.blocks += HEADER.pack(len(packed)) + packed
        else:
            self.blocks += HEADER.pack(len(raw) | META_UNCOMPRESSED) + raw


def lookup_table(data: bytes, compress: Callable[[bytes], bytes], at: int) -> tuple[bytes, int]:
    """A lookup table (fragments, ids) placed at offset ``at``: its metadata blocks, then
    the list of their offsets. Returns the bytes and where the list starts, which is what
    the superblock points to."""
    meta = MetaWriter(compress)
    meta.append(data)
    blocks = meta.flush()
    index = b"".join(POINTER.pack(at + start) for start in meta.starts)
    return blocks + index, at + len(blocks)
