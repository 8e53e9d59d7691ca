"""One build of a recipe at a time per output directory (an advisory file lock)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from imgforge.errors import BuildError

LOCK_FILE = ".imgforge.lock"


@contextmanager
def recipe_lock(
    directory: Path, *, what: str, wait: bool, say: Callable[[str], None]
) -> Iterator[None]:
    """Hold ``directory/.imgforge.lock`` while building; another imgforge building the
    same recipe into the same ``--out`` makes this wait (``wait``) or fail clearly. The
    kernel releases the lock when a process dies, so a crash leaves nothing stale."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise BuildError(
                    f"{what}: another imgforge is building it into {directory} "
                    "(run again with --wait to wait for it)"
                ) from None
            say(f"{what}: waiting for another imgforge building it into {directory}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
