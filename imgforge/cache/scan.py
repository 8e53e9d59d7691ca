"""Read the cache's file system as its index: each profile's entries, sizes and last uses."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR
from typing import NamedTuple

from imgforge.cache.entryfile import open_regular
from imgforge.cache.layout import BLOCKS, HEX_DIGITS, LAYERS, PROFILE_FILE, TEMPORARY_PREFIX
from imgforge.cache.profile import IDENT_BYTES, Profile
from imgforge.cache.segment import INDEX_SUFFIX, SEGMENT_SUFFIX, count, is_name

# A larger profile.json is not one the cache wrote.
PROFILE_MAX = 1 << 16

INDEX_NAME_LENGTH = 64  # hex digits of the SHA-256 of a layer directory's path
FAN_OUT_LENGTH = 2
IDENT_LENGTH = 2 * IDENT_BYTES
# An index, or a writer's temporary file of one (entryfile.write_atomically: .NAME.PID.THREAD).
_INDEX = f"[0-9a-f]{{{INDEX_NAME_LENGTH}}}"
_INDEX_NAME = re.compile(rf"{_INDEX}|{re.escape(TEMPORARY_PREFIX)}{_INDEX}\.[0-9]+\.[0-9]+")


class Entry(NamedTuple):
    """One file: its path, its size in bytes, and its modification time."""

    path: str
    size: int
    used: float


class Segment(NamedTuple):
    """One segment (see segment.py): its index and data files, their size together, its
    last use (the index's modification time, which reading from it refreshes), and how
    many entries its index names."""

    index_path: str
    data_path: str
    size: int
    used: float
    entries: int


@dataclass(frozen=True)
class Listing:
    """One profile directory: its segments, and the files that are no published segment
    (writers' temporary files, a segment without its index or the other way round, files
    of an older layout): a crashed writer's leftovers when no build holds the cache."""

    ident: str
    profile: Profile | None
    segments: list[Segment]
    temporaries: list[Entry]

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def entries(self) -> int:
        return sum(s.entries for s in self.segments)

    @property
    def last_used(self) -> float | None:
        return max((s.used for s in self.segments), default=None)


def listings(root: Path) -> list[Listing]:
    """Every profile directory under ``root``, sorted by ident; none when there is no cache."""
    return [_listing(path) for path in _subdirectories(root / BLOCKS, IDENT_LENGTH)]


def _listing(directory: Path) -> Listing:
    files = {item.name: (item, stat) for item, stat in _files(directory)}
    segments: list[Segment] = []
    paired: set[str] = set()
    for name, (item, stat) in sorted(files.items()):
        data = name[: -len(INDEX_SUFFIX)] + SEGMENT_SUFFIX
        if is_name(name, INDEX_SUFFIX) and data in files:
            size = stat.st_size + files[data][1].st_size
            segments.append(
                Segment(item.path, files[data][0].path, size, stat.st_mtime, count(stat.st_size))
            )
            paired.update((name, data))
    temporaries = [
        Entry(item.path, stat.st_size, stat.st_mtime)
        for name, (item, stat) in files.items()
        if name not in paired and (name.startswith(TEMPORARY_PREFIX) or _segment_file(name))
    ]
    for fan_out in fan_outs(directory):  # an older layout's entries: one file each
        temporaries.extend(Entry(i.path, st.st_size, st.st_mtime) for i, st in _files(fan_out))
    return Listing(directory.name, read_profile(directory), segments, temporaries)


def _segment_file(name: str) -> bool:
    return is_name(name, INDEX_SUFFIX) or is_name(name, SEGMENT_SUFFIX)


def read_profile(directory: Path) -> Profile | None:
    """The profile ``profile.json`` says this directory's entries were made with."""
    opened = open_regular(directory / PROFILE_FILE)  # never waits on a planted FIFO
    if opened is None:
        return None
    fd = opened[0]
    try:
        return Profile.from_json(json.loads(os.read(fd, PROFILE_MAX)))
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        os.close(fd)


def index_directories(root: Path) -> list[Path]:
    """The directories of layer indexes, one per profile (see cache/layers.py)."""
    return _subdirectories(root / LAYERS, IDENT_LENGTH)


def index_files(root: Path) -> list[Entry]:
    """The layer indexes under ``root`` and writers' temporary files of them: regular
    files named as the cache names them, in its profile directories (never what a
    symbolic link there leads to, nor any other file a --cache-dir holds)."""
    found = []
    for directory in index_directories(root):
        for item, stat in _files(directory):
            if _INDEX_NAME.fullmatch(item.name):
                found.append(Entry(item.path, stat.st_size, stat.st_mtime))
    return found


def fan_outs(directory: Path) -> list[Path]:
    """A profile directory's fan-out directories (two hex digits each), where an older
    layout kept one file per entry."""
    return _subdirectories(directory, FAN_OUT_LENGTH)


def _subdirectories(directory: Path, length: int) -> list[Path]:
    """The directories in ``directory`` named with ``length`` hex digits: only what the
    cache made, whatever else a --cache-dir holds (nothing when ``directory`` is not a
    directory itself: a symbolic link planted there leads nowhere)."""
    try:
        if not S_ISDIR(os.lstat(directory).st_mode):
            return []
        with os.scandir(directory) as items:
            return sorted(
                Path(i.path)
                for i in items
                if len(i.name) == length
                and HEX_DIGITS.issuperset(i.name)
                and i.is_dir(follow_symlinks=False)
            )
    except (FileNotFoundError, NotADirectoryError):
        return []


def _files(directory: Path) -> Iterator[tuple[os.DirEntry[str], os.stat_result]]:
    """Regular files of ``directory`` with their lstat; a file removed meanwhile is skipped."""
    try:
        items = os.scandir(directory)
    except FileNotFoundError:
        return
    with items:
        for item in items:
            try:
                stat = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if item.is_file(follow_symlinks=False):
                yield item, stat
