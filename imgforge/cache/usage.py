"""What the cache's block entries add up to, kept so that closing a build need not list
every entry (tens of thousands for one NGC-sized image) to know that the cache is within
its limit.

``ROOT/usage`` holds the total as the last listing found it (written by eviction, which
lists every entry anyway); each build appends what it stored to ``ROOT/added`` while it
holds the lock shared. Eviction lists the entries only when the two add up to more than
the limit, when either can't be read, or when the listing is older than RESCAN_SECONDS
(a build killed before it closed added what it never recorded). The files decide only
when eviction lists the cache, never what a build reads.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from pathlib import Path

from imgforge import atomic
from imgforge.cache.layout import ADDED, USAGE

RESCAN_SECONDS = 24 * 3600
# Larger record files are not read: the cache is listed instead.
RECORD_MAX = 1 << 20


def record_added(root: Path, size: int) -> None:
    """Add ``size`` bytes a build stored (one append: whole lines, whatever else appends)."""
    if size <= 0:
        return
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    with contextlib.suppress(OSError):
        fd = os.open(root / ADDED, flags, 0o644)
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):  # never a FIFO or device planted there
                os.write(fd, f"{size}\n".encode())
        finally:
            os.close(fd)


def within(root: Path, limit: int) -> bool:
    """Whether the entries are known to fit in ``limit`` bytes without listing them."""
    base = _read(root / USAGE, fresh=True)
    if base is None:
        return False
    added = _read(root / ADDED, fresh=False)
    if added is None:
        return False
    try:
        total = int(base) + sum(int(line) for line in added.split())
    except ValueError:
        return False
    return 0 <= total <= limit


def record_total(root: Path, total: int) -> None:
    """The total a listing found (the caller holds the lock alone: nothing appends)."""
    with contextlib.suppress(OSError):
        atomic.write_text(root / USAGE, f"{total}\n")
        (root / ADDED).unlink(missing_ok=True)


def forget(root: Path) -> None:
    """Drop both records: the next eviction lists the cache."""
    for name in (USAGE, ADDED):
        with contextlib.suppress(OSError):
            (root / name).unlink()


def _read(path: Path, *, fresh: bool) -> str | None:
    """The text of a record: None when missing (but for ``added``, which is then ""),
    not a small regular file, not text, or (``fresh``) older than RESCAN_SECONDS or
    newer than now."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None if fresh else ""
    except OSError:
        return None
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode) or found.st_size > RECORD_MAX:
            return None
        if fresh and not -60 < time.time() - found.st_mtime <= RESCAN_SECONDS:
            return None  # stale, or stamped in the future (never stale)
        return os.read(fd, RECORD_MAX).decode("ascii")
    except (OSError, UnicodeDecodeError):
        return None
    finally:
        os.close(fd)
