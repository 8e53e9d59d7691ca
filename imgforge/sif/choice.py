"""Which Singularity-image backend ``--singularity`` picks, chosen when first needed."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable

from imgforge.errors import EngineError
from imgforge.sif.apptainer import SingularityCLI
from imgforge.sif.backend import SifBackend
from imgforge.sif.pack import NativeBackend


def binary(name: str) -> str | None:
    """Path of an installed apptainer/singularity binary, or None."""
    return shutil.which(name)


def choose(requested: str) -> SifBackend | None:
    """The backend for ``--singularity``: None for ``none``; exit 3 if a tool is missing."""
    if requested == "none":
        return None
    if requested in ("apptainer", "singularity"):
        path = binary(requested)
        if path is None:
            raise EngineError(f"--singularity {requested}: no {requested} binary on PATH")
        return SingularityCLI(requested, path)
    if requested == "auto":
        for name in ("apptainer", "singularity"):
            path = binary(name)
            if path is not None:
                return SingularityCLI(name, path)
    return NativeBackend.create()


def chooser(requested: str) -> Callable[[], SifBackend | None]:
    """:func:`choose` for ``requested``, called when first needed and remembered: a
    missing tool fails the first build that makes an image, not a run with none to make."""
    return functools.cache(lambda: choose(requested))

