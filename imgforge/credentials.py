"""Registry credentials: from the environment or Docker's own store, never into argv,
rendered files, manifests, labels or logs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

USER_ENV = "IMGFORGE_REGISTRY_USER"
PASSWORD_ENV = "IMGFORGE_REGISTRY_PASSWORD"
NGC_KEY_ENV = "NGC_API_KEY"
NGC_REGISTRY = "nvcr.io"
NGC_USER = "$oauthtoken"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def registry_of(reference: str) -> str:
    """The registry host of an image reference (Docker Hub when it names none)."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def is_local(registry: str) -> bool:
    """A registry on this machine, which Docker and Apptainer may reach over plain HTTP."""
    if registry.startswith("["):  # [::1] or [::1]:5000
        host = registry[: registry.find("]") + 1]
    else:
        host = registry.rsplit(":", 1)[0]
    return host in LOCAL_HOSTS or host.startswith("127.")


def for_registry(registry: str, environ: Mapping[str, str]) -> Credentials | None:
    """Credentials from the environment, or None (then Docker's config.json and credential
    helpers apply, as the docker SDK reads them itself)."""
    user, password = environ.get(USER_ENV), environ.get(PASSWORD_ENV)
    if user and password:
        return Credentials(user, password)
    if registry == NGC_REGISTRY and environ.get(NGC_KEY_ENV):
        return Credentials(NGC_USER, environ[NGC_KEY_ENV])
    return None


def auth_config(credentials: Credentials | None) -> dict[str, str] | None:
    """The docker SDK's ``auth_config`` (sent in a request header, never in argv)."""
    if credentials is None:
        return None
    return {"username": credentials.username, "password": credentials.password}


def singularity_env(credentials: Credentials | None, registry: str) -> dict[str, str]:
    """Child environment for apptainer/singularity pulling from ``registry``."""
    env: dict[str, str] = {}
    if credentials is not None:
        for prefix in ("APPTAINER", "SINGULARITY"):
            env[f"{prefix}_DOCKER_USERNAME"] = credentials.username
            env[f"{prefix}_DOCKER_PASSWORD"] = credentials.password
    if is_local(registry):
        env["APPTAINER_NOHTTPS"] = env["SINGULARITY_NOHTTPS"] = "1"
    return env
