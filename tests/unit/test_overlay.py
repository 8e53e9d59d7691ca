"""Reading an image from overlay2 layer directories: what ``docker image inspect`` may say
about them (all of it untrusted), and the merge of hand-made layers as overlayfs and
``docker export`` see it (tests/integration/test_overlay_layers.py holds the comparison
with the real export)."""

from __future__ import annotations

import os
import socket
import stat
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imgforge.engine.overlay import (
    PAX_CAPABILITY,
    LayersUnreadable,
    layer_dirs,
    overlay_members,
)

NOW = 1_700_000_000
INIT = [
    ".dockerenv", "dev", "dev/console", "dev/pts", "dev/shm", "etc", "etc/hostname",
    "etc/hosts", "etc/mtab", "etc/resolv.conf", "proc", "sys",
]  # fmt: skip


def need_root() -> None:
    """Whiteouts (character devices 0/0) and trusted.* attributes need root: a developer
    without it skips, CI never does."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("these overlay tests need root (whiteout devices, trusted.* xattrs)")
        pytest.skip("needs root (whiteout devices, trusted.* xattrs)")
    if (why := _refused()) is not None:
        # Root in a container whose device cgroup or file system refuses them (as the
        # kernel mount test skips where mounting is refused).
        pytest.skip(f"this machine refuses whiteout devices or trusted.* xattrs: {why}")


def _refused() -> str | None:
    with tempfile.TemporaryDirectory() as directory:
        probe = os.path.join(directory, "probe")
        try:
            os.mknod(probe, stat.S_IFCHR | 0o600, 0)
            os.setxattr(directory, "trusted.overlay.opaque", b"y")
        except OSError as error:
            return error.strerror or str(error)
    return None


@pytest.fixture
def layer(tmp_path: Path) -> Callable[[str], Path]:
    """``layer(id_char)``: a new empty layer directory shaped as overlay2 names them."""

    def make(char: str) -> Path:
        path = tmp_path / "docker" / "overlay2" / (char * 64) / "diff"
        path.mkdir(parents=True)
        return path

    return make


def inspected(upper: object, lower: object = None, name: object = "overlay2") -> dict[str, Any]:
    data: dict[str, object] = {"UpperDir": upper, "WorkDir": "/w", "MergedDir": "/m"}
    if lower is not None:
        data["LowerDir"] = lower
    return {"GraphDriver": {"Name": name, "Data": data}}


def test_layer_dirs_are_the_upper_then_the_lower_in_order(layer: Callable[[str], Path]) -> None:
    top, middle, bottom = layer("a"), layer("b"), layer("c")
    assert layer_dirs(inspected(str(top), f"{middle}:{bottom}")) == [
        str(top), str(middle), str(bottom)
    ]  # fmt: skip
    assert layer_dirs(inspected(str(bottom))) == [str(bottom)]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda good: {}, id="no GraphDriver"),
        pytest.param(lambda good: {"GraphDriver": None}, id="GraphDriver null"),
        pytest.param(lambda good: {"GraphDriver": {"Name": "overlay2"}}, id="no Data"),
        pytest.param(
            lambda good: {"GraphDriver": {"Name": "overlay2", "Data": []}}, id="Data list"
        ),
        pytest.param(lambda good: inspected(good, name="vfs"), id="other driver"),
        pytest.param(lambda good: inspected(good, name=None), id="driver null"),
        pytest.param(lambda good: inspected(None), id="UpperDir null"),
        pytest.param(lambda good: inspected(good, 3), id="LowerDir number"),
        pytest.param(lambda good: inspected(good[1:]), id="relative"),
        pytest.param(lambda good: inspected(good + "/../diff"), id="dot-dot"),
        pytest.param(lambda good: inspected(good + "/."), id="dot"),
        pytest.param(lambda good: inspected(good.replace("/diff", "//diff")), id="double slash"),
        pytest.param(lambda good: inspected(good + "/"), id="trailing slash"),
        pytest.param(lambda good: inspected("/" + good), id="leading double slash"),
        pytest.param(lambda good: inspected(good, f"{good}"), id="same layer twice"),
        pytest.param(lambda good: inspected(good, f"::{good}"), id="empty lower"),
        pytest.param(lambda good: inspected(good + "\0"), id="NUL"),
        pytest.param(lambda good: inspected(good.replace("/diff", "/merged")), id="not diff"),
        pytest.param(lambda good: inspected(good.replace("a" * 64, "A" * 64)), id="not an id"),
        pytest.param(lambda good: inspected(good.replace("a" * 64, "a" * 63)), id="short id"),
        pytest.param(lambda good: inspected(good.replace("a" * 64, "d" * 64)), id="missing"),
        pytest.param(lambda good: inspected(good.replace("a" * 64, "f" * 64)), id="a file"),
        pytest.param(lambda good: inspected("/overlay2/" + "a" * 64 + "/diff"), id="too short"),
        pytest.param(
            lambda good: inspected(good.replace("docker/", "docker/100000.100000/")),
            id="remapped ids",
        ),
    ],
)
def test_layer_dirs_refuse_what_is_not_a_readable_overlay2_layer(
    layer: Callable[[str], Path], make: Callable[[str], dict[str, Any]]
) -> None:
    good = layer("a")
    (good.parents[1] / ("f" * 64)).write_text("")
    (good.parents[2] / "100000.100000" / "overlay2" / ("a" * 64) / "diff").mkdir(parents=True)
    assert layer_dirs(make(str(good))) is None


def members(*layers: Path, now: int = NOW, **how: str) -> dict[str, tarfile.TarInfo]:
    found = {
        info.name: info for info, _ in overlay_members([str(p) for p in layers], now=now, **how)
    }
    assert list(found) == [i.name for i, _ in overlay_members([str(p) for p in layers], now=now)]
    return found


def names(*layers: Path) -> list[str]:
    return [info.name for info, _ in overlay_members([str(p) for p in layers], now=NOW)]


def test_an_empty_image_is_the_init_layer(layer: Callable[[str], Path]) -> None:
    found = members(layer("a"))
    assert list(found) == INIT
    assert {(i.type, i.mode) for i in found.values()} == {
        (tarfile.DIRTYPE, 0o40755), (tarfile.REGTYPE, 0o100755), (tarfile.SYMTYPE, 0o120777)
    }  # fmt: skip
    assert found["etc/mtab"].linkname == "/proc/mounts"
    assert {(i.uid, i.gid, i.mtime, i.size) for i in found.values()} == {(0, 0, NOW, 0)}


def test_the_init_layer_is_set_up_on_the_images_filesystem(layer: Callable[[str], Path]) -> None:
    """moby sets the init layer up on the image's merged filesystem: directories of the
    image stay (with their attributes; a parent whose entries changed gets the time),
    anything else in the way is unlinked and made anew."""
    top = layer("a")
    (top / "etc").mkdir(mode=0o700)
    (top / "etc" / "hosts").write_text("image's own\n")
    (top / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    (top / "etc" / "mtab").mkdir()
    (top / "etc" / "mtab" / "inside").write_text("")
    (top / "sys").symlink_to("/elsewhere")
    (top / "proc" / "x").mkdir(parents=True)
    (top / "dev" / "pts").mkdir(parents=True)
    (top / "dev" / "shm").mkdir()
    (top / "dev" / "console").mkdir()
    os.utime(top / "proc", ns=(0, 5 * 10**9))
    os.utime(top / "dev", ns=(0, 6 * 10**9))
    found = members(top)
    assert "etc/passwd" in found and "proc/x" in found and "etc/mtab/inside" in found
    assert found["etc"].mode == 0o40700 and found["etc"].mtime == NOW
    assert found["etc/hosts"].size == 0 and found["etc/hosts"].mode == 0o100755
    assert found["etc/mtab"].isdir() and found["dev/console"].isdir()
    assert found["sys"].isdir() and found["sys"].mtime == NOW
    assert found["proc"].mtime == 5 and found["dev"].mtime == 6


def test_order_is_by_bytes_and_pre_order(layer: Callable[[str], Path]) -> None:
    top = layer("a")
    raw = [b"a\x80", b"a\xc3\xa9", b"a\xee\x80\x80", b"a\xff", b"aZ", b"a~", b"B", b"a-"]
    for name in raw:
        os.mkdir(os.path.join(os.fsencode(top), name))
        os.mknod(os.path.join(os.fsencode(top), name, b"f"), stat.S_IFREG | 0o644)
    ours = [n for n in names(top) if n not in INIT]
    expected = []
    for name in sorted(raw):
        expected += [os.fsdecode(name), os.fsdecode(name + b"/f")]
    assert ours == expected


def test_hard_links_name_the_first_path_walked(layer: Callable[[str], Path]) -> None:
    top = layer("a")
    (top / "z").write_bytes(b"data")
    os.link(top / "z", top / "b")
    os.link(top / "z", top / "m")
    (top / "only").write_text("x")
    walked = list(overlay_members([str(top)], now=NOW))
    found = {info.name: (info, data) for info, data in walked}
    assert found["b"][0].isreg() and found["b"][0].size == 4 and found["b"][1] is not None
    for name in ("m", "z"):
        info, data = found[name]
        assert (info.type, info.linkname, info.size, data) == (tarfile.LNKTYPE, "b", 0, None)


def test_regular_files_with_data_say_where_it_lies(layer: Callable[[str], Path]) -> None:
    top = layer("a")
    (top / "d").mkdir()
    (top / "d" / "f").write_bytes(b"12345")
    (top / "empty").write_bytes(b"")
    found = {info.name: data for info, data in overlay_members([str(top)], now=NOW)}
    data = found["d/f"]
    assert data is not None and found["empty"] is None
    seen = os.lstat(top / "d" / "f")
    assert (data.path, data.layer, data.name) == (str(top / "d" / "f"), str(top), "d/f")
    assert data.stamp == (seen.st_ino, 5, seen.st_mtime_ns, seen.st_ctime_ns)
    assert data.read(5) == b"12345"


def test_sockets_are_left_out(layer: Callable[[str], Path]) -> None:
    top = layer("a")
    os.chdir(top)  # a socket's path must be short
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("sock")
    os.mkfifo(top / "fifo")
    found = members(top)
    assert "sock" not in found and found["fifo"].type == tarfile.FIFOTYPE


def test_a_missing_layer_is_unreadable(layer: Callable[[str], Path], tmp_path: Path) -> None:
    with pytest.raises(LayersUnreadable, match="cannot read the image's layer"):
        names(layer("a"), tmp_path / "gone")


def test_a_missing_working_directory_is_refused(layer: Callable[[str], Path]) -> None:
    top = layer("a")
    (top / "work" / "dir").mkdir(parents=True)
    (top / "link").symlink_to("work")
    (top / "file").write_text("")
    members(top, workdir="/work/dir")
    members(top, workdir="/dev/pts")
    for workdir in ("/work/missing", "/link/dir", "/file", "/etc/hosts"):
        with pytest.raises(LayersUnreadable, match="working directory"):
            members(top, workdir=workdir)


def whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, 0)


def test_whiteouts_opaque_directories_and_replacements(layer: Callable[[str], Path]) -> None:
    need_root()
    top, bottom = layer("a"), layer("b")
    for name in ("gone", "opaque", "merged", "dir2file", "file2dir"):
        (bottom / name).mkdir()
        (bottom / name / "old").write_text("")
    (bottom / "under").mkdir()
    (bottom / "file").write_text("")
    whiteout(top / "gone")
    whiteout(top / "file")
    (top / "opaque").mkdir()
    (top / "opaque" / "new").write_text("")
    os.setxattr(top / "opaque", "trusted.overlay.opaque", b"y")
    (top / "merged").mkdir(mode=0o711)
    (top / "merged" / "new").write_text("")
    whiteout(top / "merged" / "old")
    (top / "dir2file").write_text("now a file")
    (bottom / "file2dir" / "old").unlink()
    (bottom / "file2dir").rmdir()
    (bottom / "file2dir").write_text("")
    (top / "file2dir").mkdir()
    (top / "file2dir" / "new").write_text("")
    whiteout(bottom / "under" / "old")  # a whiteout with nothing below still hides itself
    found = members(top, bottom)
    ours = [n for n in found if n not in INIT]
    assert ours == [
        "dir2file", "file2dir", "file2dir/new", "merged", "merged/new", "opaque", "opaque/new",
        "under",
    ]  # fmt: skip
    assert found["merged"].mode == 0o40711 and found["dir2file"].size == len("now a file")


@pytest.mark.parametrize(
    ("name", "value", "on"),
    [
        ("trusted.overlay.redirect", b"/elsewhere", "dir"),
        ("trusted.overlay.metacopy", b"", "file"),
        ("trusted.overlay.opaque", b"x", "dir"),
        ("trusted.overlay.whiteout", b"", "file"),
        ("trusted.overlay.origin", b"\0\xfb", "file"),
        ("trusted.overlay.opaque", b"y", "file"),
    ],
)
def test_what_overlayfs_would_read_otherwise_is_refused(
    layer: Callable[[str], Path], name: str, value: bytes, on: str
) -> None:
    need_root()
    top, bottom = layer("a"), layer("b")
    (bottom / "d").mkdir()
    target = top / "d"
    if on == "dir":
        target.mkdir()
    else:
        (top / "e").mkdir()
        target = top / "e" / "f"
        target.write_text("")
    os.setxattr(target, name, value)
    with pytest.raises(LayersUnreadable, match="overlayfs attribute"):
        names(top, bottom)


def test_an_opaque_layer_root_is_refused(layer: Callable[[str], Path]) -> None:
    need_root()
    top = layer("a")
    os.setxattr(top, "trusted.overlay.opaque", b"y")
    with pytest.raises(LayersUnreadable, match="opaque"):
        names(top, layer("b"))


def test_file_capabilities_are_exported_as_revision_2(layer: Callable[[str], Path]) -> None:
    need_root()
    top = layer("a")
    v2 = bytes([0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0]) + bytes(8)
    v3 = bytes([0, 0, 0, 3, 0, 0x20, 0, 0, 0, 0, 0, 0]) + bytes(8) + (1000).to_bytes(4, "little")
    (top / "v2").write_text("")
    (top / "v3").write_text("")
    os.setxattr(top / "v2", "security.capability", v2)
    os.setxattr(top / "v3", "security.capability", v3)
    os.setxattr(top / "v3", "user.other", b"not exported")
    found = members(top)
    assert found["v2"].pax_headers == {PAX_CAPABILITY: v2.decode("utf-8", "surrogateescape")}
    assert found["v3"].pax_headers == found["v2"].pax_headers
