"""The engine's image IDs over its unix socket with the standard library alone: the one
engine question of the no-op fast path, which must not import the docker SDK."""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterable
from urllib.parse import quote

from imgforge.engine.guard import why_not_path_value

DEFAULT_SOCKET = "/var/run/docker.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def engine_socket() -> str | None:
    """The engine's unix socket, or None where DOCKER_HOST names anything else."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    return host.removeprefix("unix://") if host.startswith("unix://") else None


def image_ids(path: str, refs: Iterable[str], timeout: float = 5.0) -> dict[str, str | None]:
    """The image ID of each reference (None if absent): one small inspect per image over
    one kept-alive connection. (Listing all images costs the engine time that grows with
    every image it holds; an inspect does not.)"""
    connection = _UnixConnection(path, timeout)
    found: dict[str, str | None] = {}
    try:
        for ref in dict.fromkeys(refs):
            if why_not_path_value(ref):  # e.g. an edited manifest: the full path decides
                raise ValueError(ref)
            connection.request("GET", f"/images/{quote(ref, safe='/:@')}/json")
            response = connection.getresponse()
            body = response.read()
            if response.status == 404:
                found[ref] = None
            elif response.status == 200:
                found[ref] = str(json.loads(body)["Id"])
            else:
                raise OSError(f"engine answered {response.status}")
    finally:
        connection.close()
    return found
