"""Eviction: remove the least recently used entries until the cache fits its limit."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imgforge.cache import lock, usage
from imgforge.cache.layout import BLOCKS, LAYERS, PROFILE_FILE, profile_dir
from imgforge.cache.scan import Entry, fan_outs, index_directories, index_files, listings
from imgforge.errors import ImgforgeError


class CacheBusy(ImgforgeError):
    """Builds are using the cache and the caller chose not to wait for them."""


@dataclass(frozen=True)
class Removed:
    """What an eviction removed, and what it kept (entries and bytes)."""

    entries: int
    size: int
    kept_entries: int
    kept_size: int


def evict(root: Path, limit: int) -> Removed:
    """Remove least recently used entries until at most ``limit`` bytes remain, and
    writers' leftover temporary files. The caller holds the lock alone: no build is
    using the cache, so nothing removed is about to be read."""
    found = listings(root)
    for temporary in (t for listing in found for t in listing.temporaries):
        _remove(temporary)
    entries = sorted((e for listing in found for e in listing.entries), key=_age)
    total = sum(e.size for e in entries)
    removed = removed_size = 0
    for entry in entries:
        if total <= limit:
            break
        _remove(entry)
        total -= entry.size
        removed, removed_size = removed + 1, removed_size + entry.size
    if removed:
        oldest = min((e.used for e in entries[removed:]), default=None)
        _evict_indexes(root, oldest)
    usage.record_total(root, total)
    return Removed(removed, removed_size, len(entries) - removed, total)


def _evict_indexes(root: Path, oldest: float | None) -> None:
    """Remove layer indexes last used before the oldest block kept (None: all of them):
    what they name is mostly gone."""
    for index in index_files(root):
        if oldest is None or index.used < oldest:
            _remove(index)


def _age(entry: Entry) -> tuple[float, str]:
    return entry.used, entry.path  # the name breaks ties, so the order is the same each time


def _remove(entry: Entry) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(entry.path)


def clear(root: Path) -> Removed:
    """Remove every entry and temporary file, then the directories and profile files
    left empty; a file the cache did not make stays, with the directories holding it (the
    lock file stays too, see lock.open_lock). The caller holds the lock alone."""
    found = listings(root)
    for listing in found:
        for entry in (*listing.entries, *listing.temporaries):
            _remove(entry)
        directory = profile_dir(root, listing.ident)
        for fan_out in fan_outs(directory):
            _remove_directory(fan_out)
        _remove(Entry(str(directory / PROFILE_FILE), 0, 0))
        _remove_directory(directory)
    _remove_directory(root / BLOCKS)
    _evict_indexes(root, None)
    for directory in index_directories(root):
        _remove_directory(directory)
    _remove_directory(root / LAYERS)
    usage.forget(root)
    entries = sum(len(listing.entries) for listing in found)
    return Removed(entries, sum(listing.size for listing in found), 0, 0)


def _remove_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        directory.rmdir()  # only when empty: ENOTEMPTY keeps what isn't ours


def prune(
    root: Path,
    *,
    limit: int | None,
    wait: bool = True,
    waiting: Callable[[], None] = lambda: None,
) -> Removed:
    """Evict down to ``limit`` bytes (None: remove everything), holding the lock alone.
    When builds hold it, call ``waiting`` once and wait for them, or with ``wait=False``
    raise CacheBusy."""
    if not (root / BLOCKS).is_dir():
        return Removed(0, 0, 0, 0)
    fd = lock.open_lock(root)
    try:
        if not lock.try_lock(fd, lock.EXCLUSIVE):
            if not wait:
                raise CacheBusy(f"{root}: builds are using the cache; nothing removed")
            waiting()
            lock.wait_lock(fd, lock.EXCLUSIVE, timeout=None)
        return clear(root) if limit is None else evict(root, limit)
    finally:
        lock.unlock(fd)
