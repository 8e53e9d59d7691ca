"""Golden files: each ``tests/golden/<case>/`` renders to exactly its ``expected/`` tree.

A case holds ``recipes/`` (recipe files and the files they copy), ``bases.json`` (``docker
image inspect`` output, ``Config`` and ``Architecture``, for each image-reference base; no
engine is used) and ``expected/NAME/{Dockerfile,NAME.def,imgforge-env.sh}``. The case is
copied to a temporary directory and rendered with ``--out`` at ``<copy>/build``, so the
relative paths in the expected files do not depend on where the tests run. Recipe hashes
are fixed (``0`` * 64) and the imgforge version is pinned to ``GOLDEN_VERSION``, so only a
change in rendering changes the expected files.

To regenerate the expected files after a deliberate change in rendering, run

    IMGFORGE_REGEN_GOLDEN=1 python -m pytest tests/golden

and review the diff (``git diff tests/golden``) before committing it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from imgforge.build.sources import write_sources
from imgforge.recipes.image import ImageConfig
from imgforge.recipes.jobs import BuildJob
from imgforge.render.job import render_sources

HERE = Path(__file__).parent
CASES = sorted(path.name for path in HERE.iterdir() if (path / "recipes").is_dir())
GOLDEN_VERSION = "0.0.0+golden"
REGENERATE = os.environ.get("IMGFORGE_REGEN_GOLDEN") == "1"


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root``: relative path -> text."""
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def pinned_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin ``__version__`` wherever imgforge modules imported it."""
    for name, module in list(sys.modules.items()):
        if (name == "imgforge" or name.startswith("imgforge.")) and hasattr(module, "__version__"):
            monkeypatch.setattr(module, "__version__", GOLDEN_VERSION)


def test_there_are_cases() -> None:
    assert len(CASES) >= 3


@pytest.mark.usefixtures("pinned_version")
@pytest.mark.parametrize("case", CASES)
def test_golden(
    case: str, tmp_path: Path, jobs_for: Callable[..., list[BuildJob]]
) -> None:
    source = HERE / case
    copy = tmp_path / case
    shutil.copytree(source / "recipes", copy / "recipes", symlinks=True)
    bases = {
        ref: ImageConfig.from_inspect(inspect)
        for ref, inspect in json.loads((source / "bases.json").read_text()).items()
    }
    for job in jobs_for(copy / "recipes", bases, out=copy / "build"):
        write_sources(job, render_sources(job))
    rendered = tree(copy / "build")
    expected_dir = source / "expected"
    if REGENERATE:
        shutil.rmtree(expected_dir, ignore_errors=True)
        shutil.copytree(copy / "build", expected_dir)
        for path in expected_dir.rglob("*"):
            if path.is_file():
                path.chmod(0o644)
    expected = tree(expected_dir)
    assert sorted(rendered) == sorted(expected), "rendered files differ from expected/"
    for name, text in expected.items():
        assert rendered[name] == text, f"{case}/expected/{name} differs"
