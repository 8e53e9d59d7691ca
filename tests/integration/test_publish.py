"""--push to a real registry on loopback, --save, and credentials that never leak."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from imgforge.cli import main

pytestmark = pytest.mark.integration

STANDIN = "imgforge-standin/ngc-pytorch:24.01-py3"
SECRET = "planted-s3cret-9f1c"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry serving on 127.0.0.1 (no image pull needed)."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed (scripts/ensure-engine.sh installs it)")
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    process = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield f"localhost:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def pushed(
    registry: str, standin_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict]]:
    root = tmp_path_factory.mktemp("publish")
    recipe = root / "itest-push.toml"
    recipe.write_text(f'base = "{STANDIN}"\n[env]\nPUSHED = "yes"\n')
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("IMGFORGE_REGISTRY_USER", "someone")
    monkeypatch.setenv("IMGFORGE_REGISTRY_PASSWORD", SECRET)
    argv = ["build", str(recipe), "--out", str(root / "out"), "--push", registry, "--save"]
    try:
        assert main([*argv, "--singularity", "native", "--verbose"]) == 0
    finally:
        monkeypatch.undo()
    manifest = json.loads((root / "out" / "itest-push" / "manifest.json").read_text())
    yield root, manifest
    client = docker.from_env()
    for ref in ("itest-push:latest", manifest["push"]["reference"]):
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(ref, force=True)


def test_pushed_image_pulls_back_by_digest_and_equals_the_built_one(
    pushed: tuple[Path, dict],
) -> None:
    _, manifest = pushed
    client = docker.from_env()
    client.images.remove(manifest["push"]["reference"], force=True)
    pulled = client.images.pull(manifest["push"]["by_digest"])
    assert pulled.id == manifest["docker_image_id"]
    assert manifest["push"]["digest"].startswith("sha256:")


def test_saved_archive_loads_as_the_same_image(pushed: tuple[Path, dict]) -> None:
    root, manifest = pushed
    archive = root / "out" / "itest-push" / "itest-push.docker.tar"
    assert archive.stat().st_size == manifest["saved"]["size"]
    with archive.open("rb") as handle:
        loaded = docker.from_env().images.load(handle.read())
    assert [image.id for image in loaded] == [manifest["docker_image_id"]]


def test_a_planted_secret_appears_in_no_artifact_and_no_log(
    pushed: tuple[Path, dict], capfd: pytest.CaptureFixture[str]
) -> None:
    root, _ = pushed
    files = [p for p in (root / "out").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"manifest.json", "build.log", "Dockerfile", "itest-push.sif"}
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    image = docker.from_env().api.inspect_image("itest-push:latest")
    assert SECRET not in json.dumps(image)


def test_push_and_save_of_an_up_to_date_image_publish_without_rebuilding(
    pushed: tuple[Path, dict], registry: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root, manifest = pushed
    recipe = root / "itest-push.toml"
    out = root / "out"
    archive = out / "itest-push" / "itest-push.docker.tar"
    archive.unlink()
    capsys.readouterr()
    argv = ["build", str(recipe), "--out", str(out), "--push", registry, "--save"]
    assert main([*argv, "--singularity", "native"]) == 0
    said = capsys.readouterr().out
    assert "up to date" in said and "saved without rebuilding" in said
    assert ": building" not in said
    assert archive.is_file()
    after = json.loads((out / "itest-push" / "manifest.json").read_text())
    assert after["built_at"] == manifest["built_at"]
    assert after["saved"]["size"] == archive.stat().st_size
    assert after["push"] == manifest["push"]
