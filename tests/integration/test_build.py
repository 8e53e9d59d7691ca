"""Real builds on the Docker Engine: artifacts, env preservation, DAG order, no-op rebuilds."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from imgforge.build.fastpath import up_to_date
from imgforge.cli import main
from imgforge.commands import building
from imgforge.options import Options
from imgforge.recipes.image import split_env, update_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STANDIN_REF = "imgforge-standin/ngc-pytorch:24.01-py3"
NGC_REF = "nvcr.io/nvidia/pytorch:24.01-py3"


@pytest.fixture(scope="module")
def client(standin_image: str) -> docker.DockerClient:
    return docker.from_env()


def _remove_images(client: docker.DockerClient, *refs: str) -> None:
    for ref in refs:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(ref, force=True)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def build(*args: str | Path, out: Path, singularity: str = "none") -> int:
    """``imgforge build``; Docker artifacts only unless a Singularity backend is asked for
    (SIF making is tested in test_sif.py, on the image built here by ``myproj``)."""
    return main(
        ["build", *map(str, args), "--out", str(out), "--network", "host",
         "--singularity", singularity]
    )  # fmt: skip


def plan(recipe: Path, out: Path) -> int:
    return main(["plan", str(recipe), "--out", str(out), "--singularity", "none"])


def env_of(client: docker.DockerClient, ref: str) -> list[str]:
    return list(client.api.inspect_image(ref)["Config"]["Env"])


def run_in(client: docker.DockerClient, ref: str, *command: str) -> str:
    output: bytes = client.containers.run(
        ref, list(command) or None, network_mode="host", remove=True, stderr=True
    )
    return output.decode()


@pytest.fixture(scope="module")
def myproj(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """recipes/ copied to a temp dir and myproj built from it, as the README does."""
    root = tmp_path_factory.mktemp("myproj")
    shutil.copytree(REPO / "recipes", root / "recipes")
    out = root / "build"
    assert build(root / "recipes" / "myproj.toml", out=out, singularity="native") == 0
    yield out
    _remove_images(client, "myproj:1.0")


def test_myproj_leaves_every_artifact(myproj: Path) -> None:
    directory = myproj / "myproj"
    for name in [
        "Dockerfile", "myproj.def", "imgforge-env.sh", "manifest.json", "build.log", "myproj.sif"
    ]:  # fmt: skip
        assert (directory / name).is_file(), name
    assert not list(directory.glob(".*.tmp"))


def test_myproj_env_is_base_env_updated_with_recipe_env(
    myproj: Path, client: docker.DockerClient
) -> None:
    base_env = env_of(client, STANDIN_REF)
    expected = update_env(
        base_env,
        [
            ("MYPROJ_GREETING", 'hello from $HOME\'s "myproj" (100% byte-exact)'),
            ("MYPROJ_HOME", "/opt/app"),
        ],
    )
    assert env_of(client, "myproj:1.0") == list(expected)
    manifest = json.loads((myproj / "myproj" / "manifest.json").read_text())
    assert manifest["env"] == list(expected)
    assert manifest["base"]["ref"] == NGC_REF
    assert manifest["base"]["resolved"] == STANDIN_REF
    assert manifest["docker_image_id"] == client.api.inspect_image("myproj:1.0")["Id"]


def test_myproj_runs_entrypoint_then_command(myproj: Path, client: docker.DockerClient) -> None:
    output = run_in(client, "myproj:1.0")
    assert "imgforge stand-in" in output  # the NGC entrypoint still runs
    assert "myproj train.py" in output
    assert "CUDA_HOME = /usr/local/cuda" in output
    assert 'hello from $HOME\'s "myproj" (100% byte-exact)' in output


def test_myproj_installed_apt_and_pip_packages_and_left_no_lists(
    myproj: Path, client: docker.DockerClient
) -> None:
    script = (
        "command -v file && python3 -c 'import einops, tqdm, six; print(\"pip ok\")' "
        '&& test -z "$(ls /var/lib/apt/lists | grep -v -e lock -e partial)" && echo lists-clean '
        "&& test ! -e /tmp/imgforge-requirements-0.txt && echo req-removed"
    )
    output = run_in(client, "myproj:1.0", "sh", "-c", script)
    assert "pip ok" in output
    assert "lists-clean" in output
    assert "req-removed" in output


def test_def_environment_reproduces_image_env_under_sh(myproj: Path) -> None:
    """The .def's %environment, sourced by sh, gives back every variable byte for byte
    (PATH aside: the env file sets it, and the runtime completes it before %environment)."""
    deffile = (myproj / "myproj" / "myproj.def").read_text()
    body = deffile.split("%environment\n", 1)[1].split("\n%", 1)[0]
    manifest = json.loads((myproj / "myproj" / "manifest.json").read_text())
    dumped = subprocess.run(
        ["sh", "-c", body + "\nenv -0"], env={}, capture_output=True, check=True
    ).stdout.decode()
    seen = dict(split_env(entry) for entry in dumped.split("\0") if entry)
    for name, value in map(split_env, manifest["env"]):
        if name not in {"PWD", "SHLVL", "_", "PATH"}:
            assert seen[name] == value, name


@pytest.fixture
def dag(tmp_path: Path, client: docker.DockerClient) -> Iterator[Path]:
    """A 3-level DAG on the stand-in: l1 -> l2 -> l3, plus an unrelated leaf."""
    recipes = tmp_path / "recipes"
    write(recipes / "imgforge.toml", f'[base_map]\n"{NGC_REF}" = "{STANDIN_REF}"\n')
    write(
        recipes / "itest-l1.toml",
        f'base = "{NGC_REF}"\n[env]\nLEVEL = "1"\nL1 = "a b"\n'
        '[files]\n"data/one.txt" = "/opt/data/"\n',
    )
    write(recipes / "data" / "one.txt", "one\n")
    write(
        recipes / "itest-l2.toml",
        'base = "recipe:itest-l1"\n[env]\nLEVEL = "2"\n[run]\ncommands = ["echo two > /opt/two"]\n',
    )
    write(
        recipes / "itest-l3.toml",
        'base = "recipe:itest-l2"\n[env]\nLEVEL = "3"\n'
        '[runscript]\ncommand = "cat /opt/data/one.txt /opt/two"\n',
    )
    write(recipes / "itest-other.toml", f'base = "{NGC_REF}"\n[env]\nOTHER = "yes"\n')
    yield recipes
    _remove_images(
        client, "itest-l3:latest", "itest-l2:latest", "itest-l1:latest", "itest-other:latest"
    )


def built_at(out: Path, name: str) -> str:
    data: dict[str, Any] = json.loads((out / name / "manifest.json").read_text())
    return str(data["built_at"]) + str(data["docker_image_id"])


def test_three_level_dag_builds_parents_first_and_passes_env_down(
    dag: Path, tmp_path: Path, client: docker.DockerClient, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert build(dag / "itest-l3.toml", out=out) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if ": building" in line]
    assert [line.split(":")[0] for line in lines] == ["itest-l1", "itest-l2", "itest-l3"]
    env = dict(split_env(e) for e in env_of(client, "itest-l3:latest"))
    assert env["LEVEL"] == "3" and env["L1"] == "a b"
    assert env["TORCH_CUDA_ARCH_LIST"] == "5.2 6.0 6.1 7.0 7.2 7.5 8.0 8.6 8.7 9.0+PTX"
    output = run_in(client, "itest-l3:latest")
    assert "one\ntwo" in output
    assert not (out / "itest-other").exists()  # not a target, not an ancestor
    deffile = (out / "itest-l3" / "itest-l3.def").read_text()
    assert "Bootstrap: localimage" in deffile
    assert "export L1='a b'" in deffile  # the parent's final env is passed down


def test_second_build_is_a_noop_and_touching_a_parent_rebuilds_dependents(
    dag: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    targets = [dag / "itest-l3.toml", dag / "itest-other.toml"]
    assert build(*targets, out=out) == 0
    before = {n: built_at(out, n) for n in ["itest-l1", "itest-l2", "itest-l3", "itest-other"]}
    capsys.readouterr()

    # The no-op is answered by the fast path (manifests, stats, one engine call), never by
    # the full path; how fast that is, bench/ measures.
    answers: list[list[str] | None] = []

    def fast_path(paths: list[Path], options: Options) -> list[str] | None:
        answers.append(up_to_date(paths, options))
        return answers[-1]

    monkeypatch.setattr(building, "up_to_date", fast_path)
    assert build(*targets, out=out) == 0
    assert "built 0, up to date 4" in capsys.readouterr().out
    assert len(answers) == 1 and answers[0] is not None and len(answers[0]) == 4
    assert {n: built_at(out, n) for n in before} == before

    write(dag / "data" / "one.txt", "one, changed\n")
    assert build(*targets, out=out) == 0
    after = {n: built_at(out, n) for n in before}
    assert after["itest-other"] == before["itest-other"]
    for name in ["itest-l1", "itest-l2", "itest-l3"]:
        assert after[name] != before[name], name

    capsys.readouterr()
    assert plan(dag / "itest-l3.toml", out=out) == 0
    assert capsys.readouterr().out.count("up to date") == 3


def test_plan_explains_why_a_recipe_rebuilds(
    dag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert build(dag / "itest-l2.toml", out=out) == 0
    write(dag / "itest-l1.toml", (dag / "itest-l1.toml").read_text() + "# changed\n")
    capsys.readouterr()
    assert plan(dag / "itest-l2.toml", out=out) == 0
    text = capsys.readouterr().out
    assert "itest-l1:latest  rebuild: recipe or its files changed" in text
    assert "itest-l2:latest  rebuild: parent itest-l1 rebuilds" in text


def test_failing_step_exits_1_names_the_instruction_and_keeps_previous_artifacts(
    tmp_path: Path, client: docker.DockerClient, capsys: pytest.CaptureFixture[str]
) -> None:
    recipes = tmp_path / "recipes"
    write(recipes / "imgforge.toml", f'[base_map]\n"{NGC_REF}" = "{STANDIN_REF}"\n')
    recipe = write(recipes / "itest-fail.toml", f'base = "{NGC_REF}"\n[env]\nA = "1"\n')
    out = tmp_path / "out"
    try:
        assert build(recipe, out=out) == 0
        good = {
            p.name: p.read_bytes() for p in (out / "itest-fail").iterdir() if p.name != "build.log"
        }
        image_id = client.api.inspect_image("itest-fail:latest")["Id"]
        write(recipe, f'base = "{NGC_REF}"\n[env]\nA = "2"\n[run]\ncommands = ["exit 7"]\n')
        capsys.readouterr()
        assert build(recipe, out=out) == 1
        err = capsys.readouterr().err
        assert "itest-fail" in err and "exit 7" in err
        assert "Traceback" not in err
        assert client.api.inspect_image("itest-fail:latest")["Id"] == image_id
        manifest = (out / "itest-fail" / "manifest.json").read_bytes()
        assert manifest == good["manifest.json"]
        assert "exit 7" in (out / "itest-fail" / "build.log").read_text()
    finally:
        _remove_images(client, "itest-fail:latest")


def test_hostile_recipe_exits_2_and_creates_no_image(
    tmp_path: Path, client: docker.DockerClient, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write(
        tmp_path / "itest-evil.toml",
        f'base = "{STANDIN_REF}"\n[apt]\npackages = ["vim; touch /tmp/pwned"]\n',
    )
    assert build(recipe, out=tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert f"{recipe}: apt.packages[0]:" in err
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("itest-evil:latest")


def test_no_engine_is_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = write(tmp_path / "x.toml", f'base = "{STANDIN_REF}"\n')
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert main(["build", str(recipe), "--out", str(tmp_path / "out")]) == 3


def test_fast_noop_path_agrees_with_the_full_path(dag: Path, tmp_path: Path) -> None:
    """The no-op fast path says "up to date" only when the full path would, and a touch
    that changes no content sends one run through the full path, then is fast again."""
    out = tmp_path / "out"
    target = dag / "itest-l3.toml"
    options = Options(out=out, singularity="none")
    assert up_to_date([target], options) is None  # nothing built yet
    assert build(target, out=out) == 0
    expected = ["itest-l1:latest", "itest-l2:latest", "itest-l3:latest"]
    assert up_to_date([target], options) == expected

    assert up_to_date([target], Options(out=out)) is None  # a SIF is wanted now
    assert up_to_date([target], Options(out=out, singularity="none", force=True)) is None
    assert up_to_date([target], Options(out=tmp_path / "elsewhere", singularity="none")) is None

    data = dag / "data" / "one.txt"
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 10**9))
    assert up_to_date([target], options) is None
    before = built_at(out, "itest-l1")
    assert build(target, out=out) == 0  # full path: same content, nothing rebuilt
    assert built_at(out, "itest-l1") == before
    assert up_to_date([target], options) == expected

    docker.from_env().images.remove("itest-l2:latest", force=True)
    assert up_to_date([target], options) is None


def test_a_child_rebuilds_when_its_parent_was_rebuilt_alone_under_a_new_tag(
    standin_image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The parent's old tag still names the old image: the child, built on it, is not up
    to date once the parent recipe says another tag (fast path and full path agree)."""
    parent, child, out = tmp_path / "itest-tp.toml", tmp_path / "itest-tc.toml", tmp_path / "out"
    parent.write_text(f'name = "itest-tp"\nbase = "{STANDIN_REF}"\n[env]\nTP = "1"\n')
    child.write_text('name = "itest-tc"\nbase = "recipe:itest-tp"\n[env]\nTC = "1"\n')
    assert build(child, out=out) == 0
    parent.write_text(f'name = "itest-tp"\ntag = "2"\nbase = "{STANDIN_REF}"\n[env]\nTP = "2"\n')
    assert build(parent, out=out) == 0
    capsys.readouterr()
    assert up_to_date([child], Options(out=out, singularity="none")) is None
    assert build(child, out=out) == 0
    assert "itest-tc:latest: building" in capsys.readouterr().out
    env = docker.from_env().images.get("itest-tc:latest").attrs["Config"]["Env"]
    assert "TP=2" in env
