"""The writer's image is a standard squashfs: the Linux kernel shows the tree the tar
stream held (names, types, modes, owners, times, sizes, bytes, links, devices, xattrs,
hard links), and squashfuse, unsquashfs and rdsquashfs each show it exactly as they show
tar2sqfs' image of the same stream (quirks included: squashfuse 0.1.105 names security.*
xattrs trusted.*). Readers that need root or FUSE skip with one line where they can't."""

from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgforge.squashfs.codec import Codec
from imgforge.squashfs.writer import SquashfsWriter

MTIME = 1_650_000_000
# A file capability (vfs_cap_data revision 2): cap_net_raw=p, as ping carries it.
CAP_NET_RAW = (b"\x01\x00\x00\x02" + b"\x00\x20\x00\x00" + bytes(12)).decode("latin-1")


def sample_tar() -> bytes:
    """A tree with what images hold: many small files in one directory (several listing
    headers), large and block-sized files, zero blocks, duplicates, links, a device, a
    fifo, xattrs, set-id modes and owners."""
    rng = random.Random(5)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(
            name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: object
        ) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.mtime, info.mode = kind, len(data), MTIME, 0o644
            for key, value in attrs.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

        add("usr", tarfile.DIRTYPE, mode=0o755)
        add("usr/lib", tarfile.DIRTYPE, mode=0o755)
        for i in range(600):
            add(f"usr/lib/m{i:04d}.py", data=rng.randbytes(rng.randrange(0, 3000)))
        add("usr/lib/big.so", data=rng.randbytes(5 * 131072 + 999), mode=0o755)
        add("usr/lib/exact.bin", data=rng.randbytes(131072))
        add("usr/lib/zeros.bin", data=bytes(3 * 131072) + b"end")
        add("usr/lib/copy.so", data=(b"x" * 300_000))
        add("usr/lib/copy2.so", data=(b"x" * 300_000))
        add("usr/lib/hard.so", tarfile.LNKTYPE, linkname="usr/lib/big.so")
        add("usr/bin", tarfile.DIRTYPE, mode=0o755)
        add("usr/bin/sudo", data=b"#!/bin/sh\n", mode=0o4755, uid=0, gid=0)
        add("usr/bin/ping", data=b"ping", mode=0o755,
            pax_headers={"SCHILY.xattr.security.capability": CAP_NET_RAW})  # fmt: skip
        add("usr/bin/python", tarfile.SYMTYPE, linkname="python3.11")
        add("home", tarfile.DIRTYPE, mode=0o755)
        add("home/user", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1000,
            pax_headers={"SCHILY.xattr.user.note": "hi"})  # fmt: skip
        add("tmp", tarfile.DIRTYPE, mode=0o1777)
        add("dev", tarfile.DIRTYPE, mode=0o755)
        add("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
        add("run/fifo", tarfile.FIFOTYPE, mode=0o600)
    return out.getvalue()


KINDS = {
    tarfile.DIRTYPE: stat.S_IFDIR,
    tarfile.SYMTYPE: stat.S_IFLNK,
    tarfile.CHRTYPE: stat.S_IFCHR,
    tarfile.FIFOTYPE: stat.S_IFIFO,
}


def expected(tar_bytes: bytes) -> dict[str, tuple[object, ...]]:
    """What a reader should show for each path, from the tar (implied dirs 0755)."""
    found: dict[str, tuple[object, ...]] = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        links: dict[str, int] = {}
        for m in members.values():
            if m.islnk():
                links[m.linkname] = links.get(m.linkname, 1) + 1
        for name, m in members.items():
            target = members[m.linkname] if m.islnk() else m
            handle = tar.extractfile(target) if target.isreg() else None
            data = handle.read() if handle is not None else b""
            kind = KINDS.get(target.type, stat.S_IFREG)
            xattrs = {
                k.split(".", 2)[2]: v.encode("utf-8", "surrogateescape")
                for k, v in target.pax_headers.items()
                if k.startswith("SCHILY.xattr.")
            }
            nlink = links.get(target.name, 1) if kind == stat.S_IFREG else None
            device = (target.devmajor, target.devminor) if kind == stat.S_IFCHR else None
            mode = 0o777 if kind == stat.S_IFLNK else target.mode
            link = target.linkname if kind == stat.S_IFLNK else ""
            found[name] = (
                kind | mode, target.uid, target.gid, target.mtime, data, link, xattrs, nlink,
                device,
            )  # fmt: skip
    found["run"] = (stat.S_IFDIR | 0o755, 0, 0, MTIME, b"", "", {}, None, None)
    return found


def walk(root: Path) -> dict[str, tuple[object, ...]]:
    found: dict[str, tuple[object, ...]] = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = Path(directory) / name
            st = path.lstat()
            data = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
            xattrs = {a: os.getxattr(path, a, follow_symlinks=False)
                      for a in os.listxattr(path, follow_symlinks=False)}  # fmt: skip
            device = (
                (os.major(st.st_rdev), os.minor(st.st_rdev)) if stat.S_ISCHR(st.st_mode) else None
            )
            nlink = st.st_nlink if stat.S_ISREG(st.st_mode) else None
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
            found[str(path.relative_to(root))] = (
                st.st_mode, st.st_uid, st.st_gid, int(st.st_mtime), data, link, xattrs, nlink,
                device,
            )  # fmt: skip
    return found


Images = tuple[Path, Path, dict[str, tuple[object, ...]]]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Images:
    """imgforge's image of the sample, tar2sqfs' image of it, and what the tar holds."""
    if shutil.which("tar2sqfs") is None:
        pytest.skip("tar2sqfs (squashfs-tools-ng) is not installed")
    tar_bytes = sample_tar()
    directory = tmp_path_factory.mktemp("mounts")
    path = directory / "image.sqfs"
    reference = directory / "reference.sqfs"
    subprocess.run(
        ["tar2sqfs", "-q", "-f", "-c", "gzip", "--defaults", f"mtime={MTIME}", str(reference)],
        input=tar_bytes,
        check=True,
    )
    with path.open("w+b") as out:
        writer = SquashfsWriter(out, codec=Codec.of("gzip"), mtime=MTIME, jobs=2)  # type: ignore[arg-type]
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r|") as tar:
            for member in tar:
                writer.addfile(member, tar.extractfile(member) if member.isreg() else None)
        writer.finish()
        writer.close()
    return path, reference, expected(tar_bytes)


@contextlib.contextmanager
def mounted(argv: list[str], target: Path, unmount: list[str]) -> Iterator[Path]:
    target.mkdir()
    result = subprocess.run([*argv, str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"{argv[0]} can't mount here: {result.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run([*unmount, str(target)], check=False)


def test_the_kernel_mounts_it(image: Images, tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a squashfs with the kernel needs root")
    path, _, want = image
    argv = ["mount", "-t", "squashfs", "-o", "loop,ro", str(path)]
    with mounted(argv, tmp_path / "k", ["umount"]) as root:
        assert walk(root) == want


def test_squashfuse_mounts_it(image: Images, tmp_path: Path) -> None:
    if shutil.which("squashfuse") is None or not Path("/dev/fuse").exists():
        pytest.skip("squashfuse or /dev/fuse is missing")
    path, reference, _ = image
    unmount = ["fusermount", "-u"] if shutil.which("fusermount") else ["umount"]
    with mounted(["squashfuse", str(reference)], tmp_path / "r", unmount) as root:
        want = walk(root)
    with mounted(["squashfuse", str(path)], tmp_path / "f", unmount) as root:
        assert walk(root) == want


@pytest.mark.parametrize("tool", ["unsquashfs", "rdsquashfs"])
def test_the_tools_extract_it(image: Images, tmp_path: Path, tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    if os.geteuid() != 0:
        pytest.skip("extracting owners and devices needs root")
    path, reference, _ = image

    def extract(source: Path, target: Path) -> dict[str, tuple[object, ...]]:
        if tool == "unsquashfs":
            argv = [tool, "-q", "-d", str(target), str(source)]
        else:
            argv = [tool, "-q", "-u", "/", "-p", str(target), "-C", "-O", "-X", "-T", str(source)]
        result = subprocess.run(argv, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return walk(target)

    assert extract(path, tmp_path / "x") == extract(reference, tmp_path / "r")
