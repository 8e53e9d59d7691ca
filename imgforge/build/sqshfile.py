"""The enroot image of one built recipe (``--sqsh``): warnings said, made, read back, at a
temporary name beside its final one, and its record."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from imgforge import atomic
from imgforge.build.records import SifRecord
from imgforge.enroot import lint
from imgforge.errors import ImageDataError, RecipeError
from imgforge.log import STEP, Log
from imgforge.recipes.jobs import BuildJob
from imgforge.sif.backend import Packing
from imgforge.sif.make import sha256_of, sif_request
from imgforge.sif.sqsh import make_sqsh
from imgforge.sif.texts import SifTexts

if TYPE_CHECKING:
    from imgforge.sif.source import ImageSource

Say = Callable[[str], None]

# An enroot image is read by enroot and pyxis, never run as a program: 0644 under umask 022,
# as mksquashfs leaves it.
SQSH_MODE = 0o644


def make_sqsh_file(
    job: BuildJob,
    texts: SifTexts,
    *,
    source: ImageSource,
    compression: str,
    cache: tuple[Path, int] | None,
    say: Say,
    log: Log,
) -> tuple[Path, SifRecord]:
    """The enroot image of the built image ``source`` at a temporary name, and its record;
    ``cache``: the squashed-data cache's directory and size limit."""
    target = job.artifacts.sqsh_file
    say(f"{job.recipe.image}: making {target.name}")
    for problem in lint.problems(source.config):
        log(f"enroot: {problem.key}: {problem.reason}", kind=STEP)
        say(f"{job.recipe.image}: warning: {target.name}: {problem.key}: {problem.reason}")
    pending = job.artifacts.temporary(target.name)
    request = replace(
        sif_request(job, texts, image_id=source.image_id, config=source.config, target=pending),
        compression=compression,
        cache_dir=cache[0] if cache else None,
        cache_limit=cache[1] if cache else None,
    )
    started = time.monotonic()
    try:
        try:
            packing = make_sqsh(request, source=source, log=log)
        except ImageDataError as exc:  # what the image holds, said against the recipe
            raise RecipeError(job.recipe.path, exc.key, f"--sqsh: {exc.reason}") from None
        for note in packing.notes:
            log(f"enroot: {note}", kind=STEP)
            say(f"{job.recipe.image}: warning: {target.name}: {note}")
        os.chmod(pending, SQSH_MODE & ~atomic.umask())
        return pending, record_of(pending, target.name, source.image_id, packing, started)
    except BaseException:
        pending.unlink(missing_ok=True)
        raise


def record_of(
    made: Path, name: str, image_id: str, packing: Packing, started: float
) -> SifRecord:  # fmt: skip
    """The manifest's record of the enroot image at ``made`` (final name ``name``)."""
    stat = made.stat()
    return SifRecord(
        path=name,
        format="sqsh",
        sha256=sha256_of(made),
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        backend="native",
        tool_version=packing.tool,
        compression=packing.compression,
        docker_image_id=image_id,
        seconds=round(time.monotonic() - started, 3),
        squashfs_size=packing.size,
        pack_seconds=packing.seconds,
        cache=packing.cache.to_json() if packing.cache else None,
    )
