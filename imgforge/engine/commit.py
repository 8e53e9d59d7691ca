"""The commit fallback: run a script in a container from the base, then docker commit."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from typing import IO, Any

from imgforge.engine.docker import DockerEngine, _first_line
from imgforge.errors import BuildError, EngineError
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


def _host_config(engine: DockerEngine, run: CommitRun) -> Any:
    from docker.types import DeviceRequest

    requests = [DeviceRequest(count=-1, capabilities=[["gpu"]])] if run.gpus else None
    return engine.api.create_host_config(network_mode=run.network, device_requests=requests)


def _start(engine: DockerEngine, container: str, run: CommitRun) -> None:
    from docker.errors import APIError

    try:
        engine.api.start(container)
    except APIError as exc:
        message = _first_line(exc)
        if run.gpus and ("device driver" in message or "nvidia" in message.lower()):
            raise EngineError(
                f"{run.what}: build.gpus = true needs GPUs and the NVIDIA container runtime, "
                f"which this engine lacks ({message})"
            ) from None
        raise BuildError(f"{run.what}: cannot start the build container: {message}") from None


def _attach(engine: DockerEngine, container: str, what: str) -> None:
    """Hand the terminal to the container (the docker CLI does TTY handling well;
    DOCKER_HOST and friends reach it through the environment)."""
    docker = shutil.which("docker")
    if docker is None:
        raise EngineError(f"{what}: an interactive shell needs the docker command-line client")
    subprocess.run([docker, "start", "--attach", "--interactive", container], check=False)


def changed_paths(engine: DockerEngine, container: str) -> list[str]:
    """``docker diff``: A/C/D and the path, for every change the session made."""
    kinds = {0: "C", 1: "A", 2: "D"}
    return [f"{kinds.get(c['Kind'], '?')} {c['Path']}" for c in engine.api.diff(container) or []]


def commit_run(engine: DockerEngine, run: CommitRun, log: Log) -> tuple[str, list[str]]:
    """Run the script; commit the container on success; always remove the container.
    Returns the committed image and, for an interactive run, the changed paths.

    The container's entrypoint is the script (the base's own entrypoint must not run,
    as it doesn't for a Dockerfile RUN); the config it leaves behind is replaced by
    the caller. The container is named, not labelled: a label would be committed.
    """
    from docker.errors import APIError

    name = run.name or f"{CONTAINER_PREFIX}{uuid.uuid4().hex[:12]}"
    engine.remove_container(name)
    try:
        container = engine.api.create_container(
            run.base,
            entrypoint=["/bin/sh", "-c", run.script],
            environment=run.env,
            working_dir=run.workdir or None,
            name=name,
            host_config=_host_config(engine, run),
            tty=run.interactive and sys.stdin.isatty(),
            stdin_open=run.interactive,
        )["Id"]
    except APIError as exc:
        raise BuildError(
            f"{run.what}: cannot create the build container: {_first_line(exc)}"
        ) from None
    engine.track(container, running=True)
    try:
        engine.api.put_archive(container, "/", run.staging)
        last = step = ""
        if run.interactive:
            _attach(engine, container, run.what)
        else:
            _start(engine, container, run)
            for chunk in engine.api.logs(container, stream=True, follow=True):
                for line in chunk.decode("utf-8", "replace").splitlines():
                    log(line)
                    # The script runs under `set -x`: "+ COMMAND" starts each step.
                    if line.startswith("+ "):
                        step, last = line[2:], ""
                    else:
                        last = line or last
        status = engine.api.wait(container).get("StatusCode", 1)
        if status != 0:
            where = f" at {step}" if step else ""
            output = f": {last}" if last else ""
            raise BuildError(
                f"{run.what}: the build script failed (exit {status}){where}{output}"
            )
        if engine.cancel.is_set():
            raise BuildError(f"{run.what}: interrupted")
        changes = changed_paths(engine, container) if run.interactive else []
        return str(engine.api.commit(container)["Id"]), changes
    finally:
        engine.remove_container(container)
