"""SIGINT and SIGTERM during the Docker build, the commit strategy and SIF packing: exit
130, one message, no traceback, no container, no temporary file, the previous artifacts
byte-identical and the tag unmoved; then a normal run works."""

from __future__ import annotations

import contextlib
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from reliability_support import (
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

INTERRUPTED = "imgforge: interrupted; build containers removed, artifacts unchanged"
SIGNALS = [signal.SIGINT, signal.SIGTERM]


def recipe_text(name: str, base: str, command: str) -> str:
    return (
        f'name = "{name}"\nbase = "{base}"\n[env]\nSTAGE = "{command}"\n'
        f'[run]\ncommands = ["echo ready > /opt/ready", "{command}"]\n'
    )


def check_interrupted(code: int, out: str, err: str) -> None:
    assert code == 130, (out, err)
    assert one_error_line(err) == INTERRUPTED
    assert "Traceback" not in out and "FAILED" not in out, out


@pytest.mark.parametrize("strategy", ["dockerfile", "commit"])
@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_signal_during_the_image_build(
    project: Path,
    mini_image: str,
    client: docker.DockerClient,
    strategy: str,
    signum: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A RUN step (or the commit script) sleeping 60 s is interrupted."""
    name = f"rel-sig-{strategy}"
    recipe = project / "recipes" / f"{name}.toml"
    out = project / "out"
    directory = out / name
    argv = build_argv(recipe, out, "--strategy", strategy, singularity="native")
    write(recipe, recipe_text(name, mini_image, "true"))
    code, _, err = finish(spawn(argv))
    assert code == 0, err
    before = snapshot(directory)
    tagged = image_id(client, f"{name}:latest")

    marker = f"rel-sig-{uuid.uuid4().hex[:12]}"
    write(recipe, recipe_text(name, mini_image, f"sleep 60 # {marker}"))
    proc = spawn(argv)
    try:
        wait_for("the sleeping build step", lambda: running_container(client, marker), 120)
        proc.send_signal(signum)
        check_interrupted(*finish(proc, timeout=60))
    finally:
        proc.kill()
    no_containers_left(client, marker=marker)
    assert_same_artifacts(before, directory)
    assert image_id(client, f"{name}:latest") == tagged
    assert "sleep 60" in (directory / "build.log").read_text()  # the log of the attempt

    write(recipe, recipe_text(name, mini_image, f"sleep 0 # {marker}"))
    code, _, err = finish(spawn(argv))
    assert code == 0, err
    assert manifest_of(directory)["docker_image_id"] == image_id(client, f"{name}:latest")
    assert image_id(client, f"{name}:latest") != tagged
    assert not temp_files(out)
    no_containers_left(client, marker=marker)


def packing(directory: Path) -> bool:
    """The squashfs is being written into the SIF at its temporary name (a ``.*.sif.*.tmp``
    with data)."""
    for path in directory.glob(".*.sif.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size > 0:
                return True
    return False


@pytest.fixture(scope="module")
def packed(
    tmp_path_factory: pytest.TempPathFactory, standin_image: str
) -> Iterator[tuple[Path, Path]]:
    """A recipe on the (big) stand-in, built once with a native SIF: (recipe, out)."""
    root = tmp_path_factory.mktemp("packing")
    recipe = write(root / "rel-sig-pack.toml", recipe_text("rel-sig-pack", standin_image, "true"))
    code, _, err = finish(spawn(build_argv(recipe, root / "out", singularity="native")), 900)
    assert code == 0, err
    yield recipe, root / "out"


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_signal_during_sif_packing(
    packed: tuple[Path, Path], client: docker.DockerClient, signum: int
) -> None:
    recipe, out = packed
    directory = out / "rel-sig-pack"
    before = snapshot(directory)
    built = manifest_of(directory)["docker_image_id"]
    argv = build_argv(recipe, out, "--force", singularity="native")
    proc = spawn(argv)
    try:
        wait_for("squashfs writing", lambda: packing(directory), 300, 0.05)
        proc.send_signal(signum)
        check_interrupted(*finish(proc, timeout=60))
    finally:
        proc.kill()
    # The export container is made from the built image (the same, from the cache).
    no_containers_left(client, images=[built])
    assert_same_artifacts(before, directory)
    assert image_id(client, "rel-sig-pack:latest") == built
    assert "| imgforge layout |" in (directory / "build.log").read_text()
    # The previous good state is whole: a normal run finds it up to date.
    code, out_text, err = finish(spawn(build_argv(recipe, out, singularity="native")))
    assert code == 0, err
    assert "up to date 1" in out_text
