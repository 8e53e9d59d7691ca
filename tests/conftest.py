"""Shared fixtures: the real NGC base config and a pure (engine-free) renderer."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from imgforge.graph import load_all
from imgforge.image import ImageConfig
from imgforge.plan import BaseImage, BuildJob, make_jobs
from imgforge.render import make_environment, render

DATA = Path(__file__).parent / "data"
NGC_CONFIG = DATA / "ngc" / "pytorch-24.01-py3.config.json"
FORMATS = ("dockerfile", "def", "env")

Rendered = dict[str, dict[str, str]]
RenderDir = Callable[..., Rendered]


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
    """``render_dir(directory, {ref: ImageConfig}, out=None)`` -> {name: {format: text}}."""

    def run(
        directory: Path, bases: Mapping[str, ImageConfig], *, out: Path | None = None
    ) -> Rendered:
        env = make_environment()
        return {
            job.name: {fmt: render(job, fmt, env) for fmt in FORMATS}
            for job in _jobs_for(directory, bases, out=out)
        }

    return run
