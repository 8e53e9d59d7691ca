"""Make, check and move into place the Singularity image of one built recipe."""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from imgforge import atomic
from imgforge.credentials import for_registry, registry_of, singularity_env
from imgforge.errors import BuildError
from imgforge.log import STEP, Log
from imgforge.options import source_date_epoch as checked_epoch
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import BuildJob
from imgforge.sif.backend import Packing, SifBackend, SifRequest
from imgforge.sif.check import verify_file
from imgforge.sif.texts import Expected, SifTexts

if TYPE_CHECKING:
    from imgforge.sif.source import ImageSource


# Apptainer's SIF writer creates the image with mode 0755 (sylabs/sif CreateContainerAtPath),
# through open(2), so the process umask applies: 0755 under the usual umask 022. The SIF's
# launch line (#!/usr/bin/env run-singularity) then lets `./NAME.sif ARGS` run it.
IMAGE_MODE = 0o755


def source_date_epoch() -> int | None:
    """``SOURCE_DATE_EPOCH`` from the environment: reproducible SIF output when set."""
    return checked_epoch(os.environ)


def build_time() -> int:
    """The SIF's build date, decided before the build: ``SOURCE_DATE_EPOCH``, else now."""
    epoch = source_date_epoch()
    return epoch if epoch is not None else int(time.time())


def registry_env(reference: str | None) -> dict[str, str]:
    """What apptainer/singularity need in their environment to pull ``reference``."""
    if reference is None:
        return {}
    registry = registry_of(reference)
    return singularity_env(for_registry(registry, os.environ), registry)


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass(frozen=True)
class Made:
    """A Singularity image made and verified, at its temporary name."""

    path: Path
    sha256: str
    seconds: float
    packing: Packing | None = None


def make_sif(
    job: BuildJob,
    texts: SifTexts,
    *,
    backend: SifBackend,
    source: ImageSource,
    compression: str,
    log: Log,
    pushed: str | None = None,
    cache: tuple[Path, int] | None = None,
) -> Made:
    """Write ``NAME.sif`` (or ``.simg``) from the built image ``source`` to a temporary
    name beside it and verify it; return that name (the caller renames it into place with
    the other artifacts, or removes it), its digest, the time taken and how it was
    packed. ``cache``: the squashed-data cache's directory and size limit. Nothing is
    left on failure."""
    pending = job.artifacts.temporary(job.artifacts.image_file.name)
    env_file, archive = Path(texts.env_file), Path(texts.archive)
    request = replace(
        sif_request(job, texts, image_id=source.image_id, config=source.config, target=pending),
        compression=compression,
        source_ref=pushed,
        tool_env=registry_env(pushed),
        cache_dir=cache[0] if cache else None,
        cache_limit=cache[1] if cache else None,
    )
    started = time.monotonic()
    try:
        atomic.write_text(env_file, texts.files["env/10-docker2singularity.sh"], mode=0o755)
        try:
            packing = backend.make(request, source=source, log=log)
        except BuildError as exc:
            raise BuildError(f"{job.recipe.path}: {exc}") from None
        # The file's digest is read while the check reads its tables and listing.
        with ThreadPoolExecutor(1, thread_name_prefix="sha256") as hashing:
            hashed = hashing.submit(sha256_of, pending)
            check(job, pending, source.config, texts.expected, log)
            digest = hashed.result()
        os.chmod(pending, IMAGE_MODE & ~atomic.umask())
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    finally:
        for path in (env_file, archive):
            path.unlink(missing_ok=True)
    return Made(pending, digest, round(time.monotonic() - started, 3), packing)


def sif_request(
    job: BuildJob, texts: SifTexts, *, image_id: str, config: ImageConfig, target: Path
) -> SifRequest:
    """What the backend gets: the rendered texts, the built image and where to write."""
    return SifRequest(
        name=job.recipe.image,
        image_id=image_id,
        config=config,
        files=dict(texts.files),
        deffile=texts.files["Singularity"],
        convert_deffile=texts.convert_deffile,
        archive=Path(texts.archive),
        target=target,
        image_format=job.artifacts.image_format,
        source_date_epoch=source_date_epoch(),
        built_at=texts.built_at,
    )


def check(job: BuildJob, path: Path, config: ImageConfig, expected: Expected, log: Log) -> None:
    """Read the new image back before it gets its final name."""
    problems = verify_file(path, config, expected)
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
