"""The commit fallback: run a script in a container from the base, then commit it."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from typing import IO

from imgforge.engine.protocol import ContainerSpec, Engine
from imgforge.errors import BuildError
from imgforge.log import Log

CONTAINER_PREFIX = "imgforge-commit-"


@dataclass(frozen=True)
class CommitRun:
    """What to run: a ``/bin/sh -c`` script in a container of ``base``."""

    base: str
    env: list[str]
    workdir: str
    script: str
    staging: IO[bytes]
    network: str | None
    gpus: bool
    what: str
    interactive: bool = False
    # The container's name; one build at a time uses it (the recipe lock), so a container
    # of that name found at the start was left by a build that lost its engine.
    name: str | None = None


def container_spec(run: CommitRun) -> ContainerSpec:
    """The container of ``run``: the script is its entrypoint (the base's own entrypoint
    must not run, as it doesn't for a Dockerfile RUN)."""
    return ContainerSpec(
        image=run.base,
        script=run.script,
        env=tuple(run.env),
        workdir=run.workdir,
        name=run.name or f"{CONTAINER_PREFIX}{uuid.uuid4().hex[:12]}",
        network=run.network,
        gpus=run.gpus,
        interactive=run.interactive,
        tty=run.interactive and sys.stdin.isatty(),
    )


def follow_script(engine: Engine, container: str, run: CommitRun, log: Log) -> tuple[str, str]:
    """Start the container and pass its output to ``log``; return the step that ran last
    and its last line of output (both empty for an interactive session)."""
    if run.interactive:
        engine.attach(container, what=run.what)
        return "", ""
    engine.start_container(container, gpus=run.gpus, what=run.what)
    last = step = ""
    for line in engine.output(container):
        log(line)
        # The script runs under `set -x`: "+ COMMAND" starts each step.
        if line.startswith("+ "):
            step, last = line[2:], ""
        else:
            last = line or last
    return step, last


def commit_run(engine: Engine, run: CommitRun, log: Log) -> tuple[str, list[str]]:
    """Run the script; commit the container on success; always remove the container.
    Returns the committed image and, for an interactive run, the changed paths.

    The config the container leaves behind is replaced by the caller.
    """
    spec = container_spec(run)
    engine.remove_container(spec.name)
    container = engine.create_container(spec, what=run.what)
    try:
        engine.put_archive(container, "/", run.staging)
        step, last = follow_script(engine, container, run, log)
        status = engine.wait(container)
        if status != 0:
            where = f" at {step}" if step else ""
            output = f": {last}" if last else ""
            raise BuildError(
                f"{run.what}: the build script failed (exit {status}){where}{output}"
            )
        if engine.cancel.is_set():
            raise BuildError(f"{run.what}: interrupted")
        changes = engine.changes(container) if run.interactive else []
        return engine.commit(container), changes
    finally:
        engine.remove_container(container)
