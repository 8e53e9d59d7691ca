"""The recipe DAG (networkx): resolve ``recipe:`` bases, find cycles, order builds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

from imgforge.errors import GraphError, RecipeError
from imgforge.patterns import recipe_files
from imgforge.recipes.model import Recipe, load


@dataclass(frozen=True)
class RecipeGraph:
    """Recipes by name plus the DAG of ``recipe:`` edges (parent -> child)."""

    recipes: dict[str, Recipe]
    dag: nx.DiGraph

    def order(self, names: Iterable[str] | None = None) -> list[Recipe]:
        """Recipes in build order (parents first), ties broken by name."""
        selected = self.dag if names is None else self.dag.subgraph(names)
        return [self.recipes[n] for n in nx.lexicographical_topological_sort(selected)]

    def with_ancestors(self, targets: Iterable[str]) -> list[Recipe]:
        """The targets and everything they build on, in build order."""
        wanted: set[str] = set()
        for name in targets:
            wanted |= {name} | nx.ancestors(self.dag, name)
        return self.order(wanted)

    def parents(self, name: str) -> list[str]:
        return sorted(self.dag.predecessors(name))

    def children(self, name: str) -> list[str]:
        return sorted(self.dag.successors(name))


def load_dir(directory: Path) -> dict[str, Recipe]:
    """Load every recipe in ``directory``; duplicate names are an error."""
    recipes: dict[str, Recipe] = {}
    for path in recipe_files(directory):
        recipe = load(path)
        if recipe.name in recipes:
            other = recipes[recipe.name].path
            raise RecipeError(path, "name", f"{recipe.name!r} is also the name of {other}")
        recipes[recipe.name] = recipe
    return recipes


def _merge(into: dict[str, Recipe], recipes: dict[str, Recipe]) -> None:
    for name, recipe in recipes.items():
        known = into.get(name)
        if known is not None and known.path != recipe.path:
            raise RecipeError(recipe.path, "name", f"{name!r} is also the name of {known.path}")
        into[name] = recipe


def build_graph(recipes: dict[str, Recipe]) -> RecipeGraph:
    """Make the DAG; a missing parent or a cycle is a GraphError."""
    dag: nx.DiGraph = nx.DiGraph()
    dag.add_nodes_from(recipes)
    for recipe in recipes.values():
        parent = recipe.base_recipe
        if parent is None:
            continue
        if parent not in recipes:
            raise RecipeError(
                recipe.path, "base", f"no recipe named {parent!r} in {recipe.directory}"
            )
        dag.add_edge(parent, recipe.name)
    try:
        cycle = nx.find_cycle(dag)
    except nx.NetworkXNoCycle:
        return RecipeGraph(recipes=recipes, dag=dag)
    names = [edge[0] for edge in cycle] + [cycle[0][0]]
    first = recipes[cycle[0][1]]
    raise GraphError(f"{first.path}: base: dependency cycle: {' -> '.join(names)}")


def load_targets(paths: Iterable[Path]) -> tuple[RecipeGraph, list[str]]:
    """Load the recipe files named on the command line and their directories."""
    recipes: dict[str, Recipe] = {}
    targets: list[str] = []
    loaded_dirs: set[Path] = set()
    for raw in paths:
        path = Path(raw).absolute()
        if not path.is_file():
            raise RecipeError(path, "", "no such recipe file")
        target = load(path)
        if path.parent not in loaded_dirs:
            loaded_dirs.add(path.parent)
            _merge(recipes, load_dir(path.parent))
        _merge(recipes, {target.name: target})
        targets.append(target.name)
    return build_graph(recipes), targets


def load_all(directory: Path) -> RecipeGraph:
    """The graph of every recipe in a directory."""
    return build_graph(load_dir(Path(directory).absolute()))
