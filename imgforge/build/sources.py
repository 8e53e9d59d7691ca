"""Write a job's rendered Dockerfile, .def and env file beside its image."""

from __future__ import annotations

from pathlib import Path

from imgforge import atomic
from imgforge.recipes.jobs import BuildJob
from imgforge.render.job import Sources


def source_files(job: BuildJob, sources: Sources) -> list[tuple[Path, str, int]]:
    """(path, text, mode) of the Dockerfile, the .def and its env file."""
    paths = job.artifacts
    return [
        (paths.dockerfile, sources.dockerfile, 0o644),
        (paths.deffile, sources.deffile, 0o644),
        (paths.env_file, sources.envfile, 0o755),
    ]


def write_sources(job: BuildJob, sources: Sources) -> None:
    """Write the Dockerfile, the .def and its env file, each atomically."""
    for path, text, mode in source_files(job, sources):
        atomic.write_text(path, text, mode=mode)
