"""The /.singularity.d layout and mount points Apptainer expects, as tar entries."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from imgforge.squashfs.members import normalise

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
# Bind targets that must exist in the image, with their modes: 0755, as Apptainer's
# makeDirs makes the ones an image lacks (internal/pkg/build/sources/base_environment.go).
# Without an overlay the runtime refuses a missing one: "destination ... doesn't exist in
# container" (apptainer internal/pkg/runtime/engine/apptainer/container_linux.go).
MOUNT_POINTS = {
    "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755, "root": 0o755,
    "sys": 0o755, "tmp": 0o755, "var": 0o755, "var/tmp": 0o755,
}  # fmt: skip
# Always written as regular empty files: a dangling symlink here breaks the bind.
BIND_FILES = ("etc/hosts", "etc/resolv.conf")
DATA_FILES = {"labels.json", "Singularity"}
# Files under /.singularity.d that Apptainer writes when it builds from a Docker image,
# over the image's own (makeBaseEnv with overwrite, the runscript, 10-docker2singularity.sh,
# labels.json, the definition): imgforge writes the same set. The image's other files
# there are kept, as Apptainer keeps them; its definition moves to bootstrap_history.
WRITTEN = frozenset({
    "Singularity", "labels.json", "runscript", "startscript",
    "actions/exec", "actions/run", "actions/shell", "actions/start", "actions/test",
    "env/01-base.sh", "env/10-docker2singularity.sh", "env/90-environment.sh",
    "env/95-apps.sh", "env/99-base.sh", "env/99-runtimevars.sh",
})  # fmt: skip
DEFINITION = f"{METADATA_DIR}/Singularity"
HISTORY = f"{METADATA_DIR}/bootstrap_history"
# Directories Apptainer makes (MkdirAll: an existing one is kept as it is).
DIRECTORIES = (
    METADATA_DIR,
    f"{METADATA_DIR}/actions",
    f"{METADATA_DIR}/env",
    f"{METADATA_DIR}/libs",
)
# What `docker export` shows of Docker's init layer (moby daemon/initlayer) that no
# image holds: every container gets these, replacing the image's own at those paths.
# (Its /etc/hosts and /etc/resolv.conf are replaced by the bind files; its /proc and /sys
# are directories Apptainer needs anyway, kept.)
INIT_LAYER_FILES = (".dockerenv", "dev/console", "etc/hostname")
INIT_LAYER_DIRECTORIES = ("dev/pts", "dev/shm")
INIT_LAYER_MTAB = ("etc/mtab", "/proc/mounts")


def replaced(name: str) -> bool:
    """Whether imgforge writes ``name`` itself, so that the image's own entry is dropped
    (the definition is not: it moves, see :func:`history_path`)."""
    if name in BIND_FILES:
        return True
    path = name.removeprefix(METADATA_DIR + "/")
    return path != name and path in WRITTEN and name != DEFINITION


def init_layer_leftover(member: tarfile.TarInfo) -> bool:
    """Whether ``member`` of ``docker export`` is what Docker's init layer puts there:
    an empty /.dockerenv, /dev/console or /etc/hostname, the /dev/pts and /dev/shm mount
    points, /etc/mtab -> /proc/mounts."""
    name = normalise(member.name)
    if name in INIT_LAYER_FILES:
        return member.isreg() and member.size == 0
    if name in INIT_LAYER_DIRECTORIES:
        return member.isdir()
    return (name, member.linkname) == INIT_LAYER_MTAB and member.issym()


def history_path(names: Iterable[str]) -> str:
    """Where the image's own definition goes (insertDefinition): bootstrap_history/ApptainerN,
    N the number of entries already in that directory."""
    inside = {n for n in names if n.startswith(HISTORY + "/") and "/" not in n[len(HISTORY) + 1 :]}
    return f"{HISTORY}/Apptainer{len(inside)}"


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


def directory(name: str, mtime: int) -> Entry:
    return Entry(_info(name, tarfile.DIRTYPE, 0o755, mtime))


def entries(files: Mapping[str, str], *, present: set[str], mtime: int) -> Iterator[Entry]:
    """Entries to append after the image's own: mount points, metadata directories and
    legacy links the image lacks, the bind files, and ``files`` (path under the metadata
    directory -> text)."""
    for name, mode in MOUNT_POINTS.items():
        if name not in present:
            yield Entry(_info(name, tarfile.DIRTYPE, mode, mtime))
    for name in BIND_FILES:
        yield _file(name, b"", 0o644, mtime)
    directories = set(DIRECTORIES)
    directories |= {f"{METADATA_DIR}/{path.rsplit('/', 1)[0]}" for path in files if "/" in path}
    for name in sorted(directories - present):
        yield directory(name, mtime)
    for path, text in sorted(files.items()):
        mode = 0o644 if path in DATA_FILES else 0o755
        yield _file(f"{METADATA_DIR}/{path}", text.encode("utf-8"), mode, mtime)
    # makeSymlinks: only where the image has nothing at that name.
    for name, target in SYMLINKS.items():
        if name not in present:
            info = _info(name, tarfile.SYMTYPE, 0o777, mtime)
            info.linkname = target
            yield Entry(info)
