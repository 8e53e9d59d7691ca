"""Pack a tar stream into one standard squashfs image, written in place in a file.

:class:`SquashfsWriter` takes tar members as :meth:`tarfile.TarFile.addfile` does, so the
code that filters an image's export stream can write to it or to a tar alike. File data
is packed as it arrives (:mod:`imgforge.squashfs.blocks`); the tables follow at
:meth:`SquashfsWriter.finish`. Layout, in the order the kernel checks it: superblock,
compressor options, data and fragment blocks, inode table, directory table, fragment
table, id table, xattr table; the whole padded to 4 KiB.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from typing import IO

from imgforge.errors import BuildError
from imgforge.squashfs import format as f
from imgforge.squashfs.blocks import DataWriter
from imgforge.squashfs.codec import Codec
from imgforge.squashfs.inodes import InodeWriter, post_order
from imgforge.squashfs.members import OnDisk
from imgforge.squashfs.meta import HEADER, MetaWriter, lookup_table
from imgforge.squashfs.stored import BlockStore, FileIndex, Reuse
from imgforge.squashfs.tables import IdTable, XattrTable
from imgforge.squashfs.tree import Tree, node_of


@dataclass(frozen=True)
class Packed:
    """What :meth:`SquashfsWriter.finish` wrote: the image's size (padded), its inode
    count, and what the cache saved."""

    size: int
    inodes: int
    reuse: Reuse


class SquashfsWriter:
    """Writes a squashfs image at ``origin`` of ``out`` (a seekable file whose end the
    image is: the file is cut after it)."""

    def __init__(
        self, out: IO[bytes], *, codec: Codec, mtime: int, origin: int = 0,
        store: BlockStore | None = None, jobs: int = 1, index: FileIndex | None = None,
    ) -> None:  # fmt: skip
        self.out, self.origin, self.codec, self.mtime = out, origin, codec, mtime
        self.options = codec.options()
        start = f.SUPERBLOCK.size + (HEADER.size + len(self.options) if self.options else 0)
        self.tree = Tree(mtime)
        self.data = DataWriter(out, origin, start, codec, store, jobs, index)

    def addfile(self, member: tarfile.TarInfo, fileobj: IO[bytes] | None = None) -> None:
        """Add one tar member (its data from ``fileobj``, as tarfile's own addfile)."""
        if member.islnk():
            self.tree.link(member)
            return
        for what, value in (("owner", member.uid), ("group", member.gid)):
            if not 0 <= value <= 0xFFFFFFFF:
                raise BuildError(f"tar entry {member.name!r}: {what} id {value} is out of range")
        node = node_of(member)
        self.tree.place(member, node)
        if member.isreg() and member.size:
            if fileobj is None:
                raise BuildError(f"tar entry {member.name!r} has {member.size} bytes but no data")
            node.size = member.size
            try:
                on_disk = fileobj if isinstance(fileobj, OnDisk) else None
                self.data.add_file(node, fileobj.read, on_disk)
            except EOFError as error:
                raise BuildError(f"tar entry {member.name!r}: {error}") from None

    def close(self) -> None:
        """Stop the worker threads (after a failure; :meth:`finish` stops them itself)."""
        self.data.close()

    def finish(self) -> Packed:
        """Write the tables and the superblock; the image's size."""
        end, fragments = self.data.finish()
        compress = self.codec.compress
        order = post_order(self.tree.root)
        ids, xattrs = IdTable(), XattrTable()
        for node, _ in order:
            xattrs.add(node)
        inodes, directories = MetaWriter(compress), MetaWriter(compress)
        InodeWriter(inodes, directories, ids.index, xattrs.index).write_all(order)
        position = end
        starts: dict[str, int] = {}
        for name, table in (("inode", inodes.flush()), ("directory", directories.flush())):
            starts[name] = position
            position = self._write(position, table)
        fragment_table, starts["fragment"] = lookup_table(fragments, compress, position)
        position = self._write(position, fragment_table)
        id_table, starts["id"] = lookup_table(ids.encode(), compress, position)
        position = self._write(position, id_table)
        xattr_table, starts["xattr"] = xattrs.encode(compress, position)
        position = self._write(position, xattr_table)
        self._superblock(len(order), len(fragments) // f.FRAGMENT_ENTRY.size, ids, starts,
                         self.tree.root.ref, position, has_xattrs=bool(xattr_table))  # fmt: skip
        padded = -(-position // f.DEVICE_ALIGN) * f.DEVICE_ALIGN
        self.out.seek(self.origin + position)
        self.out.write(bytes(padded - position))
        self.out.truncate(self.origin + padded)
        return Packed(padded, len(order), self.data.reuse)

    def _write(self, position: int, data: bytes) -> int:
        self.out.seek(self.origin + position)
        self.out.write(data)
        return position + len(data)

    def _superblock(
        self, inodes: int, fragments: int, ids: IdTable, starts: dict[str, int], root: int,
        used: int, *, has_xattrs: bool,
    ) -> None:  # fmt: skip
        flags = f.FLAG_DUPLICATES
        if not has_xattrs:
            flags |= f.FLAG_NO_XATTRS
        if self.options:
            flags |= f.FLAG_COMPRESSOR_OPTIONS
        block_log = self.codec.block_size.bit_length() - 1
        superblock = f.SUPERBLOCK.pack(
            f.MAGIC, inodes, self.mtime, self.codec.block_size, fragments,
            self.codec.superblock_id, block_log, flags, len(ids), 4, 0, root, used,
            starts["id"], starts["xattr"] if has_xattrs else f.INVALID, starts["inode"],
            starts["directory"], starts["fragment"], f.INVALID,
        )  # fmt: skip
        self.out.seek(self.origin)
        self.out.write(superblock)
        if self.options:
            self.out.write(HEADER.pack(len(self.options) | f.META_UNCOMPRESSED) + self.options)
