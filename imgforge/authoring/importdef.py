"""``imgforge import FILE.def``: a Singularity/Apptainer definition file as a recipe, or the
complete list of what it says that a recipe can't say with the same meaning.

Sections are found with Apptainer's own rules (:mod:`imgforge.deffile`); spython's
SingularityParser reads %labels, %files and the %runscript command. Around spython's
shortcomings: it raises NotImplementedError for a Bootstrap line without "docker" in it
(localimage) and lower-cases From, so the header is read here and spython is given
``Bootstrap: docker``; it takes a section's first line for a header when it holds
``from:``, ``stage:`` or ``bootstrap``, or for a comment when it starts with ``#``, so
each section is given to it after a blank line; it ends a section at any line holding
``bootstrap:``, and its str.strip() takes control characters for blanks where Apptainer
does not, so such lines are refused (comments are only blanked); it keeps comment lines
as labels and files (skipped here, as Apptainer skips them); it turns a runscript of
several lines, comment lines included, into an echoed script, so it is given the command
line only; and in %environment it drops every line without ``=`` and strips ``export``
off names such as ``exporter``, so %environment is read here (:mod:`imgforge.shellwords`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgforge.authoring import defsections as read
from imgforge.authoring.deffile import Definition, Section, read_source, scan
from imgforge.authoring.defsections import Refusal, Values, shown
from imgforge.authoring.importpost import PostSteps, translate_post
from imgforge.authoring.shellwords import is_comment
from imgforge.errors import RecipeError
from imgforge.patterns import NAME_RE, RECIPE_PREFIX
from imgforge.reference import why_not_reference

TRANSLATED = ("post", "environment", "files", "labels", "runscript")
SECTION_REASONS = {
    "setup": "runs on the build host",
    "pre": "runs on the build host",
    "test": "a recipe has no test",
    "startscript": "instances",
    "help": "a recipe has no help text",
    "arguments": "build arguments",
}
APP_SECTIONS = (
    "appinstall",
    "applabels",
    "appfiles",
    "appenv",
    "apptest",
    "apphelp",
    "apprun",
    "appstart",
)
IMAGE_AGENTS = ("docker", "docker-daemon")
TEMPLATE_RE = re.compile(r"\{\{\s*\w+\s*\}\}")
ARTIFACT_RE = re.compile(r"(?:(?:.*/)?(?P<dir>[^/]+)/)?(?P<name>[^/]+)\.s(?:if|img)")
UNREADABLE_RE = re.compile(r"bootstrap:|[\x00-\x08\x0a-\x1f\x7f]", re.IGNORECASE)
NOT_BASE = "a recipe's base must be a Docker image or another recipe"


def _agent_base(agent: str, source: str) -> str | None:
    """The recipe base for ``Bootstrap: agent`` / ``From: source``, if a recipe has one:
    an image, or for a local image the recipe whose artifact it is (NAME/NAME.sif)."""
    if agent in IMAGE_AGENTS:
        return None if why_not_reference(source) else source
    match = ARTIFACT_RE.fullmatch(source) if agent == "localimage" else None
    if match is None or match["dir"] not in (None, match["name"]):
        return None
    return RECIPE_PREFIX + match["name"] if NAME_RE.fullmatch(match["name"]) else None


def _base(seen: dict[str, tuple[int, str]]) -> tuple[str, list[Refusal]]:
    if "bootstrap" not in seen or "from" not in seen:
        return "", [(0, f"no {key.title()} header") for key in ("bootstrap", "from")
                    if key not in seen]  # fmt: skip
    (line, agent), (from_line, source) = seen["bootstrap"], seen["from"]
    base = _agent_base(agent, source)
    if agent not in (*IMAGE_AGENTS, "localimage"):
        return "", [(line, f"Bootstrap: {shown(agent)} ({NOT_BASE})")]
    if base is None and agent == "localimage":
        why = f"not an imgforge recipe's NAME/NAME.sif, and {NOT_BASE}"
        return "", [(from_line, f"From: {shown(source)} ({why})")]
    if base is None:
        return "", [(from_line, f"From: {shown(source)} (not a Docker image reference)")]
    return base, []


def _header(definition: Definition) -> tuple[str, list[Refusal]]:
    """The base, from Bootstrap and From (Apptainer keeps a header key's last value)."""
    refused = [(n, f"{shown(text)} (not a Key: value header line)")
               for n, text in definition.malformed]  # fmt: skip
    refused += [(n, "a second Bootstrap (multi-stage builds)") for n in definition.stage_lines[1:]]
    seen: dict[str, tuple[int, str]] = {}
    for line in definition.header:
        if line.value.endswith("\\"):
            refused.append((line.line, f"{shown(line.raw)} (a continued header line)"))
        elif line.key not in ("bootstrap", "from"):
            why = "multi-stage builds" if line.key == "stage" else "a header a recipe can't express"
            refused.append((line.line, f"{shown(line.raw)} ({why})"))
        seen[line.key] = (line.line, line.value)
    base, why_not = _base(seen)
    return base, refused + why_not


def _refused_section(section: Section, kept: dict[str, Section]) -> str | None:
    """Why a recipe can't express ``section``, or None."""
    label = shown(f"%{section.name} {section.args}".strip())
    if not section.name:
        return f"{shown(section.raw.strip())} (an indented section header)"
    if section.name in SECTION_REASONS or section.name in APP_SECTIONS:
        return f"{label} ({SECTION_REASONS.get(section.name, 'SCIF apps')})"
    if section.name not in TRANSLATED:
        return f"{label} (not a section Apptainer knows)"
    # Apptainer ignores what follows # in section arguments, and those of %labels and
    # %environment altogether; for %files they name another stage.
    if section.args.split("#")[0].strip() and section.name in ("post", "runscript", "files"):
        return f"{label} ({'files from another stage' if section.name == 'files' else 'arguments'})"
    return f"a second %{section.name} section" if section.name in kept else None


def _sections(definition: Definition) -> tuple[dict[str, Section], list[Refusal]]:
    kept: dict[str, Section] = {}
    refused: list[Refusal] = []
    for section in definition.sections:
        why = _refused_section(section, kept)
        if why is None:
            kept[section.name] = section
        else:
            refused.append((section.line, why))
    return kept, refused


def _readable(section: Section) -> tuple[Section, list[Refusal]]:
    """``section`` with the lines spython can't read blanked, and those lines refused
    unless they are comments (which Apptainer skips too)."""
    bad = {n for n, text in section.numbered() if UNREADABLE_RE.search(text)}
    body = tuple("" if n in bad else text for n, text in section.numbered())
    why = f"a line of %{section.name} spython's parser can't read"
    refused = [(n, why) for n, text in section.numbered() if n in bad and not is_comment(text)]
    return Section(section.line, section.name, "", section.raw, body), refused


def _spython(sections: dict[str, Section]) -> Any:
    """spython's reading of %labels, %files and the %runscript command line."""
    from spython.main.parse.parsers import SingularityParser

    lines = ["Bootstrap: docker"]
    for name in ("labels", "files", "runscript"):
        if (section := sections.get(name)) is not None:
            body = read.runscript_lines(section) if name == "runscript" else section.body
            lines += [f"%{name}", "", *body]
    parser = SingularityParser(None, load=False)  # no file name: on a bad one it sys.exits
    parser.lines = lines
    parser.parse()
    return parser.recipe[parser.active_layer]


@dataclass(frozen=True)
class Parts:
    """What the translated sections say, in recipe terms."""

    labels: tuple[tuple[str, str], ...]
    files: tuple[tuple[str, str], ...]
    env: tuple[tuple[str, str], ...]
    command: str
    post: PostSteps


def _read(sections: dict[str, Section], directory: Path) -> tuple[Parts, list[Refusal]]:
    """Every translated section in recipe terms, and what can't be expressed."""
    readable, refused = dict(sections), []
    for name in ("labels", "files", "runscript"):
        if name in sections:
            readable[name], unreadable = _readable(sections[name])
            refused += unreadable
    parsed = _spython(readable)
    empty = Section(0, "", "", "", ())
    labels = read.labels(readable.get("labels", empty), parsed.labels)
    files = read.files(readable.get("files", empty), parsed.files, directory)
    env = read.environment(readable.get("environment", empty))
    command, why_not = read.runscript(readable.get("runscript", empty), parsed.cmd)
    post = translate_post(readable.get("post"), dict(env.pairs), files=bool(files.pairs))
    refused += [*labels.refused, *files.refused, *env.refused, *why_not, *post.refused]
    parts = Parts(labels.pairs, files.pairs, env.pairs, command or "", post)
    return parts, refused + _unseen(env, post)


def _unseen(env: Values, post: PostSteps) -> list[Refusal]:
    """%environment is not visible in %post, but [env] is in every recipe step: exact only
    when %post runs nothing, or exports the variable itself before anything runs."""
    if not post.has_commands:
        return []
    why = "which %post does not see but a recipe's build steps would (export it at the top "
    return [(line, f"%environment sets {name}, {why}of %post too)")
            for name, line in env.lines if name not in post.exported]  # fmt: skip


def _templating(text: str) -> list[Refusal]:
    """Apptainer replaces ``{{ name }}`` everywhere with build arguments."""
    numbered = enumerate(text.split("\n"), start=1)
    return [(n, f"{m.group()} (build arguments)") for n, line in numbered
            if (m := TEMPLATE_RE.search(line))]  # fmt: skip


def import_definition(path: Path, name: str, *, directory: Path | None = None) -> str:
    """A recipe for the definition file at ``path``; a RecipeError listing every part a
    recipe can't express with the same meaning (exit 2)."""
    text = read_source(path)
    definition = scan(text)
    base, refused = _header(definition)
    sections, why_not = _sections(definition)
    values, more = _read(sections, path.parent)
    found = dict.fromkeys([*refused, *why_not, *more, *_templating(text)])
    problems = sorted(found, key=lambda problem: (problem[0] == 0, problem[0]))
    if problems:
        listing = "; ".join(f"line {n}: {what}" if n else what for n, what in problems)
        raise RecipeError(path, "", f"cannot be expressed as a recipe: {listing}")
    return _render(path, name, base, values, directory)


def _render(path: Path, name: str, base: str, parts: Parts, directory: Path | None) -> str:
    from imgforge.authoring.scaffold import Imported, render_imported

    post = parts.post
    imported = Imported(
        base=base,
        apt=list(post.apt),
        pip=list(post.pip),
        env=list(parts.env),
        files=list(parts.files),
        run=[post.run] if post.run else [],
        labels=list(parts.labels),
        entrypoint=parts.command,
    )
    return render_imported(
        imported,
        source=path,
        name=name,
        directory=directory,
        post_run=bool(post.run),
        post_split=bool(post.apt or post.pip),
        def_runscript=bool(parts.command),
    )
