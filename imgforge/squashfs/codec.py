"""The compressors the writer packs blocks with, and what makes their output reusable.

A :class:`Codec` turns one block into the bytes squashfs stores. Equal codecs (name, level,
block size and library version, see :attr:`Codec.writer`) give byte-identical output for
equal input, which is what lets a cache hand back blocks compressed by an earlier build.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import struct
import threading
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from imgforge.compressors import COMPRESSORS, Compression

# Bumped when the writer would lay out or compress a block differently.
WRITER_VERSION = 2
BLOCK_SIZE = 128 * 1024
# What the writer itself packs (lz4 and lzo go through tar2sqfs, without reuse). xz is
# packed at preset 6 with the block size as dictionary, as mksquashfs does.
PACKED = ("gzip", "zstd", "xz")
XZ_PRESET = 6


def _zstd() -> Any:
    import zstandard

    return zstandard


@dataclass(frozen=True)
class Codec:
    """One compression profile: compressor, level, block size."""

    name: str
    level: int
    block_size: int = BLOCK_SIZE
    _local: threading.local = field(default_factory=threading.local, compare=False, repr=False)

    @classmethod
    def of(cls, compression: str, block_size: int = BLOCK_SIZE) -> Codec | None:
        """The codec of a ``--compression`` value; None for one the writer doesn't pack."""
        chosen = Compression.parse(compression)
        if chosen.name not in PACKED:
            return None
        return cls(chosen.name, XZ_PRESET if chosen.level is None else chosen.level, block_size)

    @property
    def superblock_id(self) -> int:
        return COMPRESSORS[self.name].superblock_id

    @cached_property
    def writer(self) -> str:
        """The writer and library versions that decide the compressed bytes."""
        if self.name == "gzip":
            library = f"zlib {zlib.ZLIB_RUNTIME_VERSION}"
        elif self.name == "zstd":
            library = f"zstd {'.'.join(map(str, _zstd().ZSTD_VERSION))}"
        else:
            library = f"liblzma {lzma.__name__}-{_lzma_version()}"
        return f"imgforge-squashfs {WRITER_VERSION}; {library}"

    @cached_property
    def salt(self) -> bytes:
        """A key for the block hashes, so that a key names content under this codec only."""
        fields = {"compressor": self.name, "level": self.level, "block_size": self.block_size,
                  "writer": self.writer}  # fmt: skip
        return hashlib.blake2b(json.dumps(fields, sort_keys=True).encode(), digest_size=32).digest()

    def options(self) -> bytes | None:
        """The compressor options the superblock announces (None: the defaults)."""
        if self.name == "gzip" and self.level != 9:
            return struct.pack("<IHH", self.level, 15, 0)
        if self.name == "zstd":
            return struct.pack("<I", self.level)
        return None

    def compress(self, data: bytes) -> bytes:
        """``data`` compressed as squashfs stores a block (thread-safe)."""
        if self.name == "gzip":
            return zlib.compress(data, self.level)
        if self.name == "zstd":
            compressor = getattr(self._local, "zstd", None)
            if compressor is None:
                compressor = self._local.zstd = _zstd().ZstdCompressor(level=self.level)
            return bytes(compressor.compress(data))
        filters = [{"id": lzma.FILTER_LZMA2, "preset": XZ_PRESET, "dict_size": self.block_size}]
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, filters=filters)


    def decompress(self, data: bytes) -> bytes | None:
        """What ``data`` holds, at most a block; None when it is not a block this
        compressor wrote (thread-safe)."""
        try:
            if self.name == "gzip":
                inflate = zlib.decompressobj()
                found = inflate.decompress(data, self.block_size)
                return found if inflate.eof and not inflate.unused_data else None
            if self.name == "zstd":
                # A frame that says it holds at most a block (ours always say; one that
                # doesn't, or says more, is refused before a byte is decompressed: a few
                # bytes of zstd can stand for gigabytes), whole and with nothing after it
                # (the kernel reads no more). The library holds it to what it says.
                if _zstd().get_frame_parameters(data).content_size > self.block_size:
                    return None
                unzstd = _zstd().ZstdDecompressor().decompressobj()
                found = bytes(unzstd.decompress(data))
                fits = unzstd.eof and not unzstd.unused_data and len(found) <= self.block_size
                return found if fits else None
            inflate_xz = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
            found = inflate_xz.decompress(data, self.block_size)
            return found if inflate_xz.eof and not inflate_xz.unused_data else None
        except (zlib.error, lzma.LZMAError, _zstd().ZstdError):
            return None


def _lzma_version() -> str:
    # liblzma's version is not exposed; the output of a fixed input stands in for it.
    probe = lzma.compress(b"imgforge", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    return hashlib.blake2b(probe, digest_size=4).hexdigest()
