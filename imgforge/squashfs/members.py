"""Tar members on their way into an image: their names as paths from the root, and what
takes them (the writer here, a tar stream for tar2sqfs, a pass that changes them)."""

from __future__ import annotations

import tarfile
from typing import IO, Protocol


class Archive(Protocol):
    """What takes the entries: :meth:`tarfile.TarFile.addfile`'s signature."""

    def addfile(self, tarinfo: tarfile.TarInfo, fileobj: IO[bytes] | None = None) -> None: ...


def normalise(name: str) -> str:
    """A tar member name without leading ``./`` or ``/`` and trailing ``/``."""
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")
