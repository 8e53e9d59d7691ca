"""imgforge.graph: the recipe DAG from recipe directories (order, selection, errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgforge.errors import GraphError, RecipeError
from imgforge.recipes.graph import load_all, load_dir, load_targets
from imgforge.recipes.model import Recipe

NGC = "nvcr.io/nvidia/pytorch:24.01-py3"


def write(directory: Path, **recipes: str) -> Path:
    """Write one recipe file per keyword: ``stem=base``."""
    directory.mkdir(exist_ok=True)
    for stem, base in recipes.items():
        (directory / f"{stem}.toml").write_text(f'base = "{base}"\n')
    return directory


def names(recipes: list[Recipe]) -> list[str]:
    return [recipe.name for recipe in recipes]


@pytest.fixture
def three_levels(tmp_path: Path) -> Path:
    # Names chosen so that alphabetical order contradicts build order.
    return write(
        tmp_path / "recipes",
        zeta=NGC,
        mid="recipe:zeta",
        alpha="recipe:mid",
        beta="recipe:zeta",
        other="ubuntu:22.04",
    )


def test_order_parents_first(three_levels: Path) -> None:
    graph = load_all(three_levels)
    assert names(graph.order()) == ["other", "zeta", "beta", "mid", "alpha"]
    assert graph.parents("alpha") == ["mid"]
    assert graph.children("zeta") == ["beta", "mid"]
    assert graph.parents("zeta") == []


def test_with_ancestors(three_levels: Path) -> None:
    graph = load_all(three_levels)
    assert names(graph.with_ancestors(["alpha"])) == ["zeta", "mid", "alpha"]
    assert names(graph.with_ancestors(["mid"])) == ["zeta", "mid"]
    assert names(graph.with_ancestors(["beta", "other"])) == ["other", "zeta", "beta"]
    assert names(graph.with_ancestors(["zeta"])) == ["zeta"]


def test_load_targets_brings_the_directory(three_levels: Path) -> None:
    graph, targets = load_targets([three_levels / "alpha.toml"])
    assert targets == ["alpha"]
    assert names(graph.with_ancestors(targets)) == ["zeta", "mid", "alpha"]


def test_order_is_independent_of_file_order(tmp_path: Path) -> None:
    one = load_all(write(tmp_path / "a", c="recipe:b", b="recipe:a", a=NGC))
    two = load_all(write(tmp_path / "b", a=NGC, b="recipe:a", c="recipe:b"))
    assert names(one.order()) == names(two.order()) == ["a", "b", "c"]


def test_missing_dependency(tmp_path: Path) -> None:
    directory = write(tmp_path / "recipes", app="recipe:common")
    with pytest.raises(RecipeError) as info:
        load_all(directory)
    path = directory / "app.toml"
    assert str(info.value) == f"{path}: base: no recipe named 'common' in {directory}"
    assert info.value.exit_code == 2


def test_cycle(tmp_path: Path) -> None:
    directory = write(tmp_path / "recipes", a="recipe:b", b="recipe:a", c=NGC)
    with pytest.raises(GraphError) as info:
        load_all(directory)
    assert str(info.value) == f"{directory / 'b.toml'}: base: dependency cycle: a -> b -> a"
    assert info.value.exit_code == 2


def test_longer_cycle_names_every_member(tmp_path: Path) -> None:
    directory = write(tmp_path / "recipes", a="recipe:c", b="recipe:a", c="recipe:b")
    with pytest.raises(GraphError) as info:
        load_all(directory)
    assert str(info.value) == f"{directory / 'b.toml'}: base: dependency cycle: a -> b -> c -> a"


def test_self_cycle(tmp_path: Path) -> None:
    directory = write(tmp_path / "recipes", a="recipe:a")
    with pytest.raises(GraphError) as info:
        load_all(directory)
    assert str(info.value) == f"{directory / 'a.toml'}: base: dependency cycle: a -> a"


def test_duplicate_names(tmp_path: Path) -> None:
    directory = tmp_path / "recipes"
    directory.mkdir()
    (directory / "a.toml").write_text(f'name = "same"\nbase = "{NGC}"\n')
    (directory / "b.toml").write_text(f'name = "same"\nbase = "{NGC}"\n')
    with pytest.raises(RecipeError) as info:
        load_dir(directory)
    assert str(info.value) == (
        f"{directory / 'b.toml'}: name: 'same' is also the name of {directory / 'a.toml'}"
    )


def test_duplicate_names_across_directories(tmp_path: Path) -> None:
    first = write(tmp_path / "one", proj=NGC)
    second = write(tmp_path / "two", proj=NGC)
    with pytest.raises(RecipeError) as info:
        load_targets([first / "proj.toml", second / "proj.toml"])
    assert str(info.value) == (
        f"{second / 'proj.toml'}: name: 'proj' is also the name of {first / 'proj.toml'}"
    )


def test_project_file_is_not_a_recipe(tmp_path: Path) -> None:
    directory = write(tmp_path / "recipes", proj=NGC)
    (directory / "imgforge.toml").write_text("[base_map]\n")
    assert names(load_all(directory).order()) == ["proj"]


def test_bad_recipe_in_directory_is_reported(tmp_path: Path) -> None:
    directory = write(tmp_path / "recipes", proj=NGC)
    (directory / "broken.toml").write_text(f'base = "{NGC}"\ntag = 1\n')
    with pytest.raises(RecipeError) as info:
        load_all(directory)
    assert str(info.value) == f"{directory / 'broken.toml'}: tag: expected a string, got int"


def test_missing_target_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as info:
        load_targets([tmp_path / "nope.toml"])
    assert str(info.value) == f"{tmp_path / 'nope.toml'}: no such recipe file"
