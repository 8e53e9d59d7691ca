"""The id table (owners and groups by index) and the xattr table (each distinct set of
extended attributes once, by index)."""

from __future__ import annotations

import struct
from collections.abc import Callable

from imgforge.errors import BuildError
from imgforge.squashfs import format as f
from imgforge.squashfs.meta import POINTER, MetaWriter
from imgforge.squashfs.tree import Node

MAX_IDS = 0xFFFF


class IdTable:
    """Owner and group ids, each given an index the first time it is asked for."""

    def __init__(self) -> None:
        self.ids: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, value: int) -> int:
        found = self.ids.get(value)
        if found is None:
            if len(self.ids) >= MAX_IDS:
                raise BuildError(f"more than {MAX_IDS} distinct owner and group ids")
            found = self.ids[value] = len(self.ids)
        return found

    def encode(self) -> bytes:
        return b"".join(struct.pack("<I", value) for value in self.ids)


class XattrTable:
    """Each distinct set of extended attributes, indexed in the order first seen."""

    def __init__(self) -> None:
        self.sets: dict[tuple[tuple[str, bytes], ...], int] = {}
        self.nodes: dict[int, int] = {}

    def add(self, node: Node) -> None:
        if node.xattrs:
            self.nodes[id(node)] = self.sets.setdefault(node.xattrs, len(self.sets))

    def index(self, node_id: int) -> int:
        return self.nodes.get(node_id, f.NO_INDEX)

    def encode(self, compress: Callable[[bytes], bytes], at: int) -> tuple[bytes, int]:
        """The key-value blocks, the id blocks, then the table header and the id blocks'
        offsets, which is where the superblock points. Empty when no inode has any."""
        if not self.sets:
            return b"", at
        pairs, ids = MetaWriter(compress), MetaWriter(compress)
        for attributes in self.sets:
            block, offset = pairs.position()
            size = 0
            for name, value in attributes:
                prefix = next(p for p in f.XATTR_PREFIXES if name.startswith(p))
                key = name[len(prefix) :].encode("utf-8", "surrogateescape")
                entry = f.XATTR_KEY.pack(f.XATTR_PREFIXES[prefix], len(key)) + key
                entry += f.XATTR_VALUE.pack(len(value)) + value
                pairs.append(entry)
                size += len(entry)
            ids.append(f.XATTR_ID.pack(f.reference(block, offset), len(attributes), size))
        pair_bytes = pairs.flush()
        id_bytes = ids.flush()
        id_start = at + len(pair_bytes)
        header_at = id_start + len(id_bytes)
        header = f.XATTR_TABLE.pack(at, len(self.sets), 0)
        index = b"".join(POINTER.pack(id_start + start) for start in ids.starts)
        return pair_bytes + id_bytes + header + index, header_at
