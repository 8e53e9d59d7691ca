"""The few facts of a recipe file the no-op fast path needs (name, base, strategy, the
files it reads), read from its TOML without the schema (light: nothing heavy imported).
Anything not of the expected shape raises ValueError: the full path then decides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgforge.patterns import base_recipe_of
from imgforge.recipes.inputfile import read_toml

DEFAULT_STRATEGY = "dockerfile"


@dataclass(frozen=True)
class RecipeHeader:
    """A recipe's name, base, strategy and the paths it reads, as its file says them."""

    path: Path
    name: str
    base: str
    strategy: str
    files: tuple[str, ...]
    pip_requirements: tuple[str, ...]

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def base_recipe(self) -> str | None:
        return base_recipe_of(self.base)


def _table(data: dict[str, object], key: str) -> dict[str, object]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ValueError(f"{key} is not a table")
    return value


def _words(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} is not a list of strings")
    return tuple(value)


def read_header(path: Path) -> RecipeHeader:
    """The header of the recipe at ``path`` (the file name is the default name)."""
    data = read_toml(path)
    name = data.get("name", path.stem)
    base = data.get("base", "")
    strategy = _table(data, "build").get("strategy", DEFAULT_STRATEGY)
    if not isinstance(name, str) or not isinstance(base, str) or not isinstance(strategy, str):
        raise ValueError(f"{path}: name, base or build.strategy is not a string")
    return RecipeHeader(
        path=path,
        name=name,
        base=base,
        strategy=strategy,
        files=_words(list(_table(data, "files")), "files"),
        pip_requirements=_words(_table(data, "pip").get("requirements") or [], "pip.requirements"),
    )
