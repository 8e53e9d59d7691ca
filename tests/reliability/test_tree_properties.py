"""Invariants of the one safe walk over generated hostile directory trees.

For any tree beside a recipe that copies ``app/``: the only outcomes are success or exit 2
with one line; on success the build context holds exactly the expected files (computed
from the generated tree, not by imgforge), and the three build paths (the Dockerfile's
context, the commit strategy's staging tar, the .def's ``%files`` lines as ``cp -r`` would
copy them) ship the same file set.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from reliability_support import MINI, one_error_line, run_main, write

from imgforge.engine.context import DOCKERFILE, build_context, staging_context
from imgforge.errors import RecipeError
from imgforge.recipes.copies import STAGING, copy_steps, def_files
from imgforge.recipes.fingerprint import input_paths, input_stats, recipe_hash
from imgforge.recipes.ignore import IGNORE_FILE
from imgforge.recipes.model import load

NAME = st.sampled_from(["a", "b", "c.log", "d.txt", "e f", "ü", "-x", "a:b", ".hidden"])
KIND = st.sampled_from(
    ["file", "file", "file", "dir", "link-in", "link-out", "link-up", "link-loop", "dangling",
     "fifo", "badname", "zero"]
)
HAZARDS = {"link-in", "link-out", "link-up", "link-loop", "dangling", "fifo", "badname", "zero"}


def make_tree(root: Path, spec: list[tuple[list[str], str]]) -> set[str]:
    """Create ``spec`` below ``root/app``; return the kinds actually created."""
    made: set[str] = set()
    app = root / "app"
    app.mkdir()
    write(app / "base.txt", "base\n")
    for parts, kind in spec:
        path = app.joinpath(*parts)
        if any(p.exists() and not p.is_dir() or p.is_symlink() for p in path.parents):
            continue
        if os.path.lexists(path):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        create(path, kind, root)
        made.add(kind)
    return made


def create(path: Path, kind: str, root: Path) -> None:
    links = {
        "link-in": str(root / "app" / "base.txt"), "link-out": "/etc/hostname",
        "link-up": "../" * 8 + "etc", "link-loop": path.name, "dangling": "nowhere",
        "zero": "/dev/zero",
    }
    if kind == "file":
        write(path, f"{path.name}\n")
    elif kind == "dir":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "badname":
        with open(os.fsencode(path.parent) + b"/bad-\xff", "wb") as handle:
            handle.write(b"x")
    else:
        os.symlink(links[kind], path)


def expected_files(root: Path, ignored: set[str]) -> set[str]:
    """Regular files below app/ minus the .dockerignore'd top-level names (os.walk)."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root / "app"):
        relative = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if f"{relative}/{d}" not in ignored]
        found |= {f"{relative}/{f}" for f in filenames if f"{relative}/{f}" not in ignored}
    return found


def tar_files(buffer: io.BytesIO) -> set[str]:
    with tarfile.open(fileobj=buffer) as tar:
        return {m.name for m in tar.getmembers() if m.isfile()}


STAGE = f"{STAGING}/0"  # where the one [files] source of these recipes is staged


def def_file_set(root: Path, lines: list[tuple[str, str]]) -> set[str]:
    """What Apptainer's ``cp -fLr SOURCE STAGE`` puts at each stage, as context paths."""
    shipped = set()
    for source, stage in lines:
        base = root / source
        if base.is_file():
            shipped.add(stage)
            continue
        for dirpath, _, filenames in os.walk(base):
            below = os.path.relpath(dirpath, base)
            shipped |= {os.path.normpath(f"{stage}/{below}/{f}") for f in filenames}
    return {s.replace(STAGE, "app", 1) for s in shipped}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    spec=st.lists(st.tuples(st.lists(NAME, min_size=1, max_size=4), KIND), max_size=10),
    ignored=st.sets(NAME, max_size=2),
)
def test_hostile_trees_are_refused_or_shipped_alike(
    tmp_path_factory: pytest.TempPathFactory,
    spec: list[tuple[list[str], str]],
    ignored: set[str],
) -> None:
    root = tmp_path_factory.mktemp("tree")
    made = make_tree(root, spec)
    patterns = {f"app/{name}" for name in ignored}
    write(root / ".dockerignore", "".join(f"{p}\n" for p in sorted(patterns)))
    path = write(root / "t.toml", f'name = "t"\nbase = "{MINI}"\n[files]\n"app/" = "/opt/app/"\n')
    try:
        recipe = load(path)
        context = tar_files(build_context(recipe, "FROM scratch\n"))
        staged = tar_files(staging_context(recipe))
        lines = def_files(recipe, copy_steps(recipe))
        recipe_hash(recipe)
        input_stats(recipe.directory, input_paths(recipe))
    except RecipeError as exc:
        assert str(exc).startswith(f"{path}: files.app/: ") and "\n" not in str(exc)
        assert made & HAZARDS or "%files" in str(exc) or "empty after" in str(exc), str(exc)
        event("refused")
        return
    event("shipped")
    assert not made & HAZARDS  # refused wherever they are, .dockerignore'd or not
    expected = expected_files(root, patterns)
    # Beside the recipe's files: imgforge's Dockerfile, and the .dockerignore that keeps
    # the engine from copying it (context.engine_ignore_file).
    assert context - {DOCKERFILE, IGNORE_FILE} == expected
    assert {s.replace(STAGE.lstrip("/"), "app", 1) for s in staged} == expected
    assert def_file_set(root, lines) == expected


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "zero", "big"])
def test_a_hostile_recipe_file_beside_the_recipe_is_one_line(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A FIFO, a /dev/zero link or a huge file named like a recipe: never a hang or an
    unbounded read, one line naming it."""
    good = write(tmp_path / "good.toml", f'name = "good"\nbase = "{MINI}"\n')
    evil = tmp_path / "evil.toml"
    if kind == "fifo":
        os.mkfifo(evil)
    elif kind == "zero":
        os.symlink("/dev/zero", evil)
    else:
        write(evil, "# " + "x" * (2 << 20) + "\n")
    code, _, err = run_main(["plan", str(good), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert one_error_line(err).startswith(f"imgforge: error: {evil}: ")


def requirements_recipe(directory: Path) -> Path:
    """A recipe in ``directory`` whose one requirements file is ``req.txt``."""
    text = f'name = "t"\nbase = "{MINI}"\n[pip]\nrequirements = ["req.txt"]\n'
    return write(directory / "t.toml", text)


@pytest.mark.timeout(60)
def test_a_fifo_requirements_file_is_refused_unopened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(tmp_path / "req.txt")
    path = requirements_recipe(tmp_path)
    code, _, err = run_main(["render", str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert f"{path}: pip.requirements[0]: 'req.txt' is a FIFO" in one_error_line(err)


def test_a_very_deep_tree_is_walked_without_recursion(tmp_path: Path) -> None:
    deep = tmp_path / "app"
    deep.mkdir()
    for _ in range(1200):  # os.makedirs recurses itself
        deep = deep / "d"
        deep.mkdir()
    write(deep / "leaf.txt", "leaf\n")
    path = write(tmp_path / "t.toml", f'name = "t"\nbase = "{MINI}"\n[files]\n"app/" = "/o/"\n')
    try:
        names = tar_files(build_context(load(path), ""))
        assert any(name.endswith("/leaf.txt") for name in names)
    finally:
        (deep / "leaf.txt").unlink()
        while deep != tmp_path:  # shutil.rmtree (pytest's cleanup) recurses per level
            deep.rmdir()
            deep = deep.parent


def test_a_non_utf8_name_is_refused_readably(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "app" / "ok.txt", "x\n")
    with open(os.fsencode(tmp_path / "app") + b"/caf\xe9", "wb") as handle:
        handle.write(b"x")
    path = write(tmp_path / "t.toml", f'name = "t"\nbase = "{MINI}"\n[files]\n"app/" = "/o/"\n')
    code, _, err = run_main(["render", str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    line = one_error_line(err)
    assert f"{path}: files.app/: the file name b'caf\\xe9' is not valid UTF-8" in line


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-r other.txt\n", "line 1 includes another requirements file"),
        ("six\n--constraint c.txt\n", "line 2 includes a constraints file"),
        ("--index-url https://evil.example/simple\n", "line 1 sets the package index"),
        ("--ind https://evil.example/simple\n", "line 1 sets the package index"),
        ("six \\\n  -f /tmp\n", "line 1 adds a place pip downloads from"),
        ("-e git+https://example.org/x.git#egg=x\n", "line 1 installs an editable source tree"),
        ("numpy==${VERSION}\n", "line 1 uses an environment variable"),
        ("--trusted-host pypi.org\n", "line 1 turns off TLS checks"),
    ],
)
def test_requirements_that_make_pip_read_elsewhere_are_refused(
    tmp_path: Path, text: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "req.txt", text)
    path = requirements_recipe(tmp_path)
    code, _, err = run_main(["render", str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert f"{path}: pip.requirements[0]: 'req.txt' {reason}" in one_error_line(err)


def test_requirements_options_that_read_nothing_are_kept(tmp_path: Path) -> None:
    write(tmp_path / "req.txt", "# pins\nsix==1.16 --hash=sha256:" + "0" * 64 + "\n--pre\n")
    path = requirements_recipe(tmp_path)
    assert load(path).pip_requirements == ("req.txt",)


def test_a_requirements_file_over_the_size_limit_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "req.txt", "six\n" * (300 * 1024))
    path = requirements_recipe(tmp_path)
    code, _, err = run_main(["render", str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert "is larger than 1048576 bytes" in one_error_line(err)
