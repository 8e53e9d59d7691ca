"""Engine helpers shared by the integration and reliability suites."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import docker
import docker.errors

REPO = Path(__file__).resolve().parents[1]
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
