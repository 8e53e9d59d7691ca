"""Reusing compressed blocks from the cache is exact: an image packed with a cold, warm,
shared or damaged cache is byte for byte the image packed without one."""

from __future__ import annotations

import io
import itertools
import multiprocessing
import os
import random
import tarfile
import zlib
from pathlib import Path

import pytest
from cachefiles import RECORD, entries, indexes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgforge.cache import BlockCache, Profile, entry
from imgforge.squashfs.codec import Codec
from imgforge.squashfs.writer import Packed, SquashfsWriter

CODEC = Codec("gzip", 1, 4096)
PROFILE = Profile(CODEC.name, CODEC.level, CODEC.block_size, CODEC.writer)


def archive(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def pack(tar: bytes, target: Path, cache_root: Path | None) -> tuple[bytes, Packed]:
    store = BlockCache.open(cache_root, PROFILE) if cache_root is not None else None
    try:
        with target.open("w+b") as out:
            writer = SquashfsWriter(out, codec=CODEC, mtime=1_700_000_000, store=store, jobs=2)
            try:
                with tarfile.open(fileobj=io.BytesIO(tar), mode="r|") as source:
                    for member in source:
                        writer.addfile(member, source.extractfile(member))
                packed = writer.finish()
            finally:
                writer.close()
    finally:
        if store is not None:
            store.close()
    return target.read_bytes(), packed


def tree(seed: int, count: int = 40) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {
        f"d{rng.randrange(4)}/f{i}": rng.randbytes(rng.choice([10, 900, 4096, 5000, 20000]))
        for i in range(count)
    }


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1000), added=st.integers(1, 6))
def test_reuse_output_equals_scratch(
    seed: int, added: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("reuse")
    base = tree(seed)
    changed = {**base, **{f"d1/new{i}": random.Random(i).randbytes(7000) for i in range(added)}}
    cold, first = pack(archive(base), work / "cold.sqfs", work / "cache")
    warm, again = pack(archive(base), work / "warm.sqfs", work / "cache")
    scratch, _ = pack(archive(base), work / "scratch.sqfs", None)
    assert cold == warm == scratch
    assert first.reuse.hits == 0 and again.reuse.misses == 0 < again.reuse.hits
    child, grown = pack(archive(changed), work / "child.sqfs", work / "cache")
    assert child == pack(archive(changed), work / "child-scratch.sqfs", None)[0]
    assert grown.reuse.hits > 0 and grown.reuse.misses > 0


def damage_cache(root: Path, damage: str) -> None:
    """Damage every entry the cache under ``root`` holds, one way."""
    found = entries(root)
    assert found
    (index,) = indexes(root)
    segment = index.with_suffix(".seg")
    header, records = index.read_bytes()[:8], []
    for number, at in enumerate(found):
        data = at.read()
        if damage == "flip":
            spot = number * 7919 % len(data)
            at.write(data[:spot] + bytes([data[spot] ^ 0x40]) + data[spot + 1 :])
        elif damage == "swap":  # each key names its neighbour's entry: wrong key inside
            other = found[(number + 1) % len(found)]
            records.append(RECORD.pack(at.key, other.offset, other.size))
        elif damage == "huge":  # larger than any entry
            records.append(RECORD.pack(at.key, at.offset, 2 * CODEC.block_size + 100))
        elif damage == "forge":  # a whole, checksummed entry for this key: another block
            forged = zlib.compress(bytes([number % 256]) * CODEC.block_size, 1)
            records.append(entry.encode(at.key, forged, compressed=True))  # the entries
    if damage == "truncate":
        os.truncate(segment, found[0].size // 2)
    elif damage == "empty":
        os.truncate(segment, 0)
    elif damage == "symlink":  # never followed (to /dev/zero: read without end)
        segment.unlink()
        segment.symlink_to("/dev/zero")
    elif damage == "fifo":  # never opened for a wait
        segment.unlink()
        os.mkfifo(segment)
    elif damage in ("swap", "huge"):
        index.write_bytes(header + b"".join(records))
    elif damage == "forge":  # as another user could, in a cache others may write to
        offsets = itertools.accumulate((len(forged) for forged in records), initial=0)
        table = b"".join(
            RECORD.pack(at.key, offset, len(forged))
            for at, offset, forged in zip(found, offsets, records, strict=False)
        )
        segment.write_bytes(b"".join(records))
        index.write_bytes(header + table)
        os.chmod(root, 0o777)


@pytest.mark.parametrize(
    "damage", ["flip", "truncate", "empty", "swap", "forge", "symlink", "fifo", "huge"]
)
def test_a_damaged_cache_is_caught_and_the_image_is_still_exact(
    damage: str, tmp_path: Path
) -> None:
    tar = archive(tree(7))
    scratch, _ = pack(tar, tmp_path / "scratch.sqfs", None)
    pack(tar, tmp_path / "cold.sqfs", tmp_path / "cache")
    damage_cache(tmp_path / "cache", damage)
    image, packed = pack(tar, tmp_path / "damaged.sqfs", tmp_path / "cache")
    assert image == scratch
    assert packed.reuse.hits == 0
    if damage == "forge":
        assert packed.reuse.rejected > 0
    # The blocks stored again, in a newer segment, are what later builds read.
    again, repaired = pack(tar, tmp_path / "repaired.sqfs", tmp_path / "cache")
    assert again == scratch and repaired.reuse.misses == 0


def _pack_in_child(args: tuple[bytes, str, str]) -> bytes:
    tar, target, cache = args
    return pack(tar, Path(target), Path(cache))[0]


def test_concurrent_builds_share_the_cache(tmp_path: Path) -> None:
    tars = [archive({**tree(1), **tree(100 + n, 10)}) for n in range(4)]
    scratch = [pack(tar, tmp_path / f"scratch{n}.sqfs", None)[0] for n, tar in enumerate(tars)]
    jobs = [(tar, str(tmp_path / f"img{n}-{r}.sqfs"), str(tmp_path / "cache"))
            for r in range(2) for n, tar in enumerate(tars)]  # fmt: skip
    with multiprocessing.get_context("fork").Pool(4) as pool:
        images = pool.map(_pack_in_child, jobs)
    assert images == scratch + scratch


def test_only_entries_no_one_else_could_have_written_skip_the_decompressing_check(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cache"
    with BlockCache.open(root, PROFILE) as cache:
        cache.put(bytes(32), b"block", compressed=False)
        found = cache.lookup(bytes(32))
        assert found is not None and found[2] is True
    os.chmod(root, 0o775)  # a cache the group may write to: any entry may be another's
    with BlockCache.open(root, PROFILE) as shared:
        found = shared.lookup(bytes(32))
        assert found is not None and found[2] is False
