"""The SIF primitives: reading the reference files, writing a layout that reads back the
same, the /.singularity.d layout entries, and the export-stream filter (no engine)."""

from __future__ import annotations

import io
import struct
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgforge.render import SIF_FILES
from imgforge.sif import format as sif
from imgforge.sif.layout import (
    BIND_FILES,
    HISTORY,
    METADATA_DIR,
    MOUNT_POINTS,
    SYMLINKS,
    WRITTEN,
    entries,
    history_path,
    init_layer_leftover,
    normalise,
    replaced,
)
from imgforge.sif.transfer import transfer_tar

DATA = Path(__file__).parents[1] / "data" / "sif"
BUSYBOX = DATA / "busybox_amd64.sif"
REFERENCE_FILES = sorted(DATA.glob("*.sif"))
DATA_OFFSET = 32176  # 4096 + 48 * 585
NO_GROUP = 0xF0000000
GROUP_1 = 0xF0000001
GROUP_2 = 0xF0000002
BUSYBOX_TIME = 1627931376


def load(path: Path) -> sif.SIF:
    with path.open("rb") as handle:
        return sif.read(handle)


def object_bytes(path: Path, descriptor: sif.Descriptor) -> bytes:
    with path.open("rb") as handle:
        return sif.read_object(handle, descriptor)


def summary(container: sif.SIF) -> list[tuple[object, ...]]:
    """(kind, id, group, link, offset, size, size_with_padding, name) per descriptor."""
    return [
        (d.kind, d.id, d.group, d.link, d.offset, d.size, d.size_with_padding, d.name)
        for d in container.descriptors
    ]


# --- the reference files ----------------------------------------------------------------


def test_every_reference_file_is_there() -> None:
    assert [p.name for p in REFERENCE_FILES] == [
        "busybox_amd64.sif",
        "empty.sif",
        "one-group.sif",
        "one-object-generic-json.sif",
        "two-groups.sif",
    ]
    assert (DATA / "README.md").is_file()


def test_busybox_header() -> None:
    header = load(BUSYBOX).header
    assert header.launch == "#!/usr/bin/env run-singularity\n"
    assert (header.arch, header.arch_name) == ("02", "amd64")
    # Network byte order: a well-formed random (version 4, RFC 4122) UUID. PyPI "sif"
    # reads it with bytes_le and gets 4c7b304f-a858-5347-..., which is not version 4.
    assert header.id == uuid.UUID("4f307b4c-58a8-4753-9c0f-21dceefed4a6")
    assert header.id.version == 4 and header.id.variant == uuid.RFC_4122
    assert header.created == header.modified == BUSYBOX_TIME
    assert (header.descriptors_total, header.descriptors_free) == (48, 43)
    assert (header.descriptors_offset, header.descriptors_size) == (4096, 48 * 585)
    # Singularity 3.8 (sylabs/sif v1) started data at 32768, not 4096 + 48 * 585.
    assert header.data_offset == 32768
    assert header.data_offset + header.data_size == BUSYBOX.stat().st_size


def test_busybox_descriptors() -> None:
    container = load(BUSYBOX)
    assert summary(container) == [
        ("Deffile", 1, GROUP_1, 0, 32768, 39, 39, "."),
        ("GenericJSON", 2, GROUP_1, 0, 36864, 1896, 36864 - (32768 + 39) + 1896,
         "inspect-metadata.json"),
        ("GenericJSON", 3, GROUP_1, 0, 40960, 90, 40960 - (36864 + 1896) + 90,
         "oci-config.json"),
        ("Partition", 4, GROUP_1, 0, 45056, 745472, 45056 - (40960 + 90) + 745472,
         "squashfs-275937245"),
        ("Signature", 5, NO_GROUP, GROUP_1, 790528, 1765, 790528 - (45056 + 745472) + 1765,
         "."),
    ]  # fmt: skip
    assert [d.datatype for d in container.descriptors] == [
        0x4001, 0x4006, 0x4006, 0x4004, 0x4005
    ]  # fmt: skip
    assert all(d.created == d.modified == BUSYBOX_TIME for d in container.descriptors)
    assert container.primary_partition().id == 4
    assert container.find("Partition")[0].partition == ("Squashfs", "PrimSys", "amd64")
    assert [d.id for d in container.find("GenericJSON")] == [2, 3]
    assert container.find("EnvVar") == []


def test_busybox_objects() -> None:
    container = load(BUSYBOX)
    deffile, inspect, oci, partition, signature = container.descriptors
    assert object_bytes(BUSYBOX, deffile) == b"BootStrap: docker\nFrom: busybox:1.33.1\n"
    assert object_bytes(BUSYBOX, oci) == (
        b'{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],'
        b'"Cmd":["sh"]}'
    )
    assert object_bytes(BUSYBOX, inspect).startswith(b'{"data":{"attributes":')
    # The partition starts with a squashfs superblock: gzip (1), 128 KiB blocks.
    superblock = object_bytes(BUSYBOX, partition)[:24]
    magic, _, _, block_size, _, compression = struct.unpack_from("<4sIIIIH", superblock)
    assert (magic, block_size, compression) == (b"hsqs", 131072, 1)
    # The signature: SHA256 (hash type 1), the signer's 20-byte key fingerprint.
    hashtype, fingerprint = struct.unpack_from("<i20s", signature.extra)
    assert hashtype == 1
    assert fingerprint.hex() == "1137e72e6816bfc06d9caa0d15f3f4f4f14b03b2"
    assert object_bytes(BUSYBOX, signature).startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")


def test_empty_sif_has_no_objects() -> None:
    container = load(DATA / "empty.sif")
    header = container.header
    assert container.descriptors == ()
    assert (header.launch, header.arch, header.arch_name) == ("", "00", "unknown")
    assert header.id == uuid.UUID(int=0)
    assert header.created == header.modified == sif.ZERO_TIME
    assert (header.descriptors_free, header.descriptors_total) == (48, 48)
    assert (header.data_offset, header.data_size) == (DATA_OFFSET, 0)
    with pytest.raises(sif.SIFFormatError, match="no PrimSys partition"):
        container.primary_partition()


def test_one_object_generic_json() -> None:
    path = DATA / "one-object-generic-json.sif"
    container = load(path)
    assert summary(container) == [
        ("GenericJSON", 1, GROUP_1, 0, DATA_OFFSET, 2, 2, "data.json")
    ]  # fmt: skip
    assert object_bytes(path, container.descriptors[0]) == b"{}"
    assert container.header.descriptors_free == 47
    assert container.header.data_size == 2


def test_one_group() -> None:
    path = DATA / "one-group.sif"
    container = load(path)
    # Partitions are aligned to 4096: the gap before each is part of SizeWithPadding.
    assert summary(container) == [
        ("Partition", 1, GROUP_1, 0, 32768, 4, 32768 - DATA_OFFSET + 4, ""),
        ("Partition", 2, GROUP_1, 0, 36864, 4096, 36864 - 32772 + 4096, ""),
    ]
    assert [d.partition for d in container.descriptors] == [
        ("Raw", "System", "386"),
        ("Squashfs", "PrimSys", "386"),
    ]
    assert container.primary_partition().id == 2
    assert (container.header.arch, container.header.descriptors_free) == ("01", 46)
    assert container.header.data_size == path.stat().st_size - DATA_OFFSET
    assert object_bytes(path, container.descriptors[0]) == b"\xfa\xce\xfe\xed"


def test_two_groups() -> None:
    path = DATA / "two-groups.sif"
    container = load(path)
    assert summary(container) == [
        ("Partition", 1, GROUP_1, 0, 32768, 4, 596, ""),
        ("Partition", 2, GROUP_1, 0, 36864, 4096, 8188, ""),
        ("Partition", 3, GROUP_2, 0, 40960, 262144, 262144, ""),
    ]
    assert container.descriptors[2].partition == ("Ext3", "System", "amd64")
    assert container.primary_partition().id == 2
    assert container.header.descriptors_free == 45
    assert container.header.data_offset + container.header.data_size == path.stat().st_size


@pytest.mark.parametrize("path", REFERENCE_FILES, ids=lambda p: p.name)
def test_reference_invariants(path: Path) -> None:
    """What every file written by the reference library keeps (sylabs/sif ``pkg/sif``:
    free descriptors counted, data after the descriptors, the file ending with the data)."""
    container = load(path)
    header = container.header
    used = len(container.descriptors)
    assert header.descriptors_free == header.descriptors_total - used
    assert [d.id for d in container.descriptors] == list(range(1, used + 1))
    end = header.data_offset
    for descriptor in container.descriptors:
        assert descriptor.offset >= end  # in slot order, never overlapping
        assert descriptor.size_with_padding == descriptor.size + descriptor.offset - end
        if descriptor.kind == "Partition":
            assert descriptor.offset % 4096 == 0
        end = descriptor.offset + descriptor.size
    assert end == header.data_offset + header.data_size == path.stat().st_size


# --- malformed input ----------------------------------------------------------------------


def test_read_rejects_what_is_not_a_sif(tmp_path: Path) -> None:
    good = BUSYBOX.read_bytes()
    cases = {
        "short": (good[:100], "shorter than a SIF header"),
        "magic": (good[:32] + b"NOT_MAGIC\0" + good[42:], "no SIF_MAGIC at offset 32"),
        "version": (good[:42] + b"02\0" + good[45:], "unsupported SIF version"),
        "table": (good[:8000], "descriptor table is truncated"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.sif"
        path.write_bytes(data)
        with pytest.raises(sif.SIFFormatError, match=message):
            load(path)


# --- writing --------------------------------------------------------------------------------


def test_write_then_read_gives_back_the_layout(tmp_path: Path) -> None:
    deffile = b"bootstrap: docker\nfrom: example\n"
    config = b'{"Env":["A=1"]}'
    squashfs = b"hsqs" + bytes(5000 - 4)
    objects = [
        sif.DataObject("Deffile", len(deffile)),
        sif.DataObject("GenericJSON", len(config), name="oci-config.json"),
        sif.DataObject(
            "Partition", len(squashfs), align=sif.PARTITION_ALIGN,
            extra=sif.partition_extra("amd64"),
        ),
    ]  # fmt: skip
    prefix, offsets = sif.encode_prefix(
        objects, arch="amd64", image_id=uuid.UUID(int=0), timestamp=sif.ZERO_TIME
    )
    assert len(prefix) == DATA_OFFSET
    config_end = DATA_OFFSET + len(deffile) + len(config)
    assert offsets == [DATA_OFFSET, DATA_OFFSET + len(deffile), 32768]  # 32223 rounded up
    path = tmp_path / "round.sif"
    with path.open("wb") as out:
        out.write(prefix)
        for offset, data in zip(offsets, [deffile, config, squashfs], strict=True):
            out.seek(offset)
            out.write(data)

    container = load(path)
    header = container.header
    assert header.launch == sif.LAUNCH_SCRIPT.decode()
    assert (header.arch, header.arch_name) == ("02", "amd64")
    assert header.id == uuid.UUID(int=0)
    assert header.created == header.modified == -62135596800
    assert (header.descriptors_total, header.descriptors_free) == (48, 45)
    assert (header.descriptors_offset, header.descriptors_size) == (4096, 28080)
    assert header.data_offset == DATA_OFFSET
    assert header.data_offset + header.data_size == path.stat().st_size == 32768 + 5000
    assert summary(container) == [
        ("Deffile", 1, GROUP_1, 0, DATA_OFFSET, len(deffile), len(deffile), ""),
        ("GenericJSON", 2, GROUP_1, 0, DATA_OFFSET + len(deffile), len(config),
         len(config), "oci-config.json"),
        ("Partition", 3, GROUP_1, 0, 32768, 5000, 32768 - config_end + 5000, ""),
    ]  # fmt: skip
    assert all(d.created == d.modified == sif.ZERO_TIME for d in container.descriptors)
    assert container.primary_partition().partition == ("Squashfs", "PrimSys", "amd64")
    assert object_bytes(path, container.descriptors[0]) == deffile
    assert object_bytes(path, container.descriptors[1]) == config
    assert object_bytes(path, container.descriptors[2]) == squashfs
    # Everything else in the header block and the table is zero.
    raw = path.read_bytes()
    assert raw[sif.HEADER.size : 4096] == bytes(4096 - sif.HEADER.size)
    assert raw[4096 + 3 * 585 : DATA_OFFSET] == bytes(DATA_OFFSET - 4096 - 3 * 585)


def test_random_id_and_time_when_not_deterministic() -> None:
    image_id = uuid.uuid4()
    prefix, _ = sif.encode_prefix(
        [sif.DataObject("Deffile", 1)], arch="arm64", image_id=image_id, timestamp=1700000000
    )
    fields = sif.HEADER.unpack_from(prefix)
    assert fields[3] == b"04\0"
    assert uuid.UUID(bytes=fields[4]) == image_id  # network order, as Go writes uuid.UUID
    assert fields[5:7] == (1700000000, 1700000000)


def test_empty_layout() -> None:
    prefix, offsets = sif.encode_prefix(
        [], arch="amd64", image_id=uuid.UUID(int=0), timestamp=sif.ZERO_TIME
    )
    assert offsets == []
    fields = sif.HEADER.unpack_from(prefix)
    assert fields[7:] == (48, 48, 4096, 28080, DATA_OFFSET, 0)


def test_layout_alignment() -> None:
    placed = sif.layout(
        [sif.DataObject("Deffile", 10), sif.DataObject("Partition", 4096, align=4096),
         sif.DataObject("Partition", 1, align=4096), sif.DataObject("Generic", 3)]
    )  # fmt: skip
    assert placed == [
        (DATA_OFFSET, 10),
        (32768, 32768 - (DATA_OFFSET + 10) + 4096),
        (36864, 1),  # already aligned: no gap
        (36865, 3),
    ]


@pytest.mark.parametrize(
    ("name", "arch"),
    [("one-object-generic-json.sif", "amd64"), ("one-group.sif", "386")],
)
def test_writer_matches_the_reference_library_byte_for_byte(name: str, arch: str) -> None:
    """The same objects, deterministic: every byte after the launch script (which the
    library leaves empty) equals the file sylabs/sif wrote; arch too when it has a PrimSys."""
    path = DATA / name
    reference = path.read_bytes()
    container = load(path)
    objects = [
        sif.DataObject(
            d.kind, d.size, name=d.name, extra=d.extra.rstrip(b"\0"),
            align=sif.PARTITION_ALIGN if d.kind == "Partition" else 1,
        )
        for d in container.descriptors
    ]  # fmt: skip
    prefix, offsets = sif.encode_prefix(
        objects, arch=arch, image_id=uuid.UUID(int=0), timestamp=sif.ZERO_TIME
    )
    written = bytearray(prefix)
    for descriptor, offset in zip(container.descriptors, offsets, strict=True):
        written[len(written) :] = bytes(offset - len(written))
        written += object_bytes(path, descriptor)
    start = 48 if container.header.arch == "00" else 32  # no PrimSys: the library says 00
    assert bytes(written[start:]) == reference[start:]
    assert bytes(written[32:42]) == b"SIF_MAGIC\0"


# --- the /.singularity.d layout --------------------------------------------------------------


FILES = {
    "Singularity": "Bootstrap: docker\n",
    "labels.json": "{}",
    "runscript": "#!/bin/sh\nexec /bin/true\n",
    "env/01-base.sh": "#!/bin/sh\n",
    "env/10-docker2singularity.sh": "#!/bin/sh\nexport A='1'\n",
    "actions/run": "#!/bin/sh\n",
}


def by_name(present: set[str]) -> dict[str, tarfile.TarInfo]:
    return {e.info.name: e.info for e in entries(FILES, present=present, mtime=1234)}


def test_mount_points_only_when_missing() -> None:
    everything = by_name(set())
    for name, mode in MOUNT_POINTS.items():
        assert everything[name].isdir() and everything[name].mode == mode, name
    assert {everything[name].mode for name in MOUNT_POINTS} == {0o755}  # as makeDirs
    partial = by_name({"tmp", "etc", "var", "dev"})
    assert not {"tmp", "etc", "var", "dev"} & partial.keys()
    assert {"home", "proc", "root", "sys", "var/tmp"} <= partial.keys()


def test_bind_files_are_always_regular_empty_0644() -> None:
    for present in (set(), set(BIND_FILES) | set(MOUNT_POINTS)):
        found = by_name(present)
        for name in BIND_FILES:
            info = found[name]
            assert info.isreg() and info.size == 0 and info.mode == 0o644, name


def test_metadata_files_dirs_and_modes() -> None:
    found = by_name(set())
    for directory in [METADATA_DIR, f"{METADATA_DIR}/libs", f"{METADATA_DIR}/env",
                      f"{METADATA_DIR}/actions"]:  # fmt: skip
        assert found[directory].isdir() and found[directory].mode == 0o755, directory
    for path, text in FILES.items():
        info = found[f"{METADATA_DIR}/{path}"]
        assert info.isreg() and info.size == len(text.encode()), path
        assert info.mode == (0o644 if path in ("labels.json", "Singularity") else 0o755), path
    for name, target in SYMLINKS.items():
        assert found[name].issym() and found[name].linkname == target, name
    assert found["singularity"].linkname == ".singularity.d/runscript"
    assert found["environment"].linkname == ".singularity.d/env/90-environment.sh"
    for info in found.values():
        assert (info.uid, info.gid, info.uname, info.gname, info.mtime) == (
            0, 0, "root", "root", 1234
        )  # fmt: skip


def test_entries_carry_their_data_and_parents_come_first() -> None:
    seen: set[str] = set()
    for entry in entries(FILES, present=set(), mtime=0):
        name = entry.info.name
        parent = name.rsplit("/", 1)[0] if "/" in name else ""
        assert not parent or parent in seen, name
        seen.add(name)
        handle = entry.fileobj()
        if entry.info.isreg():
            assert handle is not None and len(handle.read()) == entry.info.size
        else:
            assert handle is None
    text = {e.info.name: e.data for e in entries(FILES, present=set(), mtime=0)}
    assert text[".singularity.d/env/10-docker2singularity.sh"] == b"#!/bin/sh\nexport A='1'\n"


def test_names_imgforge_replaces() -> None:
    assert normalise("./etc/hosts") == "etc/hosts"
    assert normalise("/.singularity.d/") == ".singularity.d"
    assert normalise("././tmp/") == "tmp"
    for name in [".singularity.d/env/10-docker2singularity.sh", ".singularity.d/runscript",
                 ".singularity.d/labels.json", ".singularity.d/actions/run", "etc/hosts",
                 "etc/resolv.conf"]:  # fmt: skip
        assert replaced(name), name
    # Kept from the image, as Apptainer keeps them: its metadata directories, its other
    # metadata files, its legacy links; its definition moves (not replaced here).
    for name in [".singularity.d", ".singularity.d/env", ".singularity.d/env/10-x.sh",
                 ".singularity.d/runscript.help", ".singularity.d/Singularity",
                 ".singularity.d/env/91-environment.sh", "singularity", ".run", "environment",
                 "etc", "etc/hostname", ".singularity", "singularity.d", "tmp",
                 "bin/sh"]:  # fmt: skip
        assert not replaced(name), name


def test_sif_files_are_the_ones_apptainer_writes() -> None:
    assert set(SIF_FILES) == WRITTEN


def member(name: str, kind: bytes, *, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, size, link
    return info


@pytest.mark.parametrize(
    ("info", "leftover"),
    [
        (member(".dockerenv", tarfile.REGTYPE), True),
        (member("./.dockerenv", tarfile.REGTYPE), True),
        (member("dev/console", tarfile.REGTYPE), True),
        (member("etc/hostname", tarfile.REGTYPE), True),
        (member("etc/mtab", tarfile.SYMTYPE, link="/proc/mounts"), True),
        # Not what the init layer makes: the image's own.
        (member("etc/hostname", tarfile.REGTYPE, size=5), False),
        (member("dev/console", tarfile.CHRTYPE), False),
        (member("etc/mtab", tarfile.SYMTYPE, link="../proc/self/mounts"), False),
        (member("etc/mtab", tarfile.REGTYPE), False),
        (member("etc/hosts", tarfile.REGTYPE), False),
        (member("dev/pts", tarfile.DIRTYPE), True),
        (member("dev/shm/", tarfile.DIRTYPE), True),
        (member("dev/shm", tarfile.REGTYPE), False),
        (member("x/.dockerenv", tarfile.REGTYPE), False),
    ],
)
def test_init_layer_leftovers(info: tarfile.TarInfo, leftover: bool) -> None:
    assert init_layer_leftover(info) is leftover


def test_history_path_counts_the_entries_already_there() -> None:
    assert history_path({"bin", ".singularity.d"}) == f"{HISTORY}/Apptainer0"
    names = {HISTORY, f"{HISTORY}/Singularity0", f"{HISTORY}/x", f"{HISTORY}/x/y", "bin"}
    assert history_path(names) == f"{HISTORY}/Apptainer2"


# --- the export stream filter ----------------------------------------------------------------


def tar_of(*members: tuple[str, bytes, int, bytes | str]) -> io.BytesIO:
    """A tar of (name, type, mtime, data or link target) in memory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, mtime, payload in members:
            info = tarfile.TarInfo(name)
            info.type, info.mtime, info.mode = kind, mtime, 0o755
            if kind == tarfile.REGTYPE:
                assert isinstance(payload, bytes)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                info.linkname = str(payload)
                tar.addfile(info)
    buffer.seek(0)
    return buffer


def members_of(data: bytes) -> Iterator[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        yield from tar.getmembers()


def exported() -> io.BytesIO:
    """A ``docker export``-like stream: image files, old metadata, a dangling resolv.conf,
    and what the engine adds at ``docker create`` (newer mtimes)."""
    return tar_of(
        ("bin/", tarfile.DIRTYPE, 1000, ""),
        ("bin/sh", tarfile.REGTYPE, 1000, b"#!sh"),
        ("bin/dash", tarfile.LNKTYPE, 1000, "bin/sh"),
        ("tmp/", tarfile.DIRTYPE, 1000, ""),
        (".dockerenv", tarfile.REGTYPE, 9999, b""),
        ("dev/", tarfile.DIRTYPE, 9999, ""),
        ("dev/console", tarfile.REGTYPE, 9999, b""),
        ("etc/", tarfile.DIRTYPE, 9999, ""),
        ("etc/hostname", tarfile.REGTYPE, 9999, b""),
        ("etc/mtab", tarfile.SYMTYPE, 9999, "/proc/mounts"),
        ("etc/os-release", tarfile.REGTYPE, 1000, b"ID=x\n"),
        ("etc/resolv.conf", tarfile.SYMTYPE, 1000, "../run/systemd/resolve/stub-resolv.conf"),
        (".singularity.d/", tarfile.DIRTYPE, 1000, ""),
        (".singularity.d/runscript", tarfile.REGTYPE, 1000, b"old"),
        (".singularity.d/runscript.help", tarfile.REGTYPE, 1000, b"Help!\n\n"),
        (".singularity.d/Singularity", tarfile.REGTYPE, 1000, b"bootstrap: docker\n"),
        (".singularity.d/env/", tarfile.DIRTYPE, 1000, ""),
        (".singularity.d/env/91-environment.sh", tarfile.REGTYPE, 1000, b"export B=2\n"),
        (".singularity.d/env/94-appsbase.sh", tarfile.REGTYPE, 1000, b"# not inspected\n"),
        ("singularity", tarfile.SYMTYPE, 1000, "elsewhere"),
        ("scif/apps/foo/scif/", tarfile.DIRTYPE, 1000, ""),
        ("scif/apps/foo/scif/runscript", tarfile.REGTYPE, 1000, b"#!/bin/sh\nfoo\n"),
    )


def test_transfer_replaces_imgforge_entries_and_appends_the_layout() -> None:
    sink = io.BytesIO()
    done = transfer_tar(exported(), sink, FILES, mtime=5000)
    members = list(members_of(sink.getvalue()))
    names = [m.name for m in members]
    assert done.entries == len(members) == len(set(names))
    assert names[:6] == ["bin", "bin/sh", "bin/dash", "tmp", "dev", "etc"]
    found = {m.name: m for m in members}
    assert found["etc/resolv.conf"].isreg() and found["etc/resolv.conf"].size == 0
    # The image's own link is kept (Apptainer makes one only where there is none).
    assert found["singularity"].linkname == "elsewhere"
    assert found[".run"].linkname == ".singularity.d/actions/run"
    assert found["bin/dash"].islnk() and found["bin/dash"].linkname == "bin/sh"
    assert "tmp" not in names[6:] and "etc" not in names[6:]  # present: not added again
    assert {"proc", "sys", "home", "root", "var", "var/tmp"} <= set(names[6:])
    assert found[".singularity.d/runscript"].size == len(FILES["runscript"])
    # Without SOURCE_DATE_EPOCH the image's times are kept as they are.
    assert found["dev"].mtime == 9999 and found["bin/sh"].mtime == 1000


def test_transfer_drops_what_dockers_init_layer_adds() -> None:
    names = {m.name for m in members_of(transfer_all())}
    assert not {".dockerenv", "dev/console", "etc/hostname", "etc/mtab"} & names
    assert {"dev", "etc", "etc/os-release"} <= names


def transfer_all() -> bytes:
    sink = io.BytesIO()
    transfer_tar(exported(), sink, FILES, mtime=5000)
    return sink.getvalue()


def test_transfer_keeps_the_images_own_metadata_and_moves_its_definition() -> None:
    """As Apptainer's build from a Docker image: the files it writes replace the image's,
    its other /.singularity.d files stay, its definition goes to bootstrap_history."""
    found = {m.name: m for m in members_of(transfer_all())}
    with tarfile.open(fileobj=io.BytesIO(transfer_all())) as tar:
        text = {
            m.name: handle.read()
            for m in tar.getmembers()
            if m.isreg() and (handle := tar.extractfile(m)) is not None
        }
    assert text[".singularity.d/runscript.help"] == b"Help!\n\n"
    assert text[".singularity.d/env/91-environment.sh"] == b"export B=2\n"
    assert text[".singularity.d/Singularity"] == FILES["Singularity"].encode()
    assert text[f"{HISTORY}/Apptainer0"] == b"bootstrap: docker\n"
    assert found[HISTORY].isdir() and found[HISTORY].mode == 0o755
    assert text[".singularity.d/runscript"] == FILES["runscript"].encode()
    assert found[".singularity.d"].mtime == 1000  # the image's directory, not a new one
    names = [m.name for m in members_of(transfer_all())]
    assert names.count(".singularity.d") == names.count(".singularity.d/env") == 1


def test_transfer_reports_what_inspect_reads_of_the_image() -> None:
    done = transfer_tar(exported(), io.BytesIO(), FILES, mtime=5000)
    assert done.inspected == {
        ".singularity.d/runscript.help": "Help!\n\n",
        ".singularity.d/env/91-environment.sh": "export B=2\n",
        "scif/apps/foo/scif/runscript": "#!/bin/sh\nfoo\n",
    }
    assert done.apps == ("foo",)


def test_transfer_clamps_times_to_source_date_epoch() -> None:
    """``docker create`` stamps /etc, /dev ... with the current time: without the clamp
    two reproducible builds differ in those inodes."""
    sink = io.BytesIO()
    transfer_tar(exported(), sink, FILES, mtime=5000, clamp=5000)
    times = {m.name: m.mtime for m in members_of(sink.getvalue())}
    assert times["dev"] == times["etc"] == 5000
    assert times["bin/sh"] == times["tmp"] == 1000  # older: untouched
    assert max(times.values()) == 5000
