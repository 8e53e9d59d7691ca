"""The per-recipe manifest.json: the record pairing a recipe, its image and its SIF."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imgforge import atomic


@dataclass(frozen=True)
class Fingerprint:
    """What a build depended on; equal fingerprints mean nothing changed."""

    recipe: str
    rendered: str
    base_image_id: str
    strategy: str

    def differs(self, other: dict[str, Any]) -> str | None:
        """Why ``other`` (from a manifest) is not this fingerprint, or None if equal."""
        reasons = {
            "recipe": "recipe or its files changed",
            "rendered": "rendered Dockerfile/.def changed",
            "base_image_id": "base image changed",
            "strategy": "build strategy changed",
        }
        for key, reason in reasons.items():
            if other.get(key) != getattr(self, key):
                return reason
        return None


CHECKSUM = "checksum"


def checksum(data: dict[str, Any]) -> str:
    """sha256 of the manifest's content without its checksum."""
    body = {key: value for key, value in data.items() if key != CHECKSUM}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def read(path: Path) -> dict[str, Any] | None:
    """The manifest at ``path``; None if missing, unreadable or edited since imgforge
    wrote it (its checksum differs): then the recipe rebuilds."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if CHECKSUM in data and data[CHECKSUM] != checksum(data):
        return None
    return data


def text(data: dict[str, Any]) -> str:
    return json.dumps({**data, CHECKSUM: checksum(data)}, indent=2, sort_keys=True) + "\n"


def write(path: Path, data: dict[str, Any]) -> None:
    atomic.write_text(path, text(data))


def fingerprint_dict(fingerprint: Fingerprint) -> dict[str, str]:
    return asdict(fingerprint)


def sif_problem(record: Any, path: Path, image_format: str, image_id: str) -> str | None:
    """Why the recorded Singularity image at ``path`` can't be reused (checked by stat,
    not by hash), or None."""
    if not isinstance(record, dict) or record.get("format") != image_format:
        return f"no {image_format} recorded"
    try:
        stat = path.stat()
    except OSError:
        return f"{path.name} is missing"
    if (stat.st_size, stat.st_mtime_ns) != (record.get("size"), record.get("mtime_ns")):
        return f"{path.name} changed since it was built"
    if record.get("docker_image_id") != image_id:
        return f"{path.name} was made from another image"
    return None
