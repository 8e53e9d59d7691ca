"""File data into squashfs data blocks and fragments, compressed on worker threads or
copied from a cache of already-compressed blocks, written in stream order.

Each full block of a file is hashed (SHA-256 of the codec's :attr:`Codec.salt`, then the
bytes: the fastest cryptographic hash here, with SHA-NI, and ~1 % of gzip's time); a
block the cache holds under that key is copied as it is, any other is compressed and
offered to the cache. The tails of files (the last partial block) are packed together
into fragment blocks whose boundaries depend on content only (a tail whose CRC-32 ends in
four zero bits closes its fragment), so that inserting a file upsets one or two fragments
and not all that follow. Identical files of a block or more are stored once.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

from imgforge.errors import BuildError
from imgforge.squashfs.codec import Codec
from imgforge.squashfs.format import FRAGMENT_ENTRY
from imgforge.squashfs.members import OnDisk
from imgforge.squashfs.stored import ZERO_KEY, BlockStore, FileIndex, Reuse, Stored
from imgforge.squashfs.tree import Node

SAMPLE_BYTES = 4 << 20
# A pending output: a file's block, the end of a file, or a fragment block.
Pending = tuple[str, "Future[Stored] | None", Node | int]


class DataWriter:
    """Writes data blocks at ``origin + position`` of ``out``, in the order given."""

    def __init__(
        self, out: IO[bytes], origin: int, start: int, codec: Codec, store: BlockStore | None,
        jobs: int, index: FileIndex | None = None,
    ) -> None:  # fmt: skip
        self.origin, self.position = origin, start
        self.codec, self.store = codec, store
        self.index = index if store is not None else None
        self.learning: dict[Node, OnDisk] = {}
        self.zeros = bytes(codec.block_size)
        self.pool = ThreadPoolExecutor(max(jobs, 1), thread_name_prefix="squashfs")
        self.window = 32 * max(jobs, 1)
        self.pending: deque[Pending] = deque()
        self.reuse = Reuse(workers=max(jobs, 1))
        self.counting = threading.Lock()
        self.fragment = bytearray()
        self.fragments: list[bytes] = []
        self.file_keys: dict[Node, list[bytes]] = {}
        self.files: dict[bytes, tuple[int, list[int]]] = {}
        self.sealed = 0
        self.salted = hashlib.sha256(codec.salt)
        # Blocks go to the file on a thread of their own, in order (os.pwrite at their
        # place), so writing overlaps reading the stream.
        out.flush()
        self.fd = out.fileno()
        self.writes = ThreadPoolExecutor(1, thread_name_prefix="squashfs-write")
        self.written: deque[Future[None]] = deque()

    # --- what the tree hands over -----------------------------------------------------

    def add_file(
        self, node: Node, read: Callable[[int], bytes], file: OnDisk | None = None
    ) -> None:
        """Queue the file's data: full blocks now, the tail into a fragment. A ``file`` of
        an image layer whose block keys the index knows is not read but for its tail."""
        bs = self.codec.block_size
        count, left = divmod(node.size, bs)
        known = self._known(file, count)
        if count:
            self.file_keys[node] = []
            if file is not None and self.index is not None and known is None:
                self.learning[node] = file
            for index in range(count):
                if known is not None and file is not None:
                    future = self.pool.submit(self._known_block, known[index], file, index)
                else:
                    future = self.pool.submit(self._block, _read_exactly(read, bs), True)
                self._queue("block", future, node)
            self._queue("end", None, node)
        if left:
            tail = _read_exactly(read, left) if known is None else _part(file, count, bs, left)
            self._add_tail(node, tail)

    def _known(self, file: OnDisk | None, count: int) -> list[bytes] | None:
        """The index's keys for ``file``'s ``count`` full blocks, if it knows them all."""
        if file is None or self.index is None or not count:
            return None
        keys = self.index.known(file.layer, file.name, file.stamp)
        return keys if keys is not None and len(keys) == count else None

    def finish(self) -> tuple[int, bytes]:
        """Flush the last fragment, wait for every block; returns the end of the data and
        the fragment table's entries."""
        if self.fragment:
            self._seal_fragment()
        while self.pending:
            self._drain_one()
        self.pool.shutdown()
        while self.written:
            self.written.popleft().result()
        self.writes.shutdown()
        return self.position, b"".join(self.fragments)

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)
        self.writes.shutdown(cancel_futures=True)

    # --- the worker's part ----------------------------------------------------------------

    def _key(self, raw: bytes) -> bytes:
        hasher = self.salted.copy()
        hasher.update(raw)
        return hasher.digest()

    def _block(self, raw: bytes, sparse: bool) -> Stored:
        if sparse and raw == self.zeros:
            return Stored(b"", True, len(raw), ZERO_KEY, False, 0.0)
        key = self._key(raw)
        if self.store is not None and (found := self.store.lookup(key)) is not None:
            data, compressed, private = found
            # A hit is used only if it holds this very block: an entry someone else could
            # have written is decompressed and compared (a forged one is compressed anew
            # and replaced); a private one was checksummed when read.
            if private or (self.codec.decompress(data) if compressed else data) == raw:
                self._sample(raw)
                return Stored(data, compressed, len(raw), key, True, 0.0)
            with self.counting:
                self.reuse.rejected += 1
        started = time.perf_counter()
        packed = self.codec.compress(raw)
        seconds = time.perf_counter() - started
        compressed = len(packed) < len(raw)
        data = packed if compressed else raw
        if self.store is not None:
            self.store.put(key, data, compressed=compressed)
        return Stored(data, compressed, len(raw), key, False, seconds)

    def _known_block(self, key: bytes, file: OnDisk, index: int) -> Stored:
        """Block ``index`` of ``file``, whose key the layer index gave: copied from the
        cache when it holds the key privately (checksummed when read), else read."""
        bs = self.codec.block_size
        if key == ZERO_KEY:
            return Stored(b"", True, bs, ZERO_KEY, False, 0.0)
        assert self.store is not None
        found = self.store.lookup(key)
        if found is None or not found[2]:
            return self._block(_part(file, index, bs, bs), True)
        if self.reuse.sample_bytes < SAMPLE_BYTES:
            self._sample(_part(file, index, bs, bs))
        return Stored(found[0], found[1], bs, key, True, 0.0)

    def _sample(self, raw: bytes) -> None:
        """Time compressing the first few hits, for the time the cache saves."""
        with self.counting:
            if self.reuse.sample_bytes >= SAMPLE_BYTES:
                return
            self.reuse.sample_bytes += len(raw)
        started = time.perf_counter()
        self.codec.compress(raw)
        with self.counting:
            self.reuse.sample_seconds += time.perf_counter() - started

    # --- the writing thread's part ----------------------------------------------------

    def _queue(self, kind: str, future: Future[Stored] | None, what: Node | int) -> None:
        self.pending.append((kind, future, what))
        while len(self.pending) > self.window:
            self._drain_one()

    def _drain_one(self) -> None:
        kind, future, what = self.pending.popleft()
        if kind == "end":
            assert isinstance(what, Node)
            self._end_file(what)
            return
        assert future is not None
        stored = future.result()
        self._count(stored)
        if kind == "fragment":
            entry = FRAGMENT_ENTRY.pack(self.position, stored.word, 0)
            self.fragments.append(entry)
            self._write(stored.data)
            return
        assert isinstance(what, Node)
        if not what.blocks:
            what.start = self.position
        self.file_keys[what].append(stored.key)
        if not stored.data:
            what.blocks.append(0)
            what.sparse += stored.raw
            return
        what.blocks.append(stored.word)
        self._write(stored.data)

    def _count(self, stored: Stored) -> None:
        if not stored.data:
            return
        if stored.hit:
            self.reuse.hits += 1
            self.reuse.hit_bytes += stored.raw
        else:
            self.reuse.misses += 1
            self.reuse.miss_bytes += stored.raw
            self.reuse.compress_seconds += stored.seconds

    def _end_file(self, node: Node) -> None:
        """A file's blocks are written: store it once if an equal file came before."""
        keys = self.file_keys.pop(node)
        if (file := self.learning.pop(node, None)) is not None and self.index is not None:
            self.index.learn(file.layer, file.name, file.stamp, keys)
        digest = hashlib.blake2b(b"".join(keys), digest_size=32).digest()
        if (seen := self.files.get(digest)) is not None and seen[1] == list(node.blocks):
            self.position = node.start
            node.start = seen[0]
            return
        self.files[digest] = (node.start, list(node.blocks))

    def _write(self, data: bytes) -> None:
        at = self.origin + self.position
        self.written.append(self.writes.submit(_write_at, self.fd, data, at))
        self.position += len(data)
        while self.written and (self.written[0].done() or len(self.written) > self.window):
            self.written.popleft().result()  # raises what the write raised

    # --- fragments ----------------------------------------------------------------------

    def _add_tail(self, node: Node, tail: bytes) -> None:
        """Pack a tail into the current fragment. Its CRC-32 decides where fragments end
        (cheap enough for the one thread that reads the stream); tails are not stored once
        when equal, which would need a strong hash of each here."""
        if len(self.fragment) + len(tail) > self.codec.block_size:
            self._seal_fragment()
        node.fragment, node.offset = self.sealed, len(self.fragment)
        self.fragment += tail
        if zlib.crc32(tail) & 0x0F == 0:
            self._seal_fragment()

    def _seal_fragment(self) -> None:
        raw = bytes(self.fragment)
        self.fragment.clear()
        self._queue("fragment", self.pool.submit(self._block, raw, False), self.sealed)
        self.sealed += 1


def _write_at(fd: int, data: bytes, offset: int) -> None:
    """All of ``data`` at ``offset`` of ``fd`` (os.pwrite may write less)."""
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def _part(file: OnDisk | None, index: int, block_size: int, size: int) -> bytes:
    """The ``index``-th block of a layer's file, which must have ``size`` bytes: a file
    that changed under the pack is an error, never a block of other bytes."""
    assert file is not None
    data = file.block(index, block_size)
    if len(data) != size:
        raise BuildError(f"{file.path}: the file changed while it was packed")
    return data


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
