"""Content hashes of recipes and their inputs, for provenance and up-to-date checks."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from imgforge.recipes.ignore import IGNORE_FILE
from imgforge.recipes.tree import Entry, load_ignore, open_regular, read_ignore_file, walk_source

if TYPE_CHECKING:
    from imgforge.recipes.model import Recipe


def relative_to(path: Path, base: Path) -> str:
    return os.path.relpath(path, base).replace(os.sep, "/")


def input_paths(recipe: Recipe) -> list[str]:
    """Paths (relative to the recipe's directory) that a build reads besides the recipe."""
    return sources_of(
        recipe.pip_requirements, [source for source, _ in recipe.files], recipe.directory
    )


def sources_of(requirements: Iterable[str], files: Iterable[str], directory: Path) -> list[str]:
    """The inputs of a build: requirements files, ``[files]`` sources, and the
    ``.dockerignore`` that filters them."""
    sources = set(requirements) | set(files)
    if os.path.lexists(directory / IGNORE_FILE):
        sources.add(IGNORE_FILE)
    return sorted(sources)


def input_entries(directory: Path, sources: Iterable[str]) -> Iterator[Entry]:
    """Every path the ``sources`` bring in, from the one safe walk (imgforge.recipes.tree); the
    ``.dockerignore`` is an input itself, whatever its own rules say of it."""
    ignore = load_ignore(directory)
    for source in sources:
        if source == IGNORE_FILE:
            read_ignore_file(directory)  # a regular file inside, bounded
            path = str(directory / IGNORE_FILE)
            yield Entry(IGNORE_FILE, path, False, *_stat(path))
        else:
            yield from walk_source(directory, source, owner=directory, key=source, ignore=ignore)


def _stat(path: str) -> tuple[int, int, int, int]:
    st = os.lstat(path)
    return st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino


def _feed(digest: hashlib._Hash, entry: Entry, directory: Path) -> None:
    digest.update(f"{entry.name}\0{entry.mode & 0o170111:o}\0".encode())
    if not entry.is_dir:
        fd = open_regular(entry.path, owner=directory, key=entry.name, inode=entry.inode)
        with os.fdopen(fd, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    digest.update(b"\0")


def stat_signature(path: Path) -> list[int]:
    """What changes when a file is edited: size, mtime (ns), mode, inode (of the file a
    symbolic link names: editing it changes what a build reads)."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_mode, stat.st_ino]


def input_stats(directory: Path, sources: Iterable[str]) -> dict[str, list[int]]:
    """Stat signature of every path a build reads below ``directory`` (by context path)."""
    return {entry.name: entry.signature for entry in input_entries(directory, sources)}


def recipe_hash(recipe: Recipe) -> str:
    """sha256 over the recipe file and every file it copies or reads."""
    from imgforge.recipes.inputfile import read_bounded

    digest = hashlib.sha256(read_bounded(recipe.path))
    for entry in input_entries(recipe.directory, input_paths(recipe)):
        _feed(digest, entry, recipe.directory)
    return digest.hexdigest()


def combine(parts: Iterable[str]) -> str:
    """sha256 over several strings, unambiguously separated."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()
