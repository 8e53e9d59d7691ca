"""What a Singularity-image backend reads of a built image (a Protocol): its config, its
filesystem as one tar stream or read from its layers in place, its size, and its layers as a
``docker save`` archive."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Protocol

from imgforge.recipes.image import ImageConfig
from imgforge.squashfs.members import Member


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

    def layers(self) -> AbstractContextManager[Iterator[Member] | None]:
        """The same entries as :meth:`filesystem`, in its order, read from the image's
        layers where they lie on this machine, each regular file's data an
        :class:`~imgforge.squashfs.members.OnDisk` (so that files the cache's layer index
        knows are not read); None where the layers can't be read here. The image is kept
        while in the context. An entry that can't be given exactly raises
        :class:`~imgforge.errors.LayersUnreadable` midway: the caller starts again from
        :meth:`filesystem`."""
        ...

    def size(self) -> int | None:
        """The size of the image's filesystem in bytes, if known (for progress only)."""
        ...

    def docker_archive(self, path: Path) -> None:
        """Write the image's layers, config and manifest as a ``docker save`` archive to
        ``path`` (a partial file is removed on failure)."""
        ...
