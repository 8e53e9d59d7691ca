"""Render the recipe DAG: text, Graphviz dot, Mermaid, and SVG/PNG through Graphviz."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from imgforge.errors import BuildError, EngineError
from imgforge.recipes.graph import RecipeGraph
from imgforge.render import make_environment

GRAPH_TEMPLATES = {"text": "graph.txt.j2", "dot": "graph.dot.j2", "mermaid": "graph.mmd.j2"}
DRAWN = ("svg", "png")
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


def render_graph(graph: RecipeGraph, fmt: str, status: Mapping[str, str] | None = None) -> bytes:
    """The DAG in ``fmt``; each node shows its image, base and status."""
    values = graph_context(graph, status or {})
    if fmt in GRAPH_TEMPLATES:
        text = make_environment().get_template(GRAPH_TEMPLATES[fmt]).render(values)
        return text.encode("utf-8")
    dot = make_environment().get_template(GRAPH_TEMPLATES["dot"]).render(values)
    return draw(dot, fmt)


def draw(dot: str, fmt: str) -> bytes:
    """SVG or PNG from dot text, by Graphviz."""
    tool = shutil.which("dot")
    if tool is None:
        raise EngineError(f"--format {fmt} needs Graphviz: apt-get install graphviz")
    done = subprocess.run([tool, f"-T{fmt}"], input=dot.encode(), capture_output=True)
    if done.returncode != 0:
        raise BuildError(f"graphviz failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout
