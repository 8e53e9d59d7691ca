"""The commit strategy on the real engine: same image config as the Dockerfile path,
traceable, and no container left behind on success, failure, SIGINT or SIGTERM."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from imgforge.cli import main

pytestmark = pytest.mark.integration

STANDIN = "imgforge-standin/ngc-pytorch:24.01-py3"
PROVENANCE = ("org.imgforge.recipe.hash", "org.imgforge.strategy", "org.imgforge.commit.script")
RECIPE = f"""
name = "itest-commit"
base = "{STANDIN}"
[apt]
packages = ["file"]
[pip]
packages = ["six==1.16.0"]
requirements = ["requirements.txt"]
[env]
GREETING = "it's \\"quoted\\" $HOME `x`"
[files]
"app/" = "/opt/app/"
"one.txt" = "/opt/one/"
[run]
commands = ["echo ran > /opt/ran", "cd /opt && ls app > /opt/listing"]
[labels]
team = "hpc"
[runscript]
command = "python3 /opt/app/main.py"
"""


def imgforge_containers(client: docker.DockerClient) -> list[str]:
    return [c.name for c in client.containers.list(all=True) if c.name.startswith("imgforge-")]


@pytest.fixture(scope="module")
def client(standin_image: str) -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture(scope="module")
def recipe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("commit")
    (root / "app").mkdir()
    (root / "app" / "main.py").write_text("print('main')\n")
    (root / "one.txt").write_text("one\n")
    (root / "requirements.txt").write_text("tqdm\n")
    (root / "itest-commit.toml").write_text(RECIPE)
    return root


def build(recipe: Path, out: Path, *extra: str) -> int:
    argv = ["build", str(recipe), "--out", str(out), "--network", "host"]
    return main([*argv, "--singularity", "none", "--force", *extra])


@pytest.fixture(scope="module")
def pair(client: docker.DockerClient, recipe_dir: Path) -> Iterator[tuple[dict, dict, Path]]:
    """The same recipe built both ways; the image configs and the commit build's out dir."""
    recipe = recipe_dir / "itest-commit.toml"
    assert build(recipe, recipe_dir / "out-dockerfile", "--strategy", "dockerfile") == 0
    by_dockerfile = client.api.inspect_image("itest-commit:latest")
    assert build(recipe, recipe_dir / "out-commit", "--strategy", "commit") == 0
    by_commit = client.api.inspect_image("itest-commit:latest")
    yield by_dockerfile, by_commit, recipe_dir / "out-commit"
    client.images.remove("itest-commit:latest", force=True)
    for image in (by_dockerfile["Id"], by_commit["Id"]):
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(image, force=True)


def test_both_strategies_give_the_same_config(pair: tuple[dict, dict, Path]) -> None:
    by_dockerfile, by_commit, _ = pair
    assert by_dockerfile["Id"] != by_commit["Id"]
    for key in ("Env", "Entrypoint", "Cmd", "WorkingDir", "User"):
        assert by_commit["Config"][key] == by_dockerfile["Config"][key], key

    def labels(image: dict) -> dict[str, str]:
        return {k: v for k, v in image["Config"]["Labels"].items() if k not in PROVENANCE}

    assert labels(by_commit) == labels(by_dockerfile)


def run(client: docker.DockerClient, image: str, script: str) -> str:
    output: bytes = client.containers.run(
        image, ["sh", "-c", script], entrypoint=[], network_mode="host", remove=True
    )
    return output.decode()


def test_both_strategies_install_the_same_packages_and_files(
    client: docker.DockerClient, pair: tuple[dict, dict, Path]
) -> None:
    script = (
        "printf '%s\\n' \"$GREETING\"; ls /tmp;"
        " dpkg-query -W -f '${Package} ${Version}\\n' | sort; python3 -m pip list --format=freeze;"
        " cat /opt/ran /opt/listing /opt/one/one.txt; stat -c '%n %a %U %G %s %Y' /opt/app/*;"
        " stat -c '%n %a %U %G' /opt/app /opt/one"
    )
    by_dockerfile, by_commit, _ = pair
    one = run(client, by_dockerfile["Id"], script)
    other = run(client, by_commit["Id"], script)
    assert one == other
    assert "six==1.16.0" in one and "tqdm==" in one and "file " in one
    greeting, after = one.split("\n", 1)
    assert greeting == "it's \"quoted\" $HOME `x`"
    assert after.startswith("adduser ")  # /tmp is empty: the staging files are gone


def test_commit_build_is_traceable(pair: tuple[dict, dict, Path]) -> None:
    _, by_commit, out = pair
    labels = by_commit["Config"]["Labels"]
    script = json.loads(labels["org.imgforge.commit.script"])
    assert labels["org.imgforge.strategy"] == "commit"
    pip = "python3 -m pip install --no-cache-dir '\"'\"'six==1.16.0'\"'\"'"
    assert f"/bin/sh -c -- '{pip}" in script
    manifest = json.loads((out / "itest-commit" / "manifest.json").read_text())
    assert manifest["strategy"] == "commit"
    assert manifest["commit"]["script"] == script
    assert "set -e" in (out / "itest-commit" / "build.log").read_text()


def test_no_container_is_left_after_success_or_failure(
    client: docker.DockerClient, tmp_path: Path, pair: tuple[dict, dict, Path]
) -> None:
    assert imgforge_containers(client) == []
    recipe = tmp_path / "itest-commit-fail.toml"
    recipe.write_text(f'base = "{STANDIN}"\n[run]\ncommands = ["echo boom; exit 3"]\n')
    assert build(recipe, tmp_path / "out", "--strategy", "commit") == 1
    assert imgforge_containers(client) == []
    assert "boom" in (tmp_path / "out" / "itest-commit-fail" / "build.log").read_text()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_no_container_is_left_after_an_interrupt(
    client: docker.DockerClient, tmp_path: Path, signum: int, standin_image: str
) -> None:
    recipe = tmp_path / "itest-slow.toml"
    recipe.write_text(
        f'base = "{STANDIN}"\n[run]\ncommands = ["sleep 120"]\n[build]\nstrategy = "commit"\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "imgforge", "build", str(recipe), "--singularity", "none",
         "--out", str(tmp_path / "out")],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not imgforge_containers(client) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert imgforge_containers(client), "the build container never appeared"
    process.send_signal(signum)
    assert process.wait(timeout=30) == 130
    assert "Traceback" not in (process.stderr.read() if process.stderr else "")
    assert imgforge_containers(client) == []
    assert not (tmp_path / "out" / "itest-slow" / "manifest.json").exists()


@pytest.mark.skipif(shutil.which("nvidia-container-runtime") is not None, reason="GPUs here")
def test_gpus_without_a_gpu_runtime_is_exit_3(
    client: docker.DockerClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "itest-gpu.toml"
    recipe.write_text(
        f'base = "{STANDIN}"\n[run]\ncommands = ["true"]\n'
        '[build]\nstrategy = "commit"\ngpus = true\n'
    )
    assert build(recipe, tmp_path / "out") == 3
    err = capsys.readouterr().err
    assert "gpus = true" in err and "Traceback" not in err
    assert imgforge_containers(client) == []


def test_shell_commits_the_session_and_marks_it_not_reproducible(
    client: docker.DockerClient, tmp_path: Path
) -> None:
    recipe = tmp_path / "itest-shell.toml"
    recipe.write_text(f'base = "{STANDIN}"\n[run]\ncommands = ["touch /opt/by-recipe"]\n')
    session = "touch /opt/by-hand\nrm -f /etc/issue\nexit\n"
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "imgforge", "shell", str(recipe), "--out", str(out),
         "--singularity", "none", "--network", "host"],
        input=session, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    try:
        manifest = json.loads((out / "itest-shell" / "manifest.json").read_text())
        changes = manifest["commit"]["changed_paths"]
        assert "A /opt/by-hand" in changes and "D /etc/issue" in changes
        assert manifest["commit"]["reproducible"] is False
        labels = client.api.inspect_image("itest-shell:latest")["Config"]["Labels"]
        assert labels["org.imgforge.reproducible"] == "false"
        output = client.containers.run(
            "itest-shell:latest", ["ls", "/opt"], entrypoint=[], remove=True, network_mode="host"
        ).decode()
        assert "by-hand" in output and "by-recipe" in output
        assert imgforge_containers(client) == []
    finally:
        client.images.remove("itest-shell:latest", force=True)


def test_a_child_of_a_commit_built_parent_builds_and_its_sif_verifies(
    client: docker.DockerClient, tmp_path: Path
) -> None:
    """A ``recipe:`` child inherits the labels the commit strategy gave its parent (the
    strategy, the script): its image and SIF carry them, and both builds pass their checks."""
    (tmp_path / "itest-cparent.toml").write_text(
        f'name = "itest-cparent"\nbase = "{STANDIN}"\n[build]\nstrategy = "commit"\n'
        '[run]\ncommands = ["echo parent > /parent.txt"]\n'
    )
    (tmp_path / "itest-cchild.toml").write_text(
        'name = "itest-cchild"\nbase = "recipe:itest-cparent"\n'
        '[run]\ncommands = ["echo child > /child.txt"]\n[labels]\nteam = "hpc"\n'
    )
    out = tmp_path / "out"
    argv = ["build", str(tmp_path / "itest-cchild.toml"), "--out", str(out)]
    assert main([*argv, "--network", "host", "--singularity", "native"]) == 0
    labels = client.api.inspect_image("itest-cchild:latest")["Config"]["Labels"]
    assert labels["org.imgforge.strategy"] == "commit"  # the parent's, inherited
    assert labels["team"] == "hpc"
    assert main(["verify", "itest-cchild", "--out", str(out)]) == 0
