"""imgforge.render.job: every text a build needs, rendered before anything runs, from
values only (no engine, no clock, no environment)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import BuildJob
from imgforge.render import render
from imgforge.render.job import COMMITTED_ARG, render_job, render_sources

NGC = "nvcr.io/nvidia/pytorch:24.01-py3"


@pytest.fixture
def job(
    tmp_path: Path, jobs_for: Callable[..., list[BuildJob]], ngc_config: ImageConfig
) -> BuildJob:
    directory = tmp_path / "recipes"
    directory.mkdir()
    (directory / "data.txt").write_text("x\n")
    (directory / "proj.toml").write_text(
        f'base = "{NGC}"\n[labels]\nowner = "me"\n'
        '[run]\ncommands = ["echo hi"]\n[files]\n"data.txt" = "/opt/data.txt"\n'
    )
    (only,) = jobs_for(directory, {NGC: ngc_config})
    return only


def test_the_sources_are_the_three_written_files(job: BuildJob) -> None:
    sources = render_sources(job)
    assert sources.dockerfile == render(job, "dockerfile")
    assert sources.deffile == render(job, "def")
    assert sources.envfile == render(job, "env")


def test_a_dockerfile_build_renders_no_commit_texts_and_expects_the_planned_config(
    job: BuildJob,
) -> None:
    rendered = render_job(job, strategy="dockerfile", built_at=1700000000)
    assert rendered.commit is None
    assert rendered.config == job.config
    assert rendered.dockerfile == render(job, "dockerfile")


@pytest.mark.parametrize("strategy", ["commit", "interactive"])
def test_a_commit_build_expects_the_commit_labels_and_finalizes_from_a_build_argument(
    job: BuildJob, strategy: str
) -> None:
    rendered = render_job(job, strategy=strategy, built_at=1700000000)
    assert rendered.commit is not None
    script = rendered.commit.script
    assert script.startswith(render(job, "commit"))
    assert script.endswith("exec /bin/sh -i; fi\n") == (strategy == "interactive")
    finalize = rendered.commit.finalize
    assert f"\nARG {COMMITTED_ARG}\nFROM ${{{COMMITTED_ARG}}}\n" in finalize
    labels = dict(rendered.config.labels)
    assert labels["org.imgforge.strategy"] == strategy
    assert json.loads(labels["org.imgforge.commit.script"]) == script
    assert ("org.imgforge.reproducible" in labels) == (strategy == "interactive")
    assert labels["owner"] == "me"
    # The SIF's labels.json is rendered from that same expected config.
    in_sif = json.loads(rendered.sif.files["labels.json"])
    assert in_sif["org.imgforge.strategy"] == strategy
    assert rendered.config.env == job.config.env


def test_the_sif_texts_come_from_values_decided_before_the_build(job: BuildJob) -> None:
    rendered = render_job(
        job, strategy="dockerfile", built_at=1700000000, source_ref="reg.example/proj:latest"
    )
    sif = rendered.sif
    labels = json.loads(sif.files["labels.json"])
    assert labels["org.label-schema.build-date"].endswith("_November_2023_22:13:20_UTC")
    assert labels["org.label-schema.usage.imgforge.version"] == job.version
    assert sif.built_at == 1700000000
    assert "\nFrom: reg.example/proj:latest\n" in sif.convert_deffile
    assert sif.archive == str(job.artifacts.temporary("proj.docker.tar"))
    assert f"    {sif.env_file} /.singularity.d/env/10-docker2singularity.sh\n" in (
        sif.convert_deffile
    )
    assert sif.expected.runscript_body in sif.files["runscript"]
    assert set(sif.expected.fixed) < set(sif.files)


def test_rendering_twice_gives_the_same_texts(job: BuildJob) -> None:
    def texts() -> object:
        return render_job(job, strategy="commit", built_at=0)

    assert texts() == texts()


def test_the_version_is_the_jobs(job: BuildJob) -> None:
    from dataclasses import replace

    other = replace(job, version="9.9.9")
    assert "imgforge 9.9.9" in render_sources(other).dockerfile
    commit = render_job(other, strategy="commit", built_at=0).commit
    assert commit is not None and "imgforge 9.9.9" in commit.script
