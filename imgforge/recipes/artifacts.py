"""Where one recipe's artifacts live under ``--out`` (light: the no-op fast path uses it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_FILE = "imgforge-env.sh"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class Artifacts:
    """Where one recipe's artifacts live under ``--out``."""

    directory: Path
    name: str
    image_format: str = "sif"
    # Temporary names hold the process ID, decided here so that every text naming one
    # (the conversion .def) can be rendered before the build starts.
    process: int = field(default_factory=os.getpid, compare=False)

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
    def sqsh_file(self) -> Path:
        """The enroot image (``--sqsh``)."""
        return self.directory / f"{self.name}.sqsh"

    @property
    def manifest(self) -> Path:
        return self.directory / MANIFEST_FILE

    @property
    def log(self) -> Path:
        return self.directory / "build.log"

    def temporary(self, name: str) -> Path:
        """A temporary name in the directory that no final artifact ever has."""
        return self.directory / f".{name}.{self.process}.tmp"
