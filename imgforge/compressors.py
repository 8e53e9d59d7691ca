"""The squashfs compressors an image may use: one table of what each is called by whom."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Compressor:
    """One squashfs compressor, by the names each tool gives it."""

    # What users type after --compression, and what the build record holds.
    name: str
    # mksquashfs' ``-comp`` value (the apptainer backend passes it in --mksquashfs-args).
    mksquashfs: str
    # tar2sqfs' ``--compressor`` value (squashfs-tools-ng, the native backend).
    tar2sqfs: str
    # The superblock's compression id (squashfs_fs.h in Linux, fs/squashfs/).
    superblock_id: int
    # The first Linux release whose squashfs mounts it (squashfuse reads all five).
    linux: str


# gzip first: the default, and the one every kernel and every Apptainer mounts. The
# order is the one --help and the error messages list.
COMPRESSORS: Mapping[str, Compressor] = MappingProxyType(
    {
        c.name: c
        for c in (
            Compressor("gzip", mksquashfs="gzip", tar2sqfs="gzip", superblock_id=1, linux="2.6.29"),
            Compressor("xz", mksquashfs="xz", tar2sqfs="xz", superblock_id=4, linux="2.6.38"),
            Compressor("zstd", mksquashfs="zstd", tar2sqfs="zstd", superblock_id=6, linux="4.14"),
            Compressor("lz4", mksquashfs="lz4", tar2sqfs="lz4", superblock_id=5, linux="3.19"),
            Compressor("lzo", mksquashfs="lzo", tar2sqfs="lzo", superblock_id=3, linux="2.6.36"),
        )
    }
)
DEFAULT_COMPRESSOR = "gzip"

# Known to squashfs tools but refused, with the reason (said after "--compression: ").
REFUSED_COMPRESSORS: Mapping[str, str] = MappingProxyType(
    {
        "lzma": "lzma makes squashfs images that neither the kernel nor squashfuse can mount; "
        "use xz (same algorithm, mountable) or gzip",
    }
)
