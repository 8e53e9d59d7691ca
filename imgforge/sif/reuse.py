"""The native backend's use of the squashed-data cache: open it for one image's codec,
and say what it did."""

from __future__ import annotations

from imgforge.cache import DEFAULT_LIMIT, BlockCache, Profile
from imgforge.log import STEP, Log
from imgforge.sif.backend import CacheUse, SifRequest
from imgforge.squashfs.blocks import Reuse
from imgforge.squashfs.codec import Codec


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
