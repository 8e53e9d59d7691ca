"""Atomic artifacts: every file under build/NAME/ goes to a temporary name beside it and
is renamed; a write that fails (a full disk) or a tag that fails leaves the previous
good set byte-identical, the tag where it was, and no temporary file behind."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from reliability_support import (
    assert_same_artifacts,
    build_argv,
    image_id,
    manifest_of,
    one_error_line,
    run_main,
    snapshot,
    temp_files,
    toml_string,
    write,
)

from imgforge import atomic
from imgforge.engine.docker import DockerEngine

NAME = "rel-atomic"
ARTIFACTS = ("Dockerfile", f"{NAME}.def", "imgforge-env.sh", "manifest.json", f"{NAME}.sif")


def recipe_text(base: str, value: str) -> str:
    return (
        f'name = "{NAME}"\nbase = "{base}"\n[env]\nVERSION = {toml_string(value)}\n'
        '[run]\ncommands = ["echo built > /opt/built"]\n[runscript]\ncommand = "cat /opt/built"\n'
    )


# ----------------------------------------------------------------- atomic.write_bytes


def failing_fsync(match: Callable[[str], bool]) -> Callable[[int], None]:
    """os.fsync that fails like a full disk for files whose name ``match`` accepts."""
    real = os.fsync

    def fsync(fd: int) -> None:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if match(name):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
        real(fd)

    return fsync


@pytest.mark.parametrize(
    "fault",
    [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()],
    ids=["disk-full", "interrupt"],
)
def test_write_bytes_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: BaseException
) -> None:
    target = write(tmp_path / "manifest.json", '{"old": true}\n')

    def fsync(fd: int) -> None:
        raise fault

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    with pytest.raises(type(fault)):
        atomic.write_bytes(target, b'{"new": true}\n' * 1000)
    assert target.read_text() == '{"old": true}\n'
    assert os.listdir(tmp_path) == ["manifest.json"]


def test_write_bytes_replaces_through_a_dotted_temporary_in_the_same_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    real = os.replace
    monkeypatch.setattr(
        atomic.os, "replace", lambda a, b: (calls.append((str(a), str(b))), real(a, b))[1]
    )
    atomic.write_text(tmp_path / "x.def", "new")
    [(source, target)] = calls
    assert Path(source).parent == tmp_path and Path(target) == tmp_path / "x.def"
    assert Path(source).name.startswith(".x.def.") and source.endswith(".tmp")


# ---------------------------------------------------------------- real builds (mini)


@pytest.fixture
def baseline(project: Path, mini_image: str, capsys: pytest.CaptureFixture[str]) -> Path:
    """A recipe built once (image and native SIF): the previous good state."""
    recipe = write(project / "recipes" / f"{NAME}.toml", recipe_text(mini_image, "one"))
    code, _, err = run_main(build_argv(recipe, project / "out", singularity="native"), capsys)
    assert code == 0, err
    return recipe


@pytest.mark.integration
def test_every_artifact_is_renamed_into_place_from_a_temporary_beside_it(
    baseline: Path,
    mini_image: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = baseline.parent.parent / "out"
    renames: list[tuple[Path, Path]] = []
    real = os.replace

    def spy(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        renames.append((Path(source), Path(target)))
        real(source, target)

    monkeypatch.setattr(os, "replace", spy)
    write(baseline, recipe_text(mini_image, "two"))
    code, _, err = run_main(build_argv(baseline, out, singularity="native"), capsys)
    assert code == 0, err
    directory = out / NAME
    for name in ARTIFACTS:
        sources = [s for s, t in renames if t == directory / name]
        assert len(sources) == 1, (name, renames)
        assert sources[0].parent == directory
        assert sources[0].name.startswith(".") and sources[0].name.endswith(".tmp")
    # The manifest is renamed last: a crash between renames leaves a manifest that no
    # longer matches the files, so the next run rebuilds instead of trusting them.
    assert renames[-1][1] == directory / "manifest.json"
    assert not temp_files(out)


@pytest.mark.integration
@pytest.mark.parametrize("artifact", ["sif", "Dockerfile", "def", "env", "manifest"])
def test_disk_full_while_writing_an_artifact_keeps_the_previous_set_and_tag(
    baseline: Path,
    mini_image: str,
    client: docker.DockerClient,
    artifact: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = baseline.parent.parent / "out"
    directory = out / NAME
    before = snapshot(directory)
    tagged = image_id(client, f"{NAME}:latest")
    final = {
        "sif": f"{NAME}.sif",
        "Dockerfile": "Dockerfile",
        "def": f"{NAME}.def",
        "env": "imgforge-env.sh",
        "manifest": "manifest.json",
    }[artifact]
    monkeypatch.setattr(os, "fsync", failing_fsync(lambda name: name.startswith(f".{final}.")))
    write(baseline, recipe_text(mini_image, f"disk full at {artifact}"))
    code, _, err = run_main(build_argv(baseline, out, singularity="native"), capsys)
    assert code == 1
    line = one_error_line(err)
    assert str(baseline) in line and "No space left on device" in line, line
    assert_same_artifacts(before, directory)
    assert image_id(client, f"{NAME}:latest") == tagged
    monkeypatch.undo()
    code, _, err = run_main(build_argv(baseline, out, singularity="native"), capsys)
    assert code == 0, err
    assert manifest_of(directory)["docker_image_id"] == image_id(client, f"{NAME}:latest")


@pytest.mark.integration
def test_a_tag_that_fails_keeps_the_previous_artifacts(
    baseline: Path,
    mini_image: str,
    client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The tag is the last engine operation; only then do the artifacts move."""
    from docker.errors import APIError

    out = baseline.parent.parent / "out"
    before = snapshot(out / NAME)
    tagged = image_id(client, f"{NAME}:latest")

    def tag(self: DockerEngine, image: str, repository: str, tag: str) -> None:
        raise APIError("500 Server Error: tag store is read-only")

    monkeypatch.setattr(DockerEngine, "tag", tag)
    write(baseline, recipe_text(mini_image, "tag fails"))
    code, _, err = run_main(build_argv(baseline, out, singularity="native"), capsys)
    assert code == 1
    assert "tag store is read-only" in one_error_line(err)
    assert_same_artifacts(before, out / NAME)
    assert image_id(client, f"{NAME}:latest") == tagged
