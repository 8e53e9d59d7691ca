"""The cache's lock file: builds share it while they use the cache, eviction takes it alone."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from pathlib import Path

from imgforge.cache.layout import LOCK

SHARED, EXCLUSIVE = fcntl.LOCK_SH, fcntl.LOCK_EX
# How often a waiting open or prune tries the lock again.
POLL_SECONDS = 0.1


def open_lock(root: Path) -> int:
    """A descriptor of ``ROOT/lock``, made if missing. The file is never removed: a
    process waiting on an unlinked lock file would hold a lock no one else sees. In a
    cache we may only read, the existing file opened for reading locks all the same.
    Only a regular file is opened (a symbolic link planted there is never followed, a
    FIFO never waited on): anything else raises OSError."""
    path = root / LOCK
    flags = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o666)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise _not_a_lock(path) from exc if exc.errno in _PLANTED else exc
        fd = os.open(path, os.O_RDONLY | flags)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_a_lock(path)
    return fd


# What opening a planted symbolic link (ELOOP) or directory (EISDIR) gives.
_PLANTED = (errno.ELOOP, errno.EISDIR)


def _not_a_lock(path: Path) -> OSError:
    return OSError(errno.EINVAL, "not a regular file (the cache's lock)", str(path))


def try_lock(fd: int, operation: int) -> bool:
    """Take ``operation`` (LOCK_SH or LOCK_EX) without waiting; False when others hold it."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def wait_lock(fd: int, operation: int, *, timeout: float | None) -> bool:
    """Take ``operation``, waiting up to ``timeout`` seconds (None: as long as it takes)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not try_lock(fd, operation):
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def unlock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
