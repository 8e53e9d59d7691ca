"""The native backend writes the squashfs straight into the SIF at the partition's offset:
the file is byte for byte the one assembled around a separately written squashfs, also
when the image's own metadata makes the objects in front larger or smaller than foreseen
(the partition is then moved within the file)."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes import FakeImage, tar_of

from imgforge.errors import LayersUnreadable
from imgforge.log import STEP, Kind, discard
from imgforge.recipes.image import ImageConfig
from imgforge.sif import format as sif
from imgforge.sif.assemble import partition_offset, write_sif
from imgforge.sif.backend import SifRequest
from imgforge.sif.pack import NativeBackend
from imgforge.sif.transfer import stream_members, transfer
from imgforge.squashfs.codec import Codec
from imgforge.squashfs.members import Member, OnDisk, on_disk
from imgforge.squashfs.writer import SquashfsWriter

FILES = {"labels.json": "{}\n", "runscript": '#!/bin/sh\nexec "$@"\n', "Singularity": "x\n"}


def request(target: Path, **extra: object) -> SifRequest:
    return SifRequest(
        name="demo:1", image_id="sha256:" + "1" * 64, config=ImageConfig(env=("A=1",)),
        files=FILES, deffile="Bootstrap: docker\n", convert_deffile="",
        archive=target.with_suffix(".tar"), target=target, source_date_epoch=1_700_000_000,
        **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def assembled(req: SifRequest, rootfs: bytes, path: Path) -> bytes:
    """The same SIF made the long way: a squashfs file, then write_sif around a copy."""
    squashfs = path.with_suffix(".sqfs")
    with squashfs.open("w+b") as out:
        writer = SquashfsWriter(out, codec=Codec.of(req.compression), mtime=req.timestamp(), jobs=2)  # type: ignore[arg-type]
        done = transfer(
            stream_members(io.BytesIO(rootfs)),
            writer,
            req.files,
            mtime=req.timestamp(),
            clamp=req.source_date_epoch,
        )
        writer.finish()
        writer.close()
    write_sif(req, squashfs, path, done)
    return path.read_bytes()


@pytest.mark.parametrize(
    "own",
    [
        {},  # the usual case: the image has no Apptainer metadata of its own
        {".singularity.d/runscript.help": b"Run me.\n" * 800},  # a larger inspect object
        {"scif/apps/tool/scif/runscript.help": b"A tool.\n" * 80},  # a SCIF app's
    ],
    ids=["foreseen", "own-env", "apps"],
)
@pytest.mark.parametrize("compression", ["gzip", "zstd:5", "xz"])
def test_in_place_equals_assembled(own: dict[str, bytes], compression: str, tmp_path: Path) -> None:
    rootfs = tar_of({"bin/sh": b"#!fake\n", "usr/lib/big.so": bytes(range(256)) * 2000, **own})
    target = tmp_path / "in-place.sif"
    req = request(target, compression=compression, cache_dir=tmp_path / "cache")
    packing = NativeBackend.create().make(
        req, source=FakeImage("sha256:" + "1" * 64, rootfs=rootfs), log=discard
    )
    assert target.read_bytes() == assembled(req, rootfs, tmp_path / "assembled.sif")
    assert packing.cache is not None and packing.cache.misses > 0
    with target.open("rb") as handle:
        found = sif.read(handle)
    partition = found.descriptors[-1]
    assert partition.datatype == sif.DATATYPE_CODES["Partition"]
    assert target.read_bytes()[partition.offset : partition.offset + 4] == b"hsqs"
    assert (partition.offset != partition_offset(req, None)) == (own != {})


def test_simg_is_the_launch_line_then_the_squashfs(tmp_path: Path) -> None:
    target = tmp_path / "x.simg"
    req = request(target, image_format="simg")
    NativeBackend.create().make(req, source=FakeImage("sha256:" + "1" * 64), log=discard)
    data = target.read_bytes()
    assert data.startswith(sif.LAUNCH_SCRIPT)
    assert data[len(sif.LAUNCH_SCRIPT) : len(sif.LAUNCH_SCRIPT) + 4] == b"hsqs"


@dataclass
class LayeredImage(FakeImage):
    """A FakeImage whose layers are read in place: its files written under ``layer``,
    each given as an OnDisk; the files named in ``unreadable`` are gone from the disk
    by the time the pack reads them (a layer removed, a file this process may not read)."""

    layer: Path = Path()
    unreadable: tuple[str, ...] = ()

    def layers(self) -> contextlib.AbstractContextManager[Iterator[Member] | None]:
        return contextlib.nullcontext(self._members())

    def _members(self) -> Iterator[Member]:
        for member, handle in stream_members(io.BytesIO(self.rootfs)):
            if handle is None:
                yield member, None
                continue
            path = self.layer / member.name
            if not path.exists():  # a layer's file is written once: its stamp stays
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(handle.read())
            found = os.lstat(path)
            stamp = (found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)
            if member.name in self.unreadable:
                path.unlink()
            yield member, on_disk(OnDisk(str(path), str(self.layer), member.name, stamp))


@pytest.mark.parametrize("size", [7, 3 * 131072 + 5], ids=["tail", "blocks"])
def test_a_layer_file_that_cannot_be_read_falls_back_to_the_export(
    size: int, tmp_path: Path
) -> None:
    """A file of a layer that can't be opened is the layers' failure, as an unreadable
    directory is: the pack starts again from the export (and a failure to read is
    never reported as a failure to write the SIF)."""
    rootfs = tar_of({"bin/sh": b"#!fake\n", "data/secret": bytes(range(256)) * (size // 256 + 1)})
    target = tmp_path / "layers.sif"
    req = request(target, cache_dir=tmp_path / "cache")
    image = LayeredImage("sha256:" + "1" * 64, rootfs=rootfs, layer=tmp_path / "diff",
                         unreadable=("data/secret",))  # fmt: skip
    said: list[str] = []

    def log(message: str, *, kind: Kind = STEP) -> None:
        said.append(message)

    NativeBackend.create().make(req, source=image, log=log)
    assert target.read_bytes() == assembled(req, rootfs, tmp_path / "assembled.sif")
    assert any("cannot read the image's layer file" in line and "reading docker export instead"
               in line for line in said), said  # fmt: skip


def test_an_unreadable_layer_file_is_layers_unreadable(tmp_path: Path) -> None:
    missing = OnDisk(str(tmp_path / "gone"), str(tmp_path), "gone", (1, 10, 0, 0))
    for read in (missing.read, lambda: missing.block(0, 4)):
        with pytest.raises(LayersUnreadable, match="gone: cannot read the image's layer file"):
            read()


def test_what_the_index_gave_a_pass_that_fell_back_is_not_reported(tmp_path: Path) -> None:
    """The layer index gave files to the layers' pass, which then fell back to the
    export: the log doesn't say the index gave what the SIF was not made of."""
    big = bytes(range(256)) * 1600  # three full blocks and a tail
    rootfs = tar_of({"a/known": big, "data/secret": big[::-1]})
    req = request(tmp_path / "layers.sif", cache_dir=tmp_path / "cache")
    layer = tmp_path / "diff"
    warm = LayeredImage("sha256:" + "1" * 64, rootfs=rootfs, layer=layer)
    said: list[str] = []

    def log(message: str, *, kind: Kind = STEP) -> None:
        said.append(message)

    NativeBackend.create().make(req, source=warm, log=discard)
    NativeBackend.create().make(req, source=warm, log=log)
    assert any(line.startswith("layer index: 2 files") for line in said), said
    said.clear()
    # The same files (their stamps as the index knows them), one now gone from the disk.
    gone = LayeredImage("sha256:" + "1" * 64, rootfs=rootfs, layer=layer,
                        unreadable=("data/secret",))  # fmt: skip
    NativeBackend.create().make(req, source=gone, log=log)
    assert any("reading docker export instead" in line for line in said), said
    assert not any(line.startswith("layer index:") for line in said), said
    assert req.target.read_bytes() == assembled(req, rootfs, tmp_path / "assembled.sif")
