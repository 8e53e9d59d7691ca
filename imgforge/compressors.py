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

# The compressors that take a level (``--compression NAME:LEVEL``): lowest, highest,
# default. gzip's default is mksquashfs' and tar2sqfs' (9); zstd's is zstd's own (3):
# the fast profile, where mksquashfs would take 15.
LEVELS: Mapping[str, tuple[int, int, int]] = MappingProxyType(
    {"gzip": (1, 9, 9), "zstd": (1, 22, 3)}
)


@dataclass(frozen=True)
class Compression:
    """A ``--compression`` value: the compressor, and its level where it has one."""

    name: str
    level: int | None

    @classmethod
    def parse(cls, text: str) -> Compression:
        """``NAME`` or ``NAME:LEVEL``; ValueError says what is wrong."""
        name, sep, level_text = text.partition(":")
        if reason := REFUSED_COMPRESSORS.get(name):
            raise ValueError(reason)
        if name not in COMPRESSORS:
            raise ValueError(f"{name!r} is not one of {', '.join(COMPRESSORS)}")
        if name not in LEVELS:
            if sep:
                raise ValueError(f"{name} takes no level (levels: {', '.join(LEVELS)})")
            return cls(name, None)
        low, high, default = LEVELS[name]
        if not sep:
            return cls(name, default)
        number = int(level_text) if level_text.isascii() and level_text.isdigit() else -1
        if not low <= number <= high:
            raise ValueError(f"{name} level {level_text!r} is not a whole number {low}..{high}")
        return cls(name, number)

    def __str__(self) -> str:
        """The normal spelling: the name alone at the default level."""
        if self.level is None or self.level == LEVELS[self.name][2]:
            return self.name
        return f"{self.name}:{self.level}"
