"""What every Singularity-image backend gets and does (a Protocol), and how one is chosen."""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from imgforge.errors import EngineError
from imgforge.log import Log
from imgforge.recipes.image import ImageConfig

if TYPE_CHECKING:
    from imgforge.sif.source import ImageSource


@dataclass(frozen=True)
class SifRequest:
    """One built Docker image to turn into a Singularity image file.

    ``files`` maps paths under ``/.singularity.d`` (``env/10-docker2singularity.sh``,
    ``runscript``, ``labels.json``, ``Singularity``, ...) to their rendered text: the same
    metadata whichever backend writes the image. ``convert_deffile`` is the .def that
    the apptainer/singularity backend builds from, bootstrapping from the ``docker save``
    archive at ``archive`` (a temporary path it creates and removes).
    """

    name: str
    image_id: str
    config: ImageConfig
    files: dict[str, str]
    deffile: str
    convert_deffile: str
    archive: Path
    target: Path
    image_format: str = "sif"
    compression: str = "gzip"
    source_date_epoch: int | None = None
    # The build time (seconds): of the build-date label, the SIF header and descriptors
    # and the entries imgforge adds; SOURCE_DATE_EPOCH when set.
    built_at: int | None = None
    # Set when the image was pushed: the apptainer/singularity backend then builds from
    # this registry reference (the field's workflow), with ``tool_env`` (credentials,
    # the no-HTTPS switch for a local registry) in its environment only.
    source_ref: str | None = None
    tool_env: dict[str, str] = field(default_factory=dict, repr=False)

    def timestamp(self) -> int:
        """SOURCE_DATE_EPOCH if set, else the build time (now, if none was given)."""
        if self.source_date_epoch is not None:
            return self.source_date_epoch
        return self.built_at if self.built_at is not None else int(time.time())


class SifBackend(Protocol):
    """A way to make a SIF (or legacy .simg) from a built image."""

    @property
    def name(self) -> str:
        """apptainer, singularity or native."""
        ...

    def version(self) -> str:
        """The tool's version, for the manifest."""
        ...

    def make(self, request: SifRequest, *, source: ImageSource, log: Log) -> None:
        """Write the image file of ``source`` to ``request.target`` (a temporary name)."""
        ...


def binary(name: str) -> str | None:
    """Path of an installed apptainer/singularity binary, or None."""
    return shutil.which(name)


def choose(requested: str) -> SifBackend | None:
    """The backend for ``--singularity``: None for ``none``; exit 3 if a tool is missing."""
    from imgforge.sif.apptainer import SingularityCLI
    from imgforge.sif.pack import NativeBackend

    if requested == "none":
        return None
    if requested in ("apptainer", "singularity"):
        path = binary(requested)
        if path is None:
            raise EngineError(f"--singularity {requested}: no {requested} binary on PATH")
        return SingularityCLI(requested, path)
    if requested == "auto":
        for name in ("apptainer", "singularity"):
            path = binary(name)
            if path is not None:
                return SingularityCLI(name, path)
    return NativeBackend.create()


def chooser(requested: str) -> Callable[[], SifBackend | None]:
    """:func:`choose` for ``requested``, called when first needed and remembered: a
    missing tool fails the first build that makes an image, not a run with none to make."""
    return functools.cache(lambda: choose(requested))

