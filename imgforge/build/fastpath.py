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

import http.client
import json
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from imgforge.build import record
from imgforge.build.inputs import input_record
from imgforge.build.record import Manifest
from imgforge.build.records import Fingerprint
from imgforge.build.staleness import Facts, SifState, stale_reason
from imgforge.engine.guard import why_not_path_value
from imgforge.errors import ImgforgeError
from imgforge.options import Options
from imgforge.patterns import recipe_files
from imgforge.recipes.artifacts import Artifacts
from imgforge.recipes.header import RecipeHeader, read_header

DEFAULT_SOCKET = "/var/run/docker.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def engine_socket() -> str | None:
    """The engine's unix socket, or None where DOCKER_HOST names anything else."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    return host.removeprefix("unix://") if host.startswith("unix://") else None


def image_ids(path: str, refs: Iterable[str], timeout: float = 5.0) -> dict[str, str | None]:
    """The image ID of each reference (None if absent): one small inspect per image over
    one kept-alive connection. (Listing all images costs the engine time that grows with
    every image it holds; an inspect does not.)"""
    connection = _UnixConnection(path, timeout)
    found: dict[str, str | None] = {}
    try:
        for ref in dict.fromkeys(refs):
            if why_not_path_value(ref):  # e.g. an edited manifest: the full path decides
                raise ValueError(ref)
            connection.request("GET", f"/images/{quote(ref, safe='/:@')}/json")
            response = connection.getresponse()
            body = response.read()
            if response.status == 404:
                found[ref] = None
            elif response.status == 200:
                found[ref] = str(json.loads(body)["Id"])
            else:
                raise OSError(f"engine answered {response.status}")
    finally:
        connection.close()
    return found


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
    # A recipe: base resolves to the parent's NAME:TAG, whose own record is checked too.
    base_id = ids.get(recorded.base.resolved)
    if base_id is None:
        return None
    artifacts = Artifacts.under(options.out.absolute(), header.name, options.image_format)
    noted = recorded.fingerprint
    return Facts(
        image=recorded.image,
        fingerprint=Fingerprint(
            noted.recipe, noted.rendered, base_id, options.strategy or header.strategy
        ),
        recorded=recorded,
        image_id=ids.get(recorded.image),
        sif=None
        if options.singularity == "none"
        else SifState.of(artifacts.image_file, options.image_format),
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
    for header, recorded in records:
        facts = _facts(header, recorded, ids, options)
        if facts is None or stale_reason(facts) is not None:
            return None
    return [recorded.image for _, recorded in records]
