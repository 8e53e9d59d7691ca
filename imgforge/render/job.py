"""Render every text one build needs, before anything runs, as one frozen value."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import jinja2

from imgforge.recipes.fingerprint import combine
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import LABEL_PREFIX, BuildJob
from imgforge.render import expected_sif, make_environment, render, render_sif_files
from imgforge.sif.metadata import build_labels, deffile_header
from imgforge.sif.texts import SifTexts

# The build argument the finalize Dockerfile takes the committed image's ID from: the one
# fact of a commit build known only once its script has run.
COMMITTED_ARG = "IMGFORGE_COMMITTED"


@dataclass(frozen=True)
class Sources:
    """The three texts written beside the image: the Dockerfile, the .def and its env file."""

    dockerfile: str
    deffile: str
    envfile: str

    @property
    def digest(self) -> str:
        return combine([self.dockerfile, self.deffile, self.envfile])


@dataclass(frozen=True)
class CommitTexts:
    """What the commit strategy runs: the script (ending in a shell when interactive), and
    the Dockerfile that gives the committed image its config from build argument ``arg``."""

    script: str
    finalize: str
    arg: str = COMMITTED_ARG


@dataclass(frozen=True)
class Rendered:
    """Every text one build needs, and the config the built image must have."""

    sources: Sources
    strategy: str
    config: ImageConfig
    commit: CommitTexts | None
    sif: SifTexts

    @property
    def dockerfile(self) -> str:
        return self.sources.dockerfile


def render_sources(job: BuildJob, environment: jinja2.Environment | None = None) -> Sources:
    """The Dockerfile, the .def and its env file of ``job``."""
    env = environment or make_environment()
    return Sources(
        dockerfile=render(job, "dockerfile", env),
        deffile=render(job, "def", env),
        envfile=render(job, "env", env),
    )


def render_job(
    job: BuildJob, *, strategy: str, built_at: int, source_ref: str | None = None
) -> Rendered:
    """Every text the build of ``job`` with ``strategy`` needs. ``built_at`` is the SIF's
    build date (seconds since the epoch), ``source_ref`` the pushed image's reference that
    an Apptainer conversion pulls instead of reading a ``docker save`` archive."""
    env = make_environment()
    commit = None
    config = job.config
    if strategy != "dockerfile":
        commit = commit_texts(job, env, interactive=strategy == "interactive")
        config = built_config(job, commit.script, interactive=strategy == "interactive")
    return Rendered(
        sources=render_sources(job, env),
        strategy=strategy,
        config=config,
        commit=commit,
        sif=sif_texts(job, config, built_at=built_at, source_ref=source_ref, environment=env),
    )


def commit_labels(job: BuildJob, script: str, *, interactive: bool) -> list[tuple[str, str]]:
    """The Dockerfile path's labels plus the strategy and the exact script that ran."""
    labels = {**dict(job.recipe.labels), **job.provenance}
    labels[f"{LABEL_PREFIX}.strategy"] = "interactive" if interactive else "commit"
    labels[f"{LABEL_PREFIX}.commit.script"] = json.dumps(script)
    if interactive:
        labels[f"{LABEL_PREFIX}.reproducible"] = "false"
    return sorted(labels.items())


def commit_texts(job: BuildJob, env: jinja2.Environment, *, interactive: bool) -> CommitTexts:
    script = render(job, "commit", env, interactive=interactive)
    finalize = render(
        job,
        "finalize",
        env,
        committed_arg=COMMITTED_ARG,
        commit_labels=commit_labels(job, script, interactive=interactive),
    )
    return CommitTexts(script=script, finalize=finalize)


def built_config(job: BuildJob, script: str, *, interactive: bool) -> ImageConfig:
    """The config a commit build leaves: the planned one with the commit labels over the
    image's own (the finalize Dockerfile's LABEL, as a Dockerfile's LABEL does)."""
    added = commit_labels(job, script, interactive=interactive)
    labels = {**dict(job.config.labels), **dict(added)}
    return replace(job.config, labels=tuple(sorted(labels.items())))


def sif_files(
    job: BuildJob, config: ImageConfig, built_at: int, env: jinja2.Environment | None = None
) -> dict[str, str]:
    """The /.singularity.d files of the SIF made from the image with ``config``: the
    definition a build from the Docker engine's image embeds, and the image's labels
    with the build labels over them, as Apptainer writes both."""
    header = deffile_header(job.recipe.image)
    built = build_labels(header=header, arch=config.arch, built_at=built_at, version=job.version)
    labels = {**dict(config.labels), **built}
    return render_sif_files(
        replace(job, config=config), env, deffile_header=header, labels_map=labels
    )


def sif_texts(
    job: BuildJob,
    config: ImageConfig,
    *,
    built_at: int,
    source_ref: str | None,
    environment: jinja2.Environment,
) -> SifTexts:
    """The SIF's files and the conversion .def, whose temporary names the job decides."""
    archive = str(job.artifacts.temporary(f"{job.name}.docker.tar"))
    env_file = str(job.artifacts.temporary("imgforge-env.sh"))
    convert = render(
        job,
        "convert",
        environment,
        archive=archive,
        env_file_path=env_file,
        source_ref=source_ref,
    )
    return SifTexts(
        files=sif_files(job, config, built_at, environment),
        convert_deffile=convert,
        env_file=env_file,
        archive=archive,
        built_at=built_at,
        expected=expected_sif(config, environment),
    )
