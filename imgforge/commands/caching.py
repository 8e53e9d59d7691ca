"""``imgforge cache ls|du|prune``: what the squashed-data cache holds, and making it smaller."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from imgforge.cache import (
    DEFAULT_LIMIT,
    Listing,
    Removed,
    check_dir,
    default_root,
    format_size,
    index_files,
    listings,
    parse_size,
    prune,
)
from imgforge.commands.common import Output

COLUMNS = ("IDENT", "COMPRESSOR", "LEVEL", "BLOCK", "ENTRIES", "SIZE", "LAST USED", "WRITER")


def cmd_cache(args: argparse.Namespace, out: Output) -> int:
    root = args.cache_dir if args.cache_dir is not None else default_root()
    check_dir(root, option="--cache-dir" if args.cache_dir is not None else "cache directory")
    if args.cache_command == "ls":
        return _ls(root, out)
    if args.cache_command == "du":
        return _du(root, out)
    return _prune(root, args, out)


def _ls(root: Path, out: Output) -> int:
    found = listings(root)
    out.json({"root": str(root), "profiles": [_profile_json(listing) for listing in found]})
    if not found:
        out.say(f"{root}: no cached data")
        return 0
    rows = [COLUMNS, *(_profile_row(listing) for listing in found)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out.say("  ".join([*cells, row[-1]]))
    return 0


def _profile_json(listing: Listing) -> dict[str, Any]:
    profile = listing.profile
    return {
        "ident": listing.ident,
        "compressor": profile and profile.compressor,
        "level": profile and profile.level,
        "block_size": profile and profile.block_size,
        "writer": profile and profile.writer,
        "entries": listing.entries,
        "bytes": listing.size,
        "last_used": _when(listing.last_used, "%Y-%m-%dT%H:%M:%SZ", time.gmtime),
    }


def _profile_row(listing: Listing) -> tuple[str, ...]:
    profile = listing.profile
    compressor, level, block, writer = "?", "?", "?", "(no profile.json)"
    if profile is not None:
        compressor, level = profile.compressor, str(profile.level)
        block, writer = format_size(profile.block_size), profile.writer
    last_used = _when(listing.last_used, "%Y-%m-%d %H:%M", time.localtime) or "-"
    entries, size = str(listing.entries), format_size(listing.size)
    return (listing.ident, compressor, level, block, entries, size, last_used, writer)


def _when(moment: float | None, layout: str, convert: Any) -> str | None:
    return None if moment is None else time.strftime(layout, convert(moment))


def _du(root: Path, out: Output) -> int:
    found = listings(root)
    entries = sum(listing.entries for listing in found)
    # The layer indexes count toward the limit: they count here too.
    size = sum(listing.size for listing in found) + sum(i.size for i in index_files(root))
    out.json({"root": str(root), "entries": entries, "bytes": size, "profiles": len(found)})
    profiles = f"{len(found)} profile" + ("" if len(found) == 1 else "s")
    out.say(f"{root}: {format_size(size)} ({size} bytes) in {entries} entries, {profiles}")
    return 0


def _prune(root: Path, args: argparse.Namespace, out: Output) -> int:
    limit: int | None = DEFAULT_LIMIT
    if args.all:
        limit = None
    elif args.limit is not None:
        limit = parse_size(args.limit, option="--limit")
    removed = prune(
        root,
        limit=limit,
        wait=not args.no_wait,
        waiting=lambda: out.say(f"{root}: waiting for the builds using the cache to finish"),
    )
    out.json({"root": str(root), **_removed_json(removed)})
    out.say(
        f"{root}: removed {removed.entries} entries ({format_size(removed.size)}); "
        f"{removed.kept_entries} entries ({format_size(removed.kept_size)}) remain"
    )
    return 0


def _removed_json(removed: Removed) -> dict[str, int]:
    return {
        "removed_entries": removed.entries,
        "removed_bytes": removed.size,
        "entries": removed.kept_entries,
        "bytes": removed.kept_size,
    }
