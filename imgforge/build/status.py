"""Whether a job must be built, and why: fingerprint, manifest and engine agree or not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgforge.build import record as manifest
from imgforge.build.record import Fingerprint
from imgforge.options import Options, options_key
from imgforge.patterns import PROJECT_FILE
from imgforge.recipes.fingerprint import input_paths, input_stats, stat_signature
from imgforge.recipes.jobs import BuildJob

if TYPE_CHECKING:
    from imgforge.engine.docker import DockerEngine
    from imgforge.render.job import Sources


@dataclass(frozen=True)
class Status:
    """Whether a job must be built, and why."""

    name: str
    stale: bool
    reason: str
    fingerprint: Fingerprint
    image_id: str | None = None


def job_status(
    job: BuildJob,
    rendered: Sources,
    *,
    base_id: str,
    engine: DockerEngine,
    force: bool,
    strategy: str,
    rebuilding: set[str],
    want_sif: bool = False,
) -> Status:
    """Decide whether ``job`` is up to date: fingerprint, manifest and engine agree."""
    fingerprint = Fingerprint(job.recipe_hash, rendered.digest, base_id, strategy)

    def stale(reason: str) -> Status:
        return Status(job.name, True, reason, fingerprint)

    if force:
        return stale("--force")
    if strategy == "interactive":
        return stale("interactive session")
    parents = [p for p in job.parents if p in rebuilding]
    if parents:
        return stale(f"parent {', '.join(parents)} rebuilds")
    recorded = manifest.read(job.artifacts.manifest)
    if recorded is None:
        return stale("no manifest")
    noted = recorded.get("fingerprint")
    if why := fingerprint.differs(noted if isinstance(noted, dict) else {}):
        return stale(why)
    image_id = engine.image_id(job.recipe.image)
    if image_id is None:
        return stale(f"image {job.recipe.image} is missing")
    if image_id != recorded.get("docker_image_id"):
        return stale(f"image {job.recipe.image} is not the one recorded")
    paths = job.artifacts
    if want_sif and (
        why := manifest.sif_problem(
            recorded.get("sif"), paths.image_file, paths.image_format, image_id
        )
    ):
        return stale(why)
    return Status(job.name, False, "up to date", fingerprint, image_id)


def input_record(job: BuildJob, options: Options) -> dict[str, Any]:
    """Stat signatures of everything the build read, for the no-op fast path."""
    recipe = job.recipe
    project = recipe.directory / PROJECT_FILE
    return {
        "options": options_key(options),
        "recipe": stat_signature(recipe.path),
        "project": stat_signature(project) if project.exists() else None,
        "files": input_stats(recipe.directory, input_paths(recipe)),
    }
