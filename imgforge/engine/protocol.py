"""What the build path needs of a container engine (a Protocol), and the container it asks for."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, overload

from imgforge.log import Log


@dataclass(frozen=True)
class ContainerSpec:
    """A container that runs ``script`` with ``/bin/sh -c`` as its entrypoint.

    Named, not labelled: the commit strategy commits the container, and a label would be
    committed with it."""

    image: str
    script: str
    env: tuple[str, ...]
    workdir: str
    name: str
    network: str | None
    gpus: bool
    # For an interactive session: stdin kept open, and a TTY when there is a terminal.
    interactive: bool = False
    tty: bool = False


class Engine(Protocol):
    """A container engine as the build path uses it; errors are imgforge errors.

    Images are named by reference or ID; containers by the ID or name they were created
    with. ``cancel`` is set on Ctrl-C/SIGTERM: streams stop and ``interrupt`` removes the
    containers under way."""

    cancel: threading.Event

    def interrupt(self) -> None:
        """Cancel everything under way (called from the main thread on Ctrl-C)."""
        ...

    def answers(self) -> bool:
        """Whether the engine still answers within a few seconds."""
        ...

    def version(self) -> str:
        """The engine's version, for the manifest."""
        ...

    def build_network(self, requested: str | None) -> str | None:
        """The network build steps use (None: the engine's default)."""
        ...

    def inspect(self, ref: str) -> dict[str, Any] | None:
        """``docker image inspect``, or None if there is no such image."""
        ...

    def layers(self, image_id: str) -> AbstractContextManager[list[str] | None]:
        """The image's layer directories on this machine, top first, where imgforge can
        read them as the image's files (see :mod:`imgforge.engine.local`); else None.
        The engine keeps the image while in the context."""
        ...

    def image_id(self, ref: str) -> str | None:
        """The ID of image ``ref``, or None if there is no such image."""
        ...

    @overload
    def ensure_image(self, ref: str, *, why: str) -> dict[str, Any]: ...
    @overload
    def ensure_image(
        self, ref: str, *, why: str, pull: bool, auth: dict[str, str] | None = None
    ) -> dict[str, Any] | None: ...

    def build(
        self,
        context: IO[bytes],
        *,
        dockerfile: str,
        network: str | None,
        log: Log,
        what: str,
        buildargs: dict[str, str] | None = None,
    ) -> str:
        """Build from a tar context; return the image ID (untagged)."""
        ...

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        """Point ``repository:tag`` at ``image_id``."""
        ...

    def push(self, repository: str, tag: str, *, auth: dict[str, str] | None, log: Log) -> str:
        """Push ``repository:tag``; return the registry's manifest digest."""
        ...

    def save(self, image_id: str, path: Path) -> None:
        """Write the image's ``docker save`` archive (layers and manifest) to ``path``."""
        ...

    def exported(self, image_id: str) -> AbstractContextManager[IO[bytes]]:
        """The image's flattened filesystem as a tar stream."""
        ...

    def create_container(self, spec: ContainerSpec, *, what: str) -> str:
        """Create (not start) the container ``spec`` describes; return its ID."""
        ...

    def put_archive(self, container: str, path: str, data: IO[bytes]) -> None:
        """Unpack the tar ``data`` at ``path`` in the container."""
        ...

    def start_container(self, container: str, *, gpus: bool, what: str) -> None:
        """Start the container (it asked for GPUs if ``gpus``)."""
        ...

    def attach(self, container: str, *, what: str) -> None:
        """Start the container with the terminal attached; return when it exits."""
        ...

    def output(self, container: str) -> Iterator[str]:
        """The running container's output, line by line, until it exits."""
        ...

    def wait(self, container: str) -> int:
        """Wait for the container to exit; return its exit status."""
        ...

    def changes(self, container: str) -> list[str]:
        """``docker diff``: ``A``/``C``/``D`` and the path, for every change made."""
        ...

    def commit(self, container: str) -> str:
        """Commit the container's filesystem; return the new image's ID."""
        ...

    def remove_container(self, container: str) -> None:
        """Remove a container, whatever state it is in (or none by that name)."""
        ...
