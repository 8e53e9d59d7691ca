"""Make, check and move into place the Singularity image of one built recipe."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgforge import atomic
from imgforge.credentials import for_registry, registry_of, singularity_env
from imgforge.errors import BuildError
from imgforge.log import STEP, Log
from imgforge.options import source_date_epoch as checked_epoch
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import BuildJob
from imgforge.render import make_environment, render, render_sif_files
from imgforge.sif.backend import SifBackend, SifRequest
from imgforge.sif.check import verify_file
from imgforge.sif.metadata import build_labels, deffile_header

if TYPE_CHECKING:
    import jinja2

    from imgforge.sif.source import ImageSource


# Apptainer's SIF writer creates the image with mode 0755 (sylabs/sif CreateContainerAtPath),
# through open(2), so the process umask applies: 0755 under the usual umask 022. The SIF's
# launch line (#!/usr/bin/env run-singularity) then lets `./NAME.sif ARGS` run it.
IMAGE_MODE = 0o755


def source_date_epoch() -> int | None:
    """``SOURCE_DATE_EPOCH`` from the environment: reproducible SIF output when set."""
    return checked_epoch(os.environ)


def registry_env(reference: str | None) -> dict[str, str]:
    """What apptainer/singularity need in their environment to pull ``reference``."""
    if reference is None:
        return {}
    registry = registry_of(reference)
    return singularity_env(for_registry(registry, os.environ), registry)


def sif_files(
    job: BuildJob, config: ImageConfig, built_at: int, env: jinja2.Environment
) -> dict[str, str]:
    """The /.singularity.d files of the SIF made from the built image (``config``): the
    definition a build from the Docker engine's image embeds, and the image's labels
    with the build labels over them, as Apptainer writes both."""
    header = deffile_header(job.recipe.image)
    labels = {
        **dict(config.labels),
        **build_labels(header=header, arch=config.arch, built_at=built_at),
    }
    return render_sif_files(
        replace(job, config=config), env, deffile_header=header, labels_map=labels
    )


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def temporary(directory: Path, name: str) -> Path:
    """A temporary name in ``directory`` that no final artifact ever has."""
    return directory / f".{name}.{os.getpid()}.tmp"


def make_sif(
    job: BuildJob,
    *,
    image_id: str,
    config: ImageConfig,
    backend: SifBackend,
    source: ImageSource,
    compression: str,
    log: Log,
    pushed: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write ``NAME.sif`` (or ``.simg``) from the built image to a temporary name beside
    it and verify it; return that name (the caller renames it into place with the other
    artifacts, or removes it) and the manifest record. Nothing is left on failure."""
    directory = job.artifacts.directory
    target = job.artifacts.image_file
    pending = temporary(directory, target.name)
    env_file = temporary(directory, "imgforge-env.sh")
    archive = temporary(directory, f"{job.name}.docker.tar")
    env = make_environment()
    epoch = source_date_epoch()
    built_at = epoch if epoch is not None else int(time.time())
    # The built image's config, not the planned one: the commit strategy adds labels
    # (strategy, script) that labels.json must carry for the SIF to match the image.
    files = sif_files(job, config, built_at, env)
    started = time.monotonic()
    try:
        atomic.write_text(env_file, files["env/10-docker2singularity.sh"], mode=0o755)
        request = SifRequest(
            name=job.recipe.image,
            image_id=image_id,
            config=config,
            files=files,
            deffile=files["Singularity"],
            convert_deffile=render(
                job,
                "convert",
                env,
                archive=str(archive),
                env_file_path=str(env_file),
                source_ref=pushed,
            ),
            archive=archive,
            target=pending,
            image_format=job.artifacts.image_format,
            compression=compression,
            source_date_epoch=epoch,
            built_at=built_at,
            source_ref=pushed,
            tool_env=registry_env(pushed),
        )
        try:
            backend.make(request, source=source, log=log)
        except BuildError as exc:
            raise BuildError(f"{job.recipe.path}: {exc}") from None
        check(job, pending, config, log)
        os.chmod(pending, IMAGE_MODE & ~atomic.umask())
        digest = sha256_of(pending)
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    finally:
        for path in (env_file, archive):
            path.unlink(missing_ok=True)
    stat = pending.stat()  # a rename keeps size and mtime
    return pending, {
        "path": target.name,
        "format": job.artifacts.image_format,
        "sha256": digest,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "backend": backend.name,
        "tool_version": backend.version(),
        "compression": compression,
        "docker_image_id": image_id,
        "seconds": round(time.monotonic() - started, 3),
    }


def check(job: BuildJob, path: Path, config: ImageConfig, log: Log) -> None:
    """Read the new image back before it gets its final name."""
    problems = verify_file(path, config)
    for problem in problems:
        log(f"verify: {problem}", kind=STEP)
    if problems:
        more = f" (and {len(problems) - 1} more, see build.log)" if len(problems) > 1 else ""
        raise BuildError(
            f"{job.recipe.path}: {job.recipe.image}: the Singularity image does not match "
            f"the Docker image: {problems[0]}{more}"
        )
    log(
        f"verify: {path.name}: env, runscript, labels and layout match the Docker image",
        kind=STEP,
    )
