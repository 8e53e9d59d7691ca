"""The native backend's way for the compressors imgforge's writer doesn't pack (lz4, lzo):
stream the image's filesystem into tar2sqfs, then copy its squashfs into the SIF.

The filesystem comes from the image source as a tar stream (see :mod:`imgforge.sif.transfer`);
the SIF or .simg file around the squashfs is written by :mod:`imgforge.sif.assemble`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from imgforge.compressors import COMPRESSORS
from imgforge.errors import BuildError
from imgforge.log import STEP, Log
from imgforge.sif.assemble import write_sif, write_simg
from imgforge.sif.backend import SifRequest
from imgforge.sif.source import ImageSource
from imgforge.sif.transfer import Meter, Transferred, transfer_tar

# Less free space than this after tar2sqfs failed: the disk was full.
FULL_BELOW = 1 << 20


def tar2sqfs_argv(tool: str, output: Path, compression: str, mtime: int) -> list[str]:
    return [
        tool,
        "--quiet",
        "--force",
        "--no-skip",
        "--compressor", COMPRESSORS[compression].tar2sqfs,
        "--num-jobs", str(os.cpu_count() or 1),
        "--defaults", f"mtime={mtime}",
        str(output),
    ]  # fmt: skip


def tar2sqfs_version(tool: str) -> str:
    result = subprocess.run([tool, "--version"], capture_output=True, text=True)
    return (result.stdout.splitlines() or ["tar2sqfs"])[0]


def full_disk(partial: Path) -> str:
    """tar2sqfs reports a full disk as an "I/O error": say so when the file system of
    its (still present) partial output has no room left."""
    try:
        stat = os.statvfs(partial.parent)
    except OSError:
        return ""
    free = stat.f_bavail * stat.f_frsize
    if free >= FULL_BELOW:
        return ""
    return f" (no space left on device: {free} bytes free in {partial.parent})"


def make_with_tar2sqfs(tool: str, request: SifRequest, *, source: ImageSource, log: Log) -> None:
    """Pack with tar2sqfs into a squashfs beside the target, then write the image file."""
    squashfs = request.target.with_name(f".{request.target.name}.sqfs.tmp")
    try:
        image = pack(tool, request, squashfs, source=source, log=log)
        if request.image_format == "simg":
            write_simg(squashfs, request.target)
        else:
            write_sif(request, squashfs, request.target, image)
    finally:
        squashfs.unlink(missing_ok=True)


def pack(
    tool: str, request: SifRequest, squashfs: Path, *, source: ImageSource, log: Log
) -> Transferred:
    """Stream the image's filesystem plus the layout into tar2sqfs."""
    mtime = request.timestamp()
    done: list[Transferred] = []

    def feed(sink: IO[bytes]) -> int:
        with source.filesystem() as stream:
            done.append(transfer_tar(
                stream, sink, request.files, mtime=mtime, clamp=request.source_date_epoch,
                progress=Meter(source.size() or 0, log),
            ))  # fmt: skip
        return done[0].entries

    run_tar2sqfs(tool, request, squashfs, feed, log=log, what="imgforge layout")
    return done[0]


def run_tar2sqfs(
    tool: str, request: SifRequest, squashfs: Path, feed: Callable[[IO[bytes]], int], *,
    log: Log, what: str,
) -> None:  # fmt: skip
    """Run tar2sqfs writing ``squashfs`` while ``feed`` writes the tar stream into its input
    (``feed`` returns the number of entries it wrote)."""
    argv = tar2sqfs_argv(tool, squashfs, request.compression, request.timestamp())
    log(f"$ docker export | {what} | " + " ".join(argv), kind=STEP)
    started = time.monotonic()
    # stderr goes to a file: a pipe nobody reads while we write could fill and block.
    with (
        tempfile.TemporaryFile() as stderr,
        subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=stderr) as proc,
    ):
        assert proc.stdin is not None
        try:
            entries = feed(proc.stdin)
            proc.stdin.close()
        except BrokenPipeError:  # tar2sqfs stopped: its own message says why
            entries = -1
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        except BaseException:
            proc.kill()
            raise
        code = proc.wait()
        stderr.seek(0)
        errors = stderr.read().decode("utf-8", "replace").strip()
    if code != 0 or entries < 0:
        last = errors.splitlines()[-1] if errors else f"exit status {code}"
        raise BuildError(f"{request.name}: tar2sqfs failed: {last}{full_disk(squashfs)}")
    size = squashfs.stat().st_size
    log(
        f"packed {entries} entries into {size} bytes in {time.monotonic() - started:.1f}s",
        kind=STEP,
    )
