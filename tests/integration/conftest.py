"""Integration fixtures: a reachable Docker engine and the local NGC stand-in image."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import docker
import docker.errors
import pytest

REPO = Path(__file__).resolve().parents[2]
STANDIN_SCRIPT = REPO / "scripts" / "ngc_standin.py"


def load_standin_script() -> ModuleType:
    """Import scripts/ngc_standin.py (not a package) as the module ``ngc_standin``."""
    name = "ngc_standin"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, STANDIN_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is created.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def engine_problem() -> str | None:
    """Why no Docker engine answers (DOCKER_HOST honoured), or None when one does."""
    try:
        client = docker.from_env(timeout=10)
        try:
            client.ping()
        finally:
            client.close()
    except docker.errors.DockerException as exc:
        return str(exc)
    return None


@pytest.fixture(scope="session")
def standin_script() -> Path:
    """Path of scripts/ngc_standin.py."""
    return STANDIN_SCRIPT


@pytest.fixture(scope="session")
def ngc_standin() -> ModuleType:
    """The stand-in script as a module."""
    return load_standin_script()


@pytest.fixture(scope="session")
def standin_image(ngc_standin: ModuleType) -> str:
    """The tag of the NGC stand-in image, built by the script unless already cached.

    Without an engine the integration tests skip on a developer's machine, but in CI
    (CI=true) a missing engine is a failure: a green run must never mean "not run".
    """
    problem = engine_problem()
    if problem is not None:
        message = f"no Docker engine (run scripts/ensure-engine.sh): {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    if ngc_standin.main([]) != 0:
        pytest.fail("scripts/ngc_standin.py failed (its error is in the captured stderr)")
    tag: str = ngc_standin.DEFAULT_TAG
    return tag
