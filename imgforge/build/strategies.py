"""The two ways to build a recipe's image: ``docker build`` and the commit fallback."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Protocol

from imgforge.engine.commit import CONTAINER_PREFIX, CommitRun, commit_run
from imgforge.engine.context import DOCKERFILE, build_context, dockerfile_only, staging_context
from imgforge.log import Log
from imgforge.recipes.jobs import BuildJob

if TYPE_CHECKING:
    from imgforge.engine.protocol import Engine


class CommitTexts(Protocol):
    """The commit strategy's rendered script, and the finalize Dockerfile that takes the
    committed image from build argument ``arg``."""

    @property
    def script(self) -> str: ...
    @property
    def finalize(self) -> str: ...
    @property
    def arg(self) -> str: ...


class BuildTexts(Protocol):
    """The rendered texts a strategy builds from."""

    @property
    def dockerfile(self) -> str: ...
    @property
    def commit(self) -> CommitTexts | None: ...


def dockerfile_build(
    engine: Engine, job: BuildJob, texts: BuildTexts, *, network: str | None, log: Log
) -> tuple[str, dict[str, Any]]:
    """``docker build`` of the rendered Dockerfile from a context of only what it names."""
    dockerfile = texts.dockerfile
    log(f"# network: {network or 'engine default'}; Dockerfile:")
    for line in dockerfile.splitlines():
        log(f"#   {line}")
    image_id = engine.build(
        build_context(job.recipe, dockerfile),
        dockerfile=DOCKERFILE,
        network=network,
        log=log,
        what=f"{job.recipe.path}: {job.recipe.image}",
    )
    return image_id, {}


def container_name(job: BuildJob) -> str:
    """The build container of ``job`` in its --out: one at a time, by the recipe lock."""
    where = hashlib.sha256(str(job.artifacts.directory).encode()).hexdigest()[:12]
    return f"{CONTAINER_PREFIX}{job.name}-{where}"


def commit_build(
    engine: Engine,
    job: BuildJob,
    texts: BuildTexts,
    *,
    network: str | None,
    log: Log,
    interactive: bool = False,
) -> tuple[str, dict[str, Any]]:
    """Run the steps as one script in a container, commit it, then give the result the
    config the Dockerfile path would (one metadata-only build on top). Interactive: the
    script ends in a shell for the user; what they change is listed, not reproducible."""
    commit = texts.commit
    assert commit is not None, "a commit build's texts are rendered with its strategy"
    script = commit.script
    log(f"# commit strategy (gpus: {job.recipe.gpus}); script:")
    for line in script.splitlines():
        log(f"#   {line}")
    what = f"{job.recipe.path}: {job.recipe.image}"
    run = CommitRun(
        base=job.base.resolved,
        env=list(job.config.env),
        workdir=job.base.config.workdir,
        script=script,
        staging=staging_context(job.recipe),
        network=network,
        gpus=job.recipe.gpus,
        what=what,
        interactive=interactive,
        name=container_name(job),
    )
    committed, changes = commit_run(engine, run, log)
    image_id = engine.build(
        dockerfile_only(commit.finalize),
        dockerfile=DOCKERFILE,
        network=None,
        log=log,
        what=what,
        buildargs={commit.arg: committed},
    )
    record: dict[str, Any] = {"script": script, "gpus": job.recipe.gpus, "committed": committed}
    if interactive:
        record.update(reproducible=False, changed_paths=changes)
        for change in changes:
            log(f"changed by hand: {change}")
    return image_id, record


def interactive_build(
    engine: Engine, job: BuildJob, texts: BuildTexts, *, network: str | None, log: Log
) -> tuple[str, dict[str, Any]]:
    return commit_build(engine, job, texts, network=network, log=log, interactive=True)


STRATEGIES = {
    "dockerfile": dockerfile_build,
    "commit": commit_build,
    "interactive": interactive_build,
}
