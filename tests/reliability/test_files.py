"""Safe files: [files] and requirements sources stay inside the recipe's directory after
symlinks are resolved; the build context (and the commit strategy's staging tar) holds
only the Dockerfile and what the recipe names; ``.dockerignore`` is honoured."""

from __future__ import annotations

import io
import os
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from reliability_support import (
    MINI,
    build_argv,
    export_tar,
    one_error_line,
    run_main,
    tar_members,
    write,
)

from imgforge.cli import main
from imgforge.engine.context import DOCKERFILE, build_context, staging_context
from imgforge.recipes.ignore import IGNORE_FILE
from imgforge.recipes.model import load

SECRET = f"TOP-SECRET-{uuid.uuid4().hex}"


def members(buffer: io.BytesIO) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=buffer) as tar:
        return {m.name: m for m in tar.getmembers()}


def recipe_dir(root: Path, files: str, *, extra: str = "", name: str = "rel-files") -> Path:
    """A recipe directory with a secret, a .git, stray files and an app/ tree beside it."""
    write(root / "secret.txt", SECRET + "\n")
    write(root / ".git" / "config", f"[credential]\n\thelper = {SECRET}\n")
    write(root / "notes.md", "not named by the recipe\n")
    write(root / "app" / "main.py", "print('main')\n")
    write(root / "app" / "data" / "table.csv", "a,b\n")
    write(root / "app" / "debug.log", "ignored log\n")
    write(root / "app" / "data" / "deep.log", "ignored log\n")
    write(root / "app" / "data" / "keep.log", "re-included log\n")
    write(root / ".dockerignore", "# test rules\n**/*.log\n!app/data/keep.log\n")
    write(root / "requirements.txt", "six\n")
    return write(
        root / f"{name}.toml",
        f'name = "{name}"\nbase = "{MINI}"\n{extra}[files]\n{files}',
    )


# ----------------------------------------------------------------------- the context


def test_the_build_context_holds_only_the_dockerfile_and_named_sources(tmp_path: Path) -> None:
    recipe = load(
        recipe_dir(
            tmp_path, '"app/" = "/opt/app/"\n', extra='[pip]\nrequirements = ["requirements.txt"]\n'
        )
    )
    buffer = build_context(recipe, "FROM scratch\n")
    assert sorted(members(buffer)) == [
        IGNORE_FILE,  # imgforge's: the engine leaves the Dockerfile out of every COPY
        DOCKERFILE,
        "app",
        "app/data",
        "app/data/keep.log",
        "app/data/table.csv",
        "app/main.py",
        "requirements.txt",
    ]
    assert SECRET.encode() not in buffer.getvalue()
    for info in members(buffer).values():
        assert (info.uid, info.gid, info.mtime) == (0, 0, 0)
    staged = members(staging_context(recipe))
    assert sorted(staged) == [
        ".imgforge:staging/0",
        ".imgforge:staging/0/data",
        ".imgforge:staging/0/data/keep.log",
        ".imgforge:staging/0/data/table.csv",
        ".imgforge:staging/0/main.py",
        "tmp/imgforge-requirements-0.txt",
    ]


@pytest.mark.parametrize(
    "target", ["secret.txt", "../secret.txt", "/etc", "main.py", "data", "."], ids=repr
)
def test_a_symlink_inside_a_copied_directory_is_refused(
    tmp_path: Path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Docker's COPY keeps a link inside a copied directory as a link; Apptainer's %files
    (cp -fLr) copies what it points to: the two images could never agree."""
    path = recipe_dir(tmp_path, '"app/" = "/opt/app/"\n')
    os.symlink(target, tmp_path / "app" / "link")
    code, _, err = run_main(["render", str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    line = one_error_line(err)
    assert f"{path}: files.app/: 'app/link' is a symbolic link inside a copied directory" in line


@pytest.mark.parametrize(
    "layout, files, key",
    [
        ("absolute", '"link" = "/opt/x"\n', "files.link"),
        ("relative", '"link" = "/opt/x"\n', "files.link"),
        ("dir", '"link/" = "/opt/x/"\n', "files.link/"),
        ("through-dir", '"linkdir/inner.txt" = "/opt/x"\n', "files.linkdir/inner.txt"),
        ("chain", '"hop1" = "/opt/x"\n', "files.hop1"),
        ("requirements", "", "pip.requirements[0]"),
    ],
)
def test_sources_leading_outside_the_recipe_directory_are_refused(
    tmp_path: Path, layout: str, files: str, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "recipes"
    outside = write(tmp_path / "outside" / "inner.txt", SECRET)
    extra = '[pip]\nrequirements = ["link"]\n' if layout == "requirements" else ""
    path = recipe_dir(root, files, extra=extra)
    targets = {
        "absolute": ("link", outside),
        "relative": ("link", Path("../outside/inner.txt")),
        "dir": ("link", outside.parent),
        "through-dir": ("linkdir", outside.parent),
        "chain": ("hop1", Path("hop2")),
        "requirements": ("link", outside),
    }
    name, target = targets[layout]
    os.symlink(target, root / name)
    if layout == "chain":
        os.symlink("../outside/inner.txt", root / "hop2")
    code, _, err = run_main(["render", str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    line = one_error_line(err)
    assert f"{path}: {key}: " in line and "outside the recipe's directory" in line, line


def test_a_source_excluded_by_dockerignore_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recipe_dir(tmp_path, '"app/debug.log" = "/opt/debug.log"\n')
    code, _, err = run_main(["render", str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    line = one_error_line(err)
    assert f"{path}: files.app/debug.log: " in line and ".dockerignore" in line, line


# ------------------------------------------------------------------ real builds


def exported(client: docker.DockerClient, ref: str) -> tuple[set[str], bytes]:
    """(member names, all bytes) of ``docker export`` of a container of ``ref``."""
    data = export_tar(client, ref)
    return {m.name.strip("./").rstrip("/") for m in tar_members(data)}, data


@pytest.fixture(scope="module")
def images(
    tmp_path_factory: pytest.TempPathFactory, mini_image: str, client: docker.DockerClient
) -> Iterator[dict[str, str]]:
    """The same recipe, a secret beside it, built with each strategy: strategy -> image."""
    built = {}
    for strategy in ("dockerfile", "commit"):
        root = tmp_path_factory.mktemp(f"files-{strategy}")
        name = f"rel-files-{strategy}"
        path = recipe_dir(root, '"app/" = "/opt/app/"\n', name=name)
        assert main(build_argv(path, root / "out", "--strategy", strategy)) == 0
        built[strategy] = f"{name}:latest"
    yield built


@pytest.mark.integration
@pytest.mark.parametrize("strategy", ["dockerfile", "commit"])
def test_the_image_has_the_named_files_and_nothing_else_from_the_directory(
    images: dict[str, str], client: docker.DockerClient, strategy: str
) -> None:
    names, data = exported(client, images[strategy])
    assert {"opt/app/main.py", "opt/app/data/table.csv", "opt/app/data/keep.log"} <= names
    assert not {"opt/app/debug.log", "opt/app/data/deep.log"} & names  # .dockerignore
    assert not [n for n in names if "secret" in n or ".git" in n.split("/") or "notes" in n]
    assert SECRET.encode() not in data
    assert not [n for n in names if n.startswith("tmp/imgforge-")]  # staging removed
