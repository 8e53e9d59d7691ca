"""The layer index (imgforge.cache.layers) with the squashfs writer: a file of an image
layer packed once is not read again, and the image is the same bytes whatever the index
and the cache hold; a changed, damaged or foreign index only costs reading."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgforge.cache import BlockCache, Profile
from imgforge.cache.layers import LayerIndex
from imgforge.squashfs import packer
from imgforge.squashfs.codec import Codec
from imgforge.squashfs.members import Member, OnDisk, on_disk
from imgforge.squashfs.writer import SquashfsWriter

CODEC = Codec.of("gzip", block_size=4096)
assert CODEC is not None
PROFILE = Profile(CODEC.name, CODEC.level, CODEC.block_size, CODEC.writer)
BS = CODEC.block_size
MTIME = 1_700_000_000


def stamp_of(path: Path) -> tuple[int, int, int, int]:
    found = os.lstat(path)
    return found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns


def layer_members(layer: Path) -> Iterator[Member]:
    """The regular files of ``layer`` as members, their data OnDisk."""
    for path in sorted(layer.rglob("*")):
        name = str(path.relative_to(layer))
        info = tarfile.TarInfo(name)
        found = os.lstat(path)
        info.mtime, info.mode = MTIME, stat.S_IMODE(found.st_mode)
        if path.is_dir():
            info.type = tarfile.DIRTYPE
            yield info, None
            continue
        info.size = found.st_size
        yield info, on_disk(OnDisk(str(path), str(layer), name, stamp_of(path)))


def stream_members(layer: Path) -> Iterator[Member]:
    """The same members, their data read from memory as a tar stream gives it."""
    for info, data in layer_members(layer):
        yield info, None if data is None else io.BytesIO(data.read())


class Counting:
    """Counts the full-size block reads of OnDisk files, and the bytes read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.blocks = self.bytes = 0
        original = OnDisk.block

        def block(file: OnDisk, index: int, size: int) -> bytes:
            data = original(file, index, size)
            self.blocks += len(data) == size
            self.bytes += len(data)
            return data

        monkeypatch.setattr(OnDisk, "block", block)
        reads = OnDisk.read

        def read(file: OnDisk, size: int = -1) -> bytes:
            data = reads(file, size)
            self.blocks += len(data) == BS
            self.bytes += len(data)
            return data

        monkeypatch.setattr(OnDisk, "read", read)


def pack(
    out: Path, members: Iterator[Member], cache: Path | None, *, index: bool = True
) -> tuple[bytes, int]:
    """The image's bytes, and how many files the index gave the blocks of."""
    store = None if cache is None else BlockCache.open(cache, PROFILE)
    layers = LayerIndex(store) if store is not None and index else None
    try:
        with out.open("w+b") as handle:
            writer = SquashfsWriter(handle, codec=CODEC, mtime=MTIME, store=store, jobs=2,
                                    index=layers)  # fmt: skip
            for info, data in members:
                writer.addfile(info, data)
            writer.finish()
            writer.close()
        if layers is not None:
            layers.save()
    finally:
        if store is not None:
            store.close()
    return out.read_bytes(), 0 if layers is None else layers.used


def make_layer(root: Path, sizes: list[int]) -> Path:
    layer = root / "layer"
    (layer / "sub").mkdir(parents=True)
    for number, size in enumerate(sizes):
        data = bytes(size) if number % 5 == 4 else os.urandom(size)  # some sparse files
        (layer / ("sub" if number % 2 else ".") / f"f{number}").write_bytes(data)
    return layer


SIZES = [0, 10, BS, BS + 1, 3 * BS, 5 * BS - 7, 2 * BS, 70]
KNOWN = sum(1 for size in SIZES if size)  # the files with data, which the index learns


def test_second_pack_reads_nothing_and_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = make_layer(tmp_path, SIZES)
    scratch, _ = pack(tmp_path / "scratch", stream_members(layer), None)
    counting = Counting(monkeypatch)
    cold, used = pack(tmp_path / "cold", layer_members(layer), tmp_path / "cache")
    assert cold == scratch and used == 0
    assert counting.blocks == sum(size // BS for size in SIZES)
    counting.blocks = counting.bytes = 0
    monkeypatch.setattr(packer, "SAMPLE_BYTES", 0)  # no hit read to time the compressor
    warm, used = pack(tmp_path / "warm", layer_members(layer), tmp_path / "cache")
    assert warm == scratch
    assert used == KNOWN
    assert counting.bytes == 0  # neither a block nor a tail


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    layer = make_layer(tmp_path, SIZES)
    pack(tmp_path / "cold", layer_members(layer), tmp_path / "cache")
    changed = layer / "f2"
    before = os.lstat(changed)
    changed.write_bytes(os.urandom(BS))  # same size, mtime set back: the ctime moves
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns))
    scratch, _ = pack(tmp_path / "scratch", stream_members(layer), None)
    warm, used = pack(tmp_path / "warm", layer_members(layer), tmp_path / "cache")
    assert warm == scratch
    assert used == KNOWN - 1


def index_files(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "layers").rglob("*") if p.is_file())


def test_a_damaged_or_foreign_index_is_not_used(tmp_path: Path) -> None:
    layer = make_layer(tmp_path, SIZES)
    cache = tmp_path / "cache"
    scratch, _ = pack(tmp_path / "scratch", stream_members(layer), None)
    pack(tmp_path / "cold", layer_members(layer), cache)
    (saved,) = index_files(cache)
    data = bytearray(saved.read_bytes())
    data[-3] ^= 0x01
    saved.write_bytes(bytes(data))
    warm, used = pack(tmp_path / "damaged", layer_members(layer), cache)
    assert (warm, used) == (scratch, 0)
    # That pack wrote it again, whole; others may write to its directory now.
    saved.parent.chmod(0o777)
    warm, used = pack(tmp_path / "foreign", layer_members(layer), cache)
    assert (warm, used) == (scratch, 0)


def test_an_index_of_another_format_is_not_used(tmp_path: Path) -> None:
    """Whole and checksummed, but not the records this code reads (here, JSON nested
    deeper than a parser recurses): read as none, never a failed build."""
    from imgforge.cache import entry
    from imgforge.cache.layers import _key

    layer = make_layer(tmp_path, SIZES)
    cache = tmp_path / "cache"
    scratch, _ = pack(tmp_path / "scratch", stream_members(layer), None)
    pack(tmp_path / "cold", layer_members(layer), cache)
    (saved,) = index_files(cache)
    nested = b"[" * 200_000 + b"]" * 200_000
    saved.write_bytes(entry.encode(_key(str(layer)), nested, compressed=False))
    warm, used = pack(tmp_path / "nested", layer_members(layer), cache)
    assert (warm, used) == (scratch, 0)


def test_a_read_only_cache_still_serves_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache that can't record an index's last use (a read-only mount) serves it, as
    it serves its blocks."""
    import errno

    layer = make_layer(tmp_path, SIZES)
    cache = tmp_path / "cache"
    scratch, _ = pack(tmp_path / "scratch", stream_members(layer), None)
    pack(tmp_path / "cold", layer_members(layer), cache)

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "utime", read_only)
    warm, used = pack(tmp_path / "warm", layer_members(layer), cache)
    assert warm == scratch and used == KNOWN


def test_an_index_is_written_only_where_it_would_be_read(tmp_path: Path) -> None:
    """An index is read only from a private directory: it is written nowhere else, so
    never through a symbolic link planted under layers/ in a cache others may write."""
    layer = make_layer(tmp_path, SIZES)
    cache = tmp_path / "cache"
    directory = cache / "layers" / PROFILE.ident()
    directory.parent.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    directory.symlink_to(elsewhere)
    pack(tmp_path / "linked", layer_members(layer), cache)
    assert list(elsewhere.iterdir()) == []
    directory.unlink()
    directory.mkdir()
    directory.chmod(0o777)
    pack(tmp_path / "shared", layer_members(layer), cache)
    assert list(directory.iterdir()) == []
    directory.chmod(0o755)
    pack(tmp_path / "private", layer_members(layer), cache)
    assert len(index_files(cache)) == 1


def test_blocks_gone_from_the_cache_are_read(tmp_path: Path) -> None:
    layer = make_layer(tmp_path, SIZES)
    cache = tmp_path / "cache"
    scratch, _ = pack(tmp_path / "scratch", stream_members(layer), None)
    pack(tmp_path / "cold", layer_members(layer), cache)
    for entry in (cache / "blocks").rglob("*"):
        if entry.is_file() and entry.name != "profile.json":
            entry.unlink()
    warm, used = pack(tmp_path / "warm", layer_members(layer), cache)
    assert warm == scratch and used > 0


def test_a_file_cut_under_the_pack_is_an_error(tmp_path: Path) -> None:
    layer = make_layer(tmp_path, [3 * BS + 5])
    cache = tmp_path / "cache"
    pack(tmp_path / "cold", layer_members(layer), cache)
    members = list(layer_members(layer))
    for entry in (cache / "blocks").rglob("*"):
        if entry.is_file() and entry.name != "profile.json":
            entry.unlink()
    with (layer / "f0").open("r+b") as handle:
        handle.truncate(BS)
    from imgforge.errors import LayersUnreadable

    with pytest.raises(LayersUnreadable, match="changed while it was packed"):
        pack(tmp_path / "warm", iter(members), cache)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sizes=st.lists(st.integers(0, 6 * BS), min_size=1, max_size=8), data=st.data())
def test_property_warm_equals_scratch(tmp_path_factory: pytest.TempPathFactory,
                                      sizes: list[int], data: st.DataObject) -> None:  # fmt: skip
    root = tmp_path_factory.mktemp("layer")
    layer = make_layer(root, sizes)
    cache = root / "cache"
    scratch, _ = pack(root / "scratch", stream_members(layer), None)
    assert pack(root / "cold", layer_members(layer), cache)[0] == scratch
    rewritten = data.draw(st.sets(st.integers(0, len(sizes) - 1)), label="rewritten")
    for number in rewritten:
        path = layer / ("sub" if number % 2 else ".") / f"f{number}"
        path.write_bytes(os.urandom(sizes[number]))
    scratch, _ = pack(root / "scratch2", stream_members(layer), None)
    assert pack(root / "warm", layer_members(layer), cache)[0] == scratch


def test_prune_removes_the_indexes(tmp_path: Path) -> None:
    from imgforge.cache import prune

    layer = make_layer(tmp_path, SIZES)
    cache = tmp_path / "cache"
    pack(tmp_path / "cold", layer_members(layer), cache)
    assert index_files(cache)
    prune(cache, limit=10**12)  # nothing evicted: the index stays
    assert index_files(cache)
    prune(cache, limit=None)
    assert not (cache / "layers").exists()


def test_concurrent_packs_leave_one_whole_index(tmp_path: Path) -> None:
    """Packs saving the same layer's index at once: each rename is whole, and the last
    one is what the next pack reads."""
    import threading

    layer = make_layer(tmp_path, SIZES)
    cache = tmp_path / "cache"
    scratch, _ = pack(tmp_path / "scratch", stream_members(layer), None)
    errors: list[BaseException] = []

    def one(number: int) -> None:
        try:
            made, _ = pack(tmp_path / f"out{number}", layer_members(layer), cache)
            assert made == scratch
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    (saved,) = index_files(cache)
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".")]
    warm, used = pack(tmp_path / "warm", layer_members(layer), cache)
    assert warm == scratch and used == KNOWN


def test_entries_others_could_write_are_checked_against_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache whose block directory others may write: the index's keys and digests
    don't make its entries trusted; blocks and tails are read and compared."""
    layer = make_layer(tmp_path, SIZES)
    cache = tmp_path / "cache"
    scratch, _ = pack(tmp_path / "scratch", stream_members(layer), None)
    pack(tmp_path / "cold", layer_members(layer), cache)
    (cache / "blocks" / PROFILE.ident()).chmod(0o777)
    counting = Counting(monkeypatch)
    warm, used = pack(tmp_path / "warm", layer_members(layer), cache)
    assert warm == scratch and used == KNOWN
    # All but the full blocks of zeros (make_layer's every fifth file), known as such.
    zeros = sum(size // BS * BS for n, size in enumerate(SIZES) if n % 5 == 4)
    assert counting.bytes == sum(SIZES) - zeros


def test_a_tail_unlike_its_digest_is_an_error(tmp_path: Path) -> None:
    """An index whose tail digest is not the file's (as if the file changed and kept
    its stamp): the fragment is not in the cache under the digests, the tail is read,
    and it fails the digest: never a fragment of other bytes (a build then reads the
    export instead)."""
    from imgforge.cache import entry, layerfile
    from imgforge.cache.layers import _key
    from imgforge.errors import LayersUnreadable

    layer = make_layer(tmp_path, [BS + 10])
    cache = tmp_path / "cache"
    pack(tmp_path / "cold", layer_members(layer), cache)
    (saved,) = index_files(cache)
    found = entry.decode(_key(str(layer)), saved.read_bytes())
    assert found is not None
    files = layerfile.decode(str(layer), found[0])
    ((name, record),) = files.items()
    stamp, keys, tail = layerfile.unpack(record)
    assert tail is not None
    files[name] = layerfile.record(stamp, keys, bytes(32))
    payload = layerfile.encode(str(layer), files)
    saved.write_bytes(entry.encode(_key(str(layer)), payload, compressed=False))
    with pytest.raises(LayersUnreadable, match="changed while it was packed"):
        pack(tmp_path / "warm", layer_members(layer), cache)


def test_a_stamp_beyond_64_bits_is_not_kept(tmp_path: Path) -> None:
    """A file whose mtime the index can't hold (past the year 2262) is packed, and read
    again next time."""
    layer = make_layer(tmp_path, [BS + 10, 20])
    far = 2**63 + 5

    def members() -> Iterator[Member]:
        for info, data in layer_members(layer):
            if isinstance(data, OnDisk) and data.name == "f0":
                data = on_disk(OnDisk(data.path, data.layer, data.name, (1, BS + 10, far, far)))
            yield info, data

    cache = tmp_path / "cache"
    scratch, _ = pack(tmp_path / "scratch", stream_members(layer), None)
    assert pack(tmp_path / "cold", members(), cache)[0] == scratch
    warm, used = pack(tmp_path / "warm", members(), cache)
    assert warm == scratch and used == 1
