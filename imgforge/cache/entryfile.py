"""One cache entry's file: written atomically, read and checked, marked used, discarded."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from imgforge.cache import entry
from imgforge.cache.layout import TEMPORARY_PREFIX

# An entry used more recently than this is not marked used again.
TOUCH_SECONDS = 600
# Directories the cache makes: writable by their owner only, whatever the umask (a
# group-writable umask would make every entry one that must be decompressed to be trusted).
PRIVATE_DIR = 0o755


def write_atomically(path: Path, blob: bytes) -> None:
    """Write ``blob`` to a temporary file beside ``path`` (unique to this process and
    thread), then rename it into place. No fsync: an entry torn by a crash fails its
    checksum and is dropped on the next read."""
    unique = f"{os.getpid()}.{threading.get_ident()}"
    temporary = path.with_name(f"{TEMPORARY_PREFIX}{path.name}.{unique}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    try:
        fd = os.open(temporary, flags, 0o666)
    except FileNotFoundError:
        path.parent.mkdir(exist_ok=True, mode=PRIVATE_DIR)
        fd = os.open(temporary, flags, 0o666)
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


def read(fd: int, key: bytes, size: int) -> tuple[bytes, bool] | None:
    """The entry of ``size`` bytes open at ``fd``: its data read straight into a buffer of
    its own (no copy of it from the file's bytes), checked against its header."""
    if size < entry.HEADER_BYTES:
        return None
    header, data = bytearray(entry.HEADER_BYTES), bytearray(size - entry.HEADER_BYTES)
    if os.readv(fd, [header, data]) != size:
        return None
    compressed = entry.check(key, header, data)
    # A bytearray serves as bytes everywhere the writer takes a block's data.
    return None if compressed is None else (data, compressed)  # type: ignore[return-value]


def touch(fd: int, read: os.stat_result) -> None:
    """Mark an entry used now (its mtime is its last use, for LRU eviction), unless it
    was within the last TOUCH_SECONDS: eviction need not tell those apart, and a warm
    pack reads tens of thousands of entries."""
    if time.time() - read.st_mtime < TOUCH_SECONDS:
        return
    # Another user's entry in a shared cache may refuse: it just ages.
    with contextlib.suppress(OSError):
        os.utime(fd)


def discard(path: str, read: os.stat_result) -> None:
    """Remove a damaged entry, unless another process has just replaced it."""
    try:
        now = os.stat(path)
        if (now.st_dev, now.st_ino) == (read.st_dev, read.st_ino):
            os.unlink(path)
    except OSError:
        pass
