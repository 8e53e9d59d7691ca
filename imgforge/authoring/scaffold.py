"""Start recipes: ``imgforge init`` (a commented template) and ``imgforge import``
(a simple Dockerfile turned into a recipe, or a clear list of what it can't express)."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from imgforge import __version__
from imgforge.errors import RecipeError, UsageError
from imgforge.patterns import ENV_KEY_RE, NAME_RE
from imgforge.reference import why_not_reference
from imgforge.render import make_environment

SCHEMA_NAME = "recipe.schema.json"
APT_OPTIONS = {"-y", "--yes", "-q", "-qq", "--no-install-recommends", "--quiet"}
PIP_OPTIONS = {"--no-cache-dir", "-q", "--quiet", "-U", "--upgrade", "--user"}
# Steps a recipe's apt section does itself.
NOISE = ("apt-get update", "apt-get clean", "rm -rf /var/lib/apt/lists/*")


def schema_path(directory: Path) -> str:
    """A ``#:schema`` reference for a recipe in ``directory``: relative to it, the
    ``recipe.schema.json`` found there, in its ``schema/`` folder or in its parent's
    (a project laid out as ``recipes/`` beside ``schema/``); without one, the schema
    beside the recipe, which :func:`ensure_schema` writes once the recipe is written, so
    the reference resolves wherever imgforge is installed."""
    for candidate in (
        directory / SCHEMA_NAME,
        directory / "schema" / SCHEMA_NAME,
        directory.parent / "schema" / SCHEMA_NAME,
    ):
        if candidate.is_file():
            relative = os.path.relpath(candidate, directory).replace(os.sep, "/")
            return relative if relative.startswith("../") else f"./{relative}"
    return f"./{SCHEMA_NAME}"


def ensure_schema(directory: Path) -> None:
    """Write the schema beside a recipe just written in ``directory`` when the recipe's
    ``#:schema`` reference found none (see :func:`schema_path`)."""
    if not (directory / SCHEMA_NAME).exists() and schema_path(directory) == f"./{SCHEMA_NAME}":
        write_schema(directory / SCHEMA_NAME)


def write_schema(path: Path) -> None:
    """Write the recipe JSON Schema (what ``imgforge schema`` prints) to ``path``."""
    from imgforge import atomic
    from imgforge.recipes.schema import recipe_json_schema_text

    atomic.write_text(path, recipe_json_schema_text())


def init_recipe(name: str, base: str, directory: Path) -> Path:
    """Write ``NAME.toml`` (never over an existing file)."""
    if not NAME_RE.fullmatch(name):
        raise UsageError(f"init: {name!r} is not a valid recipe name")
    if why := why_not_reference(base):
        raise UsageError(f"init: --base {base!r} is not a Docker image reference ({why})")
    path = directory / f"{name}.toml"
    if path.exists():
        raise UsageError(f"init: {path} exists; not overwriting it")
    text = (
        make_environment()
        .get_template("init.toml.j2")
        .render(name=name, base=base, schema_path=schema_path(directory))
    )
    path.write_text(text, encoding="utf-8")
    ensure_schema(directory)
    return path


@dataclass
class Imported:
    """What a Dockerfile said, in recipe terms, plus what it said that recipes can't."""

    base: str = ""
    apt: list[str] = field(default_factory=list)
    pip: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    env: list[tuple[str, str]] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)
    run: list[str] = field(default_factory=list)
    labels: list[tuple[str, str]] = field(default_factory=list)
    command: str = ""
    entrypoint: str = ""
    refused: list[str] = field(default_factory=list)


def instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    result: list[tuple[int, str, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        start = start or number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        word, _, rest = whole.partition(" ")
        result.append((start, word.upper(), rest.strip()))
        start = 0
    return result


def _words(arguments: str) -> list[str]:
    if arguments.startswith("["):
        words = json.loads(arguments)
        return [str(w) for w in words]
    return shlex.split(arguments)


def _pairs(arguments: str) -> list[tuple[str, str]]:
    """ENV/LABEL arguments: ``K=V K2="v 2"`` or the legacy ``K V``."""
    words = shlex.split(arguments)
    if words and "=" not in words[0]:
        return [(words[0], arguments.partition(" ")[2].strip())]
    return [(w.partition("=")[0], w.partition("=")[2]) for w in words]


def _run(imported: Imported, line: int, arguments: str) -> None:
    if arguments.startswith("["):
        imported.run.append(shlex.join(_words(arguments)))
        return
    for part in (p.strip() for p in arguments.split("&&")):
        words = shlex.split(part) if part else []
        if not words or part in NOISE:
            continue
        if words[:2] == ["apt-get", "install"] or words[:2] == ["apt", "install"]:
            imported.apt += [w for w in words[2:] if w not in APT_OPTIONS and w != "install"]
        elif words[:2] in (["pip", "install"], ["pip3", "install"]) or words[1:4] == [
            "-m",
            "pip",
            "install",
        ]:
            _pip(imported, words[words.index("install") + 1 :])
        else:
            imported.run.append(part)


def _pip(imported: Imported, words: list[str]) -> None:
    index = 0
    while index < len(words):
        word = words[index]
        if word in ("-r", "--requirement") and index + 1 < len(words):
            imported.requirements.append(words[index + 1])
            index += 2
            continue
        if word not in PIP_OPTIONS:
            imported.pip.append(word)
        index += 1


def _instruction(imported: Imported, line: int, word: str, arguments: str) -> None:
    if word == "FROM":
        if imported.base:
            imported.refused.append(f"line {line}: a second FROM (multi-stage builds)")
        words = arguments.split()
        if len(words) != 1:
            imported.refused.append(f"line {line}: FROM {arguments} (AS/--platform)")
        imported.base = words[0] if words else ""
    elif word == "RUN":
        _run(imported, line, arguments)
    elif word == "ENV":
        imported.env += _pairs(arguments)
    elif word == "LABEL":
        imported.labels += _pairs(arguments)
    elif word == "COPY" and not arguments.startswith("--"):
        *sources, dest = _words(arguments)
        imported.files += [(source, dest) for source in sources]
    elif word == "CMD":
        imported.command = shlex.join(_words(arguments))
    else:
        imported.refused.append(f"line {line}: {word} {arguments}".strip())


def import_dockerfile(path: Path, name: str, *, directory: Path | None = None) -> str:
    """A recipe for the Dockerfile at ``path``; RecipeError listing what can't be expressed."""
    imported = Imported()
    for line, word, arguments in instructions(path.read_text(encoding="utf-8")):
        try:
            _instruction(imported, line, word, arguments)
        except (ValueError, json.JSONDecodeError):
            imported.refused.append(f"line {line}: {word} {arguments} (cannot be parsed)")
    bad_env = [k for k, _ in imported.env if not ENV_KEY_RE.fullmatch(k)]
    imported.refused += [f"ENV {k} (not a variable name)" for k in bad_env]
    if not imported.base:
        imported.refused.append("no FROM")
    if imported.refused:
        listing = "; ".join(imported.refused)
        raise RecipeError(path, "", f"cannot be expressed as a recipe: {listing}")
    return render_imported(imported, source=path, name=name, directory=directory)


def render_imported(
    imported: Imported, *, source: Path, name: str, directory: Path | None, **notes: bool
) -> str:
    """The recipe text for what an importer read from ``source``; ``directory`` is where
    it will be written (default: beside the source), for its ``#:schema`` reference."""
    fields = {k: v for k, v in vars(imported).items() if k != "refused"}
    return (
        make_environment()
        .get_template("imported.toml.j2")
        .render(
            version=__version__,
            source=source.name,
            name=name,
            schema_path=schema_path(directory or source.parent),
            **notes,
            **fields,
        )
    )
