"""One line for an exception from outside imgforge's error tree, raised while building."""

from __future__ import annotations

import traceback

from imgforge.errors import NO_TRACEBACK_FILE, BuildError, is_system_error, unexpected
from imgforge.recipes.jobs import BuildJob


def foreign_error(job: BuildJob, what: str, exc: Exception) -> BuildError:
    """An operating-system error (a full disk, a read-only --out, a vanished file) as the
    system words it; anything else is unexpected, and its traceback goes to the recipe's
    build.log."""
    if is_system_error(exc):
        return BuildError(f"{what}: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    log = str(job.artifacts.log)
    try:
        job.artifacts.log.parent.mkdir(parents=True, exist_ok=True)
        with job.artifacts.log.open("a", encoding="utf-8") as handle:
            traceback.print_exception(exc, file=handle)
    except OSError:
        log = NO_TRACEBACK_FILE
    return BuildError(unexpected(f"{what}: building", exc, log))
