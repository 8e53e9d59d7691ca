"""The /.singularity.d layout and mount points Apptainer expects, as tar entries."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

METADATA_DIR = ".singularity.d"
# Legacy links Apptainer creates in every image (makeSymlinks).
SYMLINKS = {
    "singularity": ".singularity.d/runscript",
    ".run": ".singularity.d/actions/run",
    ".exec": ".singularity.d/actions/exec",
    ".shell": ".singularity.d/actions/shell",
    ".test": ".singularity.d/actions/test",
    "environment": ".singularity.d/env/90-environment.sh",
}
# Bind targets that must exist in the image (SIF-FORMAT.md §8), with their modes.
MOUNT_POINTS = {
    "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700,
    "sys": 0o555, "tmp": 0o1777, "var": 0o755, "var/tmp": 0o1777,
}  # fmt: skip
# Always written as regular empty files: a dangling symlink here breaks the bind.
BIND_FILES = ("etc/hosts", "etc/resolv.conf")
DATA_FILES = {"labels.json", "Singularity"}


def normalise(name: str) -> str:
    """A tar member name without leading ``./`` or ``/`` and trailing ``/``."""
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def replaced(name: str) -> bool:
    """Whether imgforge writes ``name`` itself (so the image's own entry is dropped)."""
    return (
        name == METADATA_DIR
        or name.startswith(METADATA_DIR + "/")
        or name in SYMLINKS
        or name in BIND_FILES
    )


@dataclass(frozen=True)
class Entry:
    """One tar entry to append: a directory, a file with data, or a symlink."""

    info: tarfile.TarInfo
    data: bytes = b""

    def fileobj(self) -> io.BytesIO | None:
        return io.BytesIO(self.data) if self.info.isreg() else None


def _info(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _file(name: str, data: bytes, mode: int, mtime: int) -> Entry:
    info = _info(name, tarfile.REGTYPE, mode, mtime)
    info.size = len(data)
    return Entry(info, data)


def entries(files: Mapping[str, str], *, present: set[str], mtime: int) -> Iterator[Entry]:
    """Entries to append after the image's own: mount points the image lacks, the bind
    files, the metadata directory with ``files`` (path under it -> text), and the links."""
    for name, mode in MOUNT_POINTS.items():
        if name not in present:
            yield Entry(_info(name, tarfile.DIRTYPE, mode, mtime))
    for name in BIND_FILES:
        yield _file(name, b"", 0o644, mtime)
    directories = {METADATA_DIR, f"{METADATA_DIR}/libs"}
    directories |= {f"{METADATA_DIR}/{path.rsplit('/', 1)[0]}" for path in files if "/" in path}
    for name in sorted(directories):
        yield Entry(_info(name, tarfile.DIRTYPE, 0o755, mtime))
    for path, text in sorted(files.items()):
        mode = 0o644 if path in DATA_FILES else 0o755
        yield _file(f"{METADATA_DIR}/{path}", text.encode("utf-8"), mode, mtime)
    for name, target in SYMLINKS.items():
        info = _info(name, tarfile.SYMTYPE, 0o777, mtime)
        info.linkname = target
        yield Entry(info)
