"""The squashed-data cache: compressed squashfs blocks, by the key of their raw bytes, so
that packing an image whose blocks were packed before costs only what is new.

The squashfs writer asks :class:`BlockCache` for each raw block's key (SHA-256 of the
codec's salt and the raw bytes); on a miss it compresses and puts. An entry holds the
exact bytes written to the image and whether they are compressed. :meth:`BlockCache.lookup`
also says whether an entry is private (only this user can have written it); the writer
decompresses and compares any other hit before using it.

Layout (the file system is the index; no database)::

    ROOT/                           $XDG_CACHE_HOME/imgforge, ~/.cache/imgforge, --cache-dir
      lock                          builds hold it shared while they use the cache;
                                    eviction and `imgforge cache prune` hold it alone
      usage, added                  the entries' total at the last eviction, and what
                                    builds stored since (see usage.py)
      blocks/IDENT/                 one directory per Profile (IDENT = Profile.ident())
        profile.json                the profile's fields (what `imgforge cache ls` shows)
        XX/YYYY...                  an entry: XX the key's first byte in hex, YYYY... the
                                    other 31 (62 hex digits); see entry.py for its format
        XX/.YYYY....PID.TID         a writer's temporary file, renamed into place when whole

An entry's modification time is its last use: a hit refreshes it, and eviction removes
the least recently used entries until the total size is at most the limit. Eviction runs
when a BlockCache closes and no other build holds the lock, and in `imgforge cache prune`,
so nothing a running build may read is removed; a reader that finds an entry gone (or
damaged: the checksum, the key inside) takes it as a miss. Writes go to a temporary file
in the same directory, then a rename, so no reader sees part of an entry.
"""

from __future__ import annotations

from imgforge.cache.evict import CacheBusy, Removed, prune
from imgforge.cache.layout import check_dir, default_root
from imgforge.cache.profile import Profile
from imgforge.cache.scan import Listing, listings
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
    "listings",
    "parse_size",
    "prune",
]
