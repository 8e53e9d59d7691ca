"""Moving images off the machine: ``--push REGISTRY`` and ``--save`` (docker save)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from imgforge.build import record
from imgforge.build.record import Manifest
from imgforge.build.records import PushRecord, SavedRecord
from imgforge.build.sifpush import needs_sif_push, push_sif
from imgforge.credentials import auth_config, for_registry
from imgforge.log import Log
from imgforge.options import Options
from imgforge.recipes.jobs import BuildJob

if TYPE_CHECKING:
    from imgforge.engine.protocol import Engine



def saved_path(job: BuildJob) -> Path:
    return job.artifacts.directory / f"{job.name}.docker.tar"


def push_repository(job: BuildJob, registry: str) -> str:
    """Where ``--push REGISTRY`` puts the image of ``job`` (its tag is the recipe's)."""
    return f"{registry.rstrip('/')}/{job.recipe.name}"


def push_image(
    engine: Engine, job: BuildJob, image_id: str, registry: str, log: Log
) -> PushRecord:
    """Tag the image ``REGISTRY/NAME:TAG`` and push it; the record names it by digest.

    Credentials come from the environment or Docker's credential store and travel in
    the API request only (a localhost registry may speak plain HTTP: Docker allows that
    for 127.0.0.0/8 without configuration)."""
    repository = push_repository(job, registry)
    engine.tag(image_id, repository, job.recipe.tag)
    auth = auth_config(for_registry(registry, os.environ))
    digest = engine.push(repository, job.recipe.tag, auth=auth, log=log)
    log(f"pushed {repository}:{job.recipe.tag} as {repository}@{digest}")
    return PushRecord(
        registry=registry,
        reference=f"{repository}:{job.recipe.tag}",
        digest=digest,
        by_digest=f"{repository}@{digest}",
    )


def save_image(engine: Engine, job: BuildJob, image_id: str) -> SavedRecord:
    """``docker save`` to ``NAME.docker.tar`` beside the SIF, atomically."""
    target = saved_path(job)
    pending = job.artifacts.temporary(target.name)
    try:
        engine.save(image_id, pending)
        os.replace(pending, target)
    finally:
        pending.unlink(missing_ok=True)
    stat = target.stat()
    return SavedRecord(target.name, stat.st_size, stat.st_mtime_ns)


def needs_push(recorded: Manifest | None, options: Options) -> bool:
    pushed = recorded.push if recorded is not None else None
    return bool(options.push) and (pushed is None or pushed.registry != options.push)


def needs_save(job: BuildJob, recorded: Manifest | None, options: Options) -> bool:
    """Whether ``--save`` asks for an archive that is missing or not the recorded one."""
    if not options.save:
        return False
    saved = recorded.saved if recorded is not None else None
    try:
        stat = saved_path(job).stat()
    except OSError:
        return True
    return saved is None or (stat.st_size, stat.st_mtime_ns) != (saved.size, saved.mtime_ns)


def publish_missing(
    engine: Engine, job: BuildJob, image_id: str, options: Options, log: Log
) -> list[str]:
    """For an up-to-date image: push (the image, the SIF beside it) and save what these
    options ask for and the manifest lacks (no rebuild), and record it; returns what was
    done ("push", "saved")."""
    recorded = record.read(job.artifacts.manifest)
    push = saved = None
    if needs_push(recorded, options):
        assert options.push is not None
        push = push_image(engine, job, image_id, options.push, log)
    pushed = push or (recorded.push if recorded is not None and options.push else None)
    sif = recorded.sif if recorded is not None else None
    if needs_sif_push(pushed, sif, singularity=options.singularity):
        inspected = engine.inspect(image_id) or {}
        push = push_sif(job, pushed, job.artifacts.image_file, sif, inspected=inspected, log=log)
    if needs_save(job, recorded, options):
        saved = save_image(engine, job, image_id)
    if recorded is not None and (push or saved):
        updated = replace(recorded, push=push or recorded.push, saved=saved or recorded.saved)
        record.write(job.artifacts.manifest, updated)
    return [kind for kind, done in (("push", push), ("saved", saved)) if done is not None]
