"""The few facts of a recipe file the no-op fast path needs (name, tag, base, strategy, the
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
    tag: str
    base: str
    strategy: str
    files: tuple[str, ...]
    pip_requirements: tuple[str, ...]
    outputs: tuple[str, ...] | None = None

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def image(self) -> str:
        """NAME:TAG, as the recipe model says it."""
        return f"{self.name}:{self.tag}"

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


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a string")
    return value


def read_header(path: Path) -> RecipeHeader:
    """The header of the recipe at ``path`` (the file name is the default name)."""
    data = read_toml(path)
    return RecipeHeader(
        path=path,
        name=_text(data.get("name", path.stem), "name"),
        tag=_text(data.get("tag", "latest"), "tag"),
        base=_text(data.get("base", ""), "base"),
        strategy=_text(_table(data, "build").get("strategy", DEFAULT_STRATEGY), "build.strategy"),
        files=_words(list(_table(data, "files")), "files"),
        pip_requirements=_words(_table(data, "pip").get("requirements") or [], "pip.requirements"),
        outputs=_outputs(_table(data, "build").get("outputs")),
    )


def _outputs(value: object) -> tuple[str, ...] | None:
    return None if value is None else _words(value, "build.outputs")
