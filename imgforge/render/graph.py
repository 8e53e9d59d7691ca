"""Render the recipe DAG as text or Graphviz dot."""

from __future__ import annotations

from typing import Any

from imgforge.graph import RecipeGraph
from imgforge.render import make_environment

GRAPH_TEMPLATES = {"text": "graph.txt.j2", "dot": "graph.dot.j2"}


def graph_context(graph: RecipeGraph) -> dict[str, Any]:
    nodes = [
        {"name": r.name, "image": r.image, "base": r.base, "children": graph.children(r.name)}
        for r in graph.order()
    ]
    return {"nodes": nodes, "edges": sorted(graph.dag.edges())}


def render_graph(graph: RecipeGraph, fmt: str) -> str:
    template = make_environment().get_template(GRAPH_TEMPLATES[fmt])
    return template.render(graph_context(graph))
