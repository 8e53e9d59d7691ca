"""Engine API paths: only names of Docker's reference grammar reach a URL path, and no
redirect is followed.

The docker SDK puts names, references and IDs into URL paths quoted with
``safe="/:"`` (``APIClient._url``), and the engine's router cleans ``..`` segments
(redirecting, or routing the cleaned path): ``images/x/../../containers/ID/json`` is a
container's inspect, Env included. Every SDK call builds its URL through ``_url``, so
checking there covers all of them, including calls added later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imgforge.errors import UsageError
from imgforge.reference import ReferenceError, parse


def why_not_path_value(value: object) -> str | None:
    """Why ``value`` may not go into an Engine API path, or None. Allowed: what
    ``reference.Parse`` accepts (image references, names and IDs, ``sha256:HEX``,
    container names and IDs imgforge uses), which never holds an empty, ``.`` or ``..``
    segment, nor ``%``, ``?``, ``#``, ``\\`` or whitespace."""
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    try:
        parse(value)
    except ReferenceError as exc:
        return str(exc)
    if any(part in {"", ".", ".."} for part in value.split("/")):
        return "has an empty, '.' or '..' segment"
    return None


def check_path_value(value: object) -> None:
    """Raise (exit 2) unless ``value`` may go into an Engine API path."""
    if why := why_not_path_value(value):
        raise UsageError(f"{value!r} is not an image or container name ({why})")


def guarded_url(original: Callable[..., str]) -> Callable[..., str]:
    """``APIClient._url`` that refuses any path value ``why_not_path_value`` refuses."""

    def url(pathfmt: str, *args: Any, **kwargs: Any) -> str:
        for value in args:
            check_path_value(value)
        return original(pathfmt, *args, **kwargs)

    return url


def guard(api: Any) -> Any:
    """Install the path check on a ``docker.APIClient`` and stop it following redirects
    (the engine never redirects a valid request; a cleaned path would)."""
    api._url = guarded_url(api._url)
    api.max_redirects = 0
    return api
