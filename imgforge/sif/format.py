"""The SIF container format: header and descriptor records, read and written.

Byte layout of the reference library (github.com/sylabs/sif v2, ``pkg/sif/sif.go`` and
``create.go``; README.md, "Singularity images"): a 128-byte global header at
offset 0, a table of 585-byte descriptors at ``DescriptorsOffset``, then the data objects.
All integers little endian, no padding between fields.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field
from typing import BinaryIO

LAUNCH_SCRIPT = b"#!/usr/bin/env run-singularity\n"
MAGIC = b"SIF_MAGIC\0"
VERSION = b"01\0"
HEADER = struct.Struct("<32s10s3s3s16sqqqqqqqq")
DESCRIPTOR = struct.Struct("<i?IIIqqqqqqq128s384s")
PARTITION_EXTRA = struct.Struct("<ii3s")

DESCRIPTORS_OFFSET = 4096
DESCRIPTOR_CAPACITY = 48
PARTITION_ALIGN = 4096
GROUP_MASK = 0xF0000000
DEFAULT_GROUP = 1 | GROUP_MASK
# time.Time{}.Unix(): what the reference library stores in deterministic images.
ZERO_TIME = -62135596800

DATATYPES = {
    0x4001: "Deffile",
    0x4002: "EnvVar",
    0x4003: "Labels",
    0x4004: "Partition",
    0x4005: "Signature",
    0x4006: "GenericJSON",
    0x4007: "Generic",
    0x4008: "CryptoMessage",
    0x4009: "SBOM",
    0x400A: "OCIRootIndex",
    0x400B: "OCIBlob",
}
DATATYPE_CODES = {name: code for code, name in DATATYPES.items()}
FSTYPES = {1: "Squashfs", 2: "Ext3", 3: "ImmuObj", 4: "Raw", 5: "EncryptedSquashfs", 6: "Gocryptfs"}
PARTTYPES = {1: "System", 2: "PrimSys", 3: "Data", 4: "Overlay"}
ARCHES = {
    "386": "01", "amd64": "02", "arm": "03", "arm64": "04", "ppc64": "05", "ppc64le": "06",
    "mips": "07", "mipsle": "08", "mips64": "09", "mips64le": "10", "s390x": "11",
    "riscv64": "12", "loong64": "13",
}  # fmt: skip
ARCH_NAMES = {code: name for name, code in ARCHES.items()}


class SIFFormatError(ValueError):
    """The bytes are not a valid SIF file."""


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


@dataclass(frozen=True)
class Header:
    launch: str
    arch: str
    id: uuid.UUID
    created: int
    modified: int
    descriptors_free: int
    descriptors_total: int
    descriptors_offset: int
    descriptors_size: int
    data_offset: int
    data_size: int

    @property
    def arch_name(self) -> str:
        return ARCH_NAMES.get(self.arch, "unknown")


@dataclass(frozen=True)
class Descriptor:
    datatype: int
    id: int
    group: int
    link: int
    offset: int
    size: int
    size_with_padding: int
    created: int
    modified: int
    name: str
    extra: bytes = field(repr=False)

    @property
    def kind(self) -> str:
        return DATATYPES.get(self.datatype, f"0x{self.datatype:04x}")

    @property
    def partition(self) -> tuple[str, str, str]:
        """(fstype, parttype, arch name) of a Partition descriptor."""
        fstype, parttype, arch = PARTITION_EXTRA.unpack_from(self.extra)
        code = _cstr(arch)
        return (
            FSTYPES.get(fstype, str(fstype)),
            PARTTYPES.get(parttype, str(parttype)),
            ARCH_NAMES.get(code, "unknown"),
        )


@dataclass(frozen=True)
class SIF:
    header: Header
    descriptors: tuple[Descriptor, ...]

    def find(self, kind: str) -> list[Descriptor]:
        return [d for d in self.descriptors if d.kind == kind]

    def primary_partition(self) -> Descriptor:
        for descriptor in self.find("Partition"):
            if descriptor.partition[1] == "PrimSys":
                return descriptor
        raise SIFFormatError("no PrimSys partition")


def read(handle: BinaryIO) -> SIF:
    """Parse the header and every used descriptor; check the invariants a writer keeps."""
    handle.seek(0)
    raw = handle.read(HEADER.size)
    if len(raw) < HEADER.size:
        raise SIFFormatError("file is shorter than a SIF header")
    fields = HEADER.unpack(raw)
    if fields[1] != MAGIC:
        raise SIFFormatError("no SIF_MAGIC at offset 32")
    if fields[2] != VERSION:
        raise SIFFormatError(f"unsupported SIF version {fields[2]!r}")
    header = Header(
        _cstr(fields[0]), _cstr(fields[3]), uuid.UUID(bytes=fields[4]), *fields[5:]
    )
    handle.seek(header.descriptors_offset)
    table = handle.read(header.descriptors_total * DESCRIPTOR.size)
    if len(table) < header.descriptors_total * DESCRIPTOR.size:
        raise SIFFormatError("descriptor table is truncated")
    descriptors = []
    for index in range(header.descriptors_total):
        values = DESCRIPTOR.unpack_from(table, index * DESCRIPTOR.size)
        if not values[1]:
            continue
        *numbers, name, extra = values
        dtype, _, ident, group, link, offset, size, padded, created, modified, _, _ = numbers
        descriptors.append(
            Descriptor(dtype, ident, group, link, offset, size, padded, created, modified,
                       _cstr(name), extra)
        )  # fmt: skip
    return SIF(header, tuple(descriptors))


def read_object(handle: BinaryIO, descriptor: Descriptor) -> bytes:
    handle.seek(descriptor.offset)
    return handle.read(descriptor.size)


@dataclass(frozen=True)
class DataObject:
    """An object to write: its bytes (or only its size, for a partition copied later)."""

    kind: str
    size: int
    name: str = ""
    align: int = 1
    extra: bytes = b""


def partition_extra(arch: str) -> bytes:
    """Extra field of a squashfs PrimSys partition for ``arch`` (e.g. amd64)."""
    return PARTITION_EXTRA.pack(1, 2, ARCHES[arch].encode() + b"\0")


def layout(objects: list[DataObject]) -> list[tuple[int, int]]:
    """(offset, size_with_padding) of each object, appended in order with alignment."""
    data_offset = DESCRIPTORS_OFFSET + DESCRIPTOR_CAPACITY * DESCRIPTOR.size
    end = data_offset
    placed = []
    for obj in objects:
        offset = -(-end // obj.align) * obj.align
        placed.append((offset, obj.size + offset - end))
        end = offset + obj.size
    return placed


def encode_prefix(
    objects: list[DataObject], *, arch: str, image_id: uuid.UUID, timestamp: int
) -> tuple[bytes, list[int]]:
    """Header + descriptor table; returns it and each object's offset.

    The caller writes each object's bytes at its offset (gaps are zero).
    """
    placed = layout(objects)
    data_offset = DESCRIPTORS_OFFSET + DESCRIPTOR_CAPACITY * DESCRIPTOR.size
    data_end = placed[-1][0] + objects[-1].size if objects else data_offset
    header = HEADER.pack(
        LAUNCH_SCRIPT,
        MAGIC,
        VERSION,
        ARCHES[arch].encode() + b"\0",
        image_id.bytes,
        timestamp,
        timestamp,
        DESCRIPTOR_CAPACITY - len(objects),
        DESCRIPTOR_CAPACITY,
        DESCRIPTORS_OFFSET,
        DESCRIPTOR_CAPACITY * DESCRIPTOR.size,
        data_offset,
        data_end - data_offset,
    )
    table = b""
    for slot, (obj, (offset, padded)) in enumerate(zip(objects, placed, strict=True)):
        table += DESCRIPTOR.pack(
            DATATYPE_CODES[obj.kind], True, slot + 1, DEFAULT_GROUP, 0, offset, obj.size,
            padded, timestamp, timestamp, 0, 0, obj.name.encode(), obj.extra,
        )  # fmt: skip
    prefix = header.ljust(DESCRIPTORS_OFFSET, b"\0") + table.ljust(
        DESCRIPTOR_CAPACITY * DESCRIPTOR.size, b"\0"
    )
    return prefix, [offset for offset, _ in placed]
