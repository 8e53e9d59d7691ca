"""The inode and directory tables: every inode in post-order (a directory after its
entries, so its listing can name them), numbered before anything is written."""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator

from imgforge.errors import BuildError
from imgforge.squashfs import format as f
from imgforge.squashfs.meta import MetaWriter
from imgforge.squashfs.tree import Node

# Directory entries name the inode's basic type, whatever its stored form.
Index = Callable[[int], int]


def post_order(root: Node) -> list[tuple[Node, Node | None]]:
    """Each inode once, after everything under it, with the directory that holds it;
    entries by name. Numbers them 1, 2, … in that order."""
    order: list[tuple[Node, Node | None]] = []
    numbered: set[int] = set()
    stack: list[tuple[Node, Node | None, bool]] = [(root, None, False)]
    while stack:
        node, parent, expanded = stack.pop()
        if node.children is not None and not expanded:
            stack.append((node, parent, True))
            for name in sorted(node.children, reverse=True):
                stack.append((node.children[name], node, False))
            continue
        if id(node) not in numbered:
            numbered.add(id(node))
            order.append((node, parent))
            node.number = len(order)
    return order


def basic_type(node: Node) -> int:
    return f.TYPES[stat.S_IFMT(node.mode)]


class InodeWriter:
    """Writes inodes into ``inodes`` and directory listings into ``directories``."""

    def __init__(
        self, inodes: MetaWriter, directories: MetaWriter, uid_index: Index, xattr_index: Index
    ) -> None:
        self.inodes, self.directories = inodes, directories
        self.uid_index, self.xattr_index = uid_index, xattr_index

    def write_all(self, order: list[tuple[Node, Node | None]]) -> None:
        count = len(order)
        for node, parent in order:
            body = (
                self._directory(node, parent, count)
                if node.children is not None
                else (self._other(node))
            )
            block, offset = self.inodes.position()
            node.ref = f.reference(block, offset)
            self.inodes.append(body)

    def _header(self, node: Node, kind: int) -> bytes:
        return f.INODE_HEADER.pack(
            kind, node.mode & 0o7777, self.uid_index(node.uid), self.uid_index(node.gid),
            node.mtime, node.number,
        )  # fmt: skip

    def _directory(self, node: Node, parent: Node | None, count: int) -> bytes:
        assert node.children is not None
        block, offset = self.directories.position()
        start = self.directories.written()
        runs = list(listing(node.children, offset))
        for chunk, _ in runs:
            self.directories.append(chunk)
        size = sum(len(chunk) for chunk, _ in runs)
        index = b""
        if len(node.children) >= f.DIR_INDEX_THRESHOLD:
            at = 0
            for chunk, first in runs:
                where = self.directories.block_at(start + at)
                index += f.DIR_INDEX.pack(at, where, len(first) - 1) + first
                at += len(chunk)
        subdirectories = sum(1 for child in node.children.values() if child.children is not None)
        nlink = 2 + subdirectories
        up = parent.number if parent is not None else count + 1
        xattr = self.xattr_index(id(node))
        if xattr == f.NO_INDEX and size + 3 <= 0xFFFF and not index:
            return self._header(node, f.DIR) + f.DIR_INODE.pack(block, nlink, size + 3, offset, up)
        body = f.EXT_DIR_INODE.pack(
            nlink, size + 3, block, up, len(runs) if index else 0, offset, xattr
        )
        return self._header(node, f.DIR + f.EXTENDED) + body + index

    def _other(self, node: Node) -> bytes:
        kind = basic_type(node)
        xattr = self.xattr_index(id(node))
        extended = xattr != f.NO_INDEX
        if kind == f.FILE:
            blocks = node.blocks.tobytes()
            small = node.start <= 0xFFFFFFFF and node.size <= 0xFFFFFFFF and node.nlink == 1
            if small and not extended:
                body = f.FILE_INODE.pack(node.start, node.fragment, node.offset, node.size)
                return self._header(node, kind) + body + blocks
            body = f.EXT_FILE_INODE.pack(
                node.start, node.size, node.sparse, node.nlink, node.fragment, node.offset, xattr
            )
            return self._header(node, kind + f.EXTENDED) + body + blocks
        if kind == f.SYMLINK:
            body = f.LINK_INODE.pack(node.nlink, len(node.target)) + node.target
        elif kind in (f.BLKDEV, f.CHRDEV):
            body = f.DEV_INODE.pack(node.nlink, node.device)
        else:
            body = f.IPC_INODE.pack(node.nlink)
        if extended:
            return self._header(node, kind + f.EXTENDED) + body + f.XATTR_INDEX.pack(xattr)
        return self._header(node, kind) + body


def listing(children: dict[bytes, Node], offset: int) -> Iterator[tuple[bytes, bytes]]:
    """A directory's entries by name, in runs behind a header: a run shares the inodes'
    metadata block, spans at most 256 entries and ±32767 inode numbers, and does not
    cross a metadata block (squashfs-tools-ng lib/sqfs/src/dir_writer.c). ``offset``: where
    in its metadata block the listing starts. Yields each run and its first name."""
    entries = sorted(children.items())
    written = 0
    i = 0
    while i < len(entries):
        first = entries[i][1]
        used = (offset + written + f.DIR_HEADER.size) % f.META_SIZE
        j = i
        while j < len(entries) and j - i < f.MAX_DIR_ENTRIES:
            name, child = entries[j]
            if len(name) > 256:
                raise BuildError(f"file name {name!r} is longer than squashfs allows (256 bytes)")
            if child.ref >> 16 != first.ref >> 16 or abs(child.number - first.number) > 32767:
                break
            used += f.DIR_ENTRY.size + len(name)
            if j > i and used > f.META_SIZE:
                break
            j += 1
        run = [f.DIR_HEADER.pack(j - i - 1, first.ref >> 16, first.number)]
        for name, child in entries[i:j]:
            delta = child.number - first.number
            kind = basic_type(child)
            run.append(f.DIR_ENTRY.pack(child.ref & 0xFFFF, delta, kind, len(name) - 1))
            run.append(name)
        chunk = b"".join(run)
        written += len(chunk)
        yield chunk, entries[i][0]
        i = j
