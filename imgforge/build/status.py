"""Job status for the full path: gather one job's facts (fingerprint, manifest, engine,
SIF file) and apply the staleness rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from imgforge.build import record
from imgforge.build.inputs import input_record
from imgforge.build.records import Fingerprint, Inputs
from imgforge.build.staleness import Facts, SifState, stale_reason
from imgforge.options import Options, Outputs

if TYPE_CHECKING:
    from imgforge.recipes.jobs import BuildJob


class ImageIds(Protocol):
    """The one engine question staleness asks: which image a reference names now."""

    def image_id(self, ref: str) -> str | None: ...


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
    rendered_digest: str,
    *,
    base_id: str,
    engine: ImageIds,
    force: bool,
    strategy: str,
    rebuilding: set[str],
    outputs: Outputs,
    compression: str | None = None,
) -> Status:
    """Decide whether ``job`` is up to date: fingerprint, manifest and engine agree."""
    fingerprint = Fingerprint(job.recipe_hash, rendered_digest, base_id, strategy)
    paths = job.artifacts
    image_id = engine.image_id(job.recipe.image)
    facts = Facts(
        image=job.recipe.image,
        fingerprint=fingerprint,
        recorded=record.read(paths.manifest),
        image_id=image_id,
        sif=SifState.of(paths.image_file, paths.image_format, compression) if outputs.sif else None,
        sqsh=SifState.of(paths.sqsh_file, "sqsh", compression) if outputs.sqsh else None,
        force=force,
        interactive=strategy == "interactive",
        parents_rebuilding=tuple(p for p in job.parents if p in rebuilding),
    )
    if why := stale_reason(facts):
        return Status(job.name, True, why, fingerprint)
    return Status(job.name, False, "up to date", fingerprint, image_id)


def job_inputs(job: BuildJob, options: Options) -> Inputs:
    """The input record of ``job`` (see imgforge.build.inputs)."""
    recipe = job.recipe
    return input_record(
        recipe.path,
        requirements=recipe.pip_requirements,
        files=[source for source, _ in recipe.files],
        options=options,
    )
