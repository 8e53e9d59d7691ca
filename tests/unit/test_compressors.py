"""imgforge.compressors: the one table of squashfs compressors, checked against the tools."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from imgforge.compressors import COMPRESSORS, DEFAULT_COMPRESSOR, REFUSED_COMPRESSORS
from imgforge.options import COMPRESSIONS, Options, check_compression

# squashfs_fs.h (Linux fs/squashfs/): the superblock's compression ids.
SUPERBLOCK_IDS = {"gzip": 1, "lzma": 2, "lzo": 3, "xz": 4, "lz4": 5, "zstd": 6}


def test_the_default_comes_first_and_is_the_options_default() -> None:
    assert next(iter(COMPRESSORS)) == DEFAULT_COMPRESSOR == Options().compression == "gzip"
    assert COMPRESSIONS == ("gzip", "xz", "zstd", "lz4", "lzo")


def test_each_row_is_named_by_its_key_and_has_the_kernel_id() -> None:
    for name, compressor in COMPRESSORS.items():
        assert compressor.name == name
        assert compressor.superblock_id == SUPERBLOCK_IDS[name]


def test_a_refused_compressor_is_not_in_the_table() -> None:
    assert not set(REFUSED_COMPRESSORS) & set(COMPRESSORS)
    for name in REFUSED_COMPRESSORS:
        assert name in SUPERBLOCK_IDS  # known to the tools, refused on purpose
    check_compression("zstd")


def _listed(argv: list[str], heading: str) -> set[str]:
    """The compressor names a tool's help lists, one per line under ``heading``."""
    text = subprocess.run(argv, capture_output=True, text=True).stdout
    after = text.split(heading, 1)[1]
    names = set()
    for line in after.splitlines()[1:]:
        if not line.strip() or not line.startswith("\t"):
            break
        names.add(line.split()[0])
    return names


@pytest.mark.skipif(shutil.which("tar2sqfs") is None, reason="squashfs-tools-ng not installed")
def test_tar2sqfs_knows_every_tar2sqfs_value() -> None:
    known = _listed(["tar2sqfs", "--help"], "Available SquashFS block compressors:")
    assert {c.tar2sqfs for c in COMPRESSORS.values()} <= known


@pytest.mark.skipif(shutil.which("mksquashfs") is None, reason="squashfs-tools not installed")
def test_mksquashfs_knows_every_mksquashfs_value() -> None:
    known = _listed(["mksquashfs", "-help"], "Compressors available:")
    assert {c.mksquashfs for c in COMPRESSORS.values()} <= known
