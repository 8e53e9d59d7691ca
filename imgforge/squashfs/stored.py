"""What the data writer keeps blocks in, and its records of them: the block store (the
cache), the layer index, one block as written, and what reusing blocks saved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from imgforge.cache.layers import Known
from imgforge.squashfs.format import BLOCK_UNCOMPRESSED

Stamp = tuple[int, int, int, int]
__all__ = ["BlockStore", "FileIndex", "Known", "Reuse", "Stored", "ZERO_KEY"]


class BlockStore(Protocol):
    """Where compressed blocks are kept between builds (:class:`imgforge.cache.BlockCache`)."""

    def lookup(self, key: bytes) -> tuple[bytes, bool, bool] | None:
        """(data, compressed, private): private when only this user can have stored it."""
        ...

    def put(self, key: bytes, data: bytes, *, compressed: bool) -> None: ...


class FileIndex(Protocol):
    """What earlier packs learned of the files of image layers
    (:class:`imgforge.cache.layers.LayerIndex`); see :class:`~imgforge.squashfs.members.OnDisk`."""

    def known(self, layer: str, name: str, stamp: Stamp) -> Known | None: ...

    def learn(self, layer: str, name: str, stamp: Stamp, known: Known) -> None: ...


@dataclass
class Reuse:
    """What the cache saved: blocks found and compressed, and the seconds compressing took."""

    hits: int = 0
    misses: int = 0
    hit_bytes: int = 0
    miss_bytes: int = 0
    compress_seconds: float = 0.0
    workers: int = 1
    rejected: int = 0  # cache entries whose bytes were not the block's

    sample_bytes: int = 0  # hits compressed anyway, a few, to time the compressor
    sample_seconds: float = 0.0

    def add(self, stored: Stored) -> None:
        """Count a block written (a sparse one is not)."""
        if not stored.data:
            return
        if stored.hit:
            self.hits += 1
            self.hit_bytes += stored.raw
        else:
            self.misses += 1
            self.miss_bytes += stored.raw
            self.compress_seconds += stored.seconds

    def saved_seconds(self) -> float:
        """The compressing time the hits spared, at this build's own rate (the workers'
        seconds shared among them)."""
        timed = self.miss_bytes + self.sample_bytes
        if not timed:
            return 0.0
        seconds = self.compress_seconds + self.sample_seconds
        return self.hit_bytes * seconds / timed / self.workers


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
