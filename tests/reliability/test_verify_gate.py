"""Every SIF is read back and checked before it gets its final name: a check that fails
(injected, or a backend that writes a wrong image) is exit 1, and the SIF under its final
name is the previous one (or absent), the tag unmoved, no temporary file left."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import docker
import pytest
from reliability_support import (
    assert_same_artifacts,
    build_argv,
    image_id,
    one_error_line,
    run_main,
    snapshot,
    temp_files,
    write,
)

import imgforge.sif.choice
import imgforge.sif.make
from imgforge.sif.backend import SifRequest
from imgforge.sif.pack import NativeBackend

pytestmark = pytest.mark.integration

NAME = "rel-gate"


def recipe_text(base: str, value: str) -> str:
    return f'name = "{NAME}"\nbase = "{base}"\n[env]\nGATE = "{value}"\n'


@dataclass(frozen=True)
class WrongBackend:
    """A backend with a bug: ``damage`` spoils what it writes."""

    damage: str
    name: str = "native"

    def version(self) -> str:
        return "wrong 0"

    def make(self, request: SifRequest, *, source: Any, log: Any) -> None:
        if self.damage == "garbage":
            request.target.write_bytes(b"not a SIF at all\n" * 100)
            return
        files = dict(request.files)
        if self.damage == "env":  # one value quoted wrongly in the env script
            files["env/10-docker2singularity.sh"] = files["env/10-docker2singularity.sh"].replace(
                "export GATE='two'", "export GATE='tw0'"
            )
        else:  # no runscript
            files["runscript"] = "#!/bin/sh\nexec /bin/true\n"
        NativeBackend.create().make(replace(request, files=files), source=source, log=log)


def injected_check(path: Path, config: Any, written: Any) -> list[str]:
    return ["env GATE: image 'two', SIF 'injected'", "label x: injected"]


@pytest.fixture
def previous(
    project: Path, mini_image: str, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, Path]:
    recipe = write(project / "recipes" / f"{NAME}.toml", recipe_text(mini_image, "one"))
    code, _, err = run_main(build_argv(recipe, project / "out", singularity="native"), capsys)
    assert code == 0, err
    return recipe, project / "out"


@pytest.mark.parametrize("fault", ["injected-check", "garbage", "env", "runscript"])
@pytest.mark.parametrize("history", ["previous-sif", "first-build"])
def test_a_sif_that_fails_its_check_never_gets_its_final_name(
    previous: tuple[Path, Path],
    mini_image: str,
    client: docker.DockerClient,
    fault: str,
    history: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recipe, out = previous
    directory = out / NAME
    if history == "first-build":
        out = out.parent / "fresh-out"
        directory = out / NAME
    before = snapshot(directory)
    tagged = image_id(client, f"{NAME}:latest")
    if fault == "injected-check":
        monkeypatch.setattr(imgforge.sif.make, "verify_file", injected_check)
    else:
        monkeypatch.setattr(
            imgforge.sif.choice, "choose", lambda requested: WrongBackend(fault)
        )
    write(recipe, recipe_text(mini_image, "two"))
    code, _, err = run_main(build_argv(recipe, out, singularity="native"), capsys)
    assert code == 1
    line = one_error_line(err)
    assert str(recipe) in line and "does not match the Docker image" in line, line
    assert_same_artifacts(before, directory)
    assert not (directory / f"{NAME}.sif").exists() or history == "previous-sif"
    assert image_id(client, f"{NAME}:latest") == tagged
    log = (directory / "build.log").read_text()
    assert "verify: " in log
    monkeypatch.undo()
    code, _, err = run_main(build_argv(recipe, out, singularity="native"), capsys)
    assert code == 0, err
    assert not temp_files(out)
