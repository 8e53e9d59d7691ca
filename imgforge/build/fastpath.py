"""The no-op fast path: prove every target up to date from manifests, file stats and
one engine connection, importing nothing heavy. Any doubt returns None and the full
path runs.

A manifest's ``inputs`` record (written after each successful build) holds the stat
signatures of the recipe, every file it reads and the project file, plus the option key.
If all still match (imgforge.build.inputs computes the record for both paths), the
recipe's content and therefore its rendered output are those of the recorded build, so
the recorded fingerprint's content hashes stand; the engine then gives the image and
base IDs, and the staleness rule the full path applies (imgforge.build.staleness)
decides.
"""

from __future__ import annotations

from pathlib import Path

from imgforge.build import record
from imgforge.build.inputs import input_record
from imgforge.build.record import Manifest
from imgforge.build.records import Fingerprint
from imgforge.build.staleness import Facts, SifState, stale_reason
from imgforge.engine.unixsocket import engine_socket, image_ids
from imgforge.errors import ImgforgeError
from imgforge.options import Options, wanted
from imgforge.patterns import recipe_files
from imgforge.recipes.artifacts import Artifacts
from imgforge.recipes.header import RecipeHeader, read_header


def _headers(directory: Path) -> dict[str, RecipeHeader]:
    headers: dict[str, RecipeHeader] = {}
    for path in recipe_files(directory):
        header = read_header(path)
        if header.name in headers:
            raise ValueError(header.name)
        headers[header.name] = header
    return headers


def _order(targets: list[Path]) -> list[RecipeHeader]:
    """The targets and their ancestors, parents first (a cycle raises)."""
    ordered: dict[Path, RecipeHeader] = {}
    directories: dict[Path, dict[str, RecipeHeader]] = {}
    for target in targets:
        if target.parent not in directories:
            directories[target.parent] = _headers(target.parent)
        by_name = directories[target.parent]
        chain: list[RecipeHeader] = []
        path: Path | None = target
        while path is not None and path not in ordered:
            if path in [header.path for header in chain]:
                raise ValueError(f"cycle at {path}")
            header = read_header(path)
            chain.append(header)
            parent = header.base_recipe
            path = by_name[parent].path if parent is not None else None
        for header in reversed(chain):
            ordered.setdefault(header.path, header)
    return list(ordered.values())


def _recorded(header: RecipeHeader, options: Options) -> Manifest | None:
    """The recipe's manifest when its inputs are those recorded, else None."""
    artifacts = Artifacts.under(options.out.absolute(), header.name, options.image_format)
    recorded = record.read(artifacts.manifest)
    inputs = input_record(
        header.path, requirements=header.pip_requirements, files=header.files, options=options
    )
    return recorded if recorded is not None and recorded.inputs == inputs else None


def _facts(
    header: RecipeHeader, recorded: Manifest, ids: dict[str, str | None], options: Options
) -> Facts | None:
    """The staleness facts of a recipe whose inputs match its record: its content, and so
    its rendered text, are the recorded build's; the base and image IDs are the engine's."""
    if (recorded.recipe, recorded.image, recorded.base.ref) != (
        header.name,
        header.image,
        header.base,
    ):
        return None  # a record of another recipe, or of this one under another name or base
    # A recipe: base resolves to the parent's NAME:TAG, whose own record is checked too.
    base_id = ids.get(recorded.base.resolved)
    if base_id is None:
        return None
    artifacts = Artifacts.under(options.out.absolute(), header.name, options.image_format)
    outputs = wanted(header.outputs, options)
    noted = recorded.fingerprint
    return Facts(
        image=recorded.image,
        fingerprint=Fingerprint(
            noted.recipe, noted.rendered, base_id, options.strategy or header.strategy
        ),
        recorded=recorded,
        image_id=ids.get(recorded.image),
        sif=SifState.of(artifacts.image_file, options.image_format, options.compression)
        if outputs.sif
        else None,
        sqsh=SifState.of(artifacts.sqsh_file, "sqsh", options.compression)
        if outputs.sqsh
        else None,
        force=options.force,
        interactive=header.name == options.interactive,
    )


def up_to_date(paths: list[Path], options: Options) -> list[str] | None:
    """The image names of the targets and their ancestors, in build order, when every one
    is provably up to date; otherwise None."""
    sock = engine_socket()
    if options.force or options.push or options.save or sock is None:
        return None
    try:
        records: list[tuple[RecipeHeader, Manifest]] = []
        for header in _order([Path(p).absolute() for p in paths]):
            recorded = _recorded(header, options)
            if recorded is None:
                return None
            records.append((header, recorded))
        refs = [ref for _, r in records for ref in (r.image, r.base.resolved)]
        ids = image_ids(sock, refs)
    except (OSError, ValueError, KeyError, ImgforgeError):
        return None
    images = {header.name: header.image for header, _ in records}
    for header, recorded in records:
        parent = header.base_recipe
        if parent is not None and recorded.base.resolved != images.get(parent):
            return None  # built on the parent under another name or tag
        facts = _facts(header, recorded, ids, options)
        if facts is None or stale_reason(facts) is not None:
            return None
    return [recorded.image for _, recorded in records]
