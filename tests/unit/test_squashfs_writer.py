"""imgforge's squashfs writer, read back by squashfs-tools-ng (sqfs2tar) and squashfs-tools
(unsquashfs): any tree of files, directories, links, devices and xattrs comes back as it
went in, and reusing cached blocks changes no byte of the image."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgforge.errors import BuildError
from imgforge.squashfs.codec import Codec
from imgforge.squashfs.writer import SquashfsWriter

pytestmark = pytest.mark.skipif(
    not (shutil.which("sqfs2tar") and shutil.which("unsquashfs")),
    reason="needs sqfs2tar (squashfs-tools-ng) and unsquashfs (squashfs-tools)",
)

SMALL = 4096  # a small block size: many blocks and fragments from little data
NAMES = st.text(st.sampled_from("abcé-_.x\u00fc\u4e2d"), min_size=1, max_size=12).filter(
    lambda n: n not in (".", "..")
)


@st.composite
def contents(draw: st.DrawFn, earlier: list[bytes]) -> bytes:
    """File data shaped to hit every path: empty, around block sizes, zero blocks
    (sparse), repeats of earlier files (stored once), random bytes."""
    kind = draw(st.sampled_from(["random", "sized", "zeros", "repeat", "text"]))
    if kind == "repeat" and earlier:
        return draw(st.sampled_from(earlier))
    if kind == "zeros":
        return bytes(draw(st.sampled_from([SMALL, 2 * SMALL, 3 * SMALL + 7])))
    if kind == "sized":
        size = draw(st.sampled_from([0, 1, SMALL - 1, SMALL, SMALL + 1, 2 * SMALL + 5]))
        return draw(st.binary(min_size=size, max_size=size))
    if kind == "text":
        return (draw(st.text(max_size=50)).encode() or b"x") * draw(st.integers(1, 400))
    return draw(st.binary(max_size=3 * SMALL))


@st.composite
def archives(draw: st.DrawFn) -> bytes:
    """A PAX tar of a random tree."""
    out = io.BytesIO()
    files: list[str] = []
    data_seen: list[bytes] = []
    directories = [""]
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for _ in range(draw(st.integers(1, 25))):
            parent = draw(st.sampled_from(directories))
            name = (parent + "/" if parent else "") + draw(NAMES)
            if name in files or name in directories:
                continue
            kind = draw(st.sampled_from("fffdlhpcx"))
            info = tarfile.TarInfo(name)
            info.mode = draw(st.sampled_from([0o644, 0o755, 0o4755, 0o1777, 0o600, 0o2711]))
            info.uid, info.gid = (
                draw(st.sampled_from([0, 1000, 65534, 4000000])),
                draw(st.sampled_from([0, 100, 70000])),
            )
            info.mtime = draw(st.integers(0, 2**32 - 1))
            if draw(st.booleans()):
                info.pax_headers = {
                    "SCHILY.xattr.user." + draw(NAMES): draw(st.binary(max_size=40)).decode(
                        "utf-8", "surrogateescape"
                    )
                }
            data = None
            if kind == "d":
                info.type = tarfile.DIRTYPE
                directories.append(name)
            elif kind == "l":
                info.type, info.linkname = tarfile.SYMTYPE, draw(NAMES)
            elif kind == "h" and files:
                info.type, info.linkname = tarfile.LNKTYPE, draw(st.sampled_from(files))
                info.pax_headers = {}
            elif kind == "p":
                info.type = tarfile.FIFOTYPE
            elif kind == "c":
                info.type, info.devmajor, info.devminor = (
                    tarfile.CHRTYPE,
                    1,
                    draw(st.integers(0, 300)),
                )
            else:
                content = draw(contents(data_seen))
                data_seen.append(content)
                info.size = len(content)
                data = io.BytesIO(content)
                files.append(name)
            tar.addfile(info, data)
    return out.getvalue()


def pack(archive: bytes, target: Path, codec: Codec, store: object = None) -> bytes:
    with target.open("w+b") as out:
        writer = SquashfsWriter(out, codec=codec, mtime=1_700_000_000, store=store, jobs=2)  # type: ignore[arg-type]
        try:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r|") as tar:
                for member in tar:
                    writer.addfile(member, tar.extractfile(member) if member.isreg() else None)
            writer.finish()
        finally:
            writer.close()
    return target.read_bytes()


def entries(archive: bytes) -> dict[str, tuple[object, ...]]:
    """Each path's type, mode, owner, time, data, link and user xattrs; the last entry
    for a path wins (as when a tar is extracted); a hard link as its target's content."""
    found: dict[str, tuple[object, ...]] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = tar.getmembers()
        data = {m.name: tar.extractfile(m).read() for m in members if m.isreg()}  # type: ignore[union-attr]
        last = {m.name.strip("/").removeprefix("./"): m for m in members}
        for name, m in last.items():
            if not name or name == ".":
                continue
            if m.islnk():
                target = last[m.linkname.strip("/").removeprefix("./")]
                m, content = target, data[target.name]
            else:
                content = data.get(m.name, b"")
            xattrs = sorted((k, v) for k, v in m.pax_headers.items() if "xattr.user." in k)
            device = (m.devmajor, m.devminor) if m.ischr() else None
            kind = tarfile.REGTYPE if m.type in (tarfile.AREGTYPE, tarfile.REGTYPE) else m.type
            mode = 0o777 if m.issym() else m.mode  # a link's own mode means nothing
            found[name] = (kind, mode, m.uid, m.gid, int(m.mtime), content,
                           m.linkname if m.issym() else "", tuple(xattrs), device)  # fmt: skip
    return found


def implied_directories(archive: bytes) -> set[str]:
    names = set(entries(archive))
    return {"/".join(n.split("/")[:i]) for n in names for i in range(1, n.count("/") + 1)} - names


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(archive=archives())
def test_any_tree_reads_back_as_it_went_in(
    archive: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("sqfs")
    image = directory / "image.sqfs"
    pack(archive, image, Codec("gzip", 9, SMALL))
    back = subprocess.run(["sqfs2tar", str(image)], capture_output=True, check=True).stdout
    got = entries(back)
    for name in implied_directories(archive):  # made 0755 root with the default time
        assert got.pop(name)[:5] == (tarfile.DIRTYPE, 0o755, 0, 0, 1_700_000_000, b"")[:5]
    assert got == entries(archive)
    listing = subprocess.run(["unsquashfs", "-lln", str(image)], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr


def hostile(name: str = "x", kind: bytes = tarfile.REGTYPE, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


@pytest.mark.parametrize(
    ("member", "said"),
    [
        (hostile("a\0b"), "NUL byte"),
        (hostile("../etc/passwd"), "climbs out"),
        (hostile("."), "root but not a directory"),
        (hostile("l", tarfile.SYMTYPE, linkname=""), "symbolic link target"),
        (hostile("l", tarfile.SYMTYPE, linkname="x" * 5000), "symbolic link target"),
        (hostile("d", tarfile.CHRTYPE, devmajor=5000, devminor=1), "beyond what squashfs"),
        (hostile("d", tarfile.BLKTYPE, devmajor=1, devminor=1 << 20), "beyond what squashfs"),
        (hostile(pax_headers={"SCHILY.xattr.user.": "v"}), "extended attribute"),
        (hostile(pax_headers={"SCHILY.xattr.system.posix_acl_access": "v"}), "namespace"),
        (hostile(pax_headers={"SCHILY.xattr.user.big": "v" * 70000}), "more than Linux"),
        (hostile(uid=2**32), "out of range"),
        (hostile("h", tarfile.LNKTYPE, linkname="missing"), "hard link"),
    ],
)
def test_what_squashfs_or_linux_cannot_hold_is_refused(
    member: tarfile.TarInfo, said: str, tmp_path: Path
) -> None:
    with (tmp_path / "x.sqfs").open("w+b") as out:
        writer = SquashfsWriter(out, codec=Codec("gzip", 9, SMALL), mtime=0)
        try:
            with pytest.raises(BuildError, match=said):
                writer.addfile(member, io.BytesIO(b""))
        finally:
            writer.close()
