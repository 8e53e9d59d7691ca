"""BlockCache: get and put compressed blocks by key, safely from many threads and processes."""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from imgforge import atomic
from imgforge.cache import entry, entryfile, lock
from imgforge.cache.catalog import Catalog, Damaged
from imgforge.cache.evict import Removed, evict
from imgforge.cache.layout import PROFILE_FILE, profile_dir
from imgforge.cache.profile import Profile
from imgforge.cache.segment import SegmentWriter
from imgforge.sizes import DEFAULT_CACHE_LIMIT

DEFAULT_LIMIT = DEFAULT_CACHE_LIMIT
# How long opening waits for an `imgforge cache prune` to finish before going without.
OPEN_TIMEOUT = 60.0
_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


@dataclass
class CacheStats:
    """What one BlockCache did. ``hit_bytes`` counts the data bytes ``get`` returned."""

    hits: int = 0
    misses: int = 0
    hit_bytes: int = 0
    stored: int = 0
    stored_bytes: int = 0
    corrupt: int = 0
    write_errors: int = 0


class BlockCache:
    """Compressed squashfs blocks of one profile, by key (see the package docstring).
    Never fails a build: an unusable cache misses everything and says why in
    ``disabled``; a failed write stops further writes and says why in ``unwritable``."""

    def __init__(
        self,
        root: Path,
        profile: Profile,
        *,
        limit: int | None = DEFAULT_LIMIT,
        directory: Path | None = None,
        lock_fd: int | None = None,
        disabled: str | None = None,
    ) -> None:
        self.root, self.profile, self.limit = root, profile, limit
        self.stats = CacheStats()
        self.disabled = None if directory is not None else disabled or "not opened"
        self.unwritable: str | None = None
        self.evicted: Removed | None = None  # what close() removed, when it could evict
        self._directory, self._lock_fd = directory, lock_fd
        self._counting = threading.Lock()
        self._private_dirs: dict[str, bool] = {}
        # No entry is larger: a block is stored compressed only when that is smaller.
        largest = entry.HEADER_BYTES + profile.block_size
        self._catalog = Catalog(str(directory or ""), self.private, largest)
        self._writer: SegmentWriter | None = None
        self._written = -1  # the writer's segment's number in the catalog

    @classmethod
    def open(cls, root: Path, profile: Profile, *, limit: int | None = DEFAULT_LIMIT) -> BlockCache:
        """The cache under ``root`` for ``profile``, sharing ROOT/lock until close();
        ``limit`` (bytes, None: no limit) is what close() evicts down to."""
        try:
            fd = lock.open_lock(_made(root))
        except OSError as exc:
            return cls(root, profile, limit=limit, disabled=f"{root}: {_reason(exc)}")
        try:
            if not lock.wait_lock(fd, lock.SHARED, timeout=OPEN_TIMEOUT):
                lock.unlock(fd)
                return cls(root, profile, limit=limit, disabled=f"{root}: busy being pruned")
            directory = _profile_directory(root, profile)
        except OSError as exc:
            lock.unlock(fd)
            return cls(root, profile, limit=limit, disabled=f"{root}: {_reason(exc)}")
        return cls(root, profile, limit=limit, directory=directory, lock_fd=fd)

    def get(self, key: bytes) -> tuple[bytes, bool] | None:
        """(data, compressed) stored under ``key``, or None. A damaged entry is counted in
        ``stats.corrupt`` and missed from then on; nothing here raises for what the disk
        holds."""
        found = self.lookup(key)
        return None if found is None else (found[0], found[1])

    def lookup(self, key: bytes) -> tuple[bytes, bool, bool] | None:
        """:meth:`get`, and whether the entry is private: its segment and every directory
        from the cache root down to it belong to this user and no one else may write them,
        so only this user's builds (or root) can have put it there, and its checksum is all
        the check it needs. Any other entry may hold what another user put under the key."""
        found = None if self._directory is None else self._read(key)
        with self._counting:
            if found is None:
                self.stats.misses += 1
            else:
                self.stats.hits += 1
                self.stats.hit_bytes += len(found[0])
        return found

    def put(self, key: bytes, data: bytes, *, compressed: bool) -> None:
        """Store ``data`` under ``key`` in this build's segment (other builds read it once
        close() has published it). An OSError is counted in ``stats.write_errors`` and
        stops further puts."""
        if self._directory is None or self.unwritable is not None:
            return
        try:
            writer = self._writer or self._start_writing(self._directory)
            offset, size = writer.append(key, data, compressed=compressed)
        except OSError as exc:
            with self._counting:
                self.stats.write_errors += 1
                self.unwritable = f"{self._directory}: {_reason(exc)}"
            return
        self._catalog.add(self._written, key, offset, size)
        with self._counting:
            self.stats.stored += 1
            self.stats.stored_bytes += len(data)

    def _start_writing(self, directory: Path) -> SegmentWriter:
        with self._counting:
            if self._writer is None:
                writer = SegmentWriter(directory)
                self._written = self._catalog.adopt(writer.fd, str(writer.temporary))
                self._writer = writer
            return self._writer

    def close(self) -> None:
        """Publish this build's segment and let go of the cache; when no other process
        is using it, evict the least recently used segments down to the limit first (a
        listing of a few files per profile: segments, not entries)."""
        fd, self._lock_fd = self._lock_fd, None
        self._directory = None
        if fd is None:
            return
        try:
            self._catalog.close()
            self._publish()
            if self.limit is not None and lock.try_lock(fd, lock.EXCLUSIVE):
                self.evicted = evict(self.root, self.limit)
        except OSError:
            pass  # housekeeping: a failed eviction leaves the cache larger, never wrong
        finally:
            lock.unlock(fd)

    def __enter__(self) -> BlockCache:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _publish(self) -> None:
        """Publish this build's segment; one that can't be is removed (its entries kept
        nowhere, counted in ``stats.write_errors``)."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.publish()
        except OSError as exc:
            self.stats.write_errors += 1
            self.unwritable = f"{writer.directory}: {_reason(exc)}"

    def private(self, directory: Path | str) -> bool:
        """Whether ``directory`` and those above it up to the root are this user's alone
        (owned, a real directory, not writable by group or others); remembered."""
        found = self._private_dirs.get(str(directory))
        if found is None:
            path = Path(directory)
            top = path == self.root or path.parent == path
            found = _owned(path) and (top or self.private(path.parent))
            self._private_dirs[str(directory)] = found
        return found

    def _read(self, key: bytes) -> tuple[bytes, bool, bool] | None:
        if len(key) != entry.KEY_BYTES:
            raise ValueError(f"a cache key has {entry.KEY_BYTES} bytes, not {len(key)}")
        try:
            return self._catalog.read(key)
        except Damaged:
            with self._counting:
                self.stats.corrupt += 1
            return None


def _owned(directory: Path) -> bool:
    try:
        found = os.lstat(directory)
    except OSError:
        return False
    return stat.S_ISDIR(found.st_mode) and entryfile.mine(found)


def _made(root: Path) -> Path:
    try:
        entryfile.make_private_dir(root, parents=True, real=False)
    except OSError:
        if not root.is_dir():
            raise
    return root


def _profile_directory(root: Path, profile: Profile) -> Path:
    """The profile's directory, made with its profile.json when missing (a read-only
    cache that has it is used for reading)."""
    directory = profile_dir(root, profile.ident())
    entryfile.make_private_dir(directory.parent)
    entryfile.make_private_dir(directory)
    if not (directory / PROFILE_FILE).exists():
        try:
            atomic.write_text(directory / PROFILE_FILE, json.dumps(asdict(profile), indent=2))
        except OSError as exc:
            if exc.errno not in _READ_ONLY:
                raise
    return directory


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
