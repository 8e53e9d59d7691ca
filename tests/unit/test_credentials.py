"""Registry credentials: where they come from, and that they travel only by environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgforge.credentials import (
    Credentials,
    auth_config,
    for_registry,
    is_local,
    registry_of,
    singularity_env,
)
from imgforge.recipes.image import ImageConfig
from imgforge.sif.apptainer import SingularityCLI
from imgforge.sif.backend import SifRequest

SECRET = "planted-s3cret"


@pytest.mark.parametrize(
    ("reference", "registry"),
    [
        ("nvcr.io/nvidia/pytorch:24.01-py3", "nvcr.io"),
        ("localhost:5000/x:1", "localhost:5000"),
        ("ubuntu:22.04", "docker.io"),
        ("library/ubuntu", "docker.io"),
        ("registry.example.org/a/b@sha256:" + "0" * 64, "registry.example.org"),
    ],
)
def test_registry_of(reference: str, registry: str) -> None:
    assert registry_of(reference) == registry


@pytest.mark.parametrize(
    ("registry", "local"),
    [
        ("localhost:5000", True),
        ("127.0.0.1:80", True),
        ("nvcr.io", False),
        ("[::1]", True),
        ("[::1]:5000", True),
        ("[fd00::2]:5000", False),
        ("example.org:5000", False),
    ],
)
def test_is_local(registry: str, local: bool) -> None:
    assert is_local(registry) is local


def test_environment_wins_then_ngc_key_then_docker_store() -> None:
    env = {"IMGFORGE_REGISTRY_USER": "u", "IMGFORGE_REGISTRY_PASSWORD": SECRET}
    assert for_registry("anything", env) == Credentials("u", SECRET)
    ngc = for_registry("nvcr.io", {"NGC_API_KEY": SECRET})
    assert ngc == Credentials("$oauthtoken", SECRET)
    assert for_registry("docker.io", {"NGC_API_KEY": SECRET}) is None
    assert auth_config(None) is None


def test_the_password_is_not_in_the_repr() -> None:
    assert SECRET not in repr(Credentials("u", SECRET))


def test_apptainer_gets_credentials_by_environment_never_by_argv(tmp_path: Path) -> None:
    tool_env = singularity_env(Credentials("u", SECRET), "localhost:5000")
    assert tool_env["APPTAINER_DOCKER_PASSWORD"] == SECRET
    assert tool_env["APPTAINER_NOHTTPS"] == "1"
    request = SifRequest(
        name="x:1", image_id="sha256:" + "a" * 64, config=ImageConfig(), files={},
        deffile="", convert_deffile="", archive=tmp_path / "a.tar", target=tmp_path / "x.sif",
        source_ref="localhost:5000/x:1", tool_env=tool_env,
    )  # fmt: skip
    assert SECRET not in repr(request)
    argv, env = SingularityCLI("apptainer", "/usr/bin/apptainer").command(
        request, tmp_path / "x.def", environ={"PATH": "/usr/bin"}
    )
    assert SECRET not in " ".join(argv)
    assert env["APPTAINER_DOCKER_PASSWORD"] == SECRET
