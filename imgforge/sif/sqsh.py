"""The enroot image (``NAME.sqsh``): the built image's filesystem as enroot's import leaves
it (:mod:`imgforge.enroot.rootfs`), packed from the same kind of stream as the SIF, with
the same compressors and the same squashed-data cache, then read back.

An enroot image is a bare squashfs (``enroot import`` runs ``mksquashfs``): the native
writer packs it straight into the target; lz4 and lzo go through tar2sqfs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterable
from typing import IO

from imgforge.cache.layers import LayerIndex
from imgforge.enroot import lint
from imgforge.enroot.files import files
from imgforge.enroot.rootfs import EnrootRoot
from imgforge.errors import BuildError, EngineError
from imgforge.log import STEP, Log
from imgforge.sif.backend import CacheUse, Packing, SifRequest
from imgforge.sif.reading import read_image, said
from imgforge.sif.reuse import packing_into, report
from imgforge.sif.source import ImageSource
from imgforge.sif.tar2sqfs import run_tar2sqfs, tar2sqfs_version
from imgforge.sif.transfer import Meter, damaged, stream_members
from imgforge.squashfs.codec import Codec
from imgforge.squashfs.members import Archive, Member
from imgforge.squashfs.writer import Packed, SquashfsWriter

WHAT = "imgforge enroot-rootfs"


def make_sqsh(request: SifRequest, *, source: ImageSource, log: Log) -> Packing:
    """Write the enroot image of ``source`` to ``request.target`` and check it."""
    codec = Codec.of(request.compression)
    started = time.monotonic()
    if codec is None:
        root, size, tool, use = with_tar2sqfs(request, source, log)
    else:
        root, size, tool, use = with_writer(request, codec, source, log)
    seconds = time.monotonic() - started
    log(f"packed {request.target.name}: {size} bytes in {seconds:.1f}s"
        + (f"; {use.line()}" if use else ""), kind=STEP)  # fmt: skip
    check(request, source, log)
    said = lint.profile_problems(root.profiles, source.config)
    notes = tuple(f"{problem.key}: {problem.reason}" for problem in said)
    return Packing(request.compression, size, round(seconds, 3), tool, use, notes)


Made = tuple[EnrootRoot, int, str, CacheUse | None]


def with_writer(request: SifRequest, codec: Codec, source: ImageSource, log: Log) -> Made:
    """Pack with imgforge's squashfs writer, the block cache and the layer index."""
    with packing_into(request, codec, log) as (out, store):
        how = f"{codec.name} level {codec.level}, {codec.block_size // 1024} KiB blocks"
        index = None if store is None else LayerIndex(store)

        def pack(members: Iterable[Member], reader: str) -> tuple[EnrootRoot, Packed]:
            log(f"$ {reader} | {WHAT} | imgforge squashfs ({how})", kind=STEP)
            out.seek(0)
            out.truncate()
            writer = SquashfsWriter(
                out, codec=codec, mtime=request.timestamp(), origin=0, store=store,
                jobs=os.cpu_count() or 1, index=index,
            )  # fmt: skip
            try:
                return copy_root(request, source, members, writer, log), writer.finish()
            finally:
                writer.close()

        root, packed = read_image(source, pack, log, index)
        said(index, log)
    return root, packed.size, codec.writer, report(packed.reuse, store)


def with_tar2sqfs(request: SifRequest, source: ImageSource, log: Log) -> Made:
    """Pack with tar2sqfs (the compressors imgforge's writer doesn't have)."""
    tool = shutil.which("tar2sqfs")
    if tool is None:
        raise EngineError(
            f"--compression {request.compression} needs tar2sqfs: apt-get install squashfs-tools-ng"
        )
    roots: list[EnrootRoot] = []

    def feed(sink: IO[bytes]) -> int:
        with (
            tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tout,
            source.filesystem() as stream,
        ):
            roots.append(copy_root(request, source, stream_members(stream), tout, log))
        return roots[0].count

    run_tar2sqfs(tool, request, request.target, feed, log=log, what=WHAT)
    return roots[0], request.target.stat().st_size, tar2sqfs_version(tool), None


def copy_root(
    request: SifRequest, source: ImageSource, members: Iterable[Member], sink: Archive, log: Log
) -> EnrootRoot:
    """Pass the image's entries through :class:`EnrootRoot` into ``sink``."""
    mtime = request.timestamp()
    root = EnrootRoot(sink, source.config, mtime=mtime, clamp=request.source_date_epoch)
    meter, copied = Meter(source.size() or 0, log), 0
    for member, data in members:
        try:
            root.addfile(member, data)
        except tarfile.ReadError as error:
            raise damaged(member, error) from None
        if member.isreg():
            copied += member.size
            meter(copied)
    root.finish()
    return root


def check(request: SifRequest, source: ImageSource, log: Log) -> None:
    """Read enroot's four files back from the new image (``unsquashfs -cat``)."""
    tool = shutil.which("unsquashfs")
    if tool is None:
        raise EngineError("checking a .sqsh needs unsquashfs: apt-get install squashfs-tools")
    for name, text in files(source.config).items():
        found = subprocess.run(
            [tool, "-cat", str(request.target), name], capture_output=True
        )  # fmt: skip
        if found.returncode != 0 or found.stdout != text.encode("utf-8"):
            raise BuildError(
                f"{request.name}: {request.target.name}: /{name} does not read back as written"
            )
    log(f"verify: {request.target.name}: enroot's /etc files read back as written", kind=STEP)
