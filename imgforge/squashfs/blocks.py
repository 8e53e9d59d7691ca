"""File data into squashfs data blocks and fragments, compressed on worker threads or
copied from a cache of already-compressed blocks, written in stream order.

Each full block of a file is hashed (SHA-256 of the codec's :attr:`Codec.salt`, then the
bytes: the fastest cryptographic hash here, with SHA-NI, and ~1 % of gzip's time); a
block the cache holds under that key is copied as it is, any other is compressed and
offered to the cache. The tails of files (the last partial block) are packed together
into fragment blocks whose boundaries depend on content only (a tail whose hash ends in
four zero bits closes its fragment), so that inserting a file upsets one or two fragments
and not all that follow. Identical files and tails are stored once.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Protocol

from imgforge.squashfs.codec import Codec
from imgforge.squashfs.format import BLOCK_UNCOMPRESSED, FRAGMENT_ENTRY
from imgforge.squashfs.tree import Node


class BlockStore(Protocol):
    """Where compressed blocks are kept between builds (:class:`imgforge.cache.BlockCache`)."""

    def get(self, key: bytes) -> tuple[bytes, bool] | None: ...

    def put(self, key: bytes, data: bytes, *, compressed: bool) -> None: ...


@dataclass
class Reuse:
    """What the cache saved: blocks found and compressed, and the seconds compressing took."""

    hits: int = 0
    misses: int = 0
    hit_bytes: int = 0
    miss_bytes: int = 0
    compress_seconds: float = 0.0
    workers: int = 1

    def saved_seconds(self) -> float:
        """The compressing time the hits spared, at this build's own rate (the workers'
        seconds shared among them)."""
        if not self.miss_bytes:
            return 0.0
        return self.hit_bytes * self.compress_seconds / self.miss_bytes / self.workers


@dataclass(frozen=True)
class Stored:
    """One block as written: its bytes, whether compressed, and its raw size."""

    data: bytes
    compressed: bool
    raw: int
    key: bytes
    hit: bool
    seconds: float

    @property
    def word(self) -> int:
        return len(self.data) | (0 if self.compressed else BLOCK_UNCOMPRESSED)


ZERO_KEY = bytes(32)
# A pending output: a file's block, the end of a file, or a fragment block.
Pending = tuple[str, "Future[Stored] | None", Node | int]


class DataWriter:
    """Writes data blocks at ``origin + position`` of ``out``, in the order given."""

    def __init__(
        self, out: IO[bytes], origin: int, start: int, codec: Codec, store: BlockStore | None,
        jobs: int,
    ) -> None:  # fmt: skip
        self.out, self.origin, self.position = out, origin, start
        self.codec, self.store = codec, store
        self.zeros = bytes(codec.block_size)
        self.pool = ThreadPoolExecutor(max(jobs, 1), thread_name_prefix="squashfs")
        self.window = 4 * max(jobs, 1)
        self.pending: deque[Pending] = deque()
        self.reuse = Reuse(workers=max(jobs, 1))
        self.fragment = bytearray()
        self.fragments: list[bytes] = []
        self.file_keys: dict[Node, list[bytes]] = {}
        self.files: dict[bytes, tuple[int, list[int]]] = {}
        self.tails: dict[bytes, tuple[int, int]] = {}
        self.sealed = 0
        self.salted = hashlib.sha256(codec.salt)
        out.seek(origin + start)

    # --- what the tree hands over -----------------------------------------------------

    def add_file(self, node: Node, read: Callable[[int], bytes]) -> None:
        """Queue the file's data: full blocks now, the tail into a fragment."""
        bs = self.codec.block_size
        left = node.size
        self.file_keys[node] = []
        while left >= bs:
            block = _read_exactly(read, bs)
            self._queue("block", self.pool.submit(self._block, block, True), node)
            left -= bs
        tail = _read_exactly(read, left) if left else b""
        self._queue("end", None, node)
        if tail:
            self._add_tail(node, tail)

    def finish(self) -> tuple[int, bytes]:
        """Flush the last fragment, wait for every block; returns the end of the data and
        the fragment table's entries."""
        if self.fragment:
            self._seal_fragment()
        while self.pending:
            self._drain_one()
        self.pool.shutdown()
        return self.position, b"".join(self.fragments)

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)

    # --- the worker's part ----------------------------------------------------------------

    def _key(self, raw: bytes) -> bytes:
        hasher = self.salted.copy()
        hasher.update(raw)
        return hasher.digest()

    def _block(self, raw: bytes, sparse: bool) -> Stored:
        if sparse and raw == self.zeros:
            return Stored(b"", True, len(raw), ZERO_KEY, False, 0.0)
        key = self._key(raw)
        if self.store is not None and (found := self.store.get(key)) is not None:
            return Stored(found[0], found[1], len(raw), key, True, 0.0)
        started = time.perf_counter()
        packed = self.codec.compress(raw)
        seconds = time.perf_counter() - started
        compressed = len(packed) < len(raw)
        data = packed if compressed else raw
        if self.store is not None:
            self.store.put(key, data, compressed=compressed)
        return Stored(data, compressed, len(raw), key, False, seconds)

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
        if not keys:
            node.start = self.position
            return
        digest = hashlib.blake2b(b"".join(keys), digest_size=32).digest()
        if (seen := self.files.get(digest)) is not None and seen[1] == list(node.blocks):
            self.position = node.start
            self.out.seek(self.origin + self.position)
            node.start = seen[0]
            return
        self.files[digest] = (node.start, list(node.blocks))

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.position += len(data)

    # --- fragments ----------------------------------------------------------------------

    def _add_tail(self, node: Node, tail: bytes) -> None:
        digest = self._key(tail)
        if (seen := self.tails.get(digest)) is not None:
            node.fragment, node.offset = seen
            return
        if len(self.fragment) + len(tail) > self.codec.block_size:
            self._seal_fragment()
        node.fragment, node.offset = self.sealed, len(self.fragment)
        self.tails[digest] = (node.fragment, node.offset)
        self.fragment += tail
        if digest[-1] & 0x0F == 0:
            self._seal_fragment()

    def _seal_fragment(self) -> None:
        raw = bytes(self.fragment)
        self.fragment.clear()
        self._queue("fragment", self.pool.submit(self._block, raw, False), self.sealed)
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
