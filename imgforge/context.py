"""A deterministic Docker build context: the Dockerfile plus only what the recipe names."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from imgforge.fingerprint import _walk, input_paths
from imgforge.recipe import Recipe

DOCKERFILE = ".imgforge/Dockerfile"


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    return info


def build_context(recipe: Recipe, dockerfile: str) -> io.BytesIO:
    """A tar of the Dockerfile and the recipe's inputs: sorted, root-owned, mtime 0."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = dockerfile.encode("utf-8")
        info = _normalise(tarfile.TarInfo(DOCKERFILE))
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
        seen: set[str] = set()
        for source in input_paths(recipe):
            for path in _walk(recipe.directory / source):
                name = os.path.relpath(path, recipe.directory)
                if name in seen:
                    continue
                seen.add(name)
                info = _normalise(tar.gettarinfo(str(path), arcname=name))
                if info.isreg():
                    with Path(path).open("rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
    buffer.seek(0)
    return buffer
