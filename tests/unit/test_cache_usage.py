"""The cache's usage record (imgforge.cache.usage): a build that leaves the cache within
its limit doesn't list every entry when it closes; whatever the record says, a cache
filled through builds never stays over its limit, and a record that can't be trusted
(damaged, planted, stale) only costs a listing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgforge.cache import BlockCache, Profile, listings, prune
from imgforge.cache import entry as entry_format
from imgforge.cache import evict as evict_module
from imgforge.cache.layout import ADDED, USAGE
from imgforge.cache.usage import RESCAN_SECONDS

PROFILE = Profile("gzip", 9, 128 * 1024, "imgforge-squashfs 2; zlib 1.2.13")
# An entry's header and its index record; each build's segment adds an index header.
OVERHEAD = entry_format.HEADER_BYTES + 44
SEGMENT = 8


def build(root: Path, blobs: list[bytes], limit: int | None) -> BlockCache:
    """One build storing ``blobs``; the closed cache (``evicted`` says what it did)."""
    with BlockCache.open(root, PROFILE, limit=limit) as cache:
        for blob in blobs:
            cache.put(os.urandom(32), blob, compressed=True)
    return cache


def on_disk(root: Path) -> int:
    return sum(listing.size for listing in listings(root))


class Listed:
    """Counts the times eviction lists the cache."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = evict_module.listings

        def counted(root: Path) -> list[object]:
            self.count += 1
            return original(root)  # type: ignore[return-value]

        monkeypatch.setattr(evict_module, "listings", counted)


def test_closing_within_the_limit_lists_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cache"
    listed = Listed(monkeypatch)
    build(root, [b"a" * 100] * 3, limit=10_000)
    assert listed.count == 1  # no record yet: listed once, and recorded
    assert (root / USAGE).read_text() == f"{3 * (100 + OVERHEAD) + SEGMENT}\n"
    for _ in range(3):
        build(root, [b"b" * 100], limit=10_000)
    assert listed.count == 1
    # Over the limit: listed, evicted, and the record starts again from the listing.
    cache = build(root, [b"c" * 3000] * 3, limit=5_000)
    assert listed.count == 2 and cache.evicted is not None and cache.evicted.entries
    assert on_disk(root) <= 5_000
    assert (root / USAGE).read_text() == f"{on_disk(root)}\n"
    assert not (root / ADDED).exists()


@pytest.mark.parametrize(
    "damage",
    ["garbage", "negative", "symlink", "huge", "stale", "added-garbage", "directory"],
)
def test_a_record_that_cant_be_trusted_costs_a_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    root = tmp_path / "cache"
    build(root, [b"a" * 100] * 50, limit=10**9)
    usage, added = root / USAGE, root / ADDED
    if damage == "garbage":
        usage.write_text("many\n")
    elif damage == "negative":
        usage.write_text("-100000\n")
    elif damage == "symlink":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.write_text("0\n")
        usage.unlink()
        usage.symlink_to(elsewhere)
    elif damage == "huge":
        usage.write_text("0\n" + " " * (2 << 20))
    elif damage == "stale":
        old = time.time() - RESCAN_SECONDS - 60
        os.utime(usage, (old, old))
    elif damage == "added-garbage":
        added.write_text("12\nx\n")
    else:
        usage.unlink()
        usage.mkdir()
    listed = Listed(monkeypatch)
    limit = 20 * (100 + OVERHEAD)
    build(root, [], limit=limit)
    assert listed.count == 1
    assert on_disk(root) <= limit


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    builds=st.lists(st.lists(st.integers(0, 3000), max_size=5), min_size=1, max_size=6),
    limit=st.integers(0, 12_000),
)
def test_builds_never_leave_the_cache_over_its_limit(
    tmp_path_factory: pytest.TempPathFactory, builds: list[list[int]], limit: int
) -> None:
    root = tmp_path_factory.mktemp("c")
    for sizes in builds:
        build(root, [os.urandom(size) for size in sizes], limit=limit)
        assert on_disk(root) <= limit


def test_prune_everything_forgets_the_record(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    build(root, [b"a" * 100] * 3, limit=10_000)
    build(root, [b"b" * 100], limit=10_000)
    assert (root / USAGE).exists() and (root / ADDED).exists()
    prune(root, limit=None)
    assert not (root / USAGE).exists() and not (root / ADDED).exists()
