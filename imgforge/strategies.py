"""The two ways to build a recipe's image: ``docker build`` and the commit fallback."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from imgforge.context import DOCKERFILE, build_context, dockerfile_only, staging_context
from imgforge.engine.commit import CommitRun, commit_run
from imgforge.plan import LABEL_PREFIX, BuildJob
from imgforge.render import make_environment, render

if TYPE_CHECKING:
    from imgforge.engine.docker import DockerEngine

Log = Callable[[str], None]


def dockerfile_build(
    engine: DockerEngine, job: BuildJob, dockerfile: str, *, network: str | None, log: Log
) -> tuple[str, dict[str, Any]]:
    """``docker build`` of the rendered Dockerfile from a context of only what it names."""
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


def commit_labels(job: BuildJob, script: str) -> list[tuple[str, str]]:
    """The Dockerfile path's labels plus the strategy and the exact script that ran."""
    labels = {**dict(job.recipe.labels), **job.provenance}
    labels[f"{LABEL_PREFIX}.strategy"] = "commit"
    labels[f"{LABEL_PREFIX}.commit.script"] = json.dumps(script)
    return sorted(labels.items())


def commit_build(
    engine: DockerEngine, job: BuildJob, dockerfile: str, *, network: str | None, log: Log
) -> tuple[str, dict[str, Any]]:
    """Run the steps as one script in a container, commit it, then give the result the
    config the Dockerfile path would (one metadata-only build on top)."""
    env = make_environment()
    script = render(job, "commit", env)
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
    )
    committed = commit_run(engine, run, log)
    finalize = render(
        job,
        "finalize",
        env,
        committed=committed,
        commit_labels=commit_labels(job, script),
    )
    image_id = engine.build(
        dockerfile_only(finalize), dockerfile=DOCKERFILE, network=None, log=log, what=what
    )
    return image_id, {"script": script, "gpus": job.recipe.gpus, "committed": committed}


STRATEGIES = {"dockerfile": dockerfile_build, "commit": commit_build}
