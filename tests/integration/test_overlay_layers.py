"""Reading an image from its overlay2 layer directories gives what ``docker export`` of a
container created from it gives: the same entries in the same order, each with the same
name, type, mode, owner, size, time, link target, device numbers, exported attribute and
bytes. Images are built here from scratch with a static busybox (no registry), or loaded
from layer archives made here (as a pull applies them); each is compared with the real
export of the real engine."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from engine_support import engine_problem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgforge.engine.docker import DockerEngine
from imgforge.engine.overlay import LayersUnreadable, layer_dirs, overlay_members
from imgforge.squashfs.members import OnDisk

pytestmark = pytest.mark.integration

PREFIX = "imgforge-overlay-test"
BUSYBOX = Path("/bin/busybox")
NOW = 7  # the init layer's time as walked: the export's is the container's creation time
INSTALL = "/busybox mkdir /bin && /busybox --install -s /bin"

Fields = tuple[object, ...]
Entry = tuple[Fields, bytes | None]


def fail_or_skip(message: str) -> None:
    """In CI (CI=true) a missing prerequisite fails the test; elsewhere it skips."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    """The engine, with every image these tests made removed at the end."""
    if (problem := engine_problem()) is not None:
        fail_or_skip(f"no Docker engine (run scripts/ensure-engine.sh): {problem}")
    found = docker.from_env(timeout=600)
    if found.info().get("Driver") != "overlay2" or os.geteuid() != 0:
        fail_or_skip("needs the overlay2 storage driver and root to read its layers")
    yield found
    for image in found.images.list():
        for tag in image.tags:
            if tag.startswith(PREFIX + "/"):
                with contextlib.suppress(docker.errors.APIError):
                    found.images.remove(tag, force=True)
    found.close()


@pytest.fixture(scope="module")
def engine(client: docker.DockerClient) -> Iterator[DockerEngine]:
    connected = DockerEngine.connect()
    yield connected


def static_busybox() -> bytes:
    """/bin/busybox, which must be statically linked (no PT_INTERP program header) to run
    in an image that holds nothing else."""
    if not BUSYBOX.is_file():
        fail_or_skip("needs a static busybox at /bin/busybox (apt-get install busybox-static)")
    data = BUSYBOX.read_bytes()
    start, size = (
        int.from_bytes(data[0x20:0x28], "little"),
        int.from_bytes(data[0x36:0x38], "little"),
    )
    headers = int.from_bytes(data[0x38:0x3A], "little")
    kinds = {
        int.from_bytes(data[start + i * size : start + i * size + 4], "little")
        for i in range(headers)
    }
    if data[:4] != b"\x7fELF" or 3 in kinds:
        fail_or_skip(f"{BUSYBOX} is not statically linked (apt-get install busybox-static)")
    return data


def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def build(client: docker.DockerClient, steps: list[str | bytes], name: str = "built") -> str:
    """An image FROM scratch: busybox, its applets in /bin, then one layer per step (a
    shell script for busybox's sh, or a tar archive ADDed at /); returns its tag."""
    tag = f"{PREFIX}/{name}:{uuid.uuid4().hex[:12]}"
    lines = [
        "FROM scratch",
        "COPY busybox /busybox",
        f"RUN {json.dumps(['/busybox', 'sh', '-c', INSTALL])}",
    ]
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        add_file(tar, "busybox", static_busybox(), 0o755)
        for index, step in enumerate(steps):
            if isinstance(step, bytes):
                add_file(tar, f"layer{index}.tar", step)
                lines.append(f"ADD layer{index}.tar /")
            else:
                script = "export PATH=/bin\n" + step
                lines.append(f"RUN {json.dumps(['/busybox', 'sh', '-c', script])}")
        add_file(tar, "Dockerfile", "\n".join(lines).encode() + b"\n")
    context.seek(0)
    for chunk in client.api.build(
        fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True, decode=True,
        network_mode="host",
    ):  # fmt: skip
        if "error" in chunk:
            pytest.fail(f"building {tag}: {chunk['error']}")
    return tag


def load(
    client: docker.DockerClient,
    layers: list[bytes],
    workdir: str = "",
    volumes: tuple[str, ...] = (),
) -> str:
    """An image loaded from ``layers`` (tar archives in the image-layer format: ``.wh.``
    whiteouts, xattrs in PAX headers), as a pull would apply them; returns its tag."""
    tag = f"{PREFIX}/loaded:{uuid.uuid4().hex[:12]}"
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"WorkingDir": workdir, "Volumes": {volume: {} for volume in volumes}},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha256(layer)}" for layer in layers]},
        "history": [{"created_by": f"layer {index}"} for index in range(len(layers))],
    }  # fmt: skip
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        add_file(tar, "config.json", json.dumps(config).encode())
        for index, layer in enumerate(layers):
            add_file(tar, f"{index}/layer.tar", layer)
        manifest = [
            {
                "Config": "config.json",
                "RepoTags": [tag],
                "Layers": [f"{i}/layer.tar" for i in range(len(layers))],
            }
        ]
        add_file(tar, "manifest.json", json.dumps(manifest).encode())
    client.images.load(archive.getvalue())
    return tag


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fields(info: tarfile.TarInfo) -> Fields:
    xattrs = {k: v for k, v in info.pax_headers.items() if k.startswith("SCHILY.xattr.")}
    return (
        info.name, info.type, info.mode, info.uid, info.gid, info.size, info.mtime,
        info.linkname, info.devmajor, info.devminor, xattrs,
    )  # fmt: skip


def exported(engine: DockerEngine, image: str) -> tuple[list[Entry], tuple[float, float]]:
    """The export's entries with each regular file's bytes, and when its container was
    made (between the two times)."""
    image_id = str((engine.inspect(image) or {})["Id"])
    entries: list[Entry] = []
    before = time.time()
    with engine.exported(image_id) as stream:
        after = time.time()
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                handle = tar.extractfile(member) if member.isreg() and member.size else None
                entries.append((fields(member), handle.read() if handle else None))
    return entries, (before, after)


def walked(engine: DockerEngine, image: str, workdir: str = "") -> list[Entry]:
    """The entries read from the image's layer directories, each file's data read through
    its :class:`OnDisk`, which must name the file it reads."""
    layers = layer_dirs(engine.inspect(image) or {})
    assert layers is not None, f"{image}: no readable overlay2 layer directories"
    entries: list[Entry] = []
    for info, data in overlay_members(layers, now=NOW, workdir=workdir):
        if data is not None:
            assert data.layer in layers and data.path == os.path.join(data.layer, data.name)
            seen = os.lstat(data.path)
            assert data.stamp == (seen.st_ino, seen.st_size, seen.st_mtime_ns, seen.st_ctime_ns)
        entries.append((fields(info), read_all(data, info.size) if data is not None else None))
    return entries


def read_all(data: OnDisk, size: int) -> bytes:
    chunks, left = [], size
    while left > 0:
        chunk = data.read(min(left, 1 << 20))
        assert chunk, f"{data.path}: ended {left} bytes early"
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def assert_same(engine: DockerEngine, image: str, workdir: str = "") -> list[Entry]:
    """The walk equals the export entry by entry; the init layer's entries (walked with
    time NOW) have the container's creation time in the export."""
    export, (before, after) = exported(engine, image)
    ours = walked(engine, image, workdir)
    assert [e[0][0] for e in ours] == [e[0][0] for e in export]
    for (theirs, their_data), (mine, my_data) in zip(export, ours, strict=True):
        if mine[6] == NOW:
            assert int(before) - 1 <= int(theirs[6]) <= after + 1, theirs
            mine = (*mine[:6], theirs[6], *mine[7:])
        assert mine == theirs
        assert my_data == their_data, theirs[0]
    return export


# Layer by layer: every kind of entry, then what later layers do to them (replace,
# delete, delete and re-create, a directory for a file and back, a hard link broken by a
# write or losing a name, new attributes on a directory), then an archive with what RUN
# can't write (the init layer's paths, file capabilities, other attributes).
BASE = r"""set -e
mkdir -p /data/sub/deep /data/opq /data/dir2file /links /other /modes /owners /devs /names
mkdir /big /times
echo keep > /data/keep; echo old > /data/replace; echo del > /data/delete; echo x > /data/sub/deep/x
echo a > /data/opq/a; echo b > /data/opq/b; echo f > /data/dir2file/f; echo file > /data/file2dir
printf 'nul\000byte\377' > /data/binary
echo linked > /links/a; ln /links/a /links/b; ln /links/a /links/c
echo pair > /links/d; ln /links/d /links/e; echo across > /links/x; ln /links/x /other/y
: > /links/empty1; ln /links/empty1 /links/empty2; mkfifo /links/fifo; ln /links/fifo /links/fifo2
ln -s ../data/keep /links/rel; ln -s /data/keep /links/abs; ln -s /nowhere /links/dangling
ln -s /data /links/todir; ln -s "$(printf '%0150d' 0)" /links/long; ln -s $'t\377' /links/raw
ln -s /links/abs /links/chain; ln /links/abs /links/hardsym
echo s > /modes/setuid; chmod 4755 /modes/setuid; mkdir /modes/setgid; chmod 2750 /modes/setgid
mkdir /modes/sticky; chmod 1777 /modes/sticky; : > /modes/none; chmod 0 /modes/none
: > /modes/all; chmod 7777 /modes/all; mkdir /modes/closed; chmod 0 /modes/closed
: > /owners/a; chown 1234:5678 /owners/a; : > /owners/big; chown 3000000:4000000 /owners/big
mkdir /owners/dir; chown 65534:65534 /owners/dir; ln -s x /owners/link; chown -h 42:43 /owners/link
mknod /devs/c c 1 3; mknod /devs/b b 7 0; mknod /devs/big c 4095 1048575; mkfifo /devs/p
mknod /devs/mode c 5 1; chmod 600 /devs/mode; chown 9:9 /devs/mode; ln /devs/c /devs/c2
for n in $'a\200' $'a\303\251' $'a\356\200\200' $'a\377' aZ 'a~' B 'a-' $'\001' ' x'; do
  mkdir "/names/$n"; : > "/names/$n/f"; done
: > "/names/$(printf '%0200d' 0)"
long="/names/$(printf '%090d' 1)/$(printf '%090d' 2)"; mkdir -p "$long"; echo deep > "$long/f"
echo start > /big/sparse; truncate -s 20M /big/sparse; printf end >> /big/sparse
dd if=/dev/urandom of=/big/random bs=1M count=3 2>/dev/null; : > /big/empty
: > /times/old; touch -d @-100 /times/old; : > /times/future; touch -d @10413792000 /times/future
: > /times/epoch; touch -d @0 /times/epoch; ln -s x /times/link; touch -h -d @12345 /times/link
mkdir /times/dir; touch -d @1000000000 /times/dir /times
"""
CHANGES = r"""set -e
echo new > /data/replace; rm /data/delete; rm -rf /data/sub
rm -rf /data/opq; mkdir /data/opq; echo c > /data/opq/c
rm -rf /data/dir2file; echo nowfile > /data/dir2file
rm /data/file2dir; mkdir /data/file2dir; echo child > /data/file2dir/child
rm /links/d; echo more >> /links/a; rm /other/y
chmod 700 /data; chown 7:8 /data/keep; touch -d @2000000000 /modes; rm /names/aZ/f
mkfifo /data/fifo2; rm -rf "/names/$(printf '%090d' 1)"
"""
AGAIN = r"""set -e
rm -rf /data/opq; mkdir /data/opq; echo d > /data/opq/d; rm -rf /data/file2dir; : > /data/file2dir
mkdir /data/dir2file.d; rm /links/b; mkdir -p /data/sub/new
"""
CAP_V2 = b"\x01\x00\x00\x02" + b"\x80\x20\x00\x00" + bytes(12)  # CAP_SETUID, CAP_NET_RAW
CAP_V3 = b"\x01\x00\x00\x03" + b"\x00\x20\x00\x00" + bytes(12) + (1000).to_bytes(4, "little")


KINDS = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "link": tarfile.LNKTYPE,
         "sym": tarfile.SYMTYPE, "chr": tarfile.CHRTYPE}  # fmt: skip
Attrs = tuple[int, int, int, dict[str, bytes]]


def archive(
    *entries: tuple[str, str, bytes | str | tuple[int, int] | None], **attrs: Attrs
) -> bytes:
    """A tar of (name, kind, value) entries: kind ``file`` (value: its bytes), ``dir``,
    ``link`` (a hard link to the name value), ``sym`` (value: the target), ``chr`` (value:
    major, minor); ``attrs`` (mode, uid, gid, {xattr: value}) by name, ``/`` and ``.``
    written ``_``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, value in entries:
            info = tarfile.TarInfo(name)
            info.type, info.mtime = KINDS[kind], 1_500_000_000
            mode = 0o755 if kind == "dir" else 0o644
            key = name.replace("/", "_").replace(".", "_")
            info.mode, info.uid, info.gid, xattrs = attrs.get(key, (mode, 0, 0, {}))
            info.pax_headers = {
                f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()
            }
            if isinstance(value, str):
                info.linkname = value
            elif isinstance(value, tuple):
                info.devmajor, info.devminor = value
            data = value if isinstance(value, bytes) else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return out.getvalue()


SPECIAL = archive(
    ("dev", "dir", None), ("dev/console", "chr", (5, 1)), ("dev/pts", "dir", None),
    ("dev/pts/0", "file", b"pts"), ("dev/extra", "file", b"extra"),
    ("proc", "dir", None), ("proc/cpuinfo", "file", b"cpu"), ("sys", "sym", "/nonexistent"),
    ("etc", "dir", None), ("etc/hostname", "file", b"own-host\n"), ("etc/mtab", "file", b"mtab"),
    ("etc/hosts.orig", "file", b"127.0.0.1 own\n"), ("etc/hosts", "link", "etc/hosts.orig"),
    ("etc/resolv.conf", "dir", None), ("etc/resolv.conf/inside", "file", b"in"),
    (".dockerenv", "file", b"not empty"),
    ("caps", "dir", None), ("caps/v2", "file", b"v2"), ("caps/linked", "link", "caps/v2"),
    ("caps/v3", "file", b"v3"), ("caps/user", "file", b"user"),
    ("data/opq/tarred", "file", b"t"),
    etc=(0o750, 0, 44, {}), dev_extra=(0o600, 2000, 2001, {}),
    caps_v2=(0o755, 0, 0, {"security.capability": CAP_V2}),
    caps_linked=(0o755, 0, 0, {"security.capability": CAP_V2}),
    caps_v3=(0o755, 0, 0, {"security.capability": CAP_V3}),
    caps_user=(0o644, 0, 0, {"user.note": b"not exported"}),
)  # fmt: skip


def test_a_built_image_reads_as_its_export(
    client: docker.DockerClient, engine: DockerEngine
) -> None:
    image = build(client, [BASE, CHANGES, AGAIN, SPECIAL], "fixed")
    export = {e[0][0]: e[0] for e in assert_same(engine, image)}
    # What the layers hold did reach the export (so the comparison compared something).
    assert export["caps/v2"][10] == {
        "SCHILY.xattr.security.capability": CAP_V2.decode("utf-8", "surrogateescape")
    }
    assert export["links/fifo2"][1] == tarfile.LNKTYPE and export["owners/big"][3] == 3000000
    assert export["etc/resolv.conf"][1] == tarfile.DIRTYPE and "names/a\udcff/f" in export
    assert export["etc"][2:5] == (0o40750, 0, 44) and "data/opq/a" not in export
    # moby sets a time before 1970 or after 2242 to 1970 when it applies a layer.
    assert export["times/old"][6] == export["times/future"][6] == 0


def test_loaded_layers_read_as_their_export(
    client: docker.DockerClient, engine: DockerEngine
) -> None:
    """Layers as a pull applies them: whiteout and opaque markers, a revision 3 file
    capability (a build would have made it revision 2), attributes moby does not export,
    /etc a link and /dev a file (the init layer's setup unlinks both), volumes; and a unix
    socket in a layer, which the export leaves out."""
    first = archive(
        ("keep", "dir", None), ("keep/f", "file", b"f"), ("gone", "dir", None),
        ("gone/x", "file", b"x"), ("opq", "dir", None), ("opq/a", "file", b"a"),
        ("v3", "file", b"v3"), ("v3link", "link", "v3"), ("user", "file", b"u"),
        ("n\udcff", "dir", None), ("n\udcff/f", "file", b"raw name"),
        ("etc", "sym", "/elsewhere"), ("dev", "file", b"a file"),
        v3=(0o4755, 0, 0, {"security.capability": CAP_V3}),
        v3link=(0o4755, 0, 0, {"security.capability": CAP_V3}),
        user=(0o644, 0, 0, {"user.a": b"1", "trusted.other": b"2"}),
    )  # fmt: skip
    second = archive(
        (".wh.gone", "file", b""), ("opq", "dir", None), ("opq/.wh..wh..opq", "file", b""),
        ("opq/b", "file", b"b"), ("keep/.wh.f", "file", b""), ("keep/g", "file", b"g"),
    )  # fmt: skip
    image = load(client, [first, second], workdir="/keep", volumes=("/keep", "/vol"))
    top = (layer_dirs(client.api.inspect_image(image)) or [""])[0]
    with socket.socket(socket.AF_UNIX) as sock:  # no build or load makes one in a layer
        sock.bind(os.path.join(top, "s"))
    try:
        export = {e[0][0]: e[0] for e in assert_same(engine, image, workdir="/keep")}
    finally:
        os.unlink(os.path.join(top, "s"))
    caps = export["v3"][10]["SCHILY.xattr.security.capability"]
    assert caps.encode("utf-8", "surrogateescape") == CAP_V3[:3] + b"\x02" + CAP_V3[4:20]
    assert "s" not in export and "gone" not in export and "opq/a" not in export
    assert export["etc"][1] == export["dev"][1] == tarfile.DIRTYPE and "vol" not in export


def test_a_working_directory_that_docker_create_makes_is_refused(
    client: docker.DockerClient, engine: DockerEngine
) -> None:
    image = load(client, [archive(("keep", "dir", None))], workdir="/keep/made")
    export = {e[0][0] for e in exported(engine, image)[0]}
    assert "keep/made" in export  # docker create made it in the container's layer
    layers = layer_dirs(client.api.inspect_image(image))
    assert layers is not None
    with pytest.raises(LayersUnreadable, match="working directory"):
        list(overlay_members(layers, now=NOW, workdir="/keep/made"))


# Random layers: a few operations each on a few paths of a small tree, so that later
# layers often replace, delete or re-create what earlier ones made.
COMPONENTS = st.sampled_from([b"a", b"B", b"\xc3\xa9", b"\xff"])
PATHS = st.lists(COMPONENTS, min_size=1, max_size=2).map(lambda parts: b"/t/" + b"/".join(parts))


def shell(path: bytes) -> str:
    """``path`` as a word of busybox's sh, every byte an octal escape."""
    return "$'" + "".join(f"\\{byte:03o}" for byte in path) + "'"


WORDS = PATHS.map(lambda path: (shell(path), shell(path.rsplit(b"/", 1)[0])))


def at(template: str, *more: st.SearchStrategy[object]) -> st.SearchStrategy[str]:
    """An operation on a random path: ``{0}`` is the path, ``{1}`` its directory, and
    ``{2}``... the values ``more`` draws."""
    return st.tuples(WORDS, *more).map(lambda v: template.format(*v[0], *v[1:]))


NEW = "mkdir -p {1}; rm -rf {0}; "
OTHER = WORDS.map(lambda words: words[0])
OPERATIONS = st.one_of(
    at(NEW + "head -c {2} /busybox > {0}; chmod {3} {0}",
       st.sampled_from([0, 1, 5000, 70000]), st.sampled_from(["644", "4755", "600"])),
    at(NEW + "mkdir -m {2} {0}", st.sampled_from(["755", "1777", "700"])),
    at("rm -rf {0}"),
    at("[ -f {2} ] && " + NEW + "ln {2} {0}", OTHER),
    at(NEW + "ln -s {2} {0}", OTHER),
    at("chown -h {2}:{3} {0}",
       st.sampled_from([0, 7, 65534, 3000000]), st.sampled_from([0, 9, 4000000])),
    at("touch -h -d @{2} {0}", st.sampled_from([1, 1234567890, 2**31 + 5])),
    at(NEW + "mkfifo {0}"),
    at(NEW + "mknod {0} c {2}", st.sampled_from(["1 3", "0 0", "4095 1048575"])),
    at("[ -f {0} ] && echo more >> {0}"),
)  # fmt: skip
LAYERS = st.lists(st.lists(OPERATIONS, min_size=3, max_size=12), min_size=2, max_size=4)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(layers=LAYERS)
def test_random_layers_read_as_their_export(
    client: docker.DockerClient, engine: DockerEngine, layers: list[list[str]]
) -> None:
    """Whatever the layers do (a failed operation just leaves the tree as it was), the
    walk is the export. (``mknod c 0 0`` makes a whiteout in the layer: it hides a name.)"""
    steps: list[str | bytes] = [
        "mkdir /t\n" + "\n".join(f"({op}) 2>/dev/null; true" for op in ops) for ops in layers[:1]
    ]
    steps += ["\n".join(f"({op}) 2>/dev/null; true" for op in ops) for ops in layers[1:]]
    image = build(client, steps, "random")
    try:
        assert_same(engine, image)
    finally:
        client.images.remove(image, force=True)
