"""Where one recipe's artifacts live under ``--out`` (light: the no-op fast path uses it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ENV_FILE = "imgforge-env.sh"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class Artifacts:
    """Where one recipe's artifacts live under ``--out``."""

    directory: Path
    name: str
    image_format: str = "sif"

    @classmethod
    def under(cls, out: Path, name: str, image_format: str = "sif") -> Artifacts:
        """The artifacts of recipe ``name`` in ``out`` (``out/NAME/...``)."""
        return cls(out / name, name, image_format)

    @property
    def dockerfile(self) -> Path:
        return self.directory / "Dockerfile"

    @property
    def deffile(self) -> Path:
        return self.directory / f"{self.name}.def"

    @property
    def env_file(self) -> Path:
        return self.directory / ENV_FILE

    @property
    def image_file(self) -> Path:
        return self.directory / f"{self.name}.{self.image_format}"

    @property
    def manifest(self) -> Path:
        return self.directory / MANIFEST_FILE

    @property
    def log(self) -> Path:
        return self.directory / "build.log"
