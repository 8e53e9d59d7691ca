"""``imgforge bake``: the recipe DAG as a ``docker buildx bake`` file, for BuildKit clusters.

Each recipe is a target building its rendered Dockerfile from the recipe's directory;
a ``recipe:`` base becomes a named context ``target:PARENT``, so bake builds the graph in
the same order imgforge does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imgforge.recipes.jobs import BuildJob


def bake_file(jobs: list[BuildJob], *, where: Path, network: str | None) -> dict[str, Any]:
    """The bake definition (JSON form); paths are relative to ``where``, the file's dir."""
    targets: dict[str, Any] = {}
    for job in jobs:
        context = job.recipe.directory
        target: dict[str, Any] = {
            "context": os.path.relpath(context, where),
            "dockerfile": os.path.relpath(job.artifacts.dockerfile, context),
            "tags": [job.recipe.image],
        }
        parent = job.recipe.base_recipe
        if parent is not None:
            target["contexts"] = {job.base.resolved: f"target:{parent}"}
        if network:
            target["network"] = network
        targets[job.name] = target
    return {"group": {"default": {"targets": sorted(targets)}}, "target": targets}
