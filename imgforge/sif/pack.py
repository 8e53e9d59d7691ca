"""The native backend: pack the image's filesystem with imgforge's squashfs writer straight
into the SIF (or .simg) file, reusing compressed blocks from the cache.

The filesystem comes from the image source as a tar stream (:mod:`imgforge.sif.transfer`)
and is written at the partition's offset in the target file, so no copy of the image
ever lands on disk. The SIF's other objects go in front of it at the end
(:mod:`imgforge.sif.assemble`): their sizes are known once the stream is read, which is
almost always what was foreseen; when the image carried metadata of its own that changes
them, the partition is moved within the file.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

from imgforge.cache import BlockCache
from imgforge.cache.layers import LayerIndex
from imgforge.errors import EngineError
from imgforge.log import STEP, Log
from imgforge.sif import format as sif
from imgforge.sif.assemble import partition_offset, write_sif_prefix
from imgforge.sif.backend import Packing, SifRequest
from imgforge.sif.reading import read_image, said
from imgforge.sif.reuse import packing_into, report
from imgforge.sif.source import ImageSource
from imgforge.sif.tar2sqfs import make_with_tar2sqfs, tar2sqfs_version
from imgforge.sif.transfer import Meter, Transferred, transfer
from imgforge.squashfs.codec import Codec
from imgforge.squashfs.members import Member
from imgforge.squashfs.writer import Packed, SquashfsWriter

MOVE_CHUNK = 1 << 24


@dataclass(frozen=True)
class NativeBackend:
    """Writes SIF files itself; needs tar2sqfs (squashfs-tools-ng) only for lz4 and lzo."""

    name: str = "native"

    @classmethod
    def create(cls) -> NativeBackend:
        return cls()

    def version(self) -> str:
        from imgforge import __version__

        return f"imgforge {__version__}"

    def make(self, request: SifRequest, *, source: ImageSource, log: Log) -> Packing:
        codec = Codec.of(request.compression)
        started = time.monotonic()
        if codec is None:
            tool = shutil.which("tar2sqfs")
            if tool is None:
                raise EngineError(
                    f"--compression {request.compression} needs tar2sqfs: "
                    "apt-get install squashfs-tools-ng"
                )
            make_with_tar2sqfs(tool, request, source=source, log=log)
            size = request.target.stat().st_size
            return Packing(
                request.compression, size, time.monotonic() - started, tar2sqfs_version(tool)
            )
        with packing_into(request, codec, log) as (out, store):
            packed = self._write(out, request, codec, store, source=source, log=log)
        seconds = time.monotonic() - started
        use = report(packed.reuse, store)
        log(f"packed {packed.inodes} inodes into {packed.size} bytes in {seconds:.1f}s"
            + (f"; {use.line()}" if use else ""), kind=STEP)  # fmt: skip
        return Packing(request.compression, packed.size, round(seconds, 3), codec.writer, use)

    def _write(
        self, out: IO[bytes], request: SifRequest, codec: Codec, store: BlockCache | None, *,
        source: ImageSource, log: Log,
    ) -> Packed:  # fmt: skip
        simg = request.image_format == "simg"
        origin = len(sif.LAUNCH_SCRIPT) if simg else partition_offset(request, None)
        index = None if store is None else LayerIndex(store)
        pack = _Pack(out, origin, request, codec, store, index, log, source.size() or 0)
        packed, done = read_image(source, pack.run, log, index)
        said(index, log)
        if simg:
            out.seek(0)
            out.write(sif.LAUNCH_SCRIPT)
            return packed
        place(out, request, done, packed, origin)
        return packed


@dataclass(frozen=True)
class _Pack:
    """One pass of an image's entries into the squashfs at ``origin`` of ``out``."""

    out: IO[bytes]
    origin: int
    request: SifRequest
    codec: Codec
    store: BlockCache | None
    index: LayerIndex | None
    log: Log
    size: int

    def run(self, members: Iterable[Member], reader: str) -> tuple[Packed, Transferred]:
        """Pack ``members`` (read by ``reader``), the file started afresh."""
        jobs = os.cpu_count() or 1
        mtime = self.request.timestamp()
        self.out.seek(0)
        self.out.truncate()
        writer = SquashfsWriter(self.out, codec=self.codec, mtime=mtime, origin=self.origin,
                                store=self.store, jobs=jobs, index=self.index)  # fmt: skip
        codec = self.codec
        how = f"{codec.name} level {codec.level}, {codec.block_size // 1024} KiB blocks"
        self.log(f"$ {reader} | imgforge layout | imgforge squashfs ({how}, {jobs} jobs)",
                 kind=STEP)  # fmt: skip
        try:
            done = transfer(members, writer, self.request.files, mtime=mtime,
                            clamp=self.request.source_date_epoch,
                            progress=Meter(self.size, self.log))  # fmt: skip
            return writer.finish(), done
        finally:
            writer.close()


def place(
    out: IO[bytes], request: SifRequest, image: Transferred, packed: Packed, origin: int
) -> None:
    """Write the SIF's objects in front of the partition, moving it first if they turned
    out larger or smaller than foreseen."""
    offset = partition_offset(request, image)
    if offset != origin:
        move(out, origin, packed.size, offset)
        if offset > origin:  # what was the partition's start is padding now
            out.seek(origin)
            out.write(bytes(offset - origin))
    write_sif_prefix(out, request, image, packed.size)


def move(out: IO[bytes], start: int, size: int, to: int) -> None:
    """Move ``size`` bytes at ``start`` of ``out`` to ``to``, in place."""
    chunks = range(0, size, MOVE_CHUNK)
    for at in reversed(chunks) if to > start else chunks:
        out.seek(start + at)
        data = out.read(min(MOVE_CHUNK, size - at))
        out.seek(to + at)
        out.write(data)
    out.truncate(to + size)
