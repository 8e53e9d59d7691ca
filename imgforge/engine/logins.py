"""Who imgforge is to a registry outside the engine's own push (the SIF's): the credentials
the image push uses, found where it finds them (never in argv, a log or a record). The
docker SDK reads Docker's config.json and credential helpers, so this lives with the
engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imgforge.credentials import Credentials, for_registry
from imgforge.errors import BuildError


def credentials_for(host: str, environ: Mapping[str, str]) -> Credentials | None:
    """imgforge's own variables (IMGFORGE_REGISTRY_USER/PASSWORD, NGC_API_KEY for nvcr.io),
    else Docker's config.json and credential helpers, as ``docker push`` reads them."""
    return for_registry(host, environ) or docker_credentials(host)


def docker_credentials(host: str) -> Credentials | None:
    """The user name and password ``docker login HOST`` stored, or None. An identity
    token alone (no password) is not usable by a plain registry client."""
    from docker import auth
    from docker.errors import DockerException

    try:
        entry: Any = auth.resolve_authconfig(auth.load_config(), host)
    except DockerException as exc:
        raise BuildError(f"Docker's credential store gave nothing for {host}: {exc}") from None
    if not isinstance(entry, dict):
        return None
    user = entry.get("username") or entry.get("Username")
    password = entry.get("password") or entry.get("Password")
    if isinstance(user, str) and isinstance(password, str) and user and password:
        return Credentials(user, password)
    return None
