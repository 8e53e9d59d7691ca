"""What a recipe copies into its image, computed once when jobs are made: the ``[files]``
copy steps, the pip requirements' paths and the .def's ``%files`` lines."""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from imgforge.errors import RecipeError
from imgforge.patterns import PATH_RE
from imgforge.recipes.ignore import IGNORE_FILE, Ignore, go_clean
from imgforge.recipes.model import Recipe
from imgforge.recipes.tree import Entry, load_ignore, shown, walk_source

_ALL = Ignore()  # no rules: everything below a source, as Apptainer's %files sees it

# Where the .def's %files and the commit strategy stage each [files] source before
# placing it with Docker COPY's rules. Its name holds a ':', which no recipe destination
# can (see patterns.PATH_RE), and render/limits.py refuses any copied tree that would
# reach it, so placing one entry can never overwrite another still waiting here.
STAGING = "/.imgforge:staging"


@dataclass(frozen=True)
class CopyStep:
    """One ``[files]`` entry with Docker ``COPY`` semantics, for all three build paths.

    ``dest`` is what the Dockerfile's COPY gets: the recipe's destination, with a final
    ``/.`` written as ``/`` (BuildKit reads ``/.`` as a directory, the classic builder
    cleans it to a file path; ``/`` means a directory to both). The .def and the commit
    strategy stage the source at ``stage`` and place it in %post / the build script:

    - a directory source: its contents merged into ``target`` (created);
    - a file into a directory destination (``/`` or ``/.`` at the end): ``target`` is
      ``directory/name``;
    - a file to any other destination: ``target`` itself, unless the image already has
      a directory there, in which case ``target/name`` (``into_existing``: decided when
      the step runs, as COPY decides it).
    """

    source: str
    dest: str
    stage: str
    directory: str
    target: str
    name: str
    is_dir: bool
    into_existing: bool


def _clean(path: str) -> str:
    """An absolute image path without ``.`` segments, repeated or trailing slashes."""
    return posixpath.normpath(path).replace("//", "/")


def copy_step(directory: Path, index: int, source: str, dest: str) -> CopyStep:
    """The CopyStep of ``[files]`` entry number ``index``: ``source`` -> ``dest``."""
    is_dir = (directory / source).is_dir()
    dir_form = dest.endswith(("/", "/."))
    copy_dest = dest[:-1] if dest.endswith("/.") else dest
    target = _clean(dest)
    name = posixpath.basename(posixpath.normpath(source))
    if is_dir:
        parent = target
    elif dir_form:
        parent, target = target, posixpath.join(target, name)
    else:
        parent = posixpath.dirname(target)
    stage = f"{STAGING}/{index}"
    into_existing = not is_dir and not dir_form
    return CopyStep(source, copy_dest, stage, parent, target, name, is_dir, into_existing)


def copy_steps(recipe: Recipe) -> list[CopyStep]:
    """The recipe's ``[files]`` as CopyStep values, in recipe order."""
    return [
        copy_step(recipe.directory, index, source, dest)
        for index, (source, dest) in enumerate(recipe.files)
    ]


def requirement_paths(recipe: Recipe) -> list[tuple[str, str]]:
    """(source, path in the image) for each pip requirements file."""
    return [
        (source, f"/tmp/imgforge-requirements-{index}.txt")
        for index, source in enumerate(recipe.pip_requirements)
    ]

def walk_kept(recipe: Recipe, key: str, source: str) -> list[Entry]:
    """The entries below ``source`` that ``.dockerignore`` keeps: what a copy brings in."""
    return walk_source(
        recipe.directory, source, owner=recipe.path, key=key, ignore=load_ignore(recipe.directory)
    )


def def_files(recipe: Recipe, copies: list[CopyStep]) -> list[tuple[str, str]]:
    """The .def's ``%files`` lines (source, staging path) of the ``[files]`` copies.

    Apptainer copies a ``%files`` source whole (``cp -fLr``), ``.dockerignore`` unseen: a
    directory with excluded entries is listed piece by piece instead, each piece a whole
    subtree that ``.dockerignore`` keeps, so the .def copies what the Docker build does.
    """
    lines: list[tuple[str, str]] = []
    for copy in copies:
        if not copy.is_dir:
            lines.append((copy.source, copy.stage))
            continue
        key = f"files.{copy.source}"
        kept = {e.name for e in walk_kept(recipe, key, copy.source)}
        every = walk_source(recipe.directory, copy.source, owner=recipe.path, key=key, ignore=_ALL)
        root = go_clean(copy.source)
        pieces = _cover(root, kept, {e.name: e.is_dir for e in every}, recipe.path, key)
        if pieces == [root]:
            lines.append((copy.source, copy.stage))
            continue
        for piece in pieces:
            if not PATH_RE.fullmatch(piece):
                raise RecipeError(
                    recipe.path, key, f"{shown(piece)} would be a %files line of the .def, "
                    "where only letters, digits and . _ @ + , = / - are allowed",
                )
            below = piece if root == "." else piece[len(root) + 1 :]
            lines.append((piece, f"{copy.stage}/{below}"))
    return lines


def _cover(root: str, kept: set[str], every: dict[str, bool], owner: Path, key: str) -> list[str]:
    """The fewest paths below ``root`` whose whole subtrees together are ``kept``."""
    children: dict[str, list[str]] = {name: [] for name in every}
    for name in every:
        if name != root:
            children[os.path.dirname(name) or "."].append(name)
    full: dict[str, bool] = {}
    any_kept: dict[str, bool] = {}
    for name in sorted(every, key=lambda n: -n.count("/") if n != "." else 1):
        full[name] = name in kept and all(full[c] for c in children[name])
        any_kept[name] = name in kept or any(any_kept[c] for c in children[name])
    pieces, pending = [], [root]
    while pending:
        name = pending.pop()
        if full[name]:
            pieces.append(name)
            continue
        if name in kept and every[name] and not any(any_kept[c] for c in children[name]):
            raise RecipeError(owner, key, f"{shown(name)} is empty after {IGNORE_FILE}, "
                              "which a .def's %files can't copy")
        pending.extend(c for c in children[name] if any_kept[c])
    return sorted(pieces, key=lambda n: n.split("/"))
