"""What others (or an odd umask) may leave in and around the cache: files and directories
others may write are never trusted, planted names are never followed or waited on, and
nothing planted keeps the cache over its limit."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
import zstandard

from imgforge.cache import BlockCache, Profile, catalog, listings, prune, segment
from imgforge.cache.layout import PROFILE_FILE, RECORDS
from imgforge.cache.scan import read_profile
from imgforge.squashfs.codec import Codec

PROFILE = Profile("gzip", 9, 128 * 1024, "imgforge-squashfs 2; zlib 1.2.13")
KEY = bytes(range(32))


@pytest.fixture
def umask() -> object:
    old = os.umask(0)
    yield old
    os.umask(old)


def test_under_any_umask_entries_and_directories_are_the_users_alone(
    tmp_path: Path, umask: object
) -> None:
    for mask in (0o000, 0o002):
        os.umask(mask)
        root = tmp_path / f"cache-{mask:o}"
        with BlockCache.open(root, PROFILE) as cache:
            cache.put(KEY, b"data", compressed=False)
            assert cache.lookup(KEY) == (b"data", False, True)
        files = [p for p in root.rglob("*") if p.is_file() and p.name != "lock"]
        dirs = [p for p in root.rglob("*") if p.is_dir()] + [root]
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in files), files
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o755 for p in dirs), dirs


def test_an_entry_others_may_write_is_not_private(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    with BlockCache.open(root, PROFILE) as cache:
        cache.put(KEY, b"data", compressed=False)
    (segment,) = (root / "blocks").rglob("*.seg")
    segment.chmod(0o666)
    with BlockCache.open(root, PROFILE) as cache:
        assert cache.lookup(KEY) == (b"data", False, False)


@pytest.mark.parametrize("planted", ["segment", "index"])
def test_a_link_planted_at_a_writers_temporary_name_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: str
) -> None:
    """In a cache others may write to, a symbolic link at the name a writer is about to
    make (its segment's, or its index's while it publishes) leads it nowhere."""
    root = tmp_path / "cache"
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    name = "0" * 32
    monkeypatch.setattr(segment, "new_name", lambda: name)
    with BlockCache.open(root, PROFILE) as cache:
        directory = root / "blocks" / PROFILE.ident()
        temporary = directory / (
            f".{name}.seg" if planted == "segment"
            else f".{name}.idx.{os.getpid()}.{threading.get_ident()}"
        )  # fmt: skip
        temporary.symlink_to(victim)
        cache.put(KEY, b"data", compressed=False)
    assert victim.read_text() == "keep me"
    with BlockCache.open(root, PROFILE) as cache:
        # A segment name taken is a build that keeps nothing new; an index name taken
        # is made anew.
        expected = None if planted == "segment" else (b"data", False, True)
        assert cache.lookup(KEY) == expected


def test_zstd_data_after_the_frame_is_not_a_block() -> None:
    codec = Codec.of("zstd")
    assert codec is not None
    packed = codec.compress(b"a" * 5000)
    assert codec.decompress(packed) == b"a" * 5000
    assert codec.decompress(packed + b"junk") is None
    assert codec.decompress(packed + packed) is None


def test_a_zstd_frame_standing_for_more_than_a_block_is_refused_unread() -> None:
    """A few bytes of zstd can stand for gigabytes: a frame that says it holds more than a
    block, says nothing of its size, or holds more than it says is not a block."""
    codec = Codec.of("zstd")
    assert codec is not None and codec.block_size == 128 * 1024
    bomb = bytearray(zstandard.ZstdCompressor(level=3).compress(bytes(64 << 20)))
    assert codec.decompress(bytes(bomb)) is None  # says 64 MiB
    unsized = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(64 << 20))
    assert codec.decompress(unsized) is None
    # The same frame saying it holds 5000 bytes: the library holds it to that.
    descriptor = bomb[4]
    assert descriptor >> 6 == 2 and not descriptor & 0x20 and not descriptor & 0x03
    bomb[6:10] = (5000).to_bytes(4, "little")
    assert codec.decompress(bytes(bomb)) is None
    assert codec.decompress(codec.compress(bytes(codec.block_size))) == bytes(codec.block_size)


def closes_soon(root: Path, limit: int) -> BlockCache:
    """A build storing one block, closed in a thread that must be done within 20 s."""
    done: list[BlockCache] = []

    def build() -> None:
        with BlockCache.open(root, PROFILE, limit=limit) as cache:
            cache.put(os.urandom(32), b"x" * 3000, compressed=True)
        done.append(cache)

    thread = threading.Thread(target=build, daemon=True)
    thread.start()
    thread.join(20)
    assert done, "closing the cache hung"
    return done[0]


@pytest.mark.parametrize("planted", ["fifo", "directory", "symlink"])
def test_what_is_planted_at_an_older_versions_records_never_hangs_a_build(
    tmp_path: Path, planted: str
) -> None:
    root = tmp_path / "cache"
    closes_soon(root, 10**9)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("keep me")
    for name in RECORDS:
        if planted == "fifo":
            os.mkfifo(root / name)
        elif planted == "directory":
            (root / name).mkdir()
        else:
            (root / name).symlink_to(elsewhere)
    for _ in range(4):
        closes_soon(root, 5000)
        assert sum(listing.size for listing in listings(root)) <= 5000
    assert elsewhere.read_text() == "keep me"


def test_a_fifo_planted_as_profile_json_is_not_waited_on(tmp_path: Path) -> None:
    directory = tmp_path / "profile"
    directory.mkdir()
    os.mkfifo(directory / PROFILE_FILE)
    found: list[object] = []
    thread = threading.Thread(target=lambda: found.append(read_profile(directory)), daemon=True)
    thread.start()
    thread.join(10)
    assert found == [None]


@pytest.mark.parametrize("planted", ["fifo", "symlink", "directory"])
@pytest.mark.parametrize("where", [".seg", ".idx"])
def test_a_segment_or_index_planted_as_something_else_is_a_miss(
    tmp_path: Path, planted: str, where: str
) -> None:
    """Neither a segment nor an index is ever followed, waited on or read without end."""
    root = tmp_path / "cache"
    with BlockCache.open(root, PROFILE) as cache:
        cache.put(KEY, b"data", compressed=False)
    (index,) = (root / "blocks").rglob("*.idx")
    path = index.with_suffix(where)
    path.unlink()
    if planted == "fifo":
        os.mkfifo(path)
    elif planted == "symlink":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    found: list[object] = []
    thread = threading.Thread(target=_lookup, args=(root, found), daemon=True)
    thread.start()
    thread.join(10)
    assert found == [None]


def _lookup(root: Path, found: list[object]) -> None:
    with BlockCache.open(root, PROFILE) as cache:
        found.append(cache.lookup(KEY))


@pytest.mark.parametrize("planted", ["blocks", "layers", "profile"])
def test_a_directory_link_planted_in_the_cache_leads_nowhere(tmp_path: Path, planted: str) -> None:
    """A symbolic link where the cache keeps its own directories: no build writes through
    it, and no eviction or prune removes what it leads to."""
    root, elsewhere = tmp_path / "cache", tmp_path / "elsewhere"
    with BlockCache.open(root, PROFILE) as cache:
        cache.put(KEY, b"data", compressed=False)
    prune(root, limit=None)
    ident = PROFILE.ident()
    victims = [elsewhere / ident / name for name in ("notes", ".hidden", "f" * 32 + ".idx")]
    victims += [elsewhere / ident / ("ab" * 32), elsewhere / ident / "ab" / ("cd" * 31)]
    for victim in victims:
        victim.parent.mkdir(parents=True, exist_ok=True)
        victim.write_text("keep me")
    if planted == "profile":
        (root / "blocks").mkdir(parents=True, exist_ok=True)
        (root / "blocks" / ident).symlink_to(elsewhere / ident)
    else:
        (root / planted).symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.rglob("*"))
    for _ in range(2):
        with BlockCache.open(root, PROFILE, limit=0) as cache:
            cache.put(bytes(32), b"other", compressed=False)
            cache.lookup(KEY)
    prune(root, limit=0)
    prune(root, limit=None)
    assert sorted(p.name for p in elsewhere.rglob("*")) == before
    assert all(victim.read_text() == "keep me" for victim in victims)


@pytest.mark.parametrize("planted", ["symlink", "fifo", "directory"])
def test_a_lock_planted_as_something_else_is_refused(tmp_path: Path, planted: str) -> None:
    root, target = tmp_path / "cache", tmp_path / "created-through-the-lock"
    (root / "blocks").mkdir(parents=True)
    if planted == "symlink":
        (root / "lock").symlink_to(target)
    elif planted == "fifo":
        os.mkfifo(root / "lock")
    else:
        (root / "lock").mkdir()
    with BlockCache.open(root, PROFILE) as cache:
        assert cache.disabled is not None and "not a regular file" in cache.disabled
    with pytest.raises(OSError, match="not a regular file"):
        prune(root, limit=None)
    assert not target.exists()


def test_a_build_reading_many_segments_keeps_few_descriptors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cache"
    keys = [bytes([n]) * 32 for n in range(40)]
    for key in keys:
        with BlockCache.open(root, PROFILE, limit=None) as cache:
            cache.put(key, key * 3, compressed=False)
    monkeypatch.setattr(catalog, "MAX_OPEN", 8)
    before = len(os.listdir("/proc/self/fd"))
    with BlockCache.open(root, PROFILE, limit=None) as cache:
        for _ in range(2):
            assert all(cache.lookup(key) == (key * 3, False, True) for key in keys)
        assert len(os.listdir("/proc/self/fd")) <= before + 8 + 2
    assert len(os.listdir("/proc/self/fd")) == before
