"""Turn recipes, the DAG and facts about base images into BuildJob values."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from imgforge import __version__
from imgforge.patterns import LABEL_NAMESPACE
from imgforge.recipes.artifacts import Artifacts
from imgforge.recipes.copies import CopyStep, copy_steps, def_files, requirement_paths
from imgforge.recipes.graph import RecipeGraph
from imgforge.recipes.image import ImageConfig, command_words
from imgforge.recipes.model import Recipe

LABEL_PREFIX = LABEL_NAMESPACE


@dataclass(frozen=True)
class BaseImage:
    """A recipe's base: as written, as used after base mapping, and its config."""

    ref: str
    resolved: str
    config: ImageConfig
    image_id: str | None = None


@dataclass(frozen=True)
class BuildJob:
    """Everything needed to render and build one recipe."""

    recipe: Recipe
    artifacts: Artifacts
    base: BaseImage
    bootstrap: str
    bootstrap_from: str
    config: ImageConfig
    recipe_hash: str
    parents: tuple[str, ...]
    # Computed once here, from the recipe's directory, so that rendering reads no disk.
    copies: tuple[CopyStep, ...]
    def_files: tuple[tuple[str, str], ...]
    requirements: tuple[tuple[str, str], ...]
    version: str

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def provenance(self) -> dict[str, str]:
        return provenance_labels(self.recipe, self.recipe_hash, self.version)

    def relative(self, path: Path) -> str:
        """``path`` relative to the recipe's directory (where builds run from)."""
        return os.path.relpath(path, self.recipe.directory)


def provenance_labels(recipe: Recipe, recipe_hash: str, version: str) -> dict[str, str]:
    """Labels that record where an image came from."""
    return {
        f"{LABEL_PREFIX}.base": recipe.base,
        f"{LABEL_PREFIX}.recipe": recipe.name,
        f"{LABEL_PREFIX}.recipe.hash": recipe_hash,
        f"{LABEL_PREFIX}.version": version,
    }


def resolve_base(ref: str, base_map: Mapping[str, str]) -> str:
    """The reference actually used for ``ref`` after the project's base mapping."""
    return base_map.get(ref, ref)


def _job(
    recipe: Recipe,
    *,
    base: BaseImage,
    out: Path,
    recipe_hash: str,
    image_format: str,
    parents: tuple[str, ...],
) -> BuildJob:
    artifacts = Artifacts.under(out, recipe.name, image_format)
    labels = {**dict(recipe.labels), **provenance_labels(recipe, recipe_hash, __version__)}
    config = base.config.derive(
        env=recipe.env,
        labels=sorted(labels.items()),
        cmd=command_words(recipe.runscript),
        entrypoint=command_words(recipe.entrypoint),
    )
    if recipe.base_recipe is None:
        bootstrap, bootstrap_from = "docker", base.resolved
    else:
        parent_sif = Artifacts.under(out, recipe.base_recipe, image_format)
        bootstrap = "localimage"
        bootstrap_from = os.path.relpath(parent_sif.image_file, recipe.directory)
    copies = copy_steps(recipe)
    return BuildJob(
        recipe=recipe,
        artifacts=artifacts,
        base=base,
        bootstrap=bootstrap,
        bootstrap_from=bootstrap_from,
        config=config,
        recipe_hash=recipe_hash,
        parents=parents,
        copies=tuple(copies),
        def_files=tuple(def_files(recipe, copies)),
        requirements=tuple(requirement_paths(recipe)),
        version=__version__,
    )


def make_jobs(
    graph: RecipeGraph,
    order: list[Recipe],
    *,
    bases: Mapping[str, BaseImage],
    recipe_hashes: Mapping[str, str],
    out: Path,
    image_format: str = "sif",
) -> list[BuildJob]:
    """One BuildJob per recipe in ``order``; ``bases`` maps image refs to their facts.

    A ``recipe:`` base gets the parent's final config, so the env passed down is the
    parent's final env.
    """
    jobs: dict[str, BuildJob] = {}
    for recipe in order:
        parent = recipe.base_recipe
        if parent is None:
            base = bases[recipe.base]
        else:
            parent_job = jobs[parent]
            base = BaseImage(recipe.base, parent_job.recipe.image, parent_job.config)
        jobs[recipe.name] = _job(
            recipe,
            base=base,
            out=out,
            recipe_hash=recipe_hashes[recipe.name],
            image_format=image_format,
            parents=tuple(graph.parents(recipe.name)),
        )
    return list(jobs.values())


