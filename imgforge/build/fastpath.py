"""The no-op fast path: prove every target up to date from manifests, file stats and
one engine call, importing nothing heavy. Any doubt returns None and the full path runs.

A manifest's ``inputs`` record (written after each successful build) holds the stat
signatures of the recipe, every file it reads and the project file, plus the option key.
If all still match, the recipe's content and therefore its rendered output are those
of the recorded build; one ``GET /images/json`` then confirms the image, base and parent
IDs, and a stat confirms the SIF.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from imgforge.build import record as manifest
from imgforge.engine.guard import why_not_path_value
from imgforge.errors import ImgforgeError
from imgforge.options import Options, options_key
from imgforge.patterns import PROJECT_FILE, RECIPE_PREFIX, recipe_files
from imgforge.recipes.fingerprint import input_stats, sources_of, stat_signature
from imgforge.recipes.inputfile import read_toml

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


def _recipes(directory: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    recipes: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in recipe_files(directory):
        data = read_toml(path)
        name = data.get("name", path.stem)
        if not isinstance(name, str) or name in recipes:
            raise ValueError(name)
        recipes[name] = (path, data)
    return recipes


def _order(targets: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """The targets and their ancestors, parents first (a cycle raises)."""
    ordered: dict[Path, tuple[Path, dict[str, Any]]] = {}
    directories: dict[Path, dict[str, tuple[Path, dict[str, Any]]]] = {}
    for target in targets:
        if target.parent not in directories:
            directories[target.parent] = _recipes(target.parent)
        by_name = directories[target.parent]
        chain: list[tuple[Path, dict[str, Any]]] = []
        path: Path | None = target
        while path is not None:
            if path in ordered:
                break
            if path in [p for p, _ in chain]:
                raise ValueError(f"cycle at {path}")
            data = read_toml(path)
            chain.append((path, data))
            base = data.get("base", "")
            parent = base[len(RECIPE_PREFIX) :] if base.startswith(RECIPE_PREFIX) else None
            path = by_name[parent][0] if parent is not None else None
        for path_, data in reversed(chain):
            ordered.setdefault(path_, (path_, data))
    return list(ordered.values())


def _inputs_match(path: Path, data: dict[str, Any], record: dict[str, Any], key: str) -> bool:
    inputs = record.get("inputs") or {}
    pip = data.get("pip") or {}
    sources = sources_of(
        pip.get("requirements") or [], (data.get("files") or {}).keys(), path.parent
    )
    project = path.parent / PROJECT_FILE
    return bool(
        inputs.get("options") == key
        and inputs.get("recipe") == stat_signature(path)
        and inputs.get("project") == (stat_signature(project) if project.exists() else None)
        and inputs.get("files") == input_stats(path.parent, sources)
    )


def up_to_date(paths: list[Path], options: Options) -> list[str] | None:
    """The image names of the targets and their ancestors, in build order, when every one
    is provably up to date; otherwise None."""
    sock = engine_socket()
    if options.force or options.push or options.save or sock is None:
        return None
    try:
        order = _order([Path(p).absolute() for p in paths])
        key = options_key(options)
        out = options.out.absolute()
        records: dict[str, dict[str, Any]] = {}
        for path, data in order:
            name = data.get("name", path.stem)
            record = manifest.read(out / name / "manifest.json")
            if record is None or not _inputs_match(path, data, record, key):
                return None
            wanted = options.strategy or (data.get("build") or {}).get("strategy", "dockerfile")
            if record.get("strategy") != wanted:
                return None  # e.g. an `imgforge shell` session's image: not the recipe's
            sif = out / name / f"{name}.{options.image_format}"
            if options.singularity != "none" and manifest.sif_problem(
                record.get("sif"), sif, options.image_format, str(record.get("docker_image_id"))
            ):
                return None
            records[name] = record
        refs = [str(r.get("image")) for r in records.values()]
        refs += [
            str((r.get("base") or {}).get("resolved"))
            for r in records.values()
            if not str((r.get("base") or {}).get("ref", "")).startswith(RECIPE_PREFIX)
        ]
        tags = image_ids(sock, refs)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImgforgeError):
        return None
    for record in records.values():
        base = record.get("base") or {}
        ref = str(base.get("ref", ""))
        if ref.startswith(RECIPE_PREFIX):
            parent = records.get(ref[len(RECIPE_PREFIX) :]) or {}
            base_id = parent.get("docker_image_id")
        else:
            base_id = tags.get(str(base.get("resolved")))
        if tags.get(str(record.get("image"))) != record.get("docker_image_id"):
            return None
        if base_id is None or base_id != base.get("image_id"):
            return None
    return [str(record["image"]) for record in records.values()]
