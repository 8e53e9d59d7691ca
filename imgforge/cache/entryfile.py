"""The cache's files: written atomically, made with modes whatever the umask, and who may
have written them."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path

from imgforge.cache.layout import TEMPORARY_PREFIX

# A segment used more recently than this is not marked used again.
TOUCH_SECONDS = 600
# Directories the cache makes: writable by their owner only, whatever the umask (a
# group-writable umask would make every entry one that must be decompressed to be trusted).
PRIVATE_DIR = 0o755
FILE_MODE = 0o644


def write_atomically(path: Path, blob: bytes | bytearray) -> None:
    """Write ``blob`` to a temporary file beside ``path`` (unique to this process and
    thread; made anew, never through what someone planted under its name), then rename
    it into place. No fsync: a file torn by a crash fails the checks of what it holds
    (an index only says where entries are; each entry has its checksum). Files are 0644
    whatever the umask: a file others may write is never trusted (see BlockCache.lookup)."""
    unique = f"{os.getpid()}.{threading.get_ident()}"
    temporary = path.with_name(f"{TEMPORARY_PREFIX}{path.name}.{unique}")
    try:
        fd = _create(temporary)
    except FileNotFoundError:
        make_private_dir(path.parent)
        fd = _create(temporary)
    try:
        try:
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _create(path: Path) -> int:
    """A new file at ``path``, 0644: a leftover or planted one there is removed first
    (unlink never follows a symbolic link), once."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError:
        os.unlink(path)
        fd = os.open(path, flags, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return fd


def open_regular(path: str | Path) -> tuple[int, os.stat_result] | None:
    """A read-only descriptor of ``path`` and its stat, for a regular file only: a
    symbolic link planted there is never followed, a FIFO never waited on, and a device or
    directory never opened for reading (None, as for a file that can't be opened). The
    caller closes the descriptor."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        found = os.fstat(fd)
    except OSError:
        found = None
    if found is None or not stat.S_ISREG(found.st_mode):
        os.close(fd)
        return None
    return fd, found


def mine(found: os.stat_result) -> bool:
    """A file this user owns and no one else may write."""
    return found.st_uid == os.geteuid() and not found.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def make_private_dir(path: Path, *, parents: bool = False, real: bool = True) -> None:
    """Make ``path`` (and with ``parents`` those above it) PRIVATE_DIR whatever the umask
    (a group-writable one would make everything under it untrusted); one that exists is
    left as it is. With ``real`` (the cache's own directories; not its root, which may be
    a link the user made) it must be a directory itself: anything else there, a symbolic
    link planted in the cache included, raises NotADirectoryError, and nothing is written
    through it."""
    if parents and not path.parent.exists():
        make_private_dir(path.parent, parents=True, real=False)
    try:
        path.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        if real and not stat.S_ISDIR(os.lstat(path).st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(path)) from None
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, PRIVATE_DIR)
    finally:
        os.close(fd)
