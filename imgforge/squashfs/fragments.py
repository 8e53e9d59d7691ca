"""Fragment blocks: the tails of files (their last partial block) packed together, with
keys and boundaries that depend on the tails' content only.

Each tail is known by its digest (SHA-256 of its bytes). A tail whose digest's first
byte ends in four zero bits closes its fragment, so that inserting a file upsets one or
two fragments and not all that follow. A fragment's cache key is computed from the
digests of its tails, in order, not from its bytes: a tail that an earlier pack saw
(the layer index keeps its digest) is not read again unless its fragment must be
compressed or checked anew, and then it must still have that digest.
"""

from __future__ import annotations

import hashlib

from imgforge.errors import LayersUnreadable
from imgforge.squashfs.members import OnDisk

# What sets a fragment's key apart from a block's holding the same bytes.
FRAGMENT_TAG = b"imgforge fragment of tails v1"


def tail_digest(data: bytes) -> bytes:
    """The digest a tail is known by."""
    return hashlib.sha256(data).digest()


def closes(digest: bytes) -> bool:
    """Whether the tail with this digest ends its fragment (one tail in 16)."""
    return digest[0] & 0x0F == 0


class Tail:
    """One file's tail: its size and digest, and its bytes, or where to read them (the
    ``index``-th block of a layer's ``file``) when an earlier pack gave the digest."""

    __slots__ = ("size", "digest", "data", "file", "index")

    def __init__(
        self, size: int, digest: bytes, data: bytes | None = None,
        file: OnDisk | None = None, index: int = 0,
    ) -> None:  # fmt: skip
        self.size, self.digest, self.data = size, digest, data
        self.file, self.index = file, index

    @classmethod
    def read(cls, data: bytes) -> Tail:
        return cls(len(data), tail_digest(data), data)

    def bytes(self, block_size: int) -> bytes:
        """The tail's bytes, read now if need be: a file whose tail no longer has the
        digest it was known by is never a fragment of other bytes (the pack starts again
        from the export)."""
        if self.data is not None:
            return self.data
        assert self.file is not None
        data = self.file.exactly(self.index, block_size, self.size)
        if tail_digest(data) != self.digest:
            raise LayersUnreadable(f"{self.file.path}: the file changed while it was packed")
        return data


class Fragment:
    """The tails of one fragment block, in order."""

    __slots__ = ("tails", "size")

    def __init__(self) -> None:
        self.tails: list[Tail] = []
        self.size = 0

    def add(self, tail: Tail) -> int:
        """Append ``tail``; its offset in the fragment."""
        offset = self.size
        self.tails.append(tail)
        self.size += tail.size
        return offset

    def key(self, salt: bytes) -> bytes:
        """The cache key: the codec's salt, then the tails' digests."""
        hasher = hashlib.sha256(salt)
        hasher.update(FRAGMENT_TAG)
        for tail in self.tails:
            hasher.update(tail.digest)
        return hasher.digest()

    def raw(self, block_size: int) -> bytes:
        """The fragment block's bytes (reading the tails not read yet)."""
        return b"".join(tail.bytes(block_size) for tail in self.tails)
