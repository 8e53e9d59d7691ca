"""``imgforge import``: the recipe a Dockerfile or a .def becomes, written beside it and
checked to load and render, or nothing written."""

from __future__ import annotations

from pathlib import Path

from imgforge.authoring.scaffold import ensure_schema, import_dockerfile
from imgforge.errors import ImgforgeError, RecipeError, UsageError
from imgforge.patterns import NAME_RE


def import_to_file(dockerfile: Path, name: str | None, output: Path | None) -> Path:
    """Write the recipe imported from a Dockerfile or a Singularity/Apptainer definition
    file beside it (its build context) and check it loads; nothing is left behind if it
    doesn't. Which of the two it is, the content says (or a ``.def`` suffix)."""
    from imgforge.authoring.deffile import is_definition, read_source
    from imgforge.authoring.importdef import import_definition
    from imgforge.recipes.model import load

    definition = is_definition(dockerfile, read_source(dockerfile))
    # A Dockerfile is named after its build context; a NAME.def has a name of its own.
    named = dockerfile.stem if definition and dockerfile.suffix == ".def" else None
    name = name or "".join(
        c if c.isalnum() else "-" for c in (named or dockerfile.parent.absolute().name).lower()
    ).strip("-")
    if not NAME_RE.fullmatch(name):
        raise UsageError(f"import: {name!r} is not a valid recipe name (use --name)")
    target = output or dockerfile.parent / f"{name}.toml"
    if target.exists():
        raise UsageError(f"import: {target} exists; not overwriting it")
    convert = import_definition if definition else import_dockerfile
    target.write_text(convert(dockerfile, name, directory=target.parent), encoding="utf-8")
    try:
        load(target)
    except RecipeError as exc:
        target.unlink()
        where = f"{exc.key}: {exc.reason}" if exc.key else exc.reason
        moved = target.parent.absolute() != dockerfile.parent.absolute()
        hint = "; its paths are relative to the recipe: write it beside the source" if moved else ""
        raise RecipeError(
            dockerfile, "", f"the recipe it becomes does not load ({where}){hint}"
        ) from None
    try:
        check_renders(target)
    except ImgforgeError as exc:
        target.unlink()
        raise RecipeError(
            dockerfile, "", f"the recipe it becomes does not render ({exc})"
        ) from None
    ensure_schema(target.parent)
    return target


def check_renders(recipe: Path) -> None:
    """What ``imgforge render`` checks, without writing or an engine: the recipe's
    directory loads with it (names, ``recipe:`` bases) and every format can carry it."""
    from imgforge.build.session import prepare
    from imgforge.options import Options

    # Nothing is written: the --out of this render is never created.
    options = Options(out=Path("/.imgforge-import-check"))
    prepare([recipe], options, lambda: None, lambda _line: None, pull=False)
