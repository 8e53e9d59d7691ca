"""Draw the recipe DAG as SVG or PNG by running Graphviz on its dot text."""

from __future__ import annotations

import shutil
import subprocess

from imgforge.errors import BuildError, EngineError

DRAWN = ("svg", "png")


def draw(dot: str, fmt: str) -> bytes:
    """SVG or PNG from dot text, by Graphviz."""
    tool = shutil.which("dot")
    if tool is None:
        raise EngineError(f"--format {fmt} needs Graphviz: apt-get install graphviz")
    done = subprocess.run([tool, f"-T{fmt}"], input=dot.encode(), capture_output=True)
    if done.returncode != 0:
        raise BuildError(f"graphviz failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout
