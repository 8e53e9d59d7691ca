"""What every Singularity-image backend gets and does (a Protocol): the request it takes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from imgforge.compressors import DEFAULT_COMPRESSOR
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
    compression: str = DEFAULT_COMPRESSOR
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
