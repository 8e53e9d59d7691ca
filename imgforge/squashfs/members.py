"""Tar members on their way into an image: their names as paths from the root, and what
takes them (the writer here, a tar stream for tar2sqfs, a pass that changes them)."""

from __future__ import annotations

import tarfile
from typing import IO, Protocol, cast

from imgforge.errors import LayersUnreadable


class Archive(Protocol):
    """What takes the entries: :meth:`tarfile.TarFile.addfile`'s signature."""

    def addfile(self, tarinfo: tarfile.TarInfo, fileobj: IO[bytes] | None = None) -> None: ...


# One entry of an image's filesystem: its header, and its data (a regular file's) to read:
# a tar stream's, or an OnDisk (which reads as a file does: see on_disk).
Member = tuple[tarfile.TarInfo, "IO[bytes] | None"]


def normalise(name: str) -> str:
    """A tar member name without leading ``./`` or ``/`` and trailing ``/``."""
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


class OnDisk:
    """A regular file's data as a file of an image layer on this machine, which does not
    change while the layer exists: a file object reading it from the start, with what the
    block cache's layer index needs to know the file again without reading it.

    ``layer`` names the layer directory, ``name`` the path within it, and ``stamp`` is
    (inode, size, mtime ns, ctime ns) as :func:`os.lstat` gave them: writing to a file
    changes its ctime, which no one but the clock can set back.

    A file that can't be read (not this process's to read, gone with its layer) raises
    :class:`LayersUnreadable`, as the layer walk does for a directory, so that the pack
    starts again from the export, which the engine reads itself."""

    __slots__ = ("path", "layer", "name", "stamp", "_file", "_left")

    def __init__(self, path: str, layer: str, name: str, stamp: tuple[int, int, int, int]):
        self.path, self.layer, self.name, self.stamp = path, layer, name, stamp
        self._file: IO[bytes] | None = None
        self._left = stamp[1]

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left when negative); the file is closed once
        its size has been read, and reads nothing more after that."""
        if self._left <= 0:
            return b""
        try:
            if self._file is None:
                self._file = open(self.path, "rb")  # noqa: SIM115 - closed at the end of the data
            data = self._file.read(size)
        except OSError as error:
            raise self._unreadable(error) from None
        self._left -= len(data)
        if not data or size < 0:
            self._left = 0
        if self._left <= 0:
            self.close()
        return data

    def block(self, index: int, size: int) -> bytes:
        """The ``index``-th block of ``size`` bytes, read on its own (from any thread)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(index * size)
                return handle.read(size)
        except OSError as error:
            raise self._unreadable(error) from None

    def exactly(self, index: int, block_size: int, size: int) -> bytes:
        """:meth:`block`, which must have ``size`` bytes: a file that changed under the
        pack (or that the layer index knew wrongly) is never a block of other bytes: the
        pack starts again from the export."""
        data = self.block(index, block_size)
        if len(data) != size:
            raise LayersUnreadable(f"{self.path}: the file changed while it was packed")
        return data

    def _unreadable(self, error: OSError) -> LayersUnreadable:
        reason = error.strerror or str(error)
        return LayersUnreadable(f"{self.path}: cannot read the image's layer file ({reason})")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def on_disk(file: OnDisk) -> IO[bytes]:
    """``file`` where a file object is taken: it has the ``read`` they use."""
    return cast("IO[bytes]", file)
