"""imgforge bake: a docker-bake.json whose targets and contexts are the recipe DAG."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from imgforge.cli import main
from imgforge.recipes.graph import load_all

REPO = Path(__file__).resolve().parents[2]


def test_bake_file_expresses_the_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    recipes = tmp_path / "recipes"
    shutil.copytree(REPO / "recipes", recipes)
    output = tmp_path / "docker-bake.json"
    targets = [str(recipes / n) for n in ("myproj.toml", "vision.toml", "nlp.toml")]
    assert main(["bake", *targets, "-o", str(output), "--out", str(tmp_path / "build")]) == 0
    bake = json.loads(output.read_text())
    graph = load_all(recipes)

    assert bake["group"]["default"]["targets"] == sorted(graph.recipes)
    for name, target in bake["target"].items():
        recipe = graph.recipes[name]
        context = (tmp_path / target["context"]).resolve()
        assert context == recipe.directory.resolve()
        dockerfile = context / target["dockerfile"]
        assert dockerfile.is_file()
        assert target["tags"] == [recipe.image]
        edges = {
            (ref.removeprefix("target:"), name) for ref in target.get("contexts", {}).values()
        }
        assert edges == {(p, name) for p in graph.parents(name)}
        for key in target.get("contexts", {}):
            assert f"FROM {key}\n" in dockerfile.read_text()
