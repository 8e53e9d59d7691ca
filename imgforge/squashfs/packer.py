"""What one block of the image becomes, on a worker thread: the cache's entry under its
key, or the block compressed now (and offered to the cache)."""

from __future__ import annotations

import hashlib
import threading
import time

from imgforge.squashfs.codec import Codec
from imgforge.squashfs.fragments import Fragment
from imgforge.squashfs.members import OnDisk
from imgforge.squashfs.stored import ZERO_KEY, BlockStore, Reuse, Stored

# Hits compressed anyway, to time the compressor for the time the cache saves.
SAMPLE_BYTES = 4 << 20


class BlockPacker:
    """Turns blocks into :class:`Stored` ones (from any thread), counting in ``reuse``
    what it rejected and sampled."""

    def __init__(self, codec: Codec, store: BlockStore | None, reuse: Reuse) -> None:
        self.codec, self.store, self.reuse = codec, store, reuse
        self.zeros = bytes(codec.block_size)
        self.salted = hashlib.sha256(codec.salt)
        self.counting = threading.Lock()

    def _key(self, raw: bytes) -> bytes:
        hasher = self.salted.copy()
        hasher.update(raw)
        return hasher.digest()

    def _lookup(self, key: bytes) -> tuple[bytes, bool, bool] | None:
        return None if self.store is None else self.store.lookup(key)

    def block(self, raw: bytes, sparse: bool) -> Stored:
        if sparse and raw == self.zeros:
            return Stored(b"", True, len(raw), ZERO_KEY, False, 0.0)
        key = self._key(raw)
        return self._stored(key, raw, self._lookup(key))

    def _stored(self, key: bytes, raw: bytes, found: tuple[bytes, bool, bool] | None) -> Stored:
        """The block ``raw`` stored under ``key``: the cache's entry ``found`` if it holds
        this very block, else compressed now and offered to the cache."""
        if found is not None:
            data, compressed, private = found
            # An entry someone else could have written is decompressed and compared (a
            # forged one is compressed anew and replaced); a private one was checksummed
            # when read.
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

    def known_blocks(self, keys: list[bytes], file: OnDisk, first: int) -> list[Stored]:
        """Blocks ``first``, ``first + 1``, ... of ``file``, whose keys the index gave."""
        return [self._known_block(key, file, first + n) for n, key in enumerate(keys)]

    def _known_block(self, key: bytes, file: OnDisk, index: int) -> Stored:
        """Block ``index`` of ``file``: copied from the cache when it holds the key
        privately (checksummed when read), else read."""
        bs = self.codec.block_size
        if key == ZERO_KEY:
            return Stored(b"", True, bs, ZERO_KEY, False, 0.0)
        found = self._lookup(key)
        if found is None or not found[2]:
            return self.block(file.exactly(index, bs, bs), True)
        if self.reuse.sample_bytes < SAMPLE_BYTES:
            self._sample(file.exactly(index, bs, bs))
        return Stored(found[0], found[1], bs, key, True, 0.0)

    def fragment(self, key: bytes, fragment: Fragment) -> Stored:
        """A fragment block: the cache's private entry under its key, without reading
        the tails; else its bytes, checked against an entry or compressed."""
        found = self._lookup(key)
        if found is not None and found[2]:
            return Stored(found[0], found[1], fragment.size, key, True, 0.0)
        return self._stored(key, fragment.raw(self.codec.block_size), found)

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
