"""Copy an image's filesystem tar stream into an archive writer (imgforge's squashfs
writer, or a tar stream for tar2sqfs), minus what imgforge replaces and plus its
/.singularity.d layout, metering the bytes as they pass.

The image's filesystem never touches the disk as files: the tar is read as a stream and
each entry handed on with its data (keeping owners, modes, hard links, device nodes and
xattrs without root), then imgforge's layout is added.
"""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from imgforge.errors import BuildError
from imgforge.log import STEP, Log
from imgforge.sif import metadata
from imgforge.sif.layout import (
    DEFINITION,
    HISTORY,
    directory,
    entries,
    history_path,
    init_layer_leftover,
    replaced,
)
from imgforge.squashfs.members import Archive, Member, normalise

# How much tarfile reads from the stream at a time: each small read copies what is left of
# this buffer, so larger is slower on the many small files of an image (measured: 32 KiB
# as fast as 10 KiB, 1 MiB twice as slow on a 1 GB, 53,000-entry image).
READ_SIZE = 32768


@dataclass(frozen=True)
class Transferred:
    """What :func:`transfer` wrote: its entry count, and what of the image's own content
    ``apptainer inspect`` reads (metadata files by path from the root, SCIF app names)."""

    entries: int
    inspected: dict[str, str]
    apps: tuple[str, ...]


class _Copy:
    """The state of one pass over the export stream (see :func:`transfer`)."""

    def __init__(self, tout: Archive, clamp: int | None) -> None:
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

    def image_entry(self, member: tarfile.TarInfo, handle: IO[bytes] | None) -> None:
        name = normalise(member.name)
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
    source: Iterable[Member],
    sink: Archive,
    files: dict[str, str],
    *,
    mtime: int,
    clamp: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Transferred:
    """Copy the image's entries ``source`` (:func:`stream_members` of ``docker export``, or
    the image's layers read in place) into ``sink`` minus the entries imgforge replaces and
    what Docker's init layer adds, then append the layout. With ``clamp``
    (SOURCE_DATE_EPOCH) no entry is newer than it: ``docker export`` stamps what the
    engine adds at container creation (/etc, /dev, ...) with the time.
    ``progress`` gets the running total of file bytes copied."""
    copy = _Copy(sink, clamp)
    for member, handle in source:
        name = normalise(member.name)
        if not name or replaced(name) or init_layer_leftover(member):
            continue
        try:
            copy.image_entry(member, handle)
        except tarfile.ReadError as error:
            raise damaged(member, error) from None
        if progress is not None and member.isreg():
            progress(copy.copied)
    copy.move_definition(mtime)
    for entry in entries(files, present=copy.present, mtime=mtime):
        copy.add(entry.info, entry.fileobj())
    return Transferred(copy.count, copy.inspected, tuple(sorted(copy.apps)))


def read_stream(source: IO[bytes]) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    """The entries of the tar stream ``source``, each with the open archive to extract its
    data from while it is the current one; a damaged stream is a BuildError."""
    with tarfile.open(fileobj=source, mode="r|", bufsize=READ_SIZE, tarinfo=_StrictHeader) as tin:
        members = iter(tin)
        while (member := _next(members)) is not None:
            # A stream's members are not needed again: keep memory flat at any image size.
            tin.members.clear()  # type: ignore[attr-defined]
            yield member, tin


def stream_members(source: IO[bytes]) -> Iterator[Member]:
    """The entries of the tar stream ``source``, each with its data (None but for regular
    files), readable while it is the current one."""
    for member, tin in read_stream(source):
        yield member, tin.extractfile(member) if member.isreg() else None


def damaged(member: tarfile.TarInfo, error: tarfile.ReadError) -> BuildError:
    """What a stream that ends inside ``member``'s data is (tarfile raises ReadError)."""
    return BuildError(f"{DAMAGED} in {member.name!r}: {error}")


DAMAGED = "the image's filesystem stream (docker export) is damaged"


# What tarfile raises for a block of zeros (not in its stubs).
_ZERO_BLOCK: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]


class _StrictHeader(tarfile.TarInfo):
    """A tar header read strictly: reading a stream, tarfile takes a damaged header, or a
    stream that stops between two entries without the end-of-archive blocks, for the end
    of the archive, and the rest of the image would be silently missing."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> _StrictHeader:
        try:
            return super().fromtarfile(tarfile_)
        except _ZERO_BLOCK:
            raise  # the archive's own end
        except tarfile.HeaderError as error:
            raise BuildError(f"{DAMAGED} at byte {tarfile_.offset}: {error}") from None


def _next(members: Iterator[tarfile.TarInfo]) -> tarfile.TarInfo | None:
    """The next entry; a header tarfile can't read, or an impossible PAX value (a size
    below zero, a time that is not a number), is a damaged stream."""
    try:
        return next(members, None)
    except (tarfile.TarError, ValueError, OverflowError) as error:
        raise BuildError(f"{DAMAGED}: {error}") from None


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


def transfer_tar(
    source: IO[bytes], sink: IO[bytes], files: dict[str, str], **how: Any
) -> Transferred:
    """:func:`transfer` into a tar stream written to ``sink`` (tar2sqfs' input)."""
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tout:
        return transfer(stream_members(source), tout, files, **how)
