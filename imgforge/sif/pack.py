"""The native backend: stream ``docker export`` into tar2sqfs and write the SIF directly.

The image's filesystem never touches the disk as files: the export tar is read as a
stream, imgforge's /.singularity.d layout is appended to it, and tar2sqfs packs the
result (keeping owners, modes, hard links, device nodes and xattrs without root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from imgforge.atomic import copy_range
from imgforge.errors import BuildError, EngineError
from imgforge.image import ImageConfig
from imgforge.options import COMPRESSIONS
from imgforge.sif import format as sif
from imgforge.sif.backend import Log, SifRequest
from imgforge.sif.layout import entries, normalise, replaced

if TYPE_CHECKING:
    from imgforge.engine.docker import DockerEngine

# Less free space than this after tar2sqfs failed: the disk was full.
FULL_BELOW = 1 << 20


def transfer(
    source: IO[bytes],
    sink: IO[bytes],
    files: dict[str, str],
    *,
    mtime: int,
    clamp: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Copy the tar stream ``source`` to ``sink`` minus the entries imgforge replaces,
    then append the layout; returns the number of entries written. With ``clamp``
    (SOURCE_DATE_EPOCH) no entry is newer than it: ``docker export`` stamps what the
    engine adds at container creation (/.dockerenv, /etc, /dev, ...) with the time.
    ``progress`` gets the running total of file bytes copied."""
    count = copied = 0
    present: set[str] = set()
    with (
        tarfile.open(fileobj=source, mode="r|") as tin,
        tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tout,
    ):
        for member in tin:
            name = normalise(member.name)
            if not name or replaced(name):
                continue
            present.add(name)
            if clamp is not None and member.mtime > clamp:
                member.mtime = clamp
            tout.addfile(member, tin.extractfile(member) if member.isreg() else None)
            count += 1
            if progress is not None and member.isreg():
                copied += member.size
                progress(copied)
        for entry in entries(files, present=present, mtime=mtime):
            tout.addfile(entry.info, entry.fileobj())
            count += 1
    return count


def tar2sqfs_argv(tool: str, output: Path, compression: str, mtime: int) -> list[str]:
    return [
        tool,
        "--quiet",
        "--force",
        "--no-skip",
        "--compressor", compression,
        "--num-jobs", str(os.cpu_count() or 1),
        "--defaults", f"mtime={mtime}",
        str(output),
    ]  # fmt: skip


def oci_config(config: ImageConfig) -> bytes:
    """The image config as Apptainer's ``oci-config.json`` (Go field names, omitempty)."""
    fields: dict[str, Any] = {
        "User": config.user,
        "Env": list(config.env),
        "Entrypoint": list(config.entrypoint),
        "Cmd": list(config.cmd),
        "WorkingDir": config.workdir,
        "Labels": dict(config.labels),
    }
    return json.dumps({k: v for k, v in fields.items() if v}, separators=(",", ":")).encode()


def write_sif(request: SifRequest, squashfs: Path, target: Path) -> None:
    """Header, descriptors, Deffile, oci-config.json, then the squashfs PrimSys partition."""
    arch = request.config.arch
    if arch not in sif.ARCHES:
        raise BuildError(f"{request.name}: image architecture {arch!r} has no SIF code")
    deffile = request.deffile.encode("utf-8")
    config = oci_config(request.config)
    objects = [
        sif.DataObject("Deffile", len(deffile)),
        sif.DataObject("GenericJSON", len(config), name="oci-config.json"),
        sif.DataObject(
            "Partition",
            squashfs.stat().st_size,
            align=sif.PARTITION_ALIGN,
            extra=sif.partition_extra(arch),
        ),
    ]
    if request.source_date_epoch is not None:
        image_id, stamp = uuid.UUID(int=0), sif.ZERO_TIME
    else:
        image_id, stamp = uuid.uuid4(), int(time.time())
    prefix, offsets = sif.encode_prefix(objects, arch=arch, image_id=image_id, timestamp=stamp)
    with target.open("wb") as out:
        out.write(prefix)
        for offset, data in zip(offsets, (deffile, config), strict=False):
            out.seek(offset)
            out.write(data)
        out.truncate(offsets[2])
        with squashfs.open("rb") as source:
            copy_range(source, out, 0, squashfs.stat().st_size)
        os.fsync(out.fileno())


def write_simg(squashfs: Path, target: Path) -> None:
    """The legacy Singularity 2.x image: the launch line, then the squashfs."""
    with target.open("wb") as out:
        out.write(sif.LAUNCH_SCRIPT)
        with squashfs.open("rb") as source:
            copy_range(source, out, 0, squashfs.stat().st_size)
        os.fsync(out.fileno())


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


class Meter:
    """Logs ``packing N% (X of Y MB, Z MB/s)`` at each further tenth of the image."""

    def __init__(self, total: int, log: Log) -> None:
        self.total, self.log = max(total, 1), log
        self.started = time.monotonic()
        self.next_tenth = 1

    def __call__(self, done: int) -> None:
        if done * 10 < self.next_tenth * self.total:
            return
        self.next_tenth = done * 10 // self.total + 1
        rate = done / max(time.monotonic() - self.started, 1e-3) / 1e6
        self.log(
            f"packing {min(done * 100 // self.total, 100)}% "
            f"({done / 1e6:.0f} of {self.total / 1e6:.0f} MB, {rate:.0f} MB/s)"
        )


def image_size(engine: DockerEngine, image_id: str) -> int:
    found = engine.inspect(image_id) or {}
    return int(found.get("Size") or 0)


@dataclass(frozen=True)
class NativeBackend:
    """Writes SIF files itself; needs only tar2sqfs (squashfs-tools-ng)."""

    tool: str
    name: str = "native"

    @classmethod
    def create(cls) -> NativeBackend:
        tool = shutil.which("tar2sqfs")
        if tool is None:
            raise EngineError(
                "--singularity native needs tar2sqfs: apt-get install squashfs-tools-ng"
            )
        return cls(tool)

    def version(self) -> str:
        result = subprocess.run([self.tool, "--version"], capture_output=True, text=True)
        return (result.stdout.splitlines() or ["tar2sqfs"])[0]

    def make(self, request: SifRequest, *, engine: DockerEngine, log: Log) -> None:
        if request.compression not in COMPRESSIONS:
            raise BuildError(f"{request.name}: unknown squashfs compressor {request.compression!r}")
        squashfs = request.target.with_name(f".{request.target.name}.sqfs.tmp")
        try:
            self.pack(request, squashfs, engine=engine, log=log)
            if request.image_format == "simg":
                write_simg(squashfs, request.target)
            else:
                write_sif(request, squashfs, request.target)
        finally:
            squashfs.unlink(missing_ok=True)

    def pack(self, request: SifRequest, squashfs: Path, *, engine: DockerEngine, log: Log) -> None:
        """Stream the image's filesystem plus the layout into tar2sqfs."""
        mtime = request.source_date_epoch or int(time.time())
        argv = tar2sqfs_argv(self.tool, squashfs, request.compression, mtime)
        log("$ docker export | imgforge layout | " + " ".join(argv))
        started = time.monotonic()
        # stderr goes to a file: a pipe nobody reads while we write could fill and block.
        with (
            tempfile.TemporaryFile() as stderr,
            subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=stderr) as proc,
        ):
            assert proc.stdin is not None
            try:
                with engine.exported(request.image_id) as stream:
                    count = transfer(
                        stream,
                        proc.stdin,
                        request.files,
                        mtime=mtime,
                        clamp=request.source_date_epoch,
                        progress=Meter(image_size(engine, request.image_id), log),
                    )
                proc.stdin.close()
            except BrokenPipeError:
                count = -1
            except BaseException:
                proc.kill()
                raise
            code = proc.wait()
            stderr.seek(0)
            errors = stderr.read().decode("utf-8", "replace").strip()
        if code != 0 or count < 0:
            last = errors.splitlines()[-1] if errors else f"exit status {code}"
            raise BuildError(f"{request.name}: tar2sqfs failed: {last}{full_disk(squashfs)}")
        size = squashfs.stat().st_size
        log(f"packed {count} entries into {size} bytes in {time.monotonic() - started:.1f}s")
