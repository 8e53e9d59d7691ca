"""The native backend's use of the squashed-data cache: open it for one image's codec,
with the file the image is packed into, and say what it did."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from imgforge.cache import DEFAULT_LIMIT, BlockCache, Profile
from imgforge.errors import BuildError
from imgforge.log import STEP, Log
from imgforge.sif.backend import CacheUse, SifRequest
from imgforge.squashfs.codec import Codec
from imgforge.squashfs.stored import Reuse


def open_store(request: SifRequest, codec: Codec, log: Log) -> BlockCache | None:
    """The cache for ``codec`` under ``request.cache_dir``; None when the request has no
    cache. A cache that can't be used is said in the log, and the build goes on without."""
    if request.cache_dir is None:
        return None
    profile = Profile(codec.name, codec.level, codec.block_size, codec.writer)
    limit = DEFAULT_LIMIT if request.cache_limit is None else request.cache_limit
    store = BlockCache.open(request.cache_dir, profile, limit=limit)
    if store.disabled:
        log(f"cache: not used: {store.disabled}", kind=STEP)
    return store


def report(reuse: Reuse, store: BlockCache | None) -> CacheUse | None:
    """What the cache did for this image (None without one)."""
    if store is None:
        return None
    stats = store.stats
    note = "cache not writable: new blocks were not kept" if stats.write_errors else ""
    return CacheUse(
        reuse.hits, reuse.misses, reuse.hit_bytes, reuse.miss_bytes, reuse.saved_seconds(),
        stats.corrupt + reuse.rejected, note,
    )  # fmt: skip


@contextmanager
def packing_into(
    request: SifRequest, codec: Codec, log: Log
) -> Iterator[tuple[IO[bytes], BlockCache | None]]:
    """``request.target`` open for writing and the cache for ``codec``; the file is synced
    at the end, the cache closed whatever happens, and a failure to write is one line."""
    store = open_store(request, codec, log)
    try:
        with request.target.open("w+b") as out:
            yield out, store
            os.fsync(out.fileno())
    except OSError as error:
        where = f"{request.name}: writing {request.target.name}"
        raise BuildError(f"{where}: {error.strerror or error}") from None
    finally:
        if store is not None:
            store.close()
