"""Reading images back: the env-script parser and SifImage on the reference files (no engine)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from imgforge.render.quoting import sh_quote
from imgforge.sif import format as sif
from imgforge.sif.deep import tree
from imgforge.sif.read import SifImage, parse_exports

DATA = Path(__file__).parents[1] / "data" / "sif"
BUSYBOX = DATA / "busybox_amd64.sif"
BUSYBOX_PARTITION = (45056, 745472)

needs_unsquashfs = pytest.mark.skipif(
    shutil.which("unsquashfs") is None, reason="needs unsquashfs (squashfs-tools)"
)
needs_sqfs2tar = pytest.mark.skipif(
    shutil.which("sqfs2tar") is None, reason="needs sqfs2tar (squashfs-tools-ng)"
)


# --- parse_exports -----------------------------------------------------------------------

HOSTILE_VALUES = [
    "",
    "plain",
    "   ",
    "$HOME",
    "${X}",
    "$(id)",
    "`id`",
    "it's",
    "'",
    "''",
    "'\\''",
    'double "quotes"',
    "back\\slash\\",
    "a; rm -rf / #",
    "héllo wörld ✓ 日本語",
    "tab\there",
    "line one\nline two",
    "\n",
    "%post\n%environment",  # .def section markers at a line start
    "\\'",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("#!/bin/sh\n# comment only\n\n", []),
        ("export A='1'\n", [("A", "1")]),
        ("export A='1'", [("A", "1")]),  # no final newline
        ("  export A='1'  \n\t\n", [("A", "1")]),  # surrounding blanks
        ("export EMPTY=''\n", [("EMPTY", "")]),
        ("export Q='it'\"'\"'s'\n", [("Q", "it's")]),
        ("export Q=\"'\"'x'\"'\"\n", [("Q", "'x'")]),  # "'" outside quotes
        ("[ -n \"${HOME:-}\" ] || export HOME='/h'\n", [("HOME", "/h")]),  # a default
        ("export M='line1\nline2'\n", [("M", "line1\nline2")]),
        ("export M='line1\n''line2'\n", [("M", "line1\nline2")]),  # sh_quote's form
        ("export U='héllo ✓ 日本'\n", [("U", "héllo ✓ 日本")]),
        ("export D='$HOME ${X} $(id) `id`'\n", [("D", "$HOME ${X} $(id) `id`")]),
        ("export _x1='a'\nexport A='b'\nexport _x1='c'\n", [("_x1", "a"), ("A", "b"),
                                                           ("_x1", "c")]),
        ("export S='  '\n# between\nexport B='\\'\n", [("S", "  "), ("B", "\\")]),
    ],
)  # fmt: skip
def test_parse_exports(text: str, expected: list[tuple[str, str]]) -> None:
    assert parse_exports(text) == expected


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_parse_exports_reads_back_what_sh_quote_writes(value: str) -> None:
    assert parse_exports(f"#!/bin/sh\nexport V={sh_quote(value)}\n") == [("V", value)]


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX sh")
def test_parse_exports_agrees_with_sh() -> None:
    """What the parser says a script sets is what sh gets by sourcing it."""
    names = [f"V{index}" for index in range(len(HOSTILE_VALUES))]
    script = "".join(
        f"export {name}={sh_quote(value)}\n"
        for name, value in zip(names, HOSTILE_VALUES, strict=True)
    )
    dumped = subprocess.run(
        ["sh", "-c", script + "env -0"], env={}, capture_output=True, check=True
    ).stdout.decode()
    seen = dict(entry.split("=", 1) for entry in dumped.split("\0") if entry)
    assert {name: seen[name] for name in names} == dict(parse_exports(script))


@pytest.mark.parametrize(
    ("text", "line", "snippet"),
    [
        ("export X=$(id)\n", 1, "export X=$(id)"),
        ('export X="a"\n', 1, 'export X="a"'),
        ("#!/bin/sh\nX='a'\n", 2, "X='a'"),
        ("export A='1'\n`touch /tmp/pwned`\n", 2, "`touch /tmp/pwned`"),
        ("export 1X='a'\n", 1, "export 1X='a'"),
        ("export X=a\n", 1, "export X=a"),
        ("export X='a'b\n", 1, "export X='a'b"),
        ("export X='a'; id\n", 1, "export X='a'; id"),
        ("export X='a' # comment\n", 1, "export X='a' # comment"),
        # Apptainer's embedded shell reads an unquoted \' as \' (sh as '): refused.
        ("export Q='it'\\''s'\n", 1, "export Q='it'\\''s'"),
        ('[ -n "${H:-}" ] || export H=$(id)\n', 1, '[ -n "${H:-}" ] || export H=$(id)'),
        ("export X='unterminated\n", 1, "export X='unterminated"),
        ("export X-Y='a'\n", 1, "export X-Y='a'"),
        ("export X='a' Y='b'\n", 1, "export X='a' Y='b'"),
        ("export X='a'\r\n", 1, "export X='a'\r"),
        ("# ok\n\nexport X='a'\nunset X\n", 4, "unset X"),
        (". /etc/profile\n", 1, ". /etc/profile"),
    ],
)
def test_parse_exports_rejects_anything_else(text: str, line: int, snippet: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_exports(text)
    message = str(caught.value)
    assert message.startswith(f"line {line}: not a single-quoted export: ")
    assert repr(snippet) in message


def test_parse_exports_error_is_one_line_and_short() -> None:
    with pytest.raises(ValueError) as caught:
        parse_exports('export X="' + "a" * 500 + '"\nmore\n')
    message = str(caught.value)
    assert "\n" not in message and len(message) < 120


# --- SifImage ------------------------------------------------------------------------------


def test_open_busybox() -> None:
    image = SifImage.open(BUSYBOX)
    assert image.container is not None
    assert (image.offset, image.size) == BUSYBOX_PARTITION
    assert image.object_text("Deffile") == "BootStrap: docker\nFrom: busybox:1.33.1\n"
    assert image.object_text("GenericJSON", "oci-config.json") == (
        '{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]}'
    )
    assert (image.object_text("GenericJSON", "inspect-metadata.json") or "").startswith("{")
    assert image.object_text("GenericJSON", "no-such.json") is None
    assert image.object_text("SBOM") is None


@pytest.mark.parametrize(
    ("name", "partition"),
    [("one-group.sif", (36864, 4096)), ("two-groups.sif", (36864, 4096))],
)
def test_open_finds_the_primary_partition(name: str, partition: tuple[int, int]) -> None:
    image = SifImage.open(DATA / name)
    assert (image.offset, image.size) == partition


@pytest.mark.parametrize("name", ["empty.sif", "one-object-generic-json.sif"])
def test_open_refuses_a_sif_without_root_file_system(name: str) -> None:
    with pytest.raises(sif.SIFFormatError, match="no PrimSys partition"):
        SifImage.open(DATA / name)


def test_open_legacy_simg(tmp_path: Path) -> None:
    offset, size = BUSYBOX_PARTITION
    squashfs = BUSYBOX.read_bytes()[offset : offset + size]
    path = tmp_path / "legacy.simg"
    path.write_bytes(sif.LAUNCH_SCRIPT + squashfs)
    image = SifImage.open(path)
    assert image.container is None
    assert (image.offset, image.size) == (31, size)
    assert image.object_text("Deffile") is None


def test_open_rejects_a_bad_superblock_and_other_files(tmp_path: Path) -> None:
    data = bytearray(BUSYBOX.read_bytes())
    offset, _ = BUSYBOX_PARTITION
    data[offset : offset + 4] = b"XXXX"
    broken = tmp_path / "broken.sif"
    broken.write_bytes(bytes(data))
    with pytest.raises(
        sif.SIFFormatError, match=f"no squashfs superblock at partition offset {offset}"
    ):
        SifImage.open(broken)
    other = tmp_path / "other.img"
    other.write_bytes(b"\x7fELF" + bytes(4000))
    with pytest.raises(sif.SIFFormatError, match="neither a SIF nor a legacy squashfs image"):
        SifImage.open(other)
    script = tmp_path / "script.simg"
    script.write_bytes(sif.LAUNCH_SCRIPT + b"no squashfs here")
    with pytest.raises(sif.SIFFormatError, match="neither a SIF"):
        SifImage.open(script)


@needs_unsquashfs
def test_read_file_from_the_squashfs() -> None:
    image = SifImage.open(BUSYBOX)
    assert image.read_file("/.singularity.d/Singularity") == (
        b"BootStrap: docker\nFrom: busybox:1.33.1\n"
    )
    assert image.read_file("/.singularity.d/no-such-file") is None
    env = image.read_file("/.singularity.d/env/10-docker2singularity.sh")
    assert env == (
        b'#!/bin/sh\nexport PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n'
    )
    # Singularity 3.8 wrote double-quoted exports: imgforge's parser never runs them.
    with pytest.raises(ValueError, match="^line 2: "):
        parse_exports(env.decode())


@needs_unsquashfs
def test_read_file_from_a_legacy_simg(tmp_path: Path) -> None:
    offset, size = BUSYBOX_PARTITION
    path = tmp_path / "legacy.simg"
    path.write_bytes(sif.LAUNCH_SCRIPT + BUSYBOX.read_bytes()[offset : offset + size])
    image = SifImage.open(path)
    assert image.read_file("/.singularity.d/Singularity") == (
        b"BootStrap: docker\nFrom: busybox:1.33.1\n"
    )


@needs_sqfs2tar
def test_tar_stream_gives_the_whole_tree_with_hard_links_resolved() -> None:
    image = SifImage.open(BUSYBOX)
    with image.tar_stream() as stream:
        entries = tree(stream)
    assert not list(BUSYBOX.parent.glob("*.sqfs.tmp"))  # the partition copy is gone
    busybox = entries["bin/busybox"]
    assert busybox[0] == "0" and busybox[4] == "1149184"
    # Every applet is a hard link of one inode: each reads as the busybox binary.
    applets = [name for name, entry in entries.items() if entry == busybox]
    assert {"bin/sh", "bin/ls", "bin/[", "bin/busybox"} <= set(applets)
    assert len(applets) > 300
    # The files imgforge writes are left out of the tree (verify compares them
    # separately); the rest of /.singularity.d is the image's own and stays in.
    metadata = {name for name in entries if name.startswith(".singularity.d")}
    assert ".singularity.d/runscript" not in metadata
    assert ".singularity.d/env/90-environment.sh" not in metadata
    assert {".singularity.d/Singularity", ".singularity.d/env/94-appsbase.sh"} <= metadata
    assert "etc/passwd" in entries
