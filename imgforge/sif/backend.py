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
    # The squashed-data cache of the native backend (None: none) and its size limit.
    cache_dir: Path | None = None
    cache_limit: int | None = None

    def timestamp(self) -> int:
        """SOURCE_DATE_EPOCH if set, else the build time (now, if none was given)."""
        if self.source_date_epoch is not None:
            return self.source_date_epoch
        return self.built_at if self.built_at is not None else int(time.time())


@dataclass(frozen=True)
class CacheUse:
    """What the squashed-data cache did for one image: blocks copied from it (hits) and
    compressed (misses), their raw bytes, the compressing time saved (estimated at this
    build's own rate), entries found corrupt and dropped."""

    hits: int
    misses: int
    hit_bytes: int
    miss_bytes: int
    saved_seconds: float
    corrupt: int = 0
    note: str = ""

    def line(self) -> str:
        """``cache: 41 of 50 blocks reused (5.2 of 6.1 MB), ~3.0s saved``, and any note."""
        total = self.hits + self.misses
        text = (
            f"cache: {self.hits} of {total} blocks reused ({self.hit_bytes / 1e6:.1f} of "
            f"{(self.hit_bytes + self.miss_bytes) / 1e6:.1f} MB), ~{self.saved_seconds:.1f}s saved"
        )
        if self.corrupt:
            text += f", {self.corrupt} corrupt entries dropped"
        return text + (f" ({self.note})" if self.note else "")

    def to_json(self) -> dict[str, object]:
        return {
            "hits": self.hits, "misses": self.misses, "hit_bytes": self.hit_bytes,
            "miss_bytes": self.miss_bytes, "saved_seconds": round(self.saved_seconds, 3),
            "corrupt": self.corrupt,
        }  # fmt: skip


@dataclass(frozen=True)
class Packing:
    """How the squashfs was made: compressor, its size, seconds, the packing tool's
    version, and what the cache did (None: no cache)."""

    compression: str
    size: int
    seconds: float
    tool: str
    cache: CacheUse | None = None
    # What the user should know of the image made (said after the build line).
    notes: tuple[str, ...] = ()


class SifBackend(Protocol):
    """A way to make a SIF (or legacy .simg) from a built image."""

    @property
    def name(self) -> str:
        """apptainer, singularity or native."""
        ...

    def version(self) -> str:
        """The tool's version, for the manifest."""
        ...

    def make(self, request: SifRequest, *, source: ImageSource, log: Log) -> Packing | None:
        """Write the image file of ``source`` to ``request.target`` (a temporary name);
        how it was packed, where the backend knows."""
        ...
