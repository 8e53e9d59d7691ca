"""File data into squashfs data blocks and fragments, compressed on worker threads or
copied from a cache of already-compressed blocks, written in stream order.

Each full block of a file is hashed (SHA-256 of the codec's :attr:`Codec.salt`, then the
bytes: the fastest cryptographic hash here, with SHA-NI, and ~1 % of gzip's time); a
block the cache holds under that key is copied as it is, any other is compressed and
offered to the cache. The tails of files (the last partial block) are packed together
into fragment blocks (:mod:`imgforge.squashfs.fragments`). A file of an image layer that
the layer index knows is not read at all: its blocks come from the cache by the keys the
index gave, a few at a time per worker task. Identical files of a block or more are
stored once.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

from imgforge.squashfs.codec import Codec
from imgforge.squashfs.format import FRAGMENT_ENTRY
from imgforge.squashfs.fragments import Fragment, Tail, closes
from imgforge.squashfs.members import OnDisk
from imgforge.squashfs.packer import BlockPacker
from imgforge.squashfs.stored import BlockStore, FileIndex, Known, Reuse, Stored
from imgforge.squashfs.tree import Node
from imgforge.squashfs.writes import Writes

# Blocks of a known file copied from the cache by one worker task.
BATCH = 16
# A pending output: a file's block (a Stored), a run of a known file's blocks (a list of
# them), the end of a file, or a fragment block; and how many blocks it counts for.
Pending = tuple[str, "Future[Stored] | Future[list[Stored]] | None", Node | int, int]


class DataWriter:
    """Writes data blocks at ``origin + position`` of ``out``, in the order given."""

    def __init__(
        self, out: IO[bytes], origin: int, start: int, codec: Codec, store: BlockStore | None,
        jobs: int, index: FileIndex | None = None,
    ) -> None:  # fmt: skip
        self.origin, self.position = origin, start
        self.codec, self.store = codec, store
        self.index = index if store is not None else None
        self.learning: dict[Node, tuple[OnDisk, bytes | None]] = {}
        self.pool = ThreadPoolExecutor(max(jobs, 1), thread_name_prefix="squashfs")
        self.window = 32 * max(jobs, 1)
        self.pending: deque[Pending] = deque()
        self.queued = 0  # blocks the pending outputs count for
        self.reuse = Reuse(workers=max(jobs, 1))
        self.packer = BlockPacker(codec, store, self.reuse)
        self.fragment = Fragment()
        self.fragments: list[bytes] = []
        self.file_keys: dict[Node, list[bytes]] = {}
        self.files: dict[bytes, tuple[int, list[int]]] = {}
        self.sealed = 0
        self.writes = Writes(out, self.window * codec.block_size)

    # --- what the tree hands over -----------------------------------------------------

    def add_file(
        self, node: Node, read: Callable[[int], bytes], file: OnDisk | None = None
    ) -> None:
        """Queue the file's data: full blocks now, the tail into a fragment. A ``file`` of
        an image layer that the index knows is not read (unless the cache lacks what the
        index names); one it doesn't know is learned."""
        count, left = divmod(node.size, self.codec.block_size)
        known = self._known(file, count, left)
        if known is not None and file is not None:
            self._add_known(node, file, known, count, left)
        else:
            self._add_read(node, read, file, count, left)

    def _add_known(self, node: Node, file: OnDisk, known: Known, count: int, left: int) -> None:
        """A file the index knows: its blocks from the cache, its tail by its digest."""
        if count:
            self.file_keys[node] = []
            for first in range(0, count, BATCH):
                keys = known.keys[first : first + BATCH]
                batch = self.pool.submit(self.packer.known_blocks, keys, file, first)
                self._queue("blocks", batch, node, len(keys))
            self._queue("end", None, node)
        if known.tail is not None:
            self._add_tail(node, Tail(left, known.tail, file=file, index=count))

    def _add_read(
        self, node: Node, read: Callable[[int], bytes], file: OnDisk | None, count: int,
        left: int,
    ) -> None:  # fmt: skip
        """A file read as it comes; one of an image layer is learned."""
        bs = self.codec.block_size
        if count:
            self.file_keys[node] = []
            for _ in range(count):
                future = self.pool.submit(self.packer.block, _read_exactly(read, bs), True)
                self._queue("block", future, node)
        tail = Tail.read(_read_exactly(read, left)) if left else None
        if file is not None and self.index is not None:
            digest = None if tail is None else tail.digest
            if count:
                self.learning[node] = (file, digest)
            else:
                self.index.learn(file.layer, file.name, file.stamp, Known([], digest))
        if count:
            self._queue("end", None, node)
        if tail is not None:
            self._add_tail(node, tail)

    def _known(self, file: OnDisk | None, count: int, left: int) -> Known | None:
        """What the index knows of ``file``, if it has ``count`` full blocks and a tail
        when ``left``."""
        if file is None or self.index is None:
            return None
        known = self.index.known(file.layer, file.name, file.stamp)
        if known is None or len(known.keys) != count or (known.tail is None) != (not left):
            return None
        return known

    def finish(self) -> tuple[int, bytes]:
        """Flush the last fragment, wait for every block; returns the end of the data and
        the fragment table's entries."""
        if self.fragment.tails:
            self._seal_fragment()
        while self.pending:
            self._drain_one()
        self.pool.shutdown()
        self.writes.finish()
        return self.position, b"".join(self.fragments)

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)
        self.writes.close()

    # --- the writing thread's part ----------------------------------------------------

    def _queue(
        self, kind: str, future: Future[Stored] | Future[list[Stored]] | None,
        what: Node | int, blocks: int = 1,
    ) -> None:  # fmt: skip
        self.pending.append((kind, future, what, blocks))
        self.queued += blocks
        while self.queued > self.window:
            self._drain_one()

    def _drain_one(self) -> None:
        kind, future, what, blocks = self.pending.popleft()
        self.queued -= blocks
        if kind == "end":
            assert isinstance(what, Node)
            self._end_file(what)
            return
        assert future is not None
        result = future.result()
        if kind == "fragment":
            assert isinstance(result, Stored)
            self.reuse.add(result)
            self.fragments.append(FRAGMENT_ENTRY.pack(self.position, result.word, 0))
            self._write(result.data)
            return
        assert isinstance(what, Node)
        self._place(what, result if isinstance(result, list) else [result])

    def _place(self, node: Node, run: list[Stored]) -> None:
        """Write consecutive blocks of ``node``'s file."""
        if not node.blocks:
            node.start = self.position
        keys, data = self.file_keys[node], []
        for stored in run:
            self.reuse.add(stored)
            keys.append(stored.key)
            if stored.data:
                node.blocks.append(stored.word)
                data.append(stored.data)
            else:
                node.blocks.append(0)
                node.sparse += stored.raw
        if data:
            self._write(data[0] if len(data) == 1 else b"".join(data))

    def _end_file(self, node: Node) -> None:
        """A file's blocks are written: store it once if an equal file came before."""
        keys = self.file_keys.pop(node)
        learned = self.learning.pop(node, None)
        if learned is not None and self.index is not None:
            file, tail = learned
            self.index.learn(file.layer, file.name, file.stamp, Known(keys, tail))
        digest = hashlib.blake2b(b"".join(keys), digest_size=32).digest()
        if (seen := self.files.get(digest)) is not None and seen[1] == list(node.blocks):
            self.position = node.start
            node.start = seen[0]
            return
        self.files[digest] = (node.start, list(node.blocks))

    def _write(self, data: bytes) -> None:
        self.writes.write(data, self.origin + self.position)
        self.position += len(data)

    # --- fragments ----------------------------------------------------------------------

    def _add_tail(self, node: Node, tail: Tail) -> None:
        """Pack a tail into the current fragment; its digest decides where fragments end
        (tails are not stored once when equal)."""
        if self.fragment.size + tail.size > self.codec.block_size:
            self._seal_fragment()
        node.fragment, node.offset = self.sealed, self.fragment.add(tail)
        if closes(tail.digest):
            self._seal_fragment()

    def _seal_fragment(self) -> None:
        fragment, self.fragment = self.fragment, Fragment()
        future = self.pool.submit(self.packer.fragment, fragment.key(self.codec.salt), fragment)
        self._queue("fragment", future, self.sealed)
        self.sealed += 1


def _read_exactly(read: Callable[[int], bytes], size: int) -> bytes:
    """``size`` bytes from ``read``; a stream that ends early is an error."""
    data = read(size)
    if len(data) == size:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = read(size - got)
        if not more:
            raise EOFError(f"the tar stream ended {size - got} bytes short inside a file")
        parts.append(more)
        got += len(more)
    return b"".join(parts)
