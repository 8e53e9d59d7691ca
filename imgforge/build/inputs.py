"""The input record: stat signatures of everything a build read, and the option key.

Written to the manifest after each build; the no-op fast path recomputes it and
compares by equality (the one function below computes it for both)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from imgforge.build.records import Inputs
from imgforge.options import Options, options_key
from imgforge.patterns import PROJECT_FILE
from imgforge.recipes.fingerprint import input_stats, sources_of, stat_signature


def input_record(
    path: Path, *, requirements: Iterable[str], files: Iterable[str], options: Options
) -> Inputs:
    """The input record of the recipe at ``path`` that reads ``requirements`` and the
    ``[files]`` sources ``files``, built with ``options``."""
    directory = path.parent
    project = directory / PROJECT_FILE
    stats = input_stats(directory, sources_of(requirements, files, directory))
    return Inputs(
        options=options_key(options),
        recipe=tuple(stat_signature(path)),
        project=tuple(stat_signature(project)) if project.exists() else None,
        files=tuple(sorted((name, tuple(signature)) for name, signature in stats.items())),
    )
