"""``imgforge verify``: find a SIF and its Docker image, and compare them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from imgforge.build import record
from imgforge.errors import EngineError, UsageError
from imgforge.recipes.artifacts import MANIFEST_FILE
from imgforge.recipes.image import ImageConfig
from imgforge.render import expected_sif
from imgforge.sif.check import run_compare, shallow
from imgforge.sif.deep import deep_compare
from imgforge.sif.format import SIFFormatError
from imgforge.sif.read import SifImage

if TYPE_CHECKING:
    from imgforge.engine.protocol import Engine
    from imgforge.sif.runtime import Runtime


def locate(target: str, *, out: Path, image: str | None) -> tuple[Path, str]:
    """The SIF and Docker image to compare: a recipe NAME (its manifest under ``out``)
    or a SIF path (``image`` given, or a manifest beside the file)."""
    path = Path(target)
    if path.suffix in (".sif", ".simg") or path.is_file():
        manifest_path = path.parent / MANIFEST_FILE
    else:
        manifest_path = out / target / MANIFEST_FILE
    recorded = record.read(manifest_path)
    sif = recorded.sif if recorded is not None else None
    if path.suffix not in (".sif", ".simg") and not path.is_file():
        if sif is None:
            raise UsageError(f"{target}: no SIF recorded in {manifest_path}")
        path = manifest_path.parent / Path(sif.path).name  # imgforge records a name
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    chosen = (
        image
        or (sif.docker_image_id if sif is not None else "")
        or (recorded.docker_image_id if recorded is not None else "")
    )
    if not chosen:
        raise UsageError(f"{path}: say which Docker image to compare it with (--image NAME:TAG)")
    return path, str(chosen)


def verify_pair(
    path: Path, image: str, *, engine: Engine, deep: bool, runtime: Runtime | None = None
) -> tuple[list[str], str]:
    """Every difference between the SIF at ``path`` and the Docker image ``image``; with a
    ``runtime``, also what it shows when it runs and inspects the SIF. Also says how it
    checked: statically, or by running the SIF too."""
    found = engine.inspect(image)
    if found is None:
        raise UsageError(f"{image}: no such image in the engine")
    config = ImageConfig.from_inspect(found, origin=f"image {image}")
    how = "static checks (no apptainer on PATH)"
    try:
        sif_image = SifImage.open(path)
    except (OSError, SIFFormatError) as exc:
        return [f"format: {exc}"], how
    # One listing of the squashfs (unsquashfs reads the whole directory table) serves all.
    names = sif_image.names()
    problems = shallow(sif_image, config, expected_sif(config), names)
    if deep:
        with engine.exported(str(found["Id"])) as stream:
            problems += deep_compare(sif_image, stream)
    if runtime is not None and not problems:
        try:
            problems += run_compare(sif_image, names, config, runtime)
            how = f"ran it with {runtime.label}"
        except EngineError as exc:
            how = f"static checks ({runtime.label} could not run it: {exc})"
    elif runtime is not None:
        how = "static checks (not run: they found differences)"
    return problems, how
