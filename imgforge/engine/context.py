"""Deterministic, sealed tars of a recipe's files: the Docker build context and the
commit strategy's staging tar.

Sealed: imgforge's own entry, the Dockerfile, is named ``DOCKERFILE``, a name with a
character (``:``) that the recipe path grammar (``patterns.PATH_RE``) forbids, so no
``[files]`` source or requirements file can be it; a file inside a copied directory could
be, and is refused; and no tar ever lists a path twice (a later entry would replace the
earlier one when the engine extracts it). The files come from the one safe walk
(imgforge.recipes.tree).
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

from imgforge.errors import RecipeError
from imgforge.recipes.copies import copy_steps, requirement_paths, walk_kept
from imgforge.recipes.ignore import IGNORE_FILE, go_clean
from imgforge.recipes.model import Recipe
from imgforge.recipes.tree import Entry, open_regular

DOCKERFILE = ".imgforge:Dockerfile"


class _Tar:
    """A tar being written: sorted by the caller, normalised owners and times, every
    name once."""

    def __init__(self, buffer: io.BytesIO, owner: Path) -> None:
        # Closed by close(): the tar is written by several calls.
        self.tar = tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.owner = owner
        self.names: set[str] = set()

    def _info(self, name: str, key: str, *, own: bool = False) -> tarfile.TarInfo:
        if name in self.names or (name.startswith(DOCKERFILE) and not own):
            raise RecipeError(
                self.owner, key, f"{name!r} would collide with another entry of the build context"
            )
        self.names.add(name)
        info = tarfile.TarInfo(name)
        info.uid = info.gid = info.mtime = 0
        return info

    def add_text(self, name: str, text: str) -> None:
        self.add_bytes(name, text.encode("utf-8"))

    def add_bytes(self, name: str, data: bytes, *, mode: int = 0o644) -> None:
        info = self._info(name, "", own=True)
        info.size, info.mode = len(data), mode
        self.tar.addfile(info, io.BytesIO(data))

    def add(self, entry: Entry, name: str, key: str) -> None:
        info = self._info(name, key)
        info.mode = entry.mode & 0o7777
        if entry.is_dir:
            info.type = tarfile.DIRTYPE
            self.tar.addfile(info)
            return
        info.size = entry.size
        fd = open_regular(entry.path, owner=self.owner, key=key, inode=entry.inode)
        with os.fdopen(fd, "rb") as handle:
            try:
                self.tar.addfile(info, handle)
            except OSError:
                raise RecipeError(
                    self.owner, key, f"{entry.name!r} changed while it was read"
                ) from None

    def close(self) -> None:
        self.tar.close()


def _sources(recipe: Recipe) -> list[tuple[str, str]]:
    """(key, source) of everything the recipe copies from its directory."""
    return [
        *((f"pip.requirements[{i}]", s) for i, s in enumerate(recipe.pip_requirements)),
        *((f"files.{source}", source) for source, _ in recipe.files),
    ]


def _staged(entries: Iterable[Entry], source: str, stage: str) -> Iterable[tuple[Entry, str]]:
    """Each entry at its path below ``stage`` instead of below ``source``."""
    root = go_clean(source)
    for entry in entries:
        if entry.name == root:
            yield entry, stage.lstrip("/")
        else:
            below = entry.name if root == "." else entry.name[len(root) + 1 :]
            yield entry, f"{stage.lstrip('/')}/{below}"


def staging_context(recipe: Recipe) -> io.BytesIO:
    """A tar to extract at ``/`` in a build container: each requirements file and each
    ``[files]`` source at the staging path the build script takes it from."""
    buffer = io.BytesIO()
    tar = _Tar(buffer, recipe.path)
    staged: list[tuple[Entry, str, str]] = []
    for index, (source, target) in enumerate(requirement_paths(recipe)):
        key = f"pip.requirements[{index}]"
        entries = walk_kept(recipe, key, source)
        staged += [(e, n, key) for e, n in _staged(entries, source, target)]
    for copy in copy_steps(recipe):
        key = f"files.{copy.source}"
        entries = walk_kept(recipe, key, copy.source)
        staged += [(e, n, key) for e, n in _staged(entries, copy.source, copy.stage)]
    for entry, name, key in sorted(staged, key=lambda item: item[1].split("/")):
        tar.add(entry, name, key)
    tar.close()
    buffer.seek(0)
    return buffer


def dockerfile_only(dockerfile: str) -> io.BytesIO:
    """A build context holding nothing but the Dockerfile."""
    buffer = io.BytesIO()
    tar = _Tar(buffer, Path(DOCKERFILE))
    tar.add_text(DOCKERFILE, dockerfile)
    tar.close()
    buffer.seek(0)
    return buffer


def context_entries(recipe: Recipe) -> list[tuple[Entry, str]]:
    """(entry, key) of every recipe path in the build context, each once, sorted."""
    chosen: dict[str, tuple[Entry, str]] = {}
    for key, source in _sources(recipe):
        for entry in walk_kept(recipe, key, source):
            chosen.setdefault(entry.name, (entry, key))
    return [chosen[name] for name in sorted(chosen, key=lambda name: name.split("/"))]


def build_context(recipe: Recipe, dockerfile: str) -> io.BytesIO:
    """A tar of the Dockerfile and only what it copies (never the whole directory):
    sorted, root-owned, mtime 0, ``.dockerignore`` honoured (and itself left out).
    A path two sources bring in (a file inside a copied directory) is sent once."""
    buffer = io.BytesIO()
    tar = _Tar(buffer, recipe.path)
    tar.add_text(DOCKERFILE, dockerfile)
    entries = [(e, key) for e, key in context_entries(recipe) if e.name != "."]
    own = next((e for e, _ in entries if e.name == IGNORE_FILE), None)
    data, mode = engine_ignore_file(own, recipe.path)
    tar.add_bytes(IGNORE_FILE, data, mode=mode)
    for entry, key in entries:
        if entry is not own:
            tar.add(entry, entry.name, key)
    tar.close()
    buffer.seek(0)
    return buffer


def engine_ignore_file(own: Entry | None, owner: Path) -> tuple[bytes, int]:
    """The ``.dockerignore`` (content, mode) sent to the engine, so that no ``COPY`` copies
    imgforge's Dockerfile: once it has read them, the engine removes the Dockerfile and the
    ``.dockerignore`` from the context when this file excludes them (moby
    builder/remotecontext/detect.go, ``removeDockerfile``). As the docker CLI does for a
    Dockerfile outside the context (``AddDockerfileToBuildContext``), a recipe's own
    ``.dockerignore`` that a copy brings in gets the Dockerfile's line appended; without
    one, the file excludes itself too, so nothing of imgforge's reaches the image."""
    line = f"\n{DOCKERFILE}\n".encode()
    if own is None:
        return IGNORE_FILE.encode() + line, 0o644
    fd = open_regular(own.path, owner=owner, key=f"files.{IGNORE_FILE}", inode=own.inode)
    with os.fdopen(fd, "rb") as handle:
        return handle.read() + line, own.mode & 0o7777
