"""The architecture's rules: the import contracts in pyproject.toml, no import cycle between
modules, and the size limits of modules and functions (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import grimp
import networkx as nx
import pytest
from importlinter.cli import lint_imports

REPO = Path(__file__).parents[2]
PACKAGE = REPO / "imgforge"
PYPROJECT = REPO / "pyproject.toml"
MODULE_LINES = 300
FUNCTION_LINES = 50
# The argument parser reads best as one declaration per option.
LONG_FUNCTIONS_ALLOWED = {("commands/parser.py", "make_parser"), ("commands/parser.py", "_common")}

def _contract_ids() -> list[str]:
    config = tomllib.loads(PYPROJECT.read_text())
    return [c["id"] for c in config["tool"]["importlinter"]["contracts"]]


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


@pytest.mark.parametrize("contract", _contract_ids())
def test_import_contract(contract: str) -> None:
    """One contract of [tool.importlinter], as `lint-imports --contract ID` checks it
    (its report, naming every import that breaks it, is in the captured output)."""
    code = lint_imports(
        config_filename=str(PYPROJECT), limit_to_contracts=(contract,), no_cache=True
    )
    assert code == 0, f"lint-imports --contract {contract} failed"


def test_contracts_cover_every_part() -> None:
    """Every top-level module and package of imgforge has its place in the layers."""
    config = tomllib.loads(PYPROJECT.read_text())
    layers = next(c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "layers")
    placed = {
        name.strip().removeprefix("imgforge.")
        for layer in layers["layers"]
        for name in layer.replace("|", ":").split(":")
    }
    parts = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.parent.name for p in PACKAGE.glob("*/__init__.py")
    }
    assert parts - {"__init__", "__main__"} == placed


def test_no_import_cycle_between_modules() -> None:
    """No module reaches itself through its imports (type-only imports count: they are
    dependencies all the same)."""
    graph = grimp.build_graph("imgforge", cache_dir=None)
    edges = nx.DiGraph(
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
    )
    cycles = [sorted(c) for c in nx.strongly_connected_components(edges) if len(c) > 1]
    assert sorted(cycles) == []


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=_name(p)) for p in _modules()],
)
def test_module_size(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MODULE_LINES, f"{_name(path)} has {lines} lines"


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=_name(p)) for p in _modules()],
)
def test_function_sizes(path: Path) -> None:
    tree = ast.parse(path.read_text())
    too_long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > FUNCTION_LINES
        and (_name(path), node.name) not in LONG_FUNCTIONS_ALLOWED
    ]
    assert too_long == []


def test_test_files_have_unique_names() -> None:
    """pytest imports test files by their base name (no packages under tests/): two files
    of one name stop the whole run at collection."""
    names = [p.name for p in (REPO / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
