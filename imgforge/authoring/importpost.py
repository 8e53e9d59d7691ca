"""Translate a .def's %post script into recipe steps that do exactly what Apptainer does.

Apptainer runs %post as ONE script, ``/bin/sh -ex /.post.script``, in ``/`` (``exec --pwd /``),
with the base image's environment but not %environment, which it writes only after
%post (internal/pkg/build/stage.go runPostScript, util.go getSectionScriptArgs,
metadata.go insertEnvScript). A recipe runs apt, then pip, then each ``[run]`` command
through ``/bin/sh -c`` in the base's WORKDIR, all seeing ``[env]``. So:

- The script stays one ``[run]`` command, prefixed with ``cd /`` and ``set -ex``: if/for/
  case blocks, functions, heredocs, continuation lines and a ``cd`` that later lines rely
  on keep the meaning they had. The body is kept byte for byte (indentation too: heredocs).
- Only a leading part made of whole, literal, one-line commands is taken out, and only
  where the recipe step is the same operation with the same failure behaviour: the four
  lines of an apt install exactly as the ``[apt]`` step runs them (update; install -y
  --no-install-recommends, noninteractive; clean; list removal, each failing the build
  on its own line: an ``&&`` chain is not taken, since sh -e ignores a failure before
  its last command), then one ``python3 -m pip install --no-cache-dir`` of plain
  requirements (``pip``/``pip3`` may be another interpreter's pip). Several installs are
  not merged: resolving packages together can choose differently.
- ``export NAME=value`` lines at the very top that repeat %environment's final values
  are what ``[env]`` gives every step; they are dropped, as are ``set -e``/``-x``
  (Apptainer already passes -ex). A name exported there, whatever its value, is one
  whose %environment value (visible in a recipe, not in %post) nothing can observe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement

from imgforge.authoring.deffile import Section
from imgforge.authoring.shellwords import Word, is_blank, is_comment, literal_words
from imgforge.patterns import APT_RE

RUN_PREFIX = "cd /\nset -ex\n"
NO_OPS = (["set", "-e"], ["set", "-x"], ["set", "-ex"], ["set", "-xe"])
APT_YES = {"-y", "--yes", "--assume-yes", "-qq"}
APT_INSTALL_OPTIONS = APT_YES | {"-q", "--quiet", "--no-install-recommends"}
APT_LISTS = ("rm -rf /var/lib/apt/lists/*", "rm -fr /var/lib/apt/lists/*")  # a glob: as text
PIP_OPTIONS = {"--no-cache-dir", "-q", "--quiet"}
ARCHIVES = (".whl", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz")
# What a recipe step cannot reproduce: Apptainer's build-time variables (e.g. writing to
# $SINGULARITY_ENVIRONMENT); $0 and LINENO, which name /.post.script and its lines; $-,
# which holds c under sh -c.
FOREIGN = (
    (re.compile(r"\b(?:APPTAINER|SINGULARITY)_[A-Za-z0-9_]*"), "Apptainer's build variables"),
    (re.compile(r"\$\{?[0-]\}?|\bLINENO\b"), "it differs in a recipe command"),
)


@dataclass(frozen=True)
class PostSteps:
    """%post in recipe terms: the steps, and what a recipe can't do like Apptainer."""

    apt: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    run: str | None = None
    exported: frozenset[str] = frozenset()  # set at the top, before any command
    # Whether a recipe step runs (a %post of set -e and [env]'s own exports runs nothing).
    has_commands: bool = False
    refused: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class _Line:
    index: int
    text: str
    words: list[Word] | None

    def values(self) -> list[str] | None:
        return None if self.words is None else [word.value for word in self.words]


def _commands(body: Sequence[str]) -> list[_Line]:
    """Lines that are not blank or comments, with their words when literal."""
    return [
        _Line(index, text, literal_words(text))
        for index, text in enumerate(body)
        if not is_blank(text) and not is_comment(text)
    ]


def _export(line: _Line) -> list[tuple[str, str]] | None:
    """What a line ``export A=x [B=y ...]`` of literal words sets, else None."""
    words = line.words or []
    pairs = [word.assignment for word in words[1:]]
    if len(words) < 2 or words[0].raw != "export" or None in pairs:
        return None
    return [pair for pair in pairs if pair is not None]


def _apt_install(words: list[Word], env: Mapping[str, str]) -> list[str] | None:
    frontend = env.get("DEBIAN_FRONTEND")
    if words and words[0].assignment == ("DEBIAN_FRONTEND", "noninteractive"):
        frontend, words = "noninteractive", words[1:]
    values = [word.value for word in words]
    if values[:2] != ["apt-get", "install"] or frontend != "noninteractive":
        return None
    options = {v for v in values[2:] if v.startswith("-")}
    packages = [v for v in values[2:] if not v.startswith("-")]
    if not options <= APT_INSTALL_OPTIONS or "--no-install-recommends" not in options:
        return None
    if not options & APT_YES or not packages:
        return None
    return packages if all(APT_RE.fullmatch(p) for p in packages) else None


def _apt(lines: list[_Line], env: Mapping[str, str]) -> list[str] | None:
    """The packages of four lines that are exactly the recipe's apt step, else None."""
    if len(lines) < 4 or any(line.words is None for line in lines[:2]):
        return None
    update = lines[0].values() or []
    if update[:2] != ["apt-get", "update"] or not set(update[2:]) <= {"-q", "-qq", "-y"}:
        return None
    clean, lists = sorted(lines[2:4], key=lambda line: line.text.strip(" \t") in APT_LISTS)
    if clean.values() != ["apt-get", "clean"] or lists.text.strip(" \t") not in APT_LISTS:
        return None
    return _apt_install(lines[1].words or [], env)


def _requirement(text: str) -> bool:
    """A PEP 508 requirement that pip can't take for a path (those depend on the cwd)."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return False
    path_like = "/" in text or text.startswith(".") or text.lower().endswith(ARCHIVES)
    return requirement.url is None and not path_like


def _pip(line: _Line) -> list[str] | None:
    values = line.values() or []
    if values[:4] != ["python3", "-m", "pip", "install"]:
        return None
    options = {v for v in values[4:] if v.startswith("-")}
    packages = [v for v in values[4:] if not v.startswith("-")]
    if not options <= PIP_OPTIONS or "--no-cache-dir" not in options or not packages:
        return None
    return packages if all(_requirement(p) for p in packages) else None


def _run(body: Sequence[str], start: int) -> str | None:
    """The rest of the script from line ``start``, as one command (None if empty)."""
    rest = list(body[start:])
    while rest and is_blank(rest[0]):
        rest.pop(0)
    # Trailing blank lines are kept only where they could be text: an unterminated
    # here-document reads up to the end of the script.
    while rest and is_blank(rest[-1]) and not any("<<" in line for line in rest):
        rest.pop()
    if all(is_blank(line) or is_comment(line) for line in rest):
        return None
    return RUN_PREFIX + "".join(f"{line}\n" for line in rest)


def _foreign(section: Section) -> list[tuple[int, str]]:
    return [
        (number, f"%post uses {match.group()} ({why})")
        for number, text in section.numbered()
        if not is_comment(text)
        for pattern, why in FOREIGN
        if (match := pattern.search(text))
    ]


def _top(lines: list[_Line], env: Mapping[str, str]) -> tuple[int, set[str]]:
    """How many top lines a recipe does by itself (``set -e``/``-x``; exports of the
    values [env] sets anyway), and the names exported before any other command runs:
    whatever value they get, %post never sees what it had before."""
    taken, dropping = 0, True
    names: set[str] = set()
    for count, line in enumerate(lines):
        pairs = [] if line.values() in NO_OPS else _export(line)
        if pairs is None:
            break
        names.update(name for name, _ in pairs)
        dropping = dropping and all(env.get(name) == value for name, value in pairs)
        taken = count + 1 if dropping else taken
    return taken, names


def translate_post(section: Section | None, env: Mapping[str, str], *, files: bool) -> PostSteps:
    """%post as recipe steps; ``env`` is %environment's final values; with ``files``
    (%files, which Apptainer copies before %post) nothing moves to [apt]/[pip], which a
    recipe runs before its files."""
    if section is None:
        return PostSteps()
    lines = _commands(section.body)
    taken, exported = _top(lines, env)
    apt = None if files else _apt(lines[taken:], env)
    taken += 4 if apt else 0
    pip = None if files or taken >= len(lines) else _pip(lines[taken])
    taken += 1 if pip else 0
    run = _run(section.body, lines[taken - 1].index + 1 if taken else 0)
    return PostSteps(
        apt=tuple(apt or ()),
        pip=tuple(pip or ()),
        run=run,
        exported=frozenset(exported),
        has_commands=bool(apt or pip or run),
        refused=tuple(_foreign(section)),
    )
