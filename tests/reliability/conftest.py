"""Reliability fixtures: a reachable engine, the NGC stand-in, and a tiny image made from it.

The engine and the stand-in come from tests/conftest.py: without an engine these tests
skip on a developer's machine, but with CI=true that is a failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from engine_support import engine_problem
from reliability_support import MINI

from imgforge.engine.stream import ChunkReader
from imgforge.render.quoting import dockerfile_quote

MINI_LABEL = "org.imgforge.reliability.mini"
# What the tiny image keeps of the stand-in: a shell, the coreutils the build steps
# use (the commit script too), and the libraries they need.
MINI_BINARIES = (
    "dash",
    "sh",
    "cat",
    "chmod",
    "cp",
    "echo",
    "env",
    "false",
    "id",
    "ln",
    "ls",
    "mkdir",
    "mv",
    "printf",
    "rm",
    "sleep",
    "test",
    "touch",
    "true",
)
MINI_LIBRARIES = (
    "libc.so.6",
    "ld-linux-x86-64.so.2",
    "libselinux.so.1",
    "libacl.so.1",
    "libattr.so.1",
    "libpcre2-8.so.0",
)
LIBDIR = "usr/lib/x86_64-linux-gnu/"


@pytest.fixture(scope="session")
def client(standin_image: str) -> Iterator[docker.DockerClient]:
    handle = docker.from_env(timeout=600)
    yield handle
    handle.close()


def _kept(member: tarfile.TarInfo) -> bool:
    name = member.name.lstrip("./")
    if member.isdir():
        return "/" not in name.rstrip("/")
    if name in ("bin", "lib", "lib64", "sbin", "etc/passwd", "etc/group"):
        return True
    if name.startswith("usr/bin/"):
        return name.removeprefix("usr/bin/") in MINI_BINARIES
    if name == "usr/lib64/ld-linux-x86-64.so.2":
        return True
    if name.startswith(LIBDIR):
        return name.removeprefix(LIBDIR).startswith(MINI_LIBRARIES)
    return False


def _mini_rootfs(client: docker.DockerClient, standin: str) -> bytes:
    """The kept part of ``docker export`` of the stand-in, with its parent directories."""
    container = client.api.create_container(standin, command=["true"], entrypoint=[])
    try:
        stream = io.BufferedReader(ChunkReader(client.api.export(container["Id"])))
        kept: list[tuple[tarfile.TarInfo, bytes | None]] = []
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if _kept(member):
                    handle = tar.extractfile(member) if member.isreg() else None
                    kept.append((member, handle.read() if handle else None))
    finally:
        client.api.remove_container(container["Id"], force=True)
    names = {m.name.strip("./").rstrip("/") for m, _ in kept}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as out:
        for parent in ("usr", "usr/bin", "usr/lib", "usr/lib/x86_64-linux-gnu", "usr/lib64"):
            if parent not in names:
                info = tarfile.TarInfo(parent)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                out.addfile(info)
        for member, data in kept:
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def mini_image(client: docker.DockerClient, standin_image: str) -> str:
    """``imgforge-reliability/mini:1``: the stand-in's Env and WorkingDir on a few-MB
    filesystem; rebuilt only when the stand-in or this recipe for it changes."""
    standin = client.api.inspect_image(standin_image)
    recipe = f"{standin['Id']} {MINI_BINARIES} {MINI_LIBRARIES} {_kept.__code__.co_code!r}"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    with contextlib.suppress(docker.errors.ImageNotFound):
        if client.api.inspect_image(MINI)["Config"]["Labels"].get(MINI_LABEL) == key:
            return MINI
    rootfs = "imgforge-reliability/mini-rootfs"
    client.api.import_image_from_data(
        _mini_rootfs(client, standin_image), repository=rootfs, tag=key
    )
    env = [entry.partition("=") for entry in standin["Config"]["Env"]]
    dockerfile = (
        f"FROM {rootfs}:{key}\n"
        + "".join(f"ENV {name}={dockerfile_quote(value)}\n" for name, _, value in env)
        + f"WORKDIR {standin['Config'].get('WorkingDir') or '/'}\n"
        + f"LABEL {MINI_LABEL}={key}\n"
    )
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    repository, tag = MINI.split(":")
    for chunk in client.api.build(
        fileobj=context,
        custom_context=True,
        tag=MINI,
        rm=True,
        forcerm=True,
        decode=True,
        network_mode="host",
    ):
        if "error" in chunk:
            pytest.fail(f"building {MINI}: {chunk['error']}")
    client.api.tag(MINI, repository, tag)
    output = client.containers.run(
        MINI,
        ["sh", "-c", "cp --version >/dev/null && echo ok"],
        network_mode="host",
        remove=True,
        entrypoint=[],
    )
    assert output.strip() == b"ok"
    return MINI


@pytest.fixture(scope="session", autouse=True)
def no_leftovers() -> Iterator[None]:
    """At the end, remove build containers of these tests' recipes (all named ``rel-*``)
    that a failing test may have left in the engine other suites share."""
    yield
    if engine_problem() is not None:
        return
    client = docker.from_env(timeout=60)
    try:
        for info in client.api.containers(all=True, filters={"name": "imgforge-commit-rel-"}):
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_container(info["Id"], force=True)
    finally:
        client.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty recipe directory (``recipes/``) with an output directory beside it."""
    (tmp_path / "recipes").mkdir()
    return tmp_path
