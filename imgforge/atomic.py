"""Write files atomically: a temporary name in the same directory, then a rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO


def stage(path: Path, data: bytes, *, mode: int = 0o644) -> Path:
    """Write ``data`` to a new temporary name beside ``path`` and return that name; the
    caller renames it into place (see :func:`rename_all`) or removes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def umask() -> int:
    """The process umask, read without changing it (os.umask can only set it, and a
    set-and-restore would race with files other threads create meanwhile)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def rename_all(pending: list[tuple[Path, Path]]) -> None:
    """Rename each (temporary, final) pair, in order. Renames need no space, so once
    every file is staged nothing but a crash can leave the set half-moved."""
    for temporary, final in pending:
        os.replace(temporary, final)


def write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a part."""
    tmp = stage(path, data, mode=mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Atomically write UTF-8 text."""
    write_bytes(path, text.encode("utf-8"), mode=mode)


def copy_range(source: IO[bytes], target: IO[bytes], offset: int, size: int) -> None:
    """Append ``size`` bytes of ``source``, from ``offset``, to ``target``: in the kernel
    (copy_file_range) where the file systems allow, else through a buffer."""
    target.flush()
    start = target.seek(0, os.SEEK_END)
    done = 0
    try:
        while done < size:
            step = os.copy_file_range(
                source.fileno(), target.fileno(), size - done, offset + done, start + done
            )
            if step == 0:
                break
            done += step
    except OSError:
        pass  # e.g. EXDEV or ENOSYS: copy the rest through user space
    source.seek(offset + done)
    target.seek(start + done)
    while done < size:
        block = source.read(min(size - done, 1 << 20))
        if not block:
            raise OSError(f"{source.name!r} ends {size - done} bytes early")
        target.write(block)
        done += len(block)
    target.flush()
