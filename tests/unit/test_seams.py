"""The seams between the parts hold: Singularity-image code reads an image source and
never imports the engine; the build path reaches Docker only through ``engine/``."""

from __future__ import annotations

import ast
from pathlib import Path

from fakes import ROOTFS, FakeEngine

import imgforge
from imgforge.engine.image import EngineImage
from imgforge.recipes.image import ImageConfig

PACKAGE = Path(imgforge.__file__).parent


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at any level (TYPE_CHECKING blocks included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_sif_module_imports_the_engine() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(n for n in imported(path) if "engine" in n)
        for path in sorted((PACKAGE / "sif").rglob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_only_the_engine_package_talks_to_the_docker_sdk() -> None:
    outside = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.parent.name != "engine" and any(n.split(".")[0] == "docker" for n in imported(path))
    }
    assert outside == set()


def test_an_engine_image_is_read_through_the_engine(tmp_path: Path) -> None:
    engine = FakeEngine()
    image_id = engine.add_image("alpine:3.19", env=["A=1"])
    source = EngineImage(engine, image_id, ImageConfig(env=("A=1",)))
    with source.filesystem() as stream:
        assert stream.read() == ROOTFS
    assert source.size() == len(ROOTFS)
    source.docker_archive(tmp_path / "a.tar")
    assert engine.saved == [(image_id, tmp_path / "a.tar")]
    assert EngineImage(engine, "sha256:" + "0" * 64, ImageConfig()).size() is None
