"""Shared fixtures: the real NGC base config, a pure (engine-free) renderer, and for the
integration and reliability suites a reachable engine with the NGC stand-in image."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

import pytest
from engine_support import STANDIN_SCRIPT, engine_problem, load_standin_script

from imgforge.recipes.graph import load_all
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import BaseImage, BuildJob, make_jobs
from imgforge.render import make_environment, render, render_sif_files

DATA = Path(__file__).parent / "data"
NGC_CONFIG = DATA / "ngc" / "pytorch-24.01-py3.config.json"
FORMATS = ("dockerfile", "def", "env")

Rendered = dict[str, dict[str, str]]
RenderDir = Callable[..., Rendered]


@pytest.fixture(autouse=True, scope="session")
def _own_cache_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Builds in tests keep their squashed-data cache in a directory of the test run,
    never in the user's $XDG_CACHE_HOME (subprocesses inherit it)."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture(scope="session")
def ngc_config() -> ImageConfig:
    """The ImageConfig of the real NGC PyTorch 24.01 image (``Config`` of docker inspect)."""
    config = json.loads(NGC_CONFIG.read_text())
    return ImageConfig.from_inspect({"Config": config, "Architecture": "amd64"})


def _jobs_for(
    directory: Path, bases: Mapping[str, ImageConfig], *, out: Path | None = None
) -> list[BuildJob]:
    graph = load_all(directory)
    order = graph.order()
    return make_jobs(
        graph,
        order,
        bases={ref: BaseImage(ref, ref, cfg, "sha256:" + "b" * 64) for ref, cfg in bases.items()},
        recipe_hashes={recipe.name: "0" * 64 for recipe in order},
        out=out if out is not None else directory / "build",
    )


@pytest.fixture
def jobs_for() -> Callable[..., list[BuildJob]]:
    """``jobs_for(directory, {ref: ImageConfig}, out=None)``: BuildJobs of every recipe in
    ``directory`` in build order, with fake bases (no engine) and fixed recipe hashes."""
    return _jobs_for


@pytest.fixture
def render_dir() -> RenderDir:
    """``render_dir(directory, {ref: ImageConfig}, out=None)`` -> {name: {format: text}},
    the SIF's /.singularity.d files as formats ``sif:PATH``."""

    def run(
        directory: Path, bases: Mapping[str, ImageConfig], *, out: Path | None = None
    ) -> Rendered:
        env = make_environment()
        return {
            job.name: {fmt: render(job, fmt, env) for fmt in FORMATS}
            | {f"sif:{path}": text for path, text in render_sif_files(job, env).items()}
            for job in _jobs_for(directory, bases, out=out)
        }

    return run


@pytest.fixture(scope="session")
def standin_script() -> Path:
    """Path of scripts/ngc_standin.py."""
    return STANDIN_SCRIPT


@pytest.fixture(scope="session")
def ngc_standin() -> ModuleType:
    """The stand-in script as a module."""
    return load_standin_script()


@pytest.fixture(scope="session")
def standin_image(ngc_standin: ModuleType) -> str:
    """The tag of the NGC stand-in image, built by the script unless already cached.

    Without an engine the integration tests skip on a developer's machine, but in CI
    (CI=true) a missing engine is a failure: a green run must never mean "not run".
    """
    problem = engine_problem()
    if problem is not None:
        message = f"no Docker engine (run scripts/ensure-engine.sh): {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    if ngc_standin.main([]) != 0:
        pytest.fail("scripts/ngc_standin.py failed (its error is in the captured stderr)")
    tag: str = ngc_standin.DEFAULT_TAG
    return tag
