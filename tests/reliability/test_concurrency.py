"""Two ``imgforge build`` processes on the same --out and recipe never corrupt each other:
the second fails at once naming --wait, or with --wait waits and then succeeds."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import docker
import pytest
from reliability_support import (
    build_argv,
    finish,
    image_id,
    manifest_of,
    no_containers_left,
    one_error_line,
    running_container,
    spawn,
    temp_files,
    wait_for,
    write,
)

pytestmark = pytest.mark.integration

NAME = "rel-lock"


def slow_recipe(base: str, marker: str) -> str:
    return f'name = "{NAME}"\nbase = "{base}"\n[run]\ncommands = ["sleep 8 # {marker}"]\n'


def consistent(out: Path, client: docker.DockerClient) -> None:
    """The artifacts form one good set: the manifest names the tagged image and the SIF."""
    directory = out / NAME
    manifest = manifest_of(directory)
    assert manifest["docker_image_id"] == image_id(client, f"{NAME}:latest")
    sif = directory / manifest["sif"]["path"]
    assert hashlib.sha256(sif.read_bytes()).hexdigest() == manifest["sif"]["sha256"]
    assert not temp_files(out)


@pytest.fixture
def recipe(project: Path, mini_image: str) -> Path:
    return project / "recipes" / f"{NAME}.toml"


def test_a_second_build_without_wait_fails_naming_wait(
    recipe: Path, mini_image: str, client: docker.DockerClient
) -> None:
    marker = f"rel-lock-{uuid.uuid4().hex[:12]}"
    write(recipe, slow_recipe(mini_image, marker))
    out = recipe.parent.parent / "out"
    argv = build_argv(recipe, out, singularity="native")
    first = spawn(argv)
    try:
        wait_for("the first build's slow step", lambda: running_container(client, marker))
        code, _, err = finish(spawn(argv), timeout=60)
        assert code == 1
        line = one_error_line(err)
        assert "--wait" in line and "another imgforge" in line and str(recipe) in line, line
        assert first.poll() is None  # the second did not disturb the first
        code, _, err = finish(first)
        assert code == 0, err
    finally:
        first.kill()
    consistent(out, client)
    no_containers_left(client, marker=marker)
    code, out_text, err = finish(spawn(argv))
    assert code == 0 and "up to date 1" in out_text, err


def test_a_second_build_with_wait_waits_then_succeeds(
    recipe: Path, mini_image: str, client: docker.DockerClient
) -> None:
    marker = f"rel-lock-{uuid.uuid4().hex[:12]}"
    write(recipe, slow_recipe(mini_image, marker))
    out = recipe.parent.parent / "out"
    argv = build_argv(recipe, out, "--wait", singularity="native")
    first = spawn(argv)
    try:
        wait_for("the first build's slow step", lambda: running_container(client, marker))
        second = spawn(argv)
        try:
            first_code, _, first_err = finish(first)
            second_code, second_out, second_err = finish(second)
        finally:
            second.kill()
    finally:
        first.kill()
    assert first_code == 0, first_err
    assert second_code == 0, second_err
    assert "waiting for another imgforge" in second_out, second_out
    consistent(out, client)
    no_containers_left(client, marker=marker)
