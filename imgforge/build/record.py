"""The per-recipe manifest.json as a typed record: the Manifest pairing a recipe, its
image and its SIF, read and written (with its checksum) here and nowhere else."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from imgforge import atomic
from imgforge.build import fields
from imgforge.build.fields import Malformed, table
from imgforge.build.records import (
    BaseRecord,
    CommitRecord,
    Fingerprint,
    Inputs,
    PushRecord,
    SavedRecord,
    SifRecord,
    Timings,
    Tools,
)

__all__ = [
    "BaseRecord",
    "CommitRecord",
    "Fingerprint",
    "Inputs",
    "Manifest",
    "PushRecord",
    "SavedRecord",
    "SifRecord",
    "Timings",
    "Tools",
    "read",
    "text",
    "write",
]

CHECKSUM = "checksum"
T = TypeVar("T")


@dataclass(frozen=True)
class Manifest:
    """What one successful build left: the image, its SIF, and what both came from."""

    imgforge_version: str
    recipe: str
    recipe_file: str
    image: str
    docker_image_id: str
    strategy: str
    base: BaseRecord
    fingerprint: Fingerprint
    env: tuple[str, ...]
    sif: SifRecord | None
    tools: Tools
    timings: Timings
    built_at: str
    # Absent from manifests older than the no-op fast path: such a recipe then takes
    # the full path once, which records them.
    inputs: Inputs | None = None
    commit: CommitRecord | None = None
    push: PushRecord | None = None
    saved: SavedRecord | None = None
    # The enroot image (--sqsh): a record of the SIF's shape, format "sqsh".
    sqsh: SifRecord | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "imgforge_version": self.imgforge_version,
            "recipe": self.recipe,
            "recipe_file": self.recipe_file,
            "image": self.image,
            "docker_image_id": self.docker_image_id,
            "strategy": self.strategy,
            "base": self.base.to_json(),
            "fingerprint": self.fingerprint.to_json(),
            "env": list(self.env),
            "sif": None if self.sif is None else self.sif.to_json(),
            "tools": self.tools.to_json(),
            "timings": self.timings.to_json(),
            "built_at": self.built_at,
        }
        for key, record in [
            ("inputs", self.inputs),
            ("commit", self.commit),
            ("push", self.push),
            ("saved", self.saved),
            ("sqsh", self.sqsh),
        ]:
            if record is not None:
                data[key] = record.to_json()
        return data

    @classmethod
    def from_json(cls, value: object) -> Manifest:
        """The manifest in ``value``. What decides staleness (names, IDs, fingerprint,
        inputs, pushes and saves) must have its shape; what only informs (versions, env,
        timings, the build time, the commit record) is taken when readable, as it was
        before it had a type, so a manifest lacking it still counts."""
        data = table(value)
        return cls(
            imgforge_version=_informed(lambda: fields.text(data, "imgforge_version"), ""),
            recipe=fields.text(data, "recipe"),
            recipe_file=_informed(lambda: fields.text(data, "recipe_file"), ""),
            image=fields.text(data, "image"),
            docker_image_id=fields.text(data, "docker_image_id"),
            strategy=fields.text(data, "strategy"),
            base=BaseRecord.from_json(data.get("base")),
            fingerprint=Fingerprint.from_json(data.get("fingerprint")),
            env=_informed(lambda: fields.texts(data.get("env")), ()),
            sif=_optional(SifRecord.from_json, data.get("sif")),
            tools=_informed(lambda: Tools.from_json(data.get("tools")), Tools("", "", "")),
            timings=_informed(lambda: Timings.from_json(data.get("timings")), Timings(0.0, 0.0)),
            built_at=_informed(lambda: fields.text(data, "built_at"), ""),
            inputs=_optional(Inputs.from_json, data.get("inputs")),
            commit=_informed(lambda: _optional(CommitRecord.from_json, data.get("commit")), None),
            push=_optional(PushRecord.from_json, data.get("push")),
            saved=_optional(SavedRecord.from_json, data.get("saved")),
            sqsh=_optional(SifRecord.from_json, data.get("sqsh")),
        )


def _informed(read: Callable[[], T], default: T) -> T:
    """An informational field: its value, or ``default`` where it is missing or malformed."""
    try:
        return read()
    except Malformed:
        return default


def _optional(read: Callable[[object], T], value: object) -> T | None:
    return None if value is None else read(value)


def checksum(data: dict[str, Any]) -> str:
    """sha256 of the manifest's content without its checksum."""
    body = {key: value for key, value in data.items() if key != CHECKSUM}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def read(path: Path) -> Manifest | None:
    """The manifest at ``path``; None if missing, unreadable, not of the shape imgforge
    writes, or edited since imgforge wrote it (its checksum differs): then the recipe
    rebuilds."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None
    if not isinstance(data, dict):
        return None
    try:
        # A manifest without a checksum is still read: only its shape is checked then.
        if CHECKSUM in data and data[CHECKSUM] != checksum(data):
            return None
        return Manifest.from_json(data)
    except (Malformed, RecursionError):  # RecursionError: re-encoding absurd nesting
        return None


def text(manifest: Manifest) -> str:
    """The file's text: sorted keys, two-space indent, the checksum inside."""
    data = manifest.to_json()
    return json.dumps({**data, CHECKSUM: checksum(data)}, indent=2, sort_keys=True) + "\n"


def write(path: Path, manifest: Manifest) -> None:
    atomic.write_text(path, text(manifest))
