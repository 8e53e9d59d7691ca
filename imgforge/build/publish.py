"""Moving images off the machine: ``--push REGISTRY`` and ``--save`` (docker save)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgforge.build import record as manifest
from imgforge.credentials import auth_config, for_registry
from imgforge.options import Options
from imgforge.recipes.jobs import BuildJob
from imgforge.sif.make import temporary

if TYPE_CHECKING:
    from imgforge.engine.docker import DockerEngine

Log = Callable[[str], None]


def saved_path(job: BuildJob) -> Path:
    return job.artifacts.directory / f"{job.name}.docker.tar"


def push_repository(job: BuildJob, registry: str) -> str:
    """Where ``--push REGISTRY`` puts the image of ``job`` (its tag is the recipe's)."""
    return f"{registry.rstrip('/')}/{job.recipe.name}"


def push_image(
    engine: DockerEngine, job: BuildJob, image_id: str, registry: str, log: Log
) -> dict[str, str]:
    """Tag the image ``REGISTRY/NAME:TAG`` and push it; the record names it by digest.

    Credentials come from the environment or Docker's credential store and travel in
    the API request only (a localhost registry may speak plain HTTP: Docker allows that
    for 127.0.0.0/8 without configuration)."""
    repository = push_repository(job, registry)
    engine.tag(image_id, repository, job.recipe.tag)
    auth = auth_config(for_registry(registry, os.environ))
    digest = engine.push(repository, job.recipe.tag, auth=auth, log=log)
    log(f"pushed {repository}:{job.recipe.tag} as {repository}@{digest}")
    return {
        "registry": registry,
        "reference": f"{repository}:{job.recipe.tag}",
        "digest": digest,
        "by_digest": f"{repository}@{digest}",
    }


def save_image(engine: DockerEngine, job: BuildJob, image_id: str) -> dict[str, Any]:
    """``docker save`` to ``NAME.docker.tar`` beside the SIF, atomically."""
    target = saved_path(job)
    pending = temporary(job.artifacts.directory, target.name)
    try:
        engine.save(image_id, pending)
        os.replace(pending, target)
    finally:
        pending.unlink(missing_ok=True)
    stat = target.stat()
    return {"path": target.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def needs_push(recorded: dict[str, Any], options: Options) -> bool:
    return bool(options.push) and (recorded.get("push") or {}).get("registry") != options.push


def needs_save(job: BuildJob, recorded: dict[str, Any], options: Options) -> bool:
    """Whether ``--save`` asks for an archive that is missing or not the recorded one."""
    if not options.save:
        return False
    saved = recorded.get("saved") or {}
    try:
        stat = saved_path(job).stat()
    except OSError:
        return True
    return [stat.st_size, stat.st_mtime_ns] != [saved.get("size"), saved.get("mtime_ns")]


def publish_missing(
    engine: DockerEngine, job: BuildJob, image_id: str, options: Options, log: Log
) -> dict[str, Any]:
    """For an up-to-date image: push and save what these options ask for and the manifest
    lacks (no rebuild); returns the manifest entries to add."""
    recorded = manifest.read(job.artifacts.manifest) or {}
    extra: dict[str, Any] = {}
    if needs_push(recorded, options):
        assert options.push is not None
        extra["push"] = push_image(engine, job, image_id, options.push, log)
    if needs_save(job, recorded, options):
        extra["saved"] = save_image(engine, job, image_id)
    if extra and recorded:
        manifest.write(job.artifacts.manifest, {**recorded, **extra})
    return extra
