"""The NGC stand-in image: exact fixture config, NGC-like entrypoint and files, caching."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import docker
import pytest

pytestmark = pytest.mark.integration

BANNER = "== PyTorch (imgforge stand-in) =="


@pytest.fixture(scope="module")
def client(standin_image: str) -> Iterator[docker.DockerClient]:
    """A client of the engine that holds the stand-in."""
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture(scope="module")
def fixture_config(ngc_standin: ModuleType) -> dict[str, Any]:
    """The NGC image config the stand-in mimics (tests/data/ngc/)."""
    config: dict[str, Any] = json.loads(ngc_standin.DEFAULT_CONFIG.read_text(encoding="utf-8"))
    return config


def image_config(client: docker.DockerClient, tag: str) -> dict[str, Any]:
    """The image's ``Config`` as docker inspect shows it."""
    config: dict[str, Any] = client.images.get(tag).attrs["Config"]
    return config


def run(client: docker.DockerClient, tag: str, *command: str) -> tuple[str, str]:
    """Run ``command`` through the image's entrypoint; return (stdout, stderr)."""
    container = client.containers.create(tag, list(command) or None, network_mode="host")
    try:
        container.start()
        status = container.wait(timeout=120)
        stdout = container.logs(stdout=True, stderr=False).decode()
        stderr = container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 0, stderr
    return stdout, stderr


@pytest.mark.parametrize("key", ["Env", "Entrypoint", "Cmd", "WorkingDir"])
def test_config_is_exactly_the_fixtures(
    client: docker.DockerClient, standin_image: str, fixture_config: dict[str, Any], key: str
) -> None:
    # Exact equality: same Env entries in the same order, byte for byte.
    assert image_config(client, standin_image)[key] == fixture_config[key]


def test_cmd_is_null(client: docker.DockerClient, standin_image: str) -> None:
    assert image_config(client, standin_image)["Cmd"] is None


def test_labels_are_the_fixtures_plus_the_hash(
    client: docker.DockerClient,
    standin_image: str,
    fixture_config: dict[str, Any],
    ngc_standin: ModuleType,
) -> None:
    expected = {
        **fixture_config["Labels"],
        ngc_standin.HASH_LABEL: ngc_standin.standin_hash(ngc_standin.DEFAULT_CONFIG),
    }
    assert image_config(client, standin_image)["Labels"] == expected


def test_entrypoint_runs_the_given_command_in_workspace(
    client: docker.DockerClient, standin_image: str
) -> None:
    stdout, stderr = run(client, standin_image, "sh", "-c", 'echo "ran in $(pwd)"')
    assert stdout == "ran in /workspace\n"
    assert BANNER in stderr


def test_container_sees_the_fixture_env(
    client: docker.DockerClient, standin_image: str, fixture_config: dict[str, Any]
) -> None:
    script = "import json, os; print(json.dumps(dict(os.environ)))"
    stdout, _ = run(client, standin_image, "python3", "-c", script)
    environ = json.loads(stdout)
    for entry in fixture_config["Env"]:
        key, _, value = entry.partition("=")
        assert environ.get(key) == value, key


def test_image_has_ngc_like_files(client: docker.DockerClient, standin_image: str) -> None:
    checks = (
        "test -x /opt/nvidia/nvidia_entrypoint.sh && test -f /etc/shinit_v2"
        " && test -f /etc/bash.bashrc && test -d /usr/local/cuda/compat/lib"
        " && test -d /usr/local/nvidia/lib64"
        " && ! ls /usr/lib/python3*/EXTERNALLY-MANAGED 2>/dev/null"
        " && ls /usr/local/share/ca-certificates"
        " && pip config --global get global.constraint && cat /etc/pip/constraint.txt"
    )
    stdout, _ = run(client, standin_image, "bash", "-c", checks)
    assert "/etc/pip/constraint.txt\ntorch==2.2.0a0+81ea7a4\n" in stdout


def test_second_invocation_is_a_cache_hit(
    client: docker.DockerClient, standin_image: str, ngc_standin: ModuleType
) -> None:
    before = client.images.get(standin_image).id
    result = ngc_standin.ensure_standin()
    assert not result.built
    assert result.image_id == before


def test_cli_cache_hit_prints_the_tag_and_makes_no_image(
    client: docker.DockerClient, standin_image: str, standin_script: Path
) -> None:
    before = client.images.get(standin_image).id
    since = int(time.time())
    proc = subprocess.run(
        [sys.executable, str(standin_script)], capture_output=True, text=True, check=False
    )
    until = int(time.time()) + 1
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == standin_image + "\n"
    assert proc.stderr == ""  # nothing built, nothing said
    # A cache hit is one inspect: a rebuild would import and tag an image, which the
    # engine reports as image events on the tag.
    events = client.events(
        since=since,
        until=until,
        filters={"type": "image", "image": standin_image},
        decode=True,
    )
    assert [(e.get("Action"), e.get("id")) for e in events] == []
    assert client.images.get(standin_image).id == before
