"""The per-recipe manifest.json: the record pairing a recipe, its image and its SIF."""

from __future__ import annotations

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


def read(path: Path) -> dict[str, Any] | None:
    """The manifest at ``path``; None if missing or unreadable (then the recipe rebuilds)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write(path: Path, data: dict[str, Any]) -> None:
    atomic.write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def fingerprint_dict(fingerprint: Fingerprint) -> dict[str, str]:
    return asdict(fingerprint)
