"""imgforge graph: text, dot, mermaid, and SVG/PNG drawn by Graphviz that really show the DAG."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from imgforge.cli import main

REPO = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")


def graph(tmp_path: Path, fmt: str) -> bytes:
    output = tmp_path / f"graph.{fmt}"
    argv = ["graph", str(REPO / "recipes"), "--format", fmt, "-o", str(output)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    return output.read_bytes()


def test_text_lists_every_recipe_with_base_and_status(tmp_path: Path) -> None:
    text = graph(tmp_path, "text").decode()
    assert "vision:latest  <-  recipe:common  [unknown]" in text
    assert "myproj:1.0  <-  nvcr.io/nvidia/pytorch:24.01-py3  [unknown]" in text


def test_mermaid_has_nodes_and_edges(tmp_path: Path) -> None:
    text = graph(tmp_path, "mermaid").decode()
    assert text.startswith("graph LR\n")
    assert "n_common --> n_vision" in text and "n_common --> n_nlp" in text


def test_a_failed_attempt_shows_as_failed(tmp_path: Path) -> None:
    (tmp_path / "out" / "nlp").mkdir(parents=True)
    (tmp_path / "out" / "nlp" / "build.log").write_text("ERROR: boom\n")
    assert "nlp:latest  <-  recipe:common  [failed]" in graph(tmp_path, "text").decode()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")
def test_svg_really_shows_the_nodes_and_edges(tmp_path: Path) -> None:
    root = ET.fromstring(graph(tmp_path, "svg"))
    titles = {t.text for t in root.iter(f"{SVG}title")}
    assert {"common", "myproj", "nlp", "vision"} <= titles
    assert {"common->nlp", "common->vision"} <= titles
    labels = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "vision:latest" in labels and "recipe:common" in labels


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")
def test_png_is_a_png(tmp_path: Path) -> None:
    assert graph(tmp_path, "png").startswith(b"\x89PNG\r\n\x1a\n")
