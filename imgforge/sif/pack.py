"""The native backend: stream ``docker export`` into tar2sqfs and write the SIF directly.

The image's filesystem never touches the disk as files: the export tar is read as a
stream, imgforge's /.singularity.d layout is appended to it, and tar2sqfs packs the
result (keeping owners, modes, hard links, device nodes and xattrs without root).
"""

from __future__ import annotations

import io
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

from imgforge import gojson
from imgforge.atomic import copy_range
from imgforge.errors import BuildError, EngineError
from imgforge.log import STEP, Log
from imgforge.options import COMPRESSIONS
from imgforge.recipes.image import ImageConfig
from imgforge.sif import format as sif
from imgforge.sif import metadata
from imgforge.sif.backend import SifRequest
from imgforge.sif.layout import (
    DEFINITION,
    HISTORY,
    METADATA_DIR,
    directory,
    entries,
    history_path,
    init_layer_leftover,
    normalise,
    replaced,
)

if TYPE_CHECKING:
    from imgforge.engine.docker import DockerEngine

# Less free space than this after tar2sqfs failed: the disk was full.
FULL_BELOW = 1 << 20


@dataclass(frozen=True)
class Transferred:
    """What :func:`transfer` wrote: its entry count, and what of the image's own content
    ``apptainer inspect`` reads (metadata files by path from the root, SCIF app names)."""

    entries: int
    inspected: dict[str, str]
    apps: tuple[str, ...]


class _Copy:
    """The state of one pass over the export stream (see :func:`transfer`)."""

    def __init__(self, tout: tarfile.TarFile, clamp: int | None) -> None:
        self.tout, self.clamp = tout, clamp
        self.count = self.copied = 0
        self.present: set[str] = set()
        self.inspected: dict[str, str] = {}
        self.apps: set[str] = set()
        # The image's definition and hard links to it: added under their new name last.
        self.moved: list[tuple[tarfile.TarInfo, bytes]] = []

    def add(self, member: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        if self.clamp is not None and member.mtime > self.clamp:
            member.mtime = self.clamp
        self.tout.addfile(member, data)
        self.count += 1

    def image_entry(self, member: tarfile.TarInfo, tin: tarfile.TarFile) -> None:
        name = normalise(member.name)
        handle = tin.extractfile(member) if member.isreg() else None
        if name == DEFINITION or member.islnk() and normalise(member.linkname) == DEFINITION:
            self.moved.append((member, handle.read() if handle is not None else b""))
            return
        self.present.add(name)
        if member.isdir() and metadata.is_app_directory(name):
            self.apps.add(name.split("/")[2])
        if handle is not None and metadata.is_inspected(name):
            data = handle.read()
            self.inspected[name] = data.decode("utf-8", "replace")
            handle = io.BytesIO(data)
        self.add(member, handle)
        if member.isreg():
            self.copied += member.size

    def move_definition(self, mtime: int) -> None:
        """insertDefinition: the image's /.singularity.d/Singularity goes to
        bootstrap_history/ApptainerN (the directory made if need be)."""
        if not self.moved:
            return
        target = history_path(self.present)
        if HISTORY not in self.present:
            self.add(directory(HISTORY, mtime).info, None)
        for member, data in self.moved:
            if normalise(member.name) == DEFINITION:
                member.name = target
            else:
                member.linkname = target
            self.add(member, io.BytesIO(data) if member.isreg() else None)
        self.present.add(target)


def transfer(
    source: IO[bytes],
    sink: IO[bytes],
    files: dict[str, str],
    *,
    mtime: int,
    clamp: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Transferred:
    """Copy the tar stream ``source`` to ``sink`` minus the entries imgforge replaces and
    what Docker's init layer adds, then append the layout. With ``clamp``
    (SOURCE_DATE_EPOCH) no entry is newer than it: ``docker export`` stamps what the
    engine adds at container creation (/etc, /dev, ...) with the time.
    ``progress`` gets the running total of file bytes copied."""
    with (
        tarfile.open(fileobj=source, mode="r|") as tin,
        tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tout,
    ):
        copy = _Copy(tout, clamp)
        for member in tin:
            name = normalise(member.name)
            if not name or replaced(name) or init_layer_leftover(member):
                continue
            copy.image_entry(member, tin)
            if progress is not None and member.isreg():
                progress(copy.copied)
        copy.move_definition(mtime)
        for entry in entries(files, present=copy.present, mtime=mtime):
            copy.add(entry.info, entry.fileobj())
    return Transferred(copy.count, copy.inspected, tuple(sorted(copy.apps)))


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


def oci_fields(config: ImageConfig) -> dict[str, Any]:
    """The OCI image config's ``config`` object for ``config``, every field, in
    go-containerregistry's ``v1.Config`` order (containers/image keeps only these when it
    converts a Docker image); Volumes and ExposedPorts as maps to ``{}``."""
    return {
        "Cmd": list(config.cmd),
        "Entrypoint": list(config.entrypoint),
        "Env": list(config.env),
        "Labels": gojson.sorted_map(dict(config.labels)),
        "User": config.user,
        "Volumes": {path: {} for path in sorted(config.volumes)},
        "WorkingDir": config.workdir,
        "ExposedPorts": {port: {} for port in sorted(config.exposed_ports)},
        "ArgsEscaped": config.args_escaped,
        "StopSignal": config.stop_signal,
    }


OCI_CONFIG_FIELDS = frozenset(oci_fields(ImageConfig()))


def oci_config(config: ImageConfig) -> bytes:
    """The image config as Apptainer's ``oci-config.json``: :func:`oci_fields` marshalled
    as Go marshals ``v1.Config`` (``omitempty``)."""
    fields = oci_fields(config)
    return gojson.dumps({k: v for k, v in fields.items() if v}).encode("utf-8")


def inspect_object(request: SifRequest, image: Transferred | None) -> bytes:
    """``inspect-metadata.json`` from the metadata files as they are in the image:
    imgforge's ``request.files`` and what the image had of its own (``image``)."""
    found = dict(image.inspected) if image is not None else {}
    found.update({f"{METADATA_DIR}/{path}": text for path, text in request.files.items()})
    return metadata.inspect_metadata(found, image.apps if image is not None else ())


def write_sif(
    request: SifRequest, squashfs: Path, target: Path, image: Transferred | None = None
) -> None:
    """Header and descriptors, then the data objects in Apptainer's order: Deffile, the
    JSON objects by name (inspect-metadata.json, oci-config.json), the squashfs PrimSys
    partition. Without SOURCE_DATE_EPOCH the header and descriptor times are the build
    time; with it, the nil UUID and Go's zero time (sif.OptCreateDeterministic)."""
    arch = request.config.arch
    if arch not in sif.ARCHES:
        raise BuildError(f"{request.name}: image architecture {arch!r} has no SIF code")
    data = [
        ("Deffile", "", request.deffile.encode("utf-8")),
        ("GenericJSON", "inspect-metadata.json", inspect_object(request, image)),
        ("GenericJSON", "oci-config.json", oci_config(request.config)),
    ]
    objects = [sif.DataObject(kind, len(blob), name=name) for kind, name, blob in data]
    objects.append(
        sif.DataObject(
            "Partition",
            squashfs.stat().st_size,
            align=sif.PARTITION_ALIGN,
            extra=sif.partition_extra(arch),
        )
    )
    if request.source_date_epoch is not None:
        image_id, stamp = uuid.UUID(int=0), sif.ZERO_TIME
    else:
        image_id, stamp = uuid.uuid4(), request.timestamp()
    prefix, offsets = sif.encode_prefix(objects, arch=arch, image_id=image_id, timestamp=stamp)
    with target.open("wb") as out:
        out.write(prefix)
        for offset, (_, _, blob) in zip(offsets, data, strict=False):
            out.seek(offset)
            out.write(blob)
        out.truncate(offsets[-1])
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
            f"({done / 1e6:.0f} of {self.total / 1e6:.0f} MB, {rate:.0f} MB/s)",
            kind=STEP,
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
            image = self.pack(request, squashfs, engine=engine, log=log)
            if request.image_format == "simg":
                write_simg(squashfs, request.target)
            else:
                write_sif(request, squashfs, request.target, image)
        finally:
            squashfs.unlink(missing_ok=True)

    def pack(
        self, request: SifRequest, squashfs: Path, *, engine: DockerEngine, log: Log
    ) -> Transferred:
        """Stream the image's filesystem plus the layout into tar2sqfs."""
        mtime = request.timestamp()
        argv = tar2sqfs_argv(self.tool, squashfs, request.compression, mtime)
        log("$ docker export | imgforge layout | " + " ".join(argv), kind=STEP)
        started = time.monotonic()
        # stderr goes to a file: a pipe nobody reads while we write could fill and block.
        with (
            tempfile.TemporaryFile() as stderr,
            subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=stderr) as proc,
        ):
            assert proc.stdin is not None
            try:
                with engine.exported(request.image_id) as stream:
                    done = transfer(
                        stream,
                        proc.stdin,
                        request.files,
                        mtime=mtime,
                        clamp=request.source_date_epoch,
                        progress=Meter(image_size(engine, request.image_id), log),
                    )
                proc.stdin.close()
            except BrokenPipeError:
                done = Transferred(-1, {}, ())
            except BaseException:
                proc.kill()
                raise
            code = proc.wait()
            stderr.seek(0)
            errors = stderr.read().decode("utf-8", "replace").strip()
        if code != 0 or done.entries < 0:
            last = errors.splitlines()[-1] if errors else f"exit status {code}"
            raise BuildError(f"{request.name}: tar2sqfs failed: {last}{full_disk(squashfs)}")
        size = squashfs.stat().st_size
        log(
            f"packed {done.entries} entries into {size} bytes in {time.monotonic() - started:.1f}s",
            kind=STEP,
        )
        return done
