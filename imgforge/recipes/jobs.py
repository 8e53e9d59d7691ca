"""Turn recipes, the DAG and facts about base images into BuildJob values (pure)."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from imgforge import __version__
from imgforge.patterns import LABEL_NAMESPACE
from imgforge.recipes.artifacts import Artifacts
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

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def provenance(self) -> dict[str, str]:
        return provenance_labels(self.recipe, self.recipe_hash)

    def relative(self, path: Path) -> str:
        """``path`` relative to the recipe's directory (where builds run from)."""
        return os.path.relpath(path, self.recipe.directory)


def provenance_labels(recipe: Recipe, recipe_hash: str) -> dict[str, str]:
    """Labels that record where an image came from."""
    return {
        f"{LABEL_PREFIX}.base": recipe.base,
        f"{LABEL_PREFIX}.recipe": recipe.name,
        f"{LABEL_PREFIX}.recipe.hash": recipe_hash,
        f"{LABEL_PREFIX}.version": __version__,
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
    labels = {**dict(recipe.labels), **provenance_labels(recipe, recipe_hash)}
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
    return BuildJob(
        recipe=recipe,
        artifacts=artifacts,
        base=base,
        bootstrap=bootstrap,
        bootstrap_from=bootstrap_from,
        config=config,
        recipe_hash=recipe_hash,
        parents=parents,
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


# Where the .def's %files and the commit strategy stage each [files] source before
# placing it with Docker COPY's rules. Its name holds a ':', which no recipe destination
# can (see patterns.PATH_RE), and render/limits.py refuses any copied tree that would
# reach it, so placing one entry can never overwrite another still waiting here.
STAGING = "/.imgforge:staging"


@dataclass(frozen=True)
class CopyStep:
    """One ``[files]`` entry with Docker ``COPY`` semantics, for all three build paths.

    ``dest`` is what the Dockerfile's COPY gets: the recipe's destination, with a final
    ``/.`` written as ``/`` (BuildKit reads ``/.`` as a directory, the classic builder
    cleans it to a file path; ``/`` means a directory to both). The .def and the commit
    strategy stage the source at ``stage`` and place it in %post / the build script:

    - a directory source: its contents merged into ``target`` (created);
    - a file into a directory destination (``/`` or ``/.`` at the end): ``target`` is
      ``directory/name``;
    - a file to any other destination: ``target`` itself, unless the image already has
      a directory there, in which case ``target/name`` (``into_existing``: decided when
      the step runs, as COPY decides it).
    """

    source: str
    dest: str
    stage: str
    directory: str
    target: str
    name: str
    is_dir: bool
    into_existing: bool


def _clean(path: str) -> str:
    """An absolute image path without ``.`` segments, repeated or trailing slashes."""
    return posixpath.normpath(path).replace("//", "/")


def copy_step(directory: Path, index: int, source: str, dest: str) -> CopyStep:
    """The CopyStep of ``[files]`` entry number ``index``: ``source`` -> ``dest``."""
    is_dir = (directory / source).is_dir()
    dir_form = dest.endswith(("/", "/."))
    copy_dest = dest[:-1] if dest.endswith("/.") else dest
    target = _clean(dest)
    name = posixpath.basename(posixpath.normpath(source))
    if is_dir:
        parent = target
    elif dir_form:
        parent, target = target, posixpath.join(target, name)
    else:
        parent = posixpath.dirname(target)
    stage = f"{STAGING}/{index}"
    into_existing = not is_dir and not dir_form
    return CopyStep(source, copy_dest, stage, parent, target, name, is_dir, into_existing)


def copy_steps(recipe: Recipe) -> list[CopyStep]:
    """The recipe's ``[files]`` as CopyStep values, in recipe order."""
    return [
        copy_step(recipe.directory, index, source, dest)
        for index, (source, dest) in enumerate(recipe.files)
    ]


def requirement_paths(recipe: Recipe) -> list[tuple[str, str]]:
    """(source, path in the image) for each pip requirements file."""
    return [
        (source, f"/tmp/imgforge-requirements-{index}.txt")
        for index, source in enumerate(recipe.pip_requirements)
    ]

