"""Content hashes of recipes and their inputs, for provenance and up-to-date checks."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from imgforge.ignore import IGNORE_FILE, Ignore

if TYPE_CHECKING:
    from imgforge.recipe import Recipe


def _walk(root: Path, ignore: Ignore | None = None, base: Path | None = None) -> Iterator[Path]:
    """``root`` and, for a directory, everything below it, in sorted order, minus what
    ``ignore`` excludes (paths relative to ``base``, the recipe's directory)."""
    def kept(path: Path) -> bool:
        return ignore is None or base is None or not ignore.excludes(relative_to(path, base))

    yield root
    if root.is_dir() and not root.is_symlink():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if kept(Path(dirpath) / d))
            for name in sorted(dirnames + filenames):
                if kept(Path(dirpath) / name):
                    yield Path(dirpath) / name


def relative_to(path: Path, base: Path) -> str:
    return os.path.relpath(path, base).replace(os.sep, "/")


def walk_source(directory: Path, source: str) -> Iterator[Path]:
    """Every path a ``[files]``/requirements ``source`` brings into a build, honouring the
    ``.dockerignore`` beside the recipe."""
    return _walk(directory / source, Ignore.load(directory), directory)


def _feed(digest: hashlib._Hash, path: Path, relative: str) -> None:
    stat = path.lstat()
    digest.update(f"{relative}\0{stat.st_mode & 0o170111:o}\0".encode())
    if path.is_symlink():
        digest.update(os.readlink(path).encode())
    elif path.is_file():
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    digest.update(b"\0")


def input_paths(recipe: Recipe) -> list[str]:
    """Paths (relative to the recipe's directory) that a build reads besides the recipe."""
    return sources_of(
        recipe.pip_requirements, [source for source, _ in recipe.files], recipe.directory
    )


def sources_of(requirements: Iterable[str], files: Iterable[str], directory: Path) -> list[str]:
    """The inputs of a build: requirements files, ``[files]`` sources, and the
    ``.dockerignore`` that filters them."""
    sources = set(requirements) | set(files)
    if (directory / IGNORE_FILE).is_file():
        sources.add(IGNORE_FILE)
    return sorted(sources)


def stat_signature(path: Path) -> list[int]:
    """What changes when a file is edited: size, mtime (ns), mode, inode."""
    stat = path.lstat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_mode, stat.st_ino]


def input_stats(directory: Path, sources: Iterable[str]) -> dict[str, list[int]]:
    """Stat signature of every path a build reads below ``directory`` (by relative path)."""
    stats: dict[str, list[int]] = {}
    for source in sources:
        for path in walk_source(directory, source):
            stats[relative_to(path, directory)] = stat_signature(path)
    return stats


def recipe_hash(recipe: Recipe) -> str:
    """sha256 over the recipe file and every file it copies or reads."""
    digest = hashlib.sha256(recipe.path.read_bytes())
    for source in input_paths(recipe):
        for path in walk_source(recipe.directory, source):
            _feed(digest, path, relative_to(path, recipe.directory))
    return digest.hexdigest()


def combine(parts: Iterable[str]) -> str:
    """sha256 over several strings, unambiguously separated."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()
