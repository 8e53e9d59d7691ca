"""What a Singularity-image backend reads of a built image (a Protocol): its config, its
filesystem as one tar stream, its size, and its layers as a ``docker save`` archive."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Protocol

from imgforge.recipes.image import ImageConfig


class ImageSource(Protocol):
    """One built image, wherever it lives (an engine, a registry, a cache).

    Backends take what they need: the native one streams :meth:`filesystem`; the
    apptainer/singularity one bootstraps from the per-layer :meth:`docker_archive`.
    """

    @property
    def image_id(self) -> str:
        """The image's ID (``sha256:HEX``)."""
        ...

    @property
    def config(self) -> ImageConfig:
        """The image's config (env, entrypoint, labels, architecture, ...)."""
        ...

    def filesystem(self) -> AbstractContextManager[IO[bytes]]:
        """The image's flattened filesystem as a tar stream, open while in the context."""
        ...

    def size(self) -> int | None:
        """The size of the image's filesystem in bytes, if known (for progress only)."""
        ...

    def docker_archive(self, path: Path) -> None:
        """Write the image's layers, config and manifest as a ``docker save`` archive to
        ``path`` (a partial file is removed on failure)."""
        ...
