"""Reading the files imgforge is given (recipes, imgforge.toml): regular files only, of
bounded size, parsed into TOML of bounded nesting; never blocking, never unbounded."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from imgforge.errors import RecipeError

MAX_BYTES = 1 << 20  # a recipe is a few hundred bytes; 1 MiB is generous
MAX_DEPTH = 16  # recipes nest three levels ([pip] packages = [...])


def read_bounded(path: Path, limit: int = MAX_BYTES) -> bytes:
    """The bytes of the regular file ``path`` (a symlink to one is fine), refused when
    it is a FIFO, device, socket or directory, or larger than ``limit``."""
    from imgforge.recipes.tree import read_limited

    return read_limited(path, owner=path, key="", limit=limit)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML input file; every failure is a RecipeError naming the file."""
    data = read_bounded(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RecipeError(path, "", "not valid UTF-8") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(path, "", f"TOML syntax error: {exc}") from None
    except RecursionError:
        raise RecipeError(path, "", f"nested deeper than {MAX_DEPTH} levels") from None
    if depth(document) > MAX_DEPTH:
        raise RecipeError(path, "", f"nested deeper than {MAX_DEPTH} levels")
    return document


def depth(value: object) -> int:
    """How deeply tables and arrays nest in ``value`` (iteratively: no recursion)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return deepest
