"""The cache's limit: whatever builds store, a cache filled through builds never stays over
it, and what a killed build left behind goes when the next one closes the cache."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgforge.cache import BlockCache, Profile, listings, segment

PROFILE = Profile("gzip", 9, 128 * 1024, "imgforge-squashfs 2; zlib 1.2.13")


def build(root: Path, blobs: list[bytes], limit: int | None) -> BlockCache:
    """One build storing ``blobs``; the closed cache (``evicted`` says what it did)."""
    with BlockCache.open(root, PROFILE, limit=limit) as cache:
        for blob in blobs:
            cache.put(os.urandom(32), blob, compressed=True)
    return cache


def on_disk(root: Path) -> int:
    return sum(listing.size for listing in listings(root))


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


def test_a_killed_builds_segment_goes_when_the_next_build_closes(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    script = (
        "import os, sys\nfrom pathlib import Path\nfrom imgforge.cache import BlockCache, Profile\n"
        f"cache = BlockCache.open(Path({str(root)!r}), Profile{(*vars(PROFILE).values(),)!r})\n"
        "cache.put(os.urandom(32), os.urandom(100_000), compressed=True)\n"
        "print('stored', flush=True)\nsys.stdin.readline()\n"
    )
    killed = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert killed.stdout is not None
    try:
        assert killed.stdout.readline() == "stored\n"
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    (listing,) = listings(root)
    assert [t.size for t in listing.temporaries] == [100_000 + 72]
    build(root, [b"a" * 100], limit=10**9)
    (listing,) = listings(root)
    assert listing.temporaries == [] and listing.entries == 1


def test_a_build_over_the_limit_keeps_the_newest_segments(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    for n in range(5):
        build(root, [bytes([n]) * 1000], limit=None)
    newest = listings(root)[0].segments[-2:]
    cache = build(root, [], limit=sum(s.size for s in newest))
    assert cache.evicted is not None and cache.evicted.entries == 3
    assert listings(root)[0].segments == newest


def test_the_layer_indexes_count_toward_the_limit(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    build(root, [b"a" * 1000], limit=None)
    layers = root / "layers" / PROFILE.ident()
    layers.mkdir(parents=True)
    (layers / ("ab" * 32)).write_bytes(b"i" * 5000)
    segments = on_disk(root)
    cache = build(root, [], limit=segments + 4000)
    assert cache.evicted is not None and on_disk(root) + indexes(root) <= segments + 4000
    cache = build(root, [b"b" * 100], limit=10)
    assert on_disk(root) + indexes(root) <= 10


def indexes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "layers").rglob("*") if p.is_file())


def test_a_segment_that_cant_be_published_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path, blob: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(segment, "write_atomically", full)
    cache = build(tmp_path, [b"a" * 1000], limit=None)
    assert cache.stats.write_errors == 1 and cache.unwritable
    assert [p.name for p in (tmp_path / "blocks" / PROFILE.ident()).iterdir()] == ["profile.json"]
