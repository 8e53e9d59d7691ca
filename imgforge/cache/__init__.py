"""The squashed-data cache: compressed squashfs blocks, by the key of their raw bytes, so
that packing an image whose blocks were packed before costs only what is new.

The squashfs writer asks :class:`BlockCache` for each raw block's key (SHA-256 of the
codec's salt and the raw bytes); on a miss it compresses and puts. An entry holds the
exact bytes written to the image and whether they are compressed. :meth:`BlockCache.lookup`
also says whether an entry is private (only this user can have written it); the writer
decompresses and compares any other hit before using it.

Layout (no database: the segments' indexes are the cache's index)::

    ROOT/                           $XDG_CACHE_HOME/imgforge, ~/.cache/imgforge, --cache-dir
      lock                          builds hold it shared while they use the cache;
                                    eviction and `imgforge cache prune` hold it alone
      blocks/IDENT/                 one directory per Profile (IDENT = Profile.ident())
        profile.json                the profile's fields (what `imgforge cache ls` shows)
        NAME.seg                    a segment: the entries one build stored, one after
                                    another (entry.py's format each; see segment.py)
        NAME.idx                    its index: each entry's key, offset and size
        .NAME.seg                   a segment its build is still writing
      layers/IDENT/                 the layer indexes (see layers.py)

A build reads the indexes when it opens the cache (catalog.py), appends what it
stores to a segment of its own, and publishes it when it closes: the segment renamed into
place, then its index written, so no build reads part of another's segment. An index's
modification time is its segment's last use: a build that read from a segment refreshes
it, and eviction removes the least recently used segments, whole, until the total size is
at most the limit. Eviction runs when a BlockCache closes and no other build holds the
lock, and in `imgforge cache prune`, so nothing a running build may read is removed; an
entry found damaged (its checksum, the key inside) is a miss, and the build stores the
block again in its own segment, which later builds read instead (newer segments win).
"""

from __future__ import annotations

from imgforge.cache.evict import CacheBusy, Removed, prune
from imgforge.cache.layout import check_dir, default_root
from imgforge.cache.profile import Profile
from imgforge.cache.scan import Listing, index_files, listings
from imgforge.cache.store import DEFAULT_LIMIT, BlockCache, CacheStats
from imgforge.sizes import format_size, parse_size

__all__ = [
    "DEFAULT_LIMIT",
    "BlockCache",
    "CacheBusy",
    "CacheStats",
    "Listing",
    "Profile",
    "Removed",
    "check_dir",
    "default_root",
    "format_size",
    "index_files",
    "listings",
    "parse_size",
    "prune",
]
