"""imgforge.cache.BlockCache: round trips, damaged entries, failures that must not fail a
build, LRU eviction, and many threads and processes sharing one cache directory."""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cachefiles import entries, indexes, located
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgforge.cache import DEFAULT_LIMIT, BlockCache, CacheBusy, Profile, listings, prune
from imgforge.cache import entry as entry_format
from imgforge.cache import lock as cache_lock
from imgforge.cache.layout import LOCK, PROFILE_FILE
from imgforge.cache.scan import read_profile
from imgforge.cache.segment import INDEX_SUFFIX, SEGMENT_SUFFIX

PROFILE = Profile("gzip", 9, 128 * 1024, "imgforge-squashfs 1; zlib 1.2.13")
ZSTD = Profile("zstd", 3, 128 * 1024, "imgforge-squashfs 1; zstd 1.5.5")
ENTRY_OVERHEAD = entry_format.HEADER_BYTES
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def key_of(data: bytes, salt: str = "") -> bytes:
    return hashlib.blake2b(salt.encode() + data, digest_size=32).digest()


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[BlockCache]:
    with BlockCache.open(tmp_path / "cache", PROFILE) as opened:
        yield opened


def test_layout_round_trip_and_profile_file(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    data = os.urandom(5000)
    with BlockCache.open(root, PROFILE) as cache:
        assert cache.disabled is None
        assert cache.get(key_of(data)) is None
        cache.put(key_of(data), data, compressed=True)
        assert cache.get(key_of(data)) == (data, True)
        assert cache.stats.hits == 1 and cache.stats.misses == 1
        assert cache.stats.hit_bytes == 5000 and cache.stats.stored_bytes == 5000
        assert indexes(root) == []  # the segment is published when the build closes
    (index,) = indexes(root)
    assert index.parent == root / "blocks" / PROFILE.ident()
    assert index.with_suffix(SEGMENT_SUFFIX).stat().st_size == ENTRY_OVERHEAD + 5000
    assert located(root, key_of(data)).offset == 0
    with BlockCache.open(root, PROFILE) as again:
        assert again.get(key_of(data)) == (data, True)
    assert (root / LOCK).is_file()
    assert read_profile(root / "blocks" / PROFILE.ident()) == PROFILE
    assert (root / "blocks" / PROFILE.ident() / PROFILE_FILE).is_file()


def test_profile_ident_is_stable_and_tells_profiles_apart() -> None:
    assert PROFILE.ident() == Profile(**vars(PROFILE)).ident()
    assert len(PROFILE.ident()) == 16 and int(PROFILE.ident(), 16) >= 0
    others = {Profile("gzip", 8, 128 * 1024, PROFILE.writer), ZSTD, Profile("gzip", 9, 65536, "x")}
    assert PROFILE.ident() not in {p.ident() for p in others}


def test_profiles_do_not_share_entries(tmp_path: Path) -> None:
    data = b"same raw block"
    with BlockCache.open(tmp_path, PROFILE) as gzip:
        gzip.put(key_of(data), b"gzip bytes", compressed=True)
    with BlockCache.open(tmp_path, ZSTD) as zstd:
        assert zstd.get(key_of(data)) is None
    counted = {listing.profile: listing.entries for listing in listings(tmp_path)}
    assert counted == {PROFILE: 1, ZSTD: 0}


@FUZZ
@given(data=st.binary(max_size=4096), compressed=st.booleans())
def test_any_bytes_round_trip(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, compressed: bool
) -> None:
    root = tmp_path_factory.mktemp("c")
    with BlockCache.open(root, PROFILE) as cache:
        cache.put(key_of(data), data, compressed=compressed)
        assert cache.get(key_of(data)) == (data, compressed)
    with BlockCache.open(root, PROFILE) as cache:
        assert cache.get(key_of(data)) == (data, compressed)


def stored(root: Path, *blocks: bytes, compressed: bool = True) -> None:
    """A build that stores ``blocks``, each under its key, and publishes them."""
    with BlockCache.open(root, PROFILE) as cache:
        for data in blocks:
            cache.put(key_of(data), data, compressed=compressed)


@FUZZ
@given(
    data=st.binary(min_size=0, max_size=300),
    spot=st.integers(min_value=0),
    flip=st.integers(1, 255),
)
def test_any_flipped_byte_is_a_miss_from_then_on(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, spot: int, flip: int
) -> None:
    root = tmp_path_factory.mktemp("c")
    neighbour = b"neighbour" + data
    stored(root, data, neighbour)
    found = located(root, key_of(data))
    raw = bytearray(found.read())
    raw[spot % len(raw)] ^= flip
    found.write(bytes(raw))
    with BlockCache.open(root, PROFILE) as cache:
        assert cache.get(key_of(data)) is None
        assert cache.stats.corrupt == 1 and cache.stats.hits == 0 and cache.stats.misses == 1
        assert cache.get(key_of(data)) is None and cache.stats.corrupt == 1
        assert cache.get(key_of(neighbour)) == (neighbour, True)


@FUZZ
@given(data=st.binary(min_size=1, max_size=300), cut=st.integers(min_value=0))
def test_any_truncation_is_a_miss(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, cut: int
) -> None:
    root = tmp_path_factory.mktemp("c")
    stored(root, data, compressed=False)
    found = located(root, key_of(data))
    os.truncate(found.segment, found.offset + cut % found.size)  # zero length included
    with BlockCache.open(root, PROFILE) as cache:
        # An entry its segment can't hold whole is never read: a miss.
        assert cache.get(key_of(data)) is None and cache.stats.hits == 0


def test_an_index_naming_more_than_its_segment_holds_costs_no_memory(tmp_path: Path) -> None:
    """A forged index of many records over an empty segment names nothing the cache
    keeps in memory; what a segment holds is read, the rest is not."""
    stored(tmp_path, b"kept")
    (index,) = indexes(tmp_path)
    forged = index.with_name("f" * 32 + INDEX_SUFFIX)
    forged.write_bytes(index.read_bytes()[:8] + os.urandom(32 + 12) * 100_000)
    forged.with_suffix(SEGMENT_SUFFIX).write_bytes(b"")
    with BlockCache.open(tmp_path, PROFILE) as cache:
        assert len(cache._catalog._where) == 1
        assert cache.get(key_of(b"kept")) == (b"kept", True)


def test_an_entry_for_another_key_is_a_miss(tmp_path: Path) -> None:
    """An index record that points at a whole, intact entry, but for another key (a copy,
    a forged index), does not return it for this one."""
    first, second = b"first", b"second"
    stored(tmp_path, first)
    (index,) = indexes(tmp_path)
    raw = index.read_bytes()
    index.write_bytes(raw + key_of(second) + raw[8 + 32 :])  # second's key, first's entry
    with BlockCache.open(tmp_path, PROFILE) as cache:
        assert cache.get(key_of(second)) is None
        assert cache.stats.corrupt == 1
        assert cache.get(key_of(first)) == (first, True)


@pytest.mark.parametrize("damage", ["empty", "garbage", "cut record", "huge offset", "no segment"])
def test_a_damaged_index_costs_misses_only(tmp_path: Path, damage: str) -> None:
    blocks = [bytes([n]) * 100 for n in range(5)]
    stored(tmp_path, *blocks)
    (index,) = indexes(tmp_path)
    raw = index.read_bytes()
    if damage == "empty":
        index.write_bytes(b"")
    elif damage == "garbage":
        index.write_bytes(os.urandom(len(raw)))
    elif damage == "cut record":
        index.write_bytes(raw[:-5])
    elif damage == "huge offset":
        index.write_bytes(
            raw[:8] + key_of(blocks[0]) + (1 << 39).to_bytes(8, "little") + raw[48:52]
        )
    else:
        index.with_suffix(SEGMENT_SUFFIX).unlink()
    with BlockCache.open(tmp_path, PROFILE) as cache:
        found = [cache.get(key_of(data)) for data in blocks]
    assert all(f is None or f == (d, True) for f, d in zip(found, blocks, strict=True))
    if damage == "cut record":
        assert found[:4] == [(d, True) for d in blocks[:4]] and found[4] is None


def test_a_wrong_key_length_is_a_bug(cache: BlockCache) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        cache.get(b"short")


def test_a_segment_gone_before_it_is_read_is_a_miss(tmp_path: Path) -> None:
    data = b"evicted meanwhile"
    stored(tmp_path, data)
    with BlockCache.open(tmp_path, PROFILE) as cache:
        located(tmp_path, key_of(data)).segment.unlink()
        assert cache.get(key_of(data)) is None
        assert cache.stats.corrupt == 0 and cache.stats.misses == 1


def test_a_full_disk_stops_writes_and_never_raises(
    cache: BlockCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, buffers: object, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwritev", full)
    cache.put(key_of(b"a"), b"a", compressed=True)
    cache.put(key_of(b"b"), b"b", compressed=True)
    monkeypatch.undo()
    cache.put(key_of(b"c"), b"c", compressed=True)
    assert cache.stats.write_errors == 1 and cache.stats.stored == 0
    assert cache.unwritable is not None and "No space left on device" in cache.unwritable
    assert cache.get(key_of(b"a")) is None and cache.get(key_of(b"c")) is None
    cache.close()
    assert listings(cache.root)[0].temporaries == []  # the empty segment is gone
    assert entries(cache.root) == []


@pytest.mark.parametrize("make", ["file", "under a file"])
def test_an_unusable_root_gives_a_cache_that_misses(tmp_path: Path, make: str) -> None:
    (tmp_path / "file").write_text("not a directory")
    root = tmp_path / "file" if make == "file" else tmp_path / "file" / "cache"
    with BlockCache.open(root, PROFILE) as cache:
        assert cache.disabled is not None and str(root) in cache.disabled
        cache.put(key_of(b"x"), b"x", compressed=True)
        assert cache.get(key_of(b"x")) is None
        assert cache.stats.misses == 1 and cache.stats.write_errors == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_a_read_only_cache_still_serves_hits(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    with BlockCache.open(root, PROFILE) as cache:
        cache.put(key_of(b"x"), b"x", compressed=True)
    for directory, _, _ in os.walk(root):
        os.chmod(directory, 0o555)
    try:
        with BlockCache.open(root, PROFILE) as cache:
            assert cache.get(key_of(b"x")) == (b"x", True)
            cache.put(key_of(b"y"), b"y", compressed=True)
            assert cache.stats.write_errors == 1 and cache.unwritable
    finally:
        for directory, _, _ in os.walk(root):
            os.chmod(directory, 0o755)


def test_a_cache_busy_being_pruned_is_disabled_after_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    fd = cache_lock.open_lock(root)
    assert cache_lock.try_lock(fd, cache_lock.EXCLUSIVE)
    monkeypatch.setattr("imgforge.cache.store.OPEN_TIMEOUT", 0.2)
    try:
        with BlockCache.open(root, PROFILE) as cache:
            assert cache.disabled is not None and "pruned" in cache.disabled
    finally:
        cache_lock.unlock(fd)


def fill(root: Path, sizes: list[int], *, limit: int | None = None) -> list[Path]:
    """One segment (one build) per size, holding one entry of that size, used in that
    order a second apart (oldest first); their index files."""
    paths = []
    for index, size in enumerate(sizes):
        with BlockCache.open(root, PROFILE, limit=limit) as cache:
            data = bytes([index % 256]) * size
            cache.put(key_of(data, str(index)), data, compressed=True)
        path = indexes(root)[-1]
        os.utime(path, (1_000_000 + index, 1_000_000 + index))
        paths.append(path)
    return paths


SEGMENT_OVERHEAD = 8 + 44  # an index's header and one record


def test_close_evicts_least_recently_used_down_to_the_limit(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    paths = fill(root, [1000] * 6)
    entry_size = 1000 + ENTRY_OVERHEAD + SEGMENT_OVERHEAD
    # A hit makes the oldest entry the newest.
    with BlockCache.open(root, PROFILE, limit=3 * entry_size) as cache:
        first = bytes([0]) * 1000
        assert cache.get(key_of(first, "0")) == (first, True)
    assert cache.evicted is not None and cache.evicted.entries == 3
    assert [p.exists() for p in paths] == [True, False, False, False, True, True]
    assert sum(listing.size for listing in listings(root)) <= 3 * entry_size


def test_no_limit_and_the_default_limit_keep_everything(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    paths = fill(root, [100] * 4, limit=None)
    with BlockCache.open(root, PROFILE) as cache:
        assert cache.limit == DEFAULT_LIMIT == 20 * 1024**3
    assert all(p.exists() for p in paths)


@FUZZ
@given(sizes=st.lists(st.integers(0, 2000), max_size=12), limit=st.integers(0, 20000))
def test_eviction_keeps_the_newest_entries_that_fit(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], limit: int
) -> None:
    root = tmp_path_factory.mktemp("c")
    paths = fill(root, sizes, limit=None)
    prune(root, limit=limit)
    kept = [p.exists() for p in paths]
    total = sum(
        (s + ENTRY_OVERHEAD + SEGMENT_OVERHEAD) * k for s, k in zip(sizes, kept, strict=True)
    )
    assert total <= limit
    assert kept == sorted(kept)  # only the oldest go: removed ones precede the kept ones
    if False in kept:  # and no more than needed: one more would not have fitted
        newest_removed = len(kept) - 1 - kept[::-1].index(False)
        assert total + sizes[newest_removed] + ENTRY_OVERHEAD + SEGMENT_OVERHEAD > limit


def test_eviction_waits_for_every_build_to_let_go(tmp_path: Path) -> None:
    """While another build holds the cache, closing one evicts nothing (the other may be
    about to read what eviction would remove); the last one to close evicts."""
    root = tmp_path / "cache"
    paths = fill(root, [1000] * 4)
    other = BlockCache.open(root, PROFILE, limit=None)
    with BlockCache.open(root, PROFILE, limit=0) as cache:
        pass
    assert cache.evicted is None and all(p.exists() for p in paths)
    other.limit = 0
    other.close()
    assert other.evicted is not None and not any(p.exists() for p in paths)


def test_prune_waits_for_builds_and_says_so(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    paths = fill(root, [1000] * 3)
    user = BlockCache.open(root, PROFILE)
    said: list[str] = []
    timer = threading.Timer(0.3, user.close)
    timer.start()
    removed = prune(root, limit=None, waiting=lambda: said.append("waiting"))
    timer.join()
    assert said == ["waiting"] and removed.entries == 3
    assert not any(p.exists() for p in paths) and (root / LOCK).exists()


def test_prune_without_waiting_removes_nothing_under_a_build(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    paths = fill(root, [1000] * 3)
    with BlockCache.open(root, PROFILE) as user:
        with pytest.raises(CacheBusy, match="builds are using the cache"):
            prune(root, limit=0, wait=False)
        assert all(p.exists() for p in paths)
        assert user.get(key_of(bytes([1]) * 1000, "1")) is not None


def test_leftover_temporary_files_go_at_eviction(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    (path,) = fill(root, [10])
    leftovers = [
        path.with_name(f".{path.with_suffix(SEGMENT_SUFFIX).name}"),  # a writer's segment
        path.with_name(f".{path.name}.999.1"),  # a writer's index
        path.with_name(f"{'0' * 32}{SEGMENT_SUFFIX}"),  # a segment without its index
        path.with_name(f"{'1' * 32}{INDEX_SUFFIX}"),  # an index without its segment
        path.parent / "ab" / ("cd" * 31),  # an entry of the older layout, one file each
    ]
    leftovers[-1].parent.mkdir()
    for leftover in leftovers:
        leftover.write_bytes(b"half")
    prune(root, limit=DEFAULT_LIMIT)
    assert path.exists() and path.with_suffix(SEGMENT_SUFFIX).exists()
    assert not any(leftover.exists() for leftover in leftovers)


def _worker(root: str, worker: int, rounds: int) -> tuple[int, int]:
    """Put blocks shared by every worker and blocks of its own, from two threads, checking
    every hit; return (hits, wrong answers)."""
    hits, wrong = [0], [0]

    def run(thread: int) -> None:
        with BlockCache.open(Path(root), PROFILE, limit=None) as cache:
            for index in range(rounds):
                data = hashlib.sha512(f"{index % 40}".encode()).digest() * (1 + index % 7)
                if index % 3 == 0:
                    data += f"{worker}.{thread}".encode()
                found = cache.get(key_of(data))
                if found is None:
                    cache.put(key_of(data), data, compressed=bool(index % 2))
                elif found != (data, bool(index % 2)):
                    wrong[0] += 1
                else:
                    hits[0] += 1

    threads = [threading.Thread(target=run, args=(t,)) for t in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return hits[0], wrong[0]


def test_processes_and_threads_share_a_cache_safely(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        results = pool.starmap(_worker, [(str(root), worker, 200) for worker in range(4)])
    assert sum(wrong for _, wrong in results) == 0
    assert sum(hits for hits, _ in results) > 0
    (listing,) = listings(root)
    assert listing.temporaries == []
    with BlockCache.open(root, PROFILE, limit=None) as cache:
        for index in range(40):
            for repeat in range(1, 8):
                data = hashlib.sha512(f"{index}".encode()).digest() * repeat
                found = cache.get(key_of(data))
                assert found is None or found[0] == data
        assert cache.stats.corrupt == 0


def test_prune_all_removes_only_what_the_cache_made(tmp_path: Path) -> None:
    """A --cache-dir pointed at a directory with other files in it loses none of them."""
    root = tmp_path / "cache"
    (path,) = fill(root, [10])
    foreign = [root / "notes.txt", root / "blocks" / "README", path.parent / "keep.me"]
    for file in foreign:
        file.write_text("mine")
    (root / "blocks" / "photos").mkdir()
    removed = prune(root, limit=None)
    assert removed.entries == 1 and not path.exists()
    assert all(file.read_text() == "mine" for file in foreign)
    assert (root / "blocks" / "photos").is_dir()
    assert not (path.parent.parent / PROFILE_FILE).exists()
    prune(root, limit=0)
    assert all(file.exists() for file in foreign)


def test_prune_and_eviction_remove_only_the_layer_indexes_the_cache_made(tmp_path: Path) -> None:
    """Under layers/, as under blocks/, only what the cache made goes: a symbolic link
    planted there (in a cache others may write) leads prune and eviction nowhere, and a
    --cache-dir's own files stay."""
    root = tmp_path / "cache"
    fill(root, [10, 10])
    layers = root / "layers" / PROFILE.ident()
    layers.mkdir(parents=True)
    index, temporary = layers / ("ab" * 32), layers / f".{'ab' * 32}.123.456"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    kept = [elsewhere / "notes.txt", elsewhere / ("cd" * 32), layers / "notes.txt"]
    for file in (index, temporary, *kept):
        file.write_text("mine")
        os.utime(file, (1, 1))  # older than every block: an index eviction removes
    (root / "layers" / "0123456789abcdef").symlink_to(elsewhere)
    (root / "layers" / "photos").mkdir()
    # One segment fits, with the two index files the cache made (they count too).
    with BlockCache.open(root, PROFILE, limit=ENTRY_OVERHEAD + SEGMENT_OVERHEAD + 10 + 8) as cache:
        pass
    assert cache.evicted is not None and cache.evicted.entries == 1
    assert not index.exists() and not temporary.exists()
    assert all(file.read_text() == "mine" for file in kept)
    index.write_text("mine")
    prune(root, limit=None)
    assert not index.exists()
    assert all(file.read_text() == "mine" for file in kept)
    assert (root / "layers" / "photos").is_dir()
    assert (root / "layers" / "0123456789abcdef").is_symlink()


def test_prune_never_removes_under_a_build_in_another_process(tmp_path: Path) -> None:
    """Another process holds the cache (a build): prune --no-wait removes nothing, prune
    waits; the build's reads meanwhile all hit, and prune removes everything after it."""
    root = tmp_path / "cache"
    fill(root, [1000] * 5)
    keys = [key_of(bytes([i]) * 1000, str(i)).hex() for i in range(5)]
    script = (
        "import sys\nfrom pathlib import Path\nfrom imgforge.cache import BlockCache, Profile\n"
        f"cache = BlockCache.open(Path({str(root)!r}), Profile{(*vars(PROFILE).values(),)!r})\n"
        "print('open', flush=True)\nsys.stdin.readline()\n"
        f"hits = sum(cache.get(bytes.fromhex(k)) is not None for k in {keys!r})\n"
        "cache.close()\nprint(hits, flush=True)\n"
    )
    build = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert build.stdin is not None and build.stdout is not None
    try:
        assert build.stdout.readline() == "open\n"
        with pytest.raises(CacheBusy):
            prune(root, limit=None, wait=False)
        done: list[int] = []
        pruning = threading.Thread(target=lambda: done.append(prune(root, limit=None).entries))
        pruning.start()
        time.sleep(0.5)
        assert done == []
        build.stdin.write("go\n")
        build.stdin.flush()
        assert build.stdout.readline() == "5\n"
        pruning.join(timeout=30)
        assert done == [5] and listings(root) == []
    finally:
        build.kill()
        build.wait()
