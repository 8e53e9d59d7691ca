"""What became of one job in a run: built, up to date, failed or not attempted."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """One job's outcome; the values are the words the summary and --json use."""

    BUILT = "built"
    SKIPPED = "skipped"  # up to date
    FAILED = "failed"
    NOT_ATTEMPTED = "not attempted"
