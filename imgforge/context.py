"""A deterministic Docker build context: the Dockerfile plus only what the recipe names."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from imgforge.fingerprint import walk_source
from imgforge.plan import copy_steps, requirement_paths
from imgforge.recipe import Recipe

DOCKERFILE = ".imgforge/Dockerfile"


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def _add_tree(tar: tarfile.TarFile, directory: Path, source: str, arcname: str) -> None:
    """The recipe's ``source`` (a file, or a directory and what ``.dockerignore`` keeps
    below it) at ``arcname``."""
    root = directory / source
    for path in walk_source(directory, source):
        relative = os.path.relpath(path, root)
        name = arcname if relative == "." else os.path.join(arcname, relative)
        info = _normalise(tar.gettarinfo(str(path), arcname=name))
        if info.isreg():
            with path.open("rb") as handle:
                tar.addfile(info, handle)
        else:
            tar.addfile(info)


def staging_context(recipe: Recipe) -> io.BytesIO:
    """A tar to extract at ``/`` in a build container: each requirements file and each
    ``[files]`` source at the staging path the build script takes it from."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for source, target in requirement_paths(recipe):
            _add_tree(tar, recipe.directory, source, target.lstrip("/"))
        for copy in copy_steps(recipe):
            _add_tree(tar, recipe.directory, copy.source, copy.stage.lstrip("/"))
    buffer.seek(0)
    return buffer


def dockerfile_only(dockerfile: str) -> io.BytesIO:
    """A build context holding nothing but the Dockerfile."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add_dockerfile(tar, dockerfile)
    buffer.seek(0)
    return buffer


def _add_dockerfile(tar: tarfile.TarFile, dockerfile: str) -> None:
    data = dockerfile.encode("utf-8")
    info = _normalise(tarfile.TarInfo(DOCKERFILE))
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def build_context(recipe: Recipe, dockerfile: str) -> io.BytesIO:
    """A tar of the Dockerfile and only what it copies (never the whole directory):
    sorted, root-owned, mtime 0, ``.dockerignore`` honoured (and itself left out)."""
    copied = [*recipe.pip_requirements, *(source for source, _ in recipe.files)]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add_dockerfile(tar, dockerfile)
        for source in _outermost(copied):
            _add_tree(tar, recipe.directory, source, source)
    buffer.seek(0)
    return buffer


def _outermost(sources: list[str]) -> list[str]:
    """Sources not inside another source (a tar must not list a path twice)."""
    kept: list[str] = []
    for source in sorted(sources, key=lambda s: (s.count("/"), s)):
        clean = source.rstrip("/")
        if not any(clean == k or clean.startswith(k + "/") for k in kept):
            kept.append(clean)
    return sorted(kept)
