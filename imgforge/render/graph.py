"""Render the recipe DAG as text, Graphviz dot or Mermaid (SVG/PNG: commands/graphviz.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imgforge.recipes.graph import RecipeGraph
from imgforge.render import make_environment

GRAPH_TEMPLATES = {"text": "graph.txt.j2", "dot": "graph.dot.j2", "mermaid": "graph.mmd.j2"}
# Fill colour of a node by its status.
COLOURS = {"up to date": "#c8e6c9", "stale": "#fff3c4", "failed": "#ffcdd2", "unknown": "#eeeeee"}


def graph_context(graph: RecipeGraph, status: Mapping[str, str]) -> dict[str, Any]:
    nodes = [
        {
            "name": r.name,
            "image": r.image,
            "base": r.base,
            "status": status.get(r.name, "unknown"),
            "colour": COLOURS[status.get(r.name, "unknown")],
        }
        for r in graph.order()
    ]
    return {"nodes": nodes, "edges": sorted(graph.dag.edges())}


def render_graph(graph: RecipeGraph, fmt: str, status: Mapping[str, str] | None = None) -> str:
    """The DAG in ``fmt`` (text, dot or mermaid); each node shows its image, base and status."""
    values = graph_context(graph, status or {})
    return make_environment().get_template(GRAPH_TEMPLATES[fmt]).render(values)
