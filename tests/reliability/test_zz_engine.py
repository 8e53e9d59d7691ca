"""The Docker engine stopped in the middle of a build (this file runs last: it stops the
engine every other test uses, and always starts it again).

imgforge ends with one line and no traceback, leaves the previous artifacts and the tag
as they were and no temporary file; once the engine is back, no container of the build
is left and a normal run works.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from reliability_support import (
    REPO,
    assert_same_artifacts,
    build_argv,
    finish,
    image_id,
    manifest_of,
    no_containers_left,
    one_error_line,
    running_container,
    snapshot,
    spawn,
    temp_files,
    wait_for,
    write,
)

pytestmark = pytest.mark.integration

PIDFILE = Path("/var/run/docker.pid")
NAME = "rel-engine"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_engine() -> None:
    """``kill $(cat /var/run/docker.pid)``, then wait until dockerd is gone."""
    pid = int(PIDFILE.read_text().strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 90
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        wait_for("dockerd to die", lambda: not alive(pid), 30)


def start_engine() -> None:
    subprocess.run(
        ["bash", str(REPO / "scripts" / "ensure-engine.sh")],
        check=True,
        capture_output=True,
        timeout=180,
    )
    wait_for("the engine to answer", lambda: _pings(), 60, 0.5)


def _pings() -> bool:
    try:
        docker.from_env(timeout=5).ping()
    except docker.errors.DockerException:
        return False
    return True


@pytest.fixture
def stoppable_engine(client: docker.DockerClient) -> Iterator[None]:
    """The local engine, which this test may stop: it is always started again."""
    if os.environ.get("DOCKER_HOST", "unix://").split("://")[0] != "unix" or not PIDFILE.exists():
        pytest.skip("the engine is not a local dockerd with /var/run/docker.pid")
    try:
        yield
    finally:
        if not _pings():
            start_engine()


@pytest.mark.parametrize("strategy", ["dockerfile", "commit"])
def test_engine_stopped_during_a_build(
    stoppable_engine: None, project: Path, mini_image: str, strategy: str
) -> None:
    recipe = project / "recipes" / f"{NAME}.toml"
    out = project / "out"
    directory = out / NAME
    argv = build_argv(recipe, out, "--strategy", strategy, singularity="native")
    text = f'name = "{NAME}"\nbase = "{mini_image}"\n[run]\ncommands = ["{{}}"]\n'
    write(recipe, text.format("echo one"))
    code, _, err = finish(spawn(argv))
    assert code == 0, err
    before = snapshot(directory)
    tagged = image_id(docker.from_env(), f"{NAME}:latest")

    marker = f"rel-engine-{uuid.uuid4().hex[:12]}"
    write(recipe, text.format(f"sleep 60 # {marker}"))
    proc = spawn(argv)
    try:
        wait_for("the sleeping step", lambda: running_container(docker.from_env(), marker))
        stop_engine()
        code, out_text, err = finish(proc, timeout=120)
    finally:
        proc.kill()
        start_engine()
    assert code == 3, (code, out_text, err)  # an environment problem (README.md, exit codes)
    line = one_error_line(err)
    assert "Traceback" not in out_text, out_text
    assert str(recipe) in line and "Docker engine stopped answering" in line, line
    assert_same_artifacts(before, directory)
    assert not temp_files(out)

    client = docker.from_env()
    assert image_id(client, f"{NAME}:latest") == tagged
    if strategy == "dockerfile":  # the engine removes a build's container itself
        no_containers_left(client, marker=marker)
    # The commit container outlives a dead engine; the next build of the recipe into the
    # same --out removes it (it has the same name, and the recipe lock makes it ours).
    write(recipe, text.format(f"echo two # {marker}"))
    code, _, err = finish(spawn(argv))
    assert code == 0, err
    assert manifest_of(directory)["docker_image_id"] == image_id(client, f"{NAME}:latest")
    no_containers_left(client, marker=marker)
