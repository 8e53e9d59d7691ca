"""The two ways to build a recipe's image: ``docker build`` and the commit fallback."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from imgforge.engine.commit import CONTAINER_PREFIX, CommitRun, commit_run
from imgforge.engine.context import DOCKERFILE, build_context, dockerfile_only, staging_context
from imgforge.log import Log
from imgforge.recipes.jobs import LABEL_PREFIX, BuildJob
from imgforge.render import make_environment, render

if TYPE_CHECKING:
    from imgforge.engine.protocol import Engine


def dockerfile_build(
    engine: Engine, job: BuildJob, dockerfile: str, *, network: str | None, log: Log
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


def commit_labels(job: BuildJob, script: str, *, interactive: bool) -> list[tuple[str, str]]:
    """The Dockerfile path's labels plus the strategy and the exact script that ran."""
    labels = {**dict(job.recipe.labels), **job.provenance}
    labels[f"{LABEL_PREFIX}.strategy"] = "interactive" if interactive else "commit"
    labels[f"{LABEL_PREFIX}.commit.script"] = json.dumps(script)
    if interactive:
        labels[f"{LABEL_PREFIX}.reproducible"] = "false"
    return sorted(labels.items())


def container_name(job: BuildJob) -> str:
    """The build container of ``job`` in its --out: one at a time, by the recipe lock."""
    where = hashlib.sha256(str(job.artifacts.directory).encode()).hexdigest()[:12]
    return f"{CONTAINER_PREFIX}{job.name}-{where}"


def commit_build(
    engine: Engine,
    job: BuildJob,
    dockerfile: str,
    *,
    network: str | None,
    log: Log,
    interactive: bool = False,
) -> tuple[str, dict[str, Any]]:
    """Run the steps as one script in a container, commit it, then give the result the
    config the Dockerfile path would (one metadata-only build on top). Interactive: the
    script ends in a shell for the user; what they change is listed, not reproducible."""
    env = make_environment()
    script = render(job, "commit", env)
    if interactive:
        script += INTERACTIVE_SHELL
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
    finalize = render(
        job,
        "finalize",
        env,
        committed=committed,
        commit_labels=commit_labels(job, script, interactive=interactive),
    )
    image_id = engine.build(
        dockerfile_only(finalize), dockerfile=DOCKERFILE, network=None, log=log, what=what
    )
    record: dict[str, Any] = {"script": script, "gpus": job.recipe.gpus, "committed": committed}
    if interactive:
        record.update(reproducible=False, changed_paths=changes)
        for change in changes:
            log(f"changed by hand: {change}")
    return image_id, record


def interactive_build(
    engine: Engine, job: BuildJob, dockerfile: str, *, network: str | None, log: Log
) -> tuple[str, dict[str, Any]]:
    return commit_build(engine, job, dockerfile, network=network, log=log, interactive=True)


# After the recipe's steps, a login shell for the user; its exit status is the script's.
INTERACTIVE_SHELL = (
    "set +x\n"
    'echo "imgforge: recipe steps done; changes you make now are committed when you exit." >&2\n'
    "if [ -x /bin/bash ]; then exec /bin/bash -i; else exec /bin/sh -i; fi\n"
)

STRATEGIES = {
    "dockerfile": dockerfile_build,
    "commit": commit_build,
    "interactive": interactive_build,
}
