"""``--push`` for the SIF: publish it beside the image Docker pushed, and record where."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from imgforge.build.records import PushRecord, SifRecord
from imgforge.credentials import is_local
from imgforge.engine.logins import credentials_for
from imgforge.errors import BuildError
from imgforge.log import Log
from imgforge.recipes.jobs import BuildJob
from imgforge.registry.artifact import SifFile, publish_sif
from imgforge.registry.client import connect
from imgforge.registry.oci import Platform


def push_sif(
    job: BuildJob,
    push: PushRecord | None,
    sif_file: Path | None,
    sif: SifRecord | None,
    *,
    inspected: Mapping[str, Any],
    log: Log,
) -> PushRecord | None:
    """``push`` with the SIF published beside its image (``sif_file`` holds the bytes of
    ``sif``, under any name). Unchanged without a push or a SIF, and for a .simg, which
    ``apptainer pull oras://`` does not take. Plain HTTP to a loopback registry only."""
    if push is None or sif_file is None or sif is None:
        return push
    if sif.format != "sif":
        log(f"--push: {sif.path} is not a SIF; only the image is published")
        return push
    repository = push.repository
    host, _, path = repository.partition("/")
    artifact = SifFile(sif_file, job.artifacts.image_file.name, sif.sha256, sif.size)
    try:
        credentials = credentials_for(host, os.environ)
        with connect(host, credentials, insecure=is_local(host), log=log) as remote:
            published = publish_sif(
                remote,
                repository=path,
                tag=job.recipe.tag,
                sif=artifact,
                image_digest=push.digest,
                platform=Platform.from_inspect(inspected),
                log=log,
            )
    except BuildError as exc:
        raise BuildError(
            f"{job.recipe.path}: push: publishing the SIF as {push.reference} failed: {exc}"
        ) from None
    log(f"pushed SIF as {repository}@{published.manifest} (index {published.index})")
    return replace(push, sif_digest=published.manifest, index_digest=published.index)


def needs_sif_push(push: PushRecord | None, sif: SifRecord | None, *, singularity: str) -> bool:
    """Whether an up-to-date build's SIF still has to be published beside ``push``."""
    return (
        push is not None
        and sif is not None
        and sif.format == "sif"
        and singularity != "none"
        and (push.sif_digest is None or push.index_digest is None)
    )
