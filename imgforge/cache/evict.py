"""Eviction: remove the least recently used entries until the cache fits its limit."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imgforge.cache import lock
from imgforge.cache.layout import BLOCKS, LAYERS, PROFILE_FILE, RECORDS, profile_dir
from imgforge.cache.scan import Entry, Segment, fan_outs, index_directories, index_files, listings
from imgforge.errors import ImgforgeError


class CacheBusy(ImgforgeError):
    """Builds are using the cache and the caller chose not to wait for them."""


@dataclass(frozen=True)
class Removed:
    """What an eviction removed, and what it kept (entries and bytes of segments)."""

    entries: int
    size: int
    kept_entries: int
    kept_size: int


def evict(root: Path, limit: int) -> Removed:
    """Remove least recently used segments until at most ``limit`` bytes remain (the
    layer indexes count too), and writers' leftovers. The caller holds the lock alone: no
    build is using the cache, so nothing removed is about to be read."""
    found = listings(root)
    for temporary in (t for listing in found for t in listing.temporaries):
        _remove(temporary.path)
    segments = sorted((s for listing in found for s in listing.segments), key=_age)
    indexes = index_files(root)
    total = sum(s.size for s in segments) + sum(index.size for index in indexes)
    entries = sum(s.entries for s in segments)
    removed = removed_entries = removed_size = 0
    for segment in segments:
        if total <= limit:
            break
        _remove_segment(segment)
        total -= segment.size
        removed += 1
        removed_entries, removed_size = (
            removed_entries + segment.entries,
            removed_size + segment.size,
        )
    if removed or total > limit:
        kept = segments[removed:]
        gone, indexes = _evict_indexes(indexes, min((s.used for s in kept), default=None))
        if total - gone > limit:  # the indexes alone are over it
            gone += _evict_indexes(indexes, None)[0]
        total, removed_size = total - gone, removed_size + gone
    _remove_records(root)
    return Removed(removed_entries, removed_size, entries - removed_entries, total)


def _remove_segment(segment: Segment) -> None:
    """Its index first: no segment is ever named without its data."""
    _remove(segment.index_path)
    _remove(segment.data_path)


def _evict_indexes(indexes: list[Entry], oldest: float | None) -> tuple[int, list[Entry]]:
    """Remove the layer indexes last used before the oldest segment kept (None: all of
    them): what they name is mostly gone. The bytes removed, and the indexes kept."""
    gone, kept = 0, []
    for index in indexes:
        if oldest is None or index.used < oldest:
            _remove(index.path)
            gone += index.size
        else:
            kept.append(index)
    return gone, kept


def _age(segment: Segment) -> tuple[float, str]:
    return segment.used, segment.index_path  # the name breaks ties: the same order each time


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def clear(root: Path) -> Removed:
    """Remove every segment and leftover file, then the directories and profile files
    left empty; a file the cache did not make stays, with the directories holding it (the
    lock file stays too, see lock.open_lock). The caller holds the lock alone."""
    found = listings(root)
    for listing in found:
        for segment in listing.segments:
            _remove_segment(segment)
        for temporary in listing.temporaries:
            _remove(temporary.path)
        directory = profile_dir(root, listing.ident)
        for fan_out in fan_outs(directory):
            _remove_directory(fan_out)
        _remove(str(directory / PROFILE_FILE))
        _remove_directory(directory)
    _remove_directory(root / BLOCKS)
    _evict_indexes(index_files(root), None)
    for directory in index_directories(root):
        _remove_directory(directory)
    _remove_directory(root / LAYERS)
    _remove_records(root)
    entries = sum(listing.entries for listing in found)
    return Removed(entries, sum(listing.size for listing in found), 0, 0)


def _remove_records(root: Path) -> None:
    """The usage records an earlier version kept in the root."""
    for name in RECORDS:
        with contextlib.suppress(OSError):
            (root / name).unlink()


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
