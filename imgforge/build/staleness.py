"""Whether a recipe must be rebuilt, and why, decided from plain facts: the one rule
both the full path and the no-op fast path apply (light: no engine, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgforge.build.record import Manifest
from imgforge.build.records import Fingerprint, SifRecord


@dataclass(frozen=True)
class SifState:
    """The Singularity image file a build wants: its name, format, compression (None:
    any) and, if it exists, its (size, mtime_ns) now."""

    name: str
    format: str
    stat: tuple[int, int] | None
    compression: str | None = None

    @classmethod
    def of(cls, path: Path, image_format: str, compression: str | None = None) -> SifState:
        """The file at ``path`` as it is now (checked by stat, not by hash)."""
        try:
            found = path.stat()
        except OSError:
            return cls(path.name, image_format, None, compression)
        return cls(path.name, image_format, (found.st_size, found.st_mtime_ns), compression)


@dataclass(frozen=True)
class Facts:
    """What staleness is decided from, gathered by the caller."""

    image: str  # NAME:TAG, for the reasons
    fingerprint: Fingerprint  # of the build that would run now
    recorded: Manifest | None  # the manifest, None if missing, malformed or edited
    image_id: str | None  # the engine's ID for ``image`` now, None if absent
    sif: SifState | None = None  # None when no Singularity image is wanted
    sqsh: SifState | None = None  # None when no enroot image is wanted
    force: bool = False
    interactive: bool = False
    parents_rebuilding: tuple[str, ...] = ()


def stale_reason(facts: Facts) -> str | None:
    """Why the recipe must be built, or None when it is up to date."""
    if facts.force:
        return "--force"
    if facts.interactive:
        return "interactive session"
    if facts.parents_rebuilding:
        return f"parent {', '.join(facts.parents_rebuilding)} rebuilds"
    recorded = facts.recorded
    if recorded is None:
        return "no manifest"
    if why := facts.fingerprint.differs(recorded.fingerprint):
        return why
    if facts.image_id is None:
        return f"image {facts.image} is missing"
    if facts.image_id != recorded.docker_image_id:
        return f"image {facts.image} is not the one recorded"
    if facts.sif is not None and (why := sif_problem(recorded.sif, facts.sif, facts.image_id)):
        return why
    if facts.sqsh is not None:
        return sif_problem(recorded.sqsh, facts.sqsh, facts.image_id)
    return None


def sif_problem(record: SifRecord | None, sif: SifState, image_id: str) -> str | None:
    """Why the recorded Singularity image can't be reused, or None."""
    if record is None or record.format != sif.format:
        return f"no {sif.format} recorded"
    if sif.stat is None:
        return f"{sif.name} is missing"
    if sif.stat != (record.size, record.mtime_ns):
        return f"{sif.name} changed since it was built"
    if record.docker_image_id != image_id:
        return f"{sif.name} was made from another image"
    if sif.compression is not None and record.compression != sif.compression:
        return f"{sif.name} was compressed with {record.compression}, not {sif.compression}"
    return None
