"""Wire recipes, base mappings and engine facts into BuildJobs for one command run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imgforge.credentials import auth_config, for_registry, registry_of
from imgforge.enroot.lint import refusals
from imgforge.errors import EngineError, RecipeError, UsageError
from imgforge.options import Options, check_out, wanted
from imgforge.recipes.fingerprint import recipe_hash
from imgforge.recipes.graph import RecipeGraph, load_targets
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import BaseImage, BuildJob, make_jobs, resolve_base
from imgforge.recipes.model import Recipe, load_project
from imgforge.render import check
from imgforge.squashfs.codec import Codec

if TYPE_CHECKING:
    from imgforge.engine.protocol import Engine

Say = Callable[[str], None]


@dataclass(frozen=True)
class Session:
    graph: RecipeGraph
    targets: list[str]
    jobs: list[BuildJob]


def base_map_for(recipes: Iterable[Recipe], cli_map: Mapping[str, str]) -> dict[str, str]:
    """The project files' ``[base_map]`` of every recipe directory, then the CLI's."""
    mapping: dict[str, str] = {}
    for directory in sorted({r.directory for r in recipes}):
        mapping.update(load_project(directory))
    mapping.update(cli_map)
    return mapping


# Config.User values that mean root: the user every build path runs the steps as.
ROOT_USERS = frozenset({"", "root", "0", "root:root", "0:0"})


def check_base_user(recipe: Recipe, resolved: str, config: ImageConfig) -> None:
    """A base whose USER is not root is refused: a Dockerfile RUN and COPY run as that
    user, the commit strategy's script and the .def's %post as root, so the steps could
    not mean the same in every build path."""
    if config.user not in ROOT_USERS:
        raise RecipeError(
            recipe.path,
            "base",
            f"{resolved}: Config.User is {config.user!r}; imgforge's build paths run the "
            "steps as root alike only on a base without USER (or USER root)",
        )


def inspect_bases(
    order: list[Recipe],
    base_map: Mapping[str, str],
    engine: Engine | None,
    say: Say,
    *,
    pull: bool = True,
) -> dict[str, BaseImage]:
    """Facts about every image-reference base: pulled where needed when building,
    left empty (with a warning) when rendering without an engine."""
    bases: dict[str, BaseImage] = {}
    for recipe in order:
        if recipe.base_recipe is not None or recipe.base in bases:
            continue
        resolved = resolve_base(recipe.base, base_map)
        found = None
        if engine is not None:
            auth = auth_config(for_registry(registry_of(resolved), os.environ))
            found = engine.ensure_image(resolved, why=f"{recipe.path}: base", pull=pull, auth=auth)
        if found is None:
            say(f"warning: base image {resolved} unknown here; its env is not in the rendered .def")
            bases[recipe.base] = BaseImage(recipe.base, resolved, ImageConfig())
            continue
        config = ImageConfig.from_inspect(found, origin=f"{recipe.path}: base {resolved}")
        check_base_user(recipe, resolved, config)
        bases[recipe.base] = BaseImage(recipe.base, resolved, config, str(found["Id"]))
    return bases


def prepare(
    paths: Iterable[Path],
    options: Options,
    connect: Callable[[], Engine | None],
    say: Say,
    *,
    pull: bool = True,
) -> tuple[Session, Engine | None]:
    """Load the targets and their ancestors, then (so that bad input is reported
    before a missing engine) connect and make their BuildJobs."""
    graph, targets = load_targets(paths)
    order = graph.with_ancestors(targets)
    base_map = base_map_for(order, options.base_map)
    check_out(
        options.out,
        [r.directory / source for r in order for source, _ in r.files],
        {r.name: r.directory for r in order},
    )
    if options.strategy == "dockerfile" and (gpus := [r.name for r in order if r.gpus]):
        raise UsageError(
            f"--strategy dockerfile: recipe {gpus[0]!r} has gpus = true, which only the "
            "commit strategy honours"
        )
    engine = connect()
    bases = inspect_bases(order, base_map, engine, say, pull=pull)
    hashes = {recipe.name: recipe_hash(recipe) for recipe in order}
    jobs = make_jobs(
        graph,
        order,
        bases=bases,
        recipe_hashes=hashes,
        out=options.out.absolute(),
        image_format=options.image_format,
    )
    for job in jobs:
        check(job)  # a recipe no format can carry exactly is refused before any build
        if wanted(job.recipe.outputs, options).sqsh:
            check_enroot(job, options)
    return Session(graph=graph, targets=targets, jobs=jobs), engine


# The compressors of enroot images that `enroot create` can't unpack: unsquashfs 4.5.1
# (Debian 12, Ubuntu 22.04) fails on tar2sqfs 1.2's lz4 images ("failed to read id table
# block"), and enroot unpacks images with unsquashfs.
NOT_FOR_ENROOT = ("lz4",)


def check_enroot(job: BuildJob, options: Options) -> None:
    """What enroot can't carry of the image a recipe builds is refused for ``--sqsh``, and
    the tools an enroot image needs are there before anything is built."""
    compressor = options.compression.partition(":")[0]
    needed = ["unsquashfs"] + (["tar2sqfs"] if Codec.of(options.compression) is None else [])
    if missing := [tool for tool in needed if shutil.which(tool) is None]:
        raise EngineError(
            f"--sqsh needs {' and '.join(missing)}: apt-get install squashfs-tools "
            "squashfs-tools-ng"
        )
    if compressor in NOT_FOR_ENROOT:
        raise UsageError(
            f"--compression {options.compression}: {job.recipe.name}'s enroot image would "
            "not unpack with unsquashfs, which `enroot create` runs; use lzo (enroot's "
            "default), gzip, xz or zstd"
        )
    for problem in refusals(job.config):
        raise RecipeError(job.recipe.path, problem.key, f"--sqsh: {problem.reason}")
